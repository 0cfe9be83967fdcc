//! The identity keys of the user store (ID-1, ID-2 of docs/security.md): the columns that make
//! two usernames or two addresses "the same" ([`super::names`]), their migration onto older
//! databases, and the checks every write makes against them.

use super::db::{args, Dialect, Exec};
use super::names;
use super::store::{StoreError, UserStore};

/// Adds the identity keys (username skeleton, email key, email verification) to a database
/// made before them, fills them in, and indexes them. Emails are unique by key; a database
/// that already holds two users with one address keeps working (the explicit checks on every
/// write still refuse new duplicates) and says so in the log.
pub(super) async fn migrate_identity_keys(conn: &mut Exec<'_>, dialect: Dialect) -> Result<(), StoreError> {
    let cols = super::open::columns(conn, dialect, "users").await?;
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
            "ALTER TABLE users ADD COLUMN email_verified {bool} NOT NULL DEFAULT {true}",
        ),
    ] {
        if !cols.iter().any(|c| c == col) {
            conn.execute(&dialect.ddl(ddl), &[]).await?;
        }
    }
    let rows = conn
        .fetch_all(
            "SELECT id, username, email FROM users WHERE username_skeleton = '' OR (email <> '' AND email_key = '')",
            &[],
        )
        .await?;
    for r in &rows {
        let (id, username, email): (i64, String, String) = (r.at(0)?, r.at(1)?, r.at(2)?);
        conn.execute(
            "UPDATE users SET username_skeleton = $1, email_key = $2 WHERE id = $3",
            args![names::username_skeleton(&username), names::email_key(&email), id],
        )
        .await?;
    }
    conn.execute(
        "CREATE INDEX IF NOT EXISTS users_username_skeleton ON users(username_skeleton)",
        &[],
    )
    .await?;
    if let Err(e) = conn
        .execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users(email_key) WHERE email_key <> ''",
            &[],
        )
        .await
    {
        if dialect == Dialect::Postgres {
            // PostgreSQL's databases start with this index, so it cannot fail on data; and a
            // failed statement would abort the migration's transaction anyway.
            return Err(e);
        }
        tracing::warn!(error = %e, "users share an email address (case-insensitively): new duplicates are still refused; give each user their own address");
    }
    Ok(())
}

impl UserStore {
    /// Whether a user other than `except` has a username that is the same as `username` or
    /// looks like it (case, width, confusable letters: [`names::username_skeleton`]).
    pub async fn username_taken(&self, username: &str, except: Option<i64>) -> Result<bool, StoreError> {
        Self::username_taken_in(&mut self.db().conn(), username, except).await
    }

    /// Whether a user other than `except` has this email address (case-insensitively).
    pub async fn email_taken(&self, email: &str, except: Option<i64>) -> Result<bool, StoreError> {
        Self::email_taken_in(&mut self.db().conn(), email, except).await
    }

    pub(super) async fn username_taken_in(
        conn: &mut Exec<'_>,
        username: &str,
        except: Option<i64>,
    ) -> Result<bool, StoreError> {
        Ok(conn
            .fetch_optional(
                "SELECT 1 FROM users WHERE (username_lower = $1 OR username_skeleton = $2) AND id <> $3 LIMIT 1",
                args![
                    username.to_ascii_lowercase(),
                    names::username_skeleton(username),
                    except.unwrap_or(-1)
                ],
            )
            .await?
            .is_some())
    }

    pub(super) async fn email_taken_in(
        conn: &mut Exec<'_>,
        email: &str,
        except: Option<i64>,
    ) -> Result<bool, StoreError> {
        let key = names::email_key(email);
        if key.is_empty() {
            return Ok(false);
        }
        Ok(conn
            .fetch_optional(
                "SELECT 1 FROM users WHERE email_key = $1 AND id <> $2 LIMIT 1",
                args![key, except.unwrap_or(-1)],
            )
            .await?
            .is_some())
    }
}
