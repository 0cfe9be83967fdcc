//! A user's own password checked outside the password stage (API clients with
//! `basic_auth_user_passwords`): against the directory the user came from when it is one
//! (`sources:` of `type: ldap`), else against the local hash.

use crate::flow::executor::Executor;
use crate::identity::{StoreError, User};

impl Executor {
    /// Whether `password` is `u`'s password (inactive users fail).
    pub async fn check_user_password(&self, u: &User, password: &str) -> Result<bool, StoreError> {
        self.users.verify_password(u, password).await
    }
}
