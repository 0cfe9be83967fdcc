//! Passwords of stored users: setting, verifying (with rehashing on outdated parameters) and
//! making them unusable. Hashing runs off the event loop ([`super::hash_pool`]); the database
//! records where a password came from (`user`, `seed`) so seeding never overwrites a changed one.

use super::db::args;
use super::store::{StoreError, User, UserStore};

impl UserStore {
    /// Sets a password chosen by the user or an admin; seeding never overwrites it afterwards.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<(), StoreError> {
        let hash = self.hasher().hash(password.to_string()).await?;
        let n = self
            .db()
            .execute(
                "UPDATE users SET password_hash = $1, password_source = 'user', password_changed_at = unixepoch() WHERE username = $2",
                args![hash, username],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "user",
                value: username.into(),
            });
        }
        Ok(())
    }

    pub(crate) async fn set_hash_keep_source(&self, id: i64, hash: &str, source: &str) -> Result<(), StoreError> {
        self.db()
            .execute(
                "UPDATE users SET password_hash = $1, password_source = $2, password_changed_at = unixepoch() WHERE id = $3",
                args![hash, source, id],
            )
            .await?;
        Ok(())
    }

    pub(crate) async fn password_source(&self, id: i64) -> Result<String, StoreError> {
        self.db()
            .fetch_one("SELECT password_source FROM users WHERE id = $1", args![id])
            .await?
            .at(0)
    }

    /// Verifies a password. Users without a hash, or inactive, still cost a full verify and
    /// fail. A match made with outdated parameters is rehashed.
    pub async fn verify_password(&self, user: &User, password: &str) -> Result<bool, StoreError> {
        let Some(hash) = user.password_hash.clone().filter(|_| user.is_active) else {
            self.hasher().verify_dummy(password.to_string()).await;
            return Ok(false);
        };
        let v = self.hasher().verify(password.to_string(), hash).await?;
        if v.ok && v.needs_rehash {
            let new_hash = self.hasher().hash(password.to_string()).await?;
            let source = self.password_source(user.id).await?;
            self.set_hash_keep_source(user.id, &new_hash, &source).await?;
            tracing::info!(user = %user.username, "password rehashed with current parameters");
        }
        Ok(v.ok)
    }

    /// Makes a user's password unusable (password expiry); seeding will not restore it.
    pub async fn set_password_unusable(&self, username: &str) -> Result<bool, StoreError> {
        let n = self
            .db()
            .execute(
                "UPDATE users SET password_hash = NULL, password_source = 'user', password_changed_at = unixepoch() WHERE username = $1",
                args![username],
            )
            .await?;
        Ok(n > 0)
    }
}
