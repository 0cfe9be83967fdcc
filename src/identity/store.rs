//! The SQLite user store. The database file is created on first use (WAL journal, foreign
//! keys on); group membership includes inherited parent groups, resolved with a bounded
//! recursive query that is safe against cycles.

use super::hash::PasswordHasher;
use super::names;
use serde_json::{Map, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::time::Duration;

pub use super::user::{LookupField, NewUser, StoreError, User, UserUpdate};

/// The store.
#[derive(Clone)]
pub struct UserStore {
    pool: SqlitePool,
    hasher: PasswordHasher,
}

impl std::fmt::Debug for UserStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserStore")
    }
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS users (
        id INTEGER PRIMARY KEY,
        uid TEXT NOT NULL UNIQUE,
        username TEXT NOT NULL,
        username_lower TEXT NOT NULL UNIQUE,
        email TEXT NOT NULL DEFAULT '',
        name TEXT NOT NULL DEFAULT '',
        is_active INTEGER NOT NULL DEFAULT 1,
        is_superuser INTEGER NOT NULL DEFAULT 0,
        attributes TEXT NOT NULL DEFAULT '{}',
        password_hash TEXT,
        password_source TEXT NOT NULL DEFAULT 'none',
        password_changed_at INTEGER
    )",
    "CREATE INDEX IF NOT EXISTS users_email_lower ON users(lower(email))",
    "CREATE TABLE IF NOT EXISTS groups (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        parent_id INTEGER REFERENCES groups(id) ON DELETE SET NULL,
        attributes TEXT NOT NULL DEFAULT '{}'
    )",
    "CREATE TABLE IF NOT EXISTS user_groups (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
        PRIMARY KEY (user_id, group_id)
    )",
];

/// One bound query argument.
enum Arg {
    Text(String),
    Int(i64),
}

const USER_COLUMNS: &str =
    "id, uid, username, email, email_verified, name, is_active, is_superuser, attributes, password_hash, password_changed_at";

/// The stored form of a username (NFKC, no invisible characters), or why it is refused.
fn validate_username(u: &str) -> Result<String, StoreError> {
    names::normalize_username(u).map_err(|e| StoreError::Invalid(format!("invalid username {u:?}: {e}")))
}

/// A unique-index violation is a duplicate (two writers raced past the explicit check).
fn unique_violation(e: sqlx::Error, what: &'static str, value: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Duplicate {
            what,
            value: value.to_string(),
        },
        _ => StoreError::Db(e),
    }
}

fn new_uid() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

impl UserStore {
    /// Opens or creates the database at `path`.
    pub async fn open(path: &Path, hasher: PasswordHasher) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(opts).await?;
        for stmt in SCHEMA {
            sqlx::query(stmt).execute(&pool).await?;
        }
        super::store_keys::migrate_identity_keys(&pool).await?;
        super::mfa::migrate(&pool).await?;
        super::records::migrate(&pool).await?;
        Ok(Self { pool, hasher })
    }

    /// The hasher.
    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// SQLite's own consistency check (`"ok"` when the file is sound).
    pub async fn integrity_check(&self) -> Result<String, StoreError> {
        Ok(sqlx::query("PRAGMA integrity_check")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn groups_of(&self, user_id: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "WITH RECURSIVE g(id, depth) AS (
                SELECT group_id, 0 FROM user_groups WHERE user_id = ?1
                UNION
                SELECT groups.parent_id, g.depth + 1 FROM groups JOIN g ON groups.id = g.id
                WHERE groups.parent_id IS NOT NULL AND g.depth < 32
            )
            SELECT DISTINCT name FROM groups WHERE id IN (SELECT id FROM g) ORDER BY name",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0).map_err(StoreError::from))
            .collect()
    }

    async fn user_from_row(&self, r: &sqlx::sqlite::SqliteRow) -> Result<User, StoreError> {
        let id: i64 = r.try_get("id")?;
        let attrs: String = r.try_get("attributes")?;
        Ok(User {
            id,
            uid: r.try_get("uid")?,
            username: r.try_get("username")?,
            email: r.try_get("email")?,
            email_verified: r.try_get::<i64, _>("email_verified")? != 0,
            name: r.try_get("name")?,
            is_active: r.try_get::<i64, _>("is_active")? != 0,
            is_superuser: r.try_get::<i64, _>("is_superuser")? != 0,
            groups: self.groups_of(id).await?,
            attributes: serde_json::from_str(&attrs).unwrap_or_default(),
            password_hash: r.try_get("password_hash")?,
            password_changed_at: r.try_get("password_changed_at")?,
        })
    }

    async fn one(&self, sql: &str, arg: Arg) -> Result<Option<User>, StoreError> {
        let q = sqlx::query(sql);
        let q = match arg {
            Arg::Text(t) => q.bind(t),
            Arg::Int(i) => q.bind(i),
        };
        match q.fetch_optional(&self.pool).await? {
            Some(r) => Ok(Some(self.user_from_row(&r).await?)),
            None => Ok(None),
        }
    }

    /// Finds a user by identifier over `fields` (first match by id).
    pub async fn find_user(
        &self,
        identifier: &str,
        fields: &[LookupField],
        case_insensitive: bool,
    ) -> Result<Option<User>, StoreError> {
        if identifier.is_empty() || fields.is_empty() {
            return Ok(None);
        }
        let mut conds = Vec::new();
        for f in fields {
            conds.push(match (f, case_insensitive) {
                (LookupField::Username, true) => "username_lower = lower(?1)",
                (LookupField::Username, false) => "username = ?1",
                (LookupField::Email, true) => "(email <> '' AND lower(email) = lower(?1))",
                (LookupField::Email, false) => "(email <> '' AND email = ?1)",
            });
        }
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE {} ORDER BY id LIMIT 1",
            conds.join(" OR ")
        );
        let found = self.one(&sql, Arg::Text(identifier.to_string())).await?;
        if found.is_none() {
            // The group query a match costs, so an answer takes as long for no account (ENUM-4).
            self.groups_of(0).await?;
        }
        Ok(found)
    }

    /// A user by exact username.
    pub async fn get_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.one(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1"),
            Arg::Text(username.to_string()),
        )
        .await
    }

    /// A user by id.
    pub async fn get_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        self.one(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"), Arg::Int(id))
            .await
    }

    async fn group_id(tx: &mut sqlx::SqliteConnection, name: &str) -> Result<i64, StoreError> {
        sqlx::query("INSERT INTO groups (name) VALUES (?1) ON CONFLICT(name) DO NOTHING")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        Ok(sqlx::query("SELECT id FROM groups WHERE name = ?1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?)
    }

    pub(crate) async fn set_groups(
        tx: &mut sqlx::SqliteConnection,
        user_id: i64,
        groups: &[String],
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM user_groups WHERE user_id = ?1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for g in groups {
            let gid = Self::group_id(tx, g).await?;
            sqlx::query("INSERT OR IGNORE INTO user_groups (user_id, group_id) VALUES (?1, ?2)")
                .bind(user_id)
                .bind(gid)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn insert(&self, new: &NewUser, hash: Option<String>, source: &str) -> Result<User, StoreError> {
        let username = validate_username(&new.username)?;
        let email = new.email.trim().to_string();
        let mut tx = self.pool.begin().await?;
        if Self::username_taken_in(&mut tx, &username, None).await? {
            return Err(StoreError::Duplicate {
                what: "user",
                value: username,
            });
        }
        if Self::email_taken_in(&mut tx, &email, None).await? {
            return Err(StoreError::Duplicate {
                what: "email",
                value: email,
            });
        }
        let id: i64 = sqlx::query(
            "INSERT INTO users (uid, username, username_lower, email, name, is_active, is_superuser, attributes, password_hash, password_source, password_changed_at, username_skeleton, email_key, email_verified)
             VALUES (?1, ?2, lower(?2), ?3, ?4, ?5, ?6, ?7, ?8, ?9, CASE WHEN ?8 IS NULL THEN NULL ELSE strftime('%s','now') END, ?10, ?11, ?12) RETURNING id",
        )
        .bind(new_uid())
        .bind(&username)
        .bind(&email)
        .bind(&new.name)
        .bind(new.is_active)
        .bind(new.is_superuser)
        .bind(Value::Object(new.attributes.clone()).to_string())
        .bind(hash.as_deref())
        .bind(if hash.is_some() { source } else { "none" })
        .bind(names::username_skeleton(&username))
        .bind(names::email_key(&email))
        .bind(new.email_verified)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "user", &username))?
        .try_get(0)?;
        Self::set_groups(&mut tx, id, &new.groups).await?;
        tx.commit().await?;
        self.get_by_id(id).await?.ok_or(StoreError::NotFound {
            what: "user",
            value: username,
        })
    }

    /// Creates a user (password hashed off the event loop).
    pub async fn create_user(&self, new: NewUser) -> Result<User, StoreError> {
        let hash = match &new.password {
            Some(p) => Some(self.hasher.hash(p.clone()).await?),
            None => None,
        };
        self.insert(&new, hash, "user").await
    }

    /// Applies `up` to user `id` in one transaction (the password is hashed first, off the
    /// event loop). A username taken by another user is a `Duplicate` error.
    pub async fn update_user(&self, id: i64, up: UserUpdate) -> Result<User, StoreError> {
        let username = up.username.as_deref().map(validate_username).transpose()?;
        let email = up.email.as_deref().map(|e| e.trim().to_string());
        let hash = match &up.password {
            Some(p) => Some(self.hasher.hash(p.clone()).await?),
            None => None,
        };
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT attributes FROM users WHERE id = ?1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound {
                what: "user",
                value: id.to_string(),
            });
        };
        let stored: String = row.try_get(0)?;
        let mut attrs: Map<String, Value> = serde_json::from_str(&stored).unwrap_or_default();
        for (k, v) in up.attributes {
            attrs.insert(k, v);
        }
        if let Some(u) = &username {
            if Self::username_taken_in(&mut tx, u, Some(id)).await? {
                return Err(StoreError::Duplicate {
                    what: "user",
                    value: u.clone(),
                });
            }
        }
        if let Some(e) = &email {
            if Self::email_taken_in(&mut tx, e, Some(id)).await? {
                return Err(StoreError::Duplicate {
                    what: "email",
                    value: e.clone(),
                });
            }
        }
        // SET expressions see the old row: a new address (by key) is unverified unless the
        // caller says it was verified.
        sqlx::query(
            "UPDATE users SET
                username = COALESCE(?1, username), username_lower = lower(COALESCE(?1, username)),
                username_skeleton = COALESCE(?8, username_skeleton),
                email_verified = CASE WHEN ?10 IS NOT NULL THEN ?10
                    WHEN ?9 IS NOT NULL AND ?9 <> email_key THEN 0 ELSE email_verified END,
                email_key = COALESCE(?9, email_key),
                email = COALESCE(?2, email), name = COALESCE(?3, name), attributes = ?4,
                is_active = COALESCE(?5, is_active),
                password_hash = COALESCE(?6, password_hash),
                password_source = CASE WHEN ?6 IS NULL THEN password_source ELSE 'user' END,
                password_changed_at = CASE WHEN ?6 IS NULL THEN password_changed_at ELSE strftime('%s','now') END
             WHERE id = ?7",
        )
        .bind(username.as_deref())
        .bind(email.as_deref())
        .bind(up.name.as_deref())
        .bind(Value::Object(attrs).to_string())
        .bind(up.is_active)
        .bind(hash.as_deref())
        .bind(id)
        .bind(username.as_deref().map(names::username_skeleton))
        .bind(email.as_deref().map(names::email_key))
        .bind(up.email_verified)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "email", email.as_deref().unwrap_or("")))?;
        for g in &up.add_groups {
            let gid = Self::group_id(&mut tx, g).await?;
            sqlx::query("INSERT OR IGNORE INTO user_groups (user_id, group_id) VALUES (?1, ?2)")
                .bind(id)
                .bind(gid)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.get_by_id(id).await?.ok_or(StoreError::NotFound {
            what: "user",
            value: id.to_string(),
        })
    }

    /// Deletes a user by id (devices, codes and group links go with it). False when absent.
    pub async fn delete_user_by_id(&self, id: i64) -> Result<bool, StoreError> {
        Ok(sqlx::query("DELETE FROM users WHERE id = ?1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0)
    }

    /// Sets a password chosen by the user or an admin; seeding never overwrites it afterwards.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<(), StoreError> {
        let hash = self.hasher.hash(password.to_string()).await?;
        let n = sqlx::query("UPDATE users SET password_hash = ?1, password_source = 'user', password_changed_at = strftime('%s','now') WHERE username = ?2")
            .bind(hash)
            .bind(username)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound {
                what: "user",
                value: username.into(),
            });
        }
        Ok(())
    }

    pub(crate) async fn set_hash_keep_source(&self, id: i64, hash: &str, source: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET password_hash = ?1, password_source = ?2, password_changed_at = strftime('%s','now') WHERE id = ?3")
            .bind(hash)
            .bind(source)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn password_source(&self, id: i64) -> Result<String, StoreError> {
        Ok(sqlx::query("SELECT password_source FROM users WHERE id = ?1")
            .bind(id)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Verifies a password. Users without a hash, or inactive, still cost a full verify and
    /// fail. A match made with outdated parameters is rehashed.
    pub async fn verify_password(&self, user: &User, password: &str) -> Result<bool, StoreError> {
        let Some(hash) = user.password_hash.clone().filter(|_| user.is_active) else {
            self.hasher.verify_dummy(password.to_string()).await;
            return Ok(false);
        };
        let v = self.hasher.verify(password.to_string(), hash).await?;
        if v.ok && v.needs_rehash {
            let new_hash = self.hasher.hash(password.to_string()).await?;
            let source = self.password_source(user.id).await?;
            self.set_hash_keep_source(user.id, &new_hash, &source).await?;
            tracing::info!(user = %user.username, "password rehashed with current parameters");
        }
        Ok(v.ok)
    }

    /// Makes a user's password unusable (password expiry); seeding will not restore it.
    pub async fn set_password_unusable(&self, username: &str) -> Result<bool, StoreError> {
        let n = sqlx::query("UPDATE users SET password_hash = NULL, password_source = 'user', password_changed_at = strftime('%s','now') WHERE username = ?1")
            .bind(username)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// Deletes a user; `false` when there was none.
    pub async fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        Ok(sqlx::query("DELETE FROM users WHERE username = ?1")
            .bind(username)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0)
    }

    /// All users by username.
    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY username"))
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.user_from_row(r).await?);
        }
        Ok(out)
    }

    /// Creates or updates a group.
    pub async fn ensure_group(
        &self,
        name: &str,
        parent: Option<&str>,
        attributes: &Map<String, Value>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let id = Self::group_id(&mut tx, name).await?;
        let parent_id = match parent {
            Some(p) => Some(Self::group_id(&mut tx, p).await?),
            None => None,
        };
        sqlx::query("UPDATE groups SET parent_id = ?1, attributes = ?2 WHERE id = ?3")
            .bind(parent_id)
            .bind(Value::Object(attributes.clone()).to_string())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
