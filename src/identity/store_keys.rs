//! The identity keys of the user store (ID-1, ID-2 of docs/security.md): the columns that make
//! two usernames or two addresses "the same" ([`super::names`]), their migration onto older
//! databases, and the checks every write makes against them.

use super::names;
use super::store::{StoreError, UserStore};
use sqlx::{Row, SqlitePool};

/// Adds the identity keys (username skeleton, email key, email verification) to a database
/// made before them, fills them in, and indexes them. Emails are unique by key; a database
/// that already holds two users with one address keeps working (the explicit checks on every
/// write still refuse new duplicates) and says so in the log.
pub(super) async fn migrate_identity_keys(pool: &SqlitePool) -> Result<(), StoreError> {
    let cols: Vec<String> = sqlx::query("SELECT name FROM pragma_table_info('users')")
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?;
    for (col, ddl) in [
        (
            "username_skeleton",
            "ALTER TABLE users ADD COLUMN username_skeleton TEXT NOT NULL DEFAULT ''",
        ),
        (
            "email_key",
            "ALTER TABLE users ADD COLUMN email_key TEXT NOT NULL DEFAULT ''",
        ),
        // Rows from before verification was tracked were made by an admin or an older sign-up;
        // they keep sending their address (docs/decisions: unverified email).
        (
            "email_verified",
            "ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 1",
        ),
    ] {
        if !cols.iter().any(|c| c == col) {
            sqlx::query(ddl).execute(pool).await?;
        }
    }
    let rows = sqlx::query(
        "SELECT id, username, email FROM users WHERE username_skeleton = '' OR (email <> '' AND email_key = '')",
    )
    .fetch_all(pool)
    .await?;
    for r in &rows {
        let (id, username, email): (i64, String, String) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        sqlx::query("UPDATE users SET username_skeleton = ?1, email_key = ?2 WHERE id = ?3")
            .bind(names::username_skeleton(&username))
            .bind(names::email_key(&email))
            .bind(id)
            .execute(pool)
            .await?;
    }
    sqlx::query("CREATE INDEX IF NOT EXISTS users_username_skeleton ON users(username_skeleton)")
        .execute(pool)
        .await?;
    if let Err(e) =
        sqlx::query("CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users(email_key) WHERE email_key <> ''")
            .execute(pool)
            .await
    {
        tracing::warn!(error = %e, "users share an email address (case-insensitively): new duplicates are still refused; give each user their own address");
    }
    Ok(())
}

impl UserStore {
    /// Whether a user other than `except` has a username that is the same as `username` or
    /// looks like it (case, width, confusable letters: [`names::username_skeleton`]).
    pub async fn username_taken(&self, username: &str, except: Option<i64>) -> Result<bool, StoreError> {
        Self::username_taken_in(&mut *self.pool().acquire().await?, username, except).await
    }

    /// Whether a user other than `except` has this email address (case-insensitively).
    pub async fn email_taken(&self, email: &str, except: Option<i64>) -> Result<bool, StoreError> {
        Self::email_taken_in(&mut *self.pool().acquire().await?, email, except).await
    }

    pub(super) async fn username_taken_in(
        conn: &mut sqlx::SqliteConnection,
        username: &str,
        except: Option<i64>,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "SELECT 1 FROM users WHERE (username_lower = lower(?1) OR username_skeleton = ?2) AND id <> ?3 LIMIT 1",
        )
        .bind(username)
        .bind(names::username_skeleton(username))
        .bind(except.unwrap_or(-1))
        .fetch_optional(&mut *conn)
        .await?
        .is_some())
    }

    pub(super) async fn email_taken_in(
        conn: &mut sqlx::SqliteConnection,
        email: &str,
        except: Option<i64>,
    ) -> Result<bool, StoreError> {
        let key = names::email_key(email);
        if key.is_empty() {
            return Ok(false);
        }
        Ok(
            sqlx::query("SELECT 1 FROM users WHERE email_key = ?1 AND id <> ?2 LIMIT 1")
                .bind(key)
                .bind(except.unwrap_or(-1))
                .fetch_optional(&mut *conn)
                .await?
                .is_some(),
        )
    }
}
