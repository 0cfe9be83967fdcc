//! The user store: users, their groups (inherited parent groups included, resolved with a
//! bounded recursive query that is safe against cycles) and passwords. Every query is written
//! once and runs on SQLite or PostgreSQL through [`super::db`]; opening and migrating the
//! database is [`super::open`].

use super::db::{args, Db, DbRow, Exec};
use super::hash::PasswordHasher;
use super::names;
use serde_json::{Map, Value};

pub use super::user::{LookupField, NewUser, StoreError, User, UserUpdate};

/// The store.
#[derive(Clone)]
pub struct UserStore {
    db: Db,
    hasher: PasswordHasher,
}

impl std::fmt::Debug for UserStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserStore")
    }
}

const USER_COLUMNS: &str =
    "id, uid, username, email, email_verified, name, is_active, is_superuser, attributes, password_hash, password_changed_at";

/// The stored form of a username (NFKC, no invisible characters), or why it is refused.
fn validate_username(u: &str) -> Result<String, StoreError> {
    names::normalize_username(u).map_err(|e| StoreError::Invalid(format!("invalid username {u:?}: {e}")))
}

/// A unique-index violation is a duplicate (two writers raced past the explicit check).
fn unique_violation(e: StoreError, what: &'static str, value: &str) -> StoreError {
    match &e {
        StoreError::Db(sqlx::Error::Database(d)) if d.is_unique_violation() => StoreError::Duplicate {
            what,
            value: value.to_string(),
        },
        _ => e,
    }
}

fn new_uid() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// The case-insensitive form of a username as stored in `username_lower`: ASCII letters
/// lowercased, as SQLite's `lower()` always did (PostgreSQL's would follow the server's locale).
fn username_lower(u: &str) -> String {
    u.to_ascii_lowercase()
}

impl UserStore {
    pub(crate) fn from_db(db: Db, hasher: PasswordHasher) -> Self {
        Self { db, hasher }
    }

    /// The hasher.
    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// Whether this store is a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        self.db.dialect() == super::db::Dialect::Postgres
    }

    /// SQLite's own consistency check (`"ok"` when the file is sound). PostgreSQL checks its
    /// pages itself and has no such statement: an error says so.
    pub async fn integrity_check(&self) -> Result<String, StoreError> {
        if self.is_postgres() {
            return Err(StoreError::Invalid(
                "integrity_check is SQLite's; PostgreSQL has no equivalent statement".into(),
            ));
        }
        self.db.fetch_one("PRAGMA integrity_check", &[]).await?.at(0)
    }

    /// Whether the database answers now (one round trip).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db.execute("SELECT 1", &[]).await.map(|_| ())
    }

    /// How many calls since start found the database unreachable: a request that sees this
    /// number change met an outage.
    pub fn unavailable_count(&self) -> u64 {
        self.db.health().failures()
    }

    /// Whether the last call found the database unreachable.
    pub fn is_unavailable(&self) -> bool {
        self.db.health().is_down()
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.db.close().await;
    }

    async fn groups_of(&self, user_id: i64) -> Result<Vec<String>, StoreError> {
        let rows = self
            .db
            .fetch_all(
                "WITH RECURSIVE g(id, depth) AS (
                    SELECT group_id, 0 FROM user_groups WHERE user_id = $1
                    UNION
                    SELECT groups.parent_id, g.depth + 1 FROM groups JOIN g ON groups.id = g.id
                    WHERE groups.parent_id IS NOT NULL AND g.depth < 32
                )
                SELECT DISTINCT name FROM groups WHERE id IN (SELECT id FROM g) ORDER BY name",
                args![user_id],
            )
            .await?;
        rows.iter().map(|r| r.at::<String>(0)).collect()
    }

    async fn user_from_row(&self, r: &DbRow) -> Result<User, StoreError> {
        let id: i64 = r.get("id")?;
        let attrs: String = r.get("attributes")?;
        Ok(User {
            id,
            uid: r.get("uid")?,
            username: r.get("username")?,
            email: r.get("email")?,
            email_verified: r.get("email_verified")?,
            name: r.get("name")?,
            is_active: r.get("is_active")?,
            is_superuser: r.get("is_superuser")?,
            groups: self.groups_of(id).await?,
            attributes: serde_json::from_str(&attrs).unwrap_or_default(),
            password_hash: r.get("password_hash")?,
            password_changed_at: r.get("password_changed_at")?,
        })
    }

    async fn one(&self, sql: &str, args: &[super::db::Arg<'_>]) -> Result<Option<User>, StoreError> {
        match self.db.fetch_optional(sql, args).await? {
            Some(r) => Ok(Some(self.user_from_row(&r).await?)),
            None => Ok(None),
        }
    }

    /// Finds a user by identifier over `fields` (first match by id). Case-insensitive matching
    /// compares usernames with ASCII case folded and addresses by their key
    /// ([`names::email_key`], the form emails are unique by).
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
        let mut args: Vec<super::db::Arg<'_>> = Vec::new();
        for f in fields {
            let n = args.len() + 1;
            let (cond, arg) = match (f, case_insensitive) {
                (LookupField::Username, true) => (format!("username_lower = ${n}"), username_lower(identifier)),
                (LookupField::Username, false) => (format!("username = ${n}"), identifier.to_string()),
                (LookupField::Email, true) => (
                    format!("(email_key <> '' AND email_key = ${n})"),
                    names::email_key(identifier),
                ),
                (LookupField::Email, false) => (format!("(email <> '' AND email = ${n})"), identifier.to_string()),
            };
            conds.push(cond);
            args.push(arg.into());
        }
        let sql = format!(
            "SELECT {USER_COLUMNS} FROM users WHERE {} ORDER BY id LIMIT 1",
            conds.join(" OR ")
        );
        let found = self.one(&sql, &args).await?;
        if found.is_none() {
            // The group query a match costs, so an answer takes as long for no account (ENUM-4).
            self.groups_of(0).await?;
        }
        Ok(found)
    }

    /// A user by exact username.
    pub async fn get_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.one(
            &format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1"),
            args![username],
        )
        .await
    }

    /// A user by id.
    pub async fn get_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        self.one(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"), args![id])
            .await
    }

    async fn group_id(conn: &mut Exec<'_>, name: &str) -> Result<i64, StoreError> {
        conn.execute(
            "INSERT INTO groups (name) VALUES ($1) ON CONFLICT(name) DO NOTHING",
            args![name],
        )
        .await?;
        conn.fetch_one("SELECT id FROM groups WHERE name = $1", args![name])
            .await?
            .at(0)
    }

    async fn join_group(conn: &mut Exec<'_>, user_id: i64, group: &str) -> Result<(), StoreError> {
        let gid = Self::group_id(conn, group).await?;
        conn.execute(
            "INSERT INTO user_groups (user_id, group_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            args![user_id, gid],
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn set_groups(conn: &mut Exec<'_>, user_id: i64, groups: &[String]) -> Result<(), StoreError> {
        conn.execute("DELETE FROM user_groups WHERE user_id = $1", args![user_id])
            .await?;
        for g in groups {
            Self::join_group(conn, user_id, g).await?;
        }
        Ok(())
    }

    pub(crate) async fn insert(&self, new: &NewUser, hash: Option<String>, source: &str) -> Result<User, StoreError> {
        let username = validate_username(&new.username)?;
        let email = new.email.trim().to_string();
        let mut tx = self.db.begin().await?;
        if Self::username_taken_in(&mut tx.conn(), &username, None).await? {
            return Err(StoreError::Duplicate {
                what: "user",
                value: username,
            });
        }
        if Self::email_taken_in(&mut tx.conn(), &email, None).await? {
            return Err(StoreError::Duplicate {
                what: "email",
                value: email,
            });
        }
        let source = if hash.is_some() { source } else { "none" };
        let id: i64 = tx
            .fetch_one(
                "INSERT INTO users (uid, username, username_lower, email, name, is_active, is_superuser, attributes, password_hash, password_source, password_changed_at, username_skeleton, email_key, email_verified)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, CASE WHEN $9 IS NULL THEN NULL ELSE unixepoch() END, $11, $12, $13) RETURNING id",
                args![
                    new_uid(),
                    &username,
                    username_lower(&username),
                    &email,
                    &new.name,
                    new.is_active,
                    new.is_superuser,
                    Value::Object(new.attributes.clone()).to_string(),
                    hash,
                    source,
                    names::username_skeleton(&username),
                    names::email_key(&email),
                    new.email_verified,
                ],
            )
            .await
            .map_err(|e| unique_violation(e, "user", &username))?
            .at(0)?;
        Self::set_groups(&mut tx.conn(), id, &new.groups).await?;
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
        let mut tx = self.db.begin().await?;
        let row = tx
            .fetch_optional("SELECT attributes FROM users WHERE id = $1", args![id])
            .await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound {
                what: "user",
                value: id.to_string(),
            });
        };
        let stored: String = row.at(0)?;
        let mut attrs: Map<String, Value> = serde_json::from_str(&stored).unwrap_or_default();
        for (k, v) in up.attributes {
            attrs.insert(k, v);
        }
        if let Some(u) = &username {
            if Self::username_taken_in(&mut tx.conn(), u, Some(id)).await? {
                return Err(StoreError::Duplicate {
                    what: "user",
                    value: u.clone(),
                });
            }
        }
        if let Some(e) = &email {
            if Self::email_taken_in(&mut tx.conn(), e, Some(id)).await? {
                return Err(StoreError::Duplicate {
                    what: "email",
                    value: e.clone(),
                });
            }
        }
        // SET expressions see the old row: a new address (by key) is unverified unless the
        // caller says it was verified.
        tx.execute(
            "UPDATE users SET
                username = COALESCE($1, username), username_lower = COALESCE($11, username_lower),
                username_skeleton = COALESCE($8, username_skeleton),
                email_verified = CASE WHEN $10 IS NOT NULL THEN $10
                    WHEN $9 IS NOT NULL AND $9 <> email_key THEN FALSE ELSE email_verified END,
                email_key = COALESCE($9, email_key),
                email = COALESCE($2, email), name = COALESCE($3, name), attributes = $4,
                is_active = COALESCE($5, is_active),
                password_hash = COALESCE($6, password_hash),
                password_source = CASE WHEN $6 IS NULL THEN password_source ELSE 'user' END,
                password_changed_at = CASE WHEN $6 IS NULL THEN password_changed_at ELSE unixepoch() END
             WHERE id = $7",
            args![
                username.as_deref(),
                email.as_deref(),
                up.name.as_deref(),
                Value::Object(attrs).to_string(),
                up.is_active,
                hash.as_deref(),
                id,
                username.as_deref().map(names::username_skeleton),
                email.as_deref().map(names::email_key),
                up.email_verified,
                username.as_deref().map(username_lower),
            ],
        )
        .await
        .map_err(|e| unique_violation(e, "email", email.as_deref().unwrap_or("")))?;
        for g in &up.add_groups {
            Self::join_group(&mut tx.conn(), id, g).await?;
        }
        tx.commit().await?;
        self.get_by_id(id).await?.ok_or(StoreError::NotFound {
            what: "user",
            value: id.to_string(),
        })
    }

    /// Deletes a user by id (devices, codes and group links go with it). False when absent.
    pub async fn delete_user_by_id(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self.db.execute("DELETE FROM users WHERE id = $1", args![id]).await? > 0)
    }

    /// Deletes a user; `false` when there was none.
    pub async fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        Ok(self
            .db
            .execute("DELETE FROM users WHERE username = $1", args![username])
            .await?
            > 0)
    }

    /// All users by username.
    pub async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = self
            .db
            .fetch_all(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY username"), &[])
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
        let mut tx = self.db.begin().await?;
        let id = Self::group_id(&mut tx.conn(), name).await?;
        let parent_id = match parent {
            Some(p) => Some(Self::group_id(&mut tx.conn(), p).await?),
            None => None,
        };
        tx.execute(
            "UPDATE groups SET parent_id = $1, attributes = $2 WHERE id = $3",
            args![parent_id, Value::Object(attributes.clone()).to_string(), id],
        )
        .await?;
        tx.commit().await
    }
}
