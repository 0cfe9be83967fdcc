//! A user's own password checked outside the password stage (API clients with
//! `basic_auth_user_passwords`): against the directory the user was mirrored from when there
//! is one (`sources:` of `type: ldap`), else against the local hash.

use crate::flow::directories::{self, DirectoryLogin};
use crate::flow::executor::Executor;
use crate::identity::directory_users::directory_of;
use crate::identity::{StoreError, User};

impl Executor {
    /// Whether `password` is `u`'s password (inactive users fail); an error when the user store
    /// or the user's directory cannot be asked.
    pub async fn check_user_password(&self, u: &User, password: &str) -> Result<bool, String> {
        let Some(source) = directory_of(u) else {
            return self
                .users
                .verify_password(u, password)
                .await
                .map_err(|e: StoreError| e.to_string());
        };
        let Some(dir) = self.services.directories.get(source) else {
            self.users.hasher().verify_dummy(password.to_string()).await;
            return Ok(false);
        };
        match directories::login(dir, &self.users, &self.sessions, &u.username, password).await {
            DirectoryLogin::Ok(m) => Ok(m.id == u.id),
            DirectoryLogin::Failed => Ok(false),
            DirectoryLogin::Down(e) => Err(e.to_string()),
            DirectoryLogin::StoreFailed => Err("mirroring a directory user failed".into()),
        }
    }
}
