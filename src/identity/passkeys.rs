//! WebAuthn credentials (passkeys and security keys), stored per user beside the TOTP devices:
//! the table `webauthn_devices`, written once for SQLite and PostgreSQL (`db::Dialect` markers).
//!
//! A credential id is unique across all users, so an assertion names exactly one owner; every
//! query that uses or changes a device also names its owner (`user_id`), so one user can never
//! use, rename or delete another's credential. Counter updates are a single conditional
//! `UPDATE` on the counter read before the check, so two concurrent uses of one assertion cannot
//! both pass, and a deleted row is gone for the next lookup (no cache).

use super::db::args;
use super::store::{StoreError, UserStore};

/// Longest device name, in characters.
pub const MAX_PASSKEY_NAME_CHARS: usize = 64;
/// Most credentials one user may register.
pub const MAX_PASSKEYS_PER_USER: usize = 20;

/// The table of this module, in the markers of `db::Dialect::ddl`.
pub(crate) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS webauthn_devices (
        id {pk},
        user_id {int} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        credential_id TEXT NOT NULL UNIQUE,
        public_key {blob} NOT NULL,
        sign_count {int} NOT NULL,
        aaguid TEXT NOT NULL DEFAULT '',
        created_ms {int} NOT NULL,
        last_used_ms {int}
    )",
    "CREATE INDEX IF NOT EXISTS webauthn_devices_user ON webauthn_devices(user_id)",
];

/// A stored WebAuthn credential.
#[derive(Debug, Clone)]
pub struct Passkey {
    /// Row id.
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// Name the owner gave it.
    pub name: String,
    /// Credential id, base64url.
    pub credential_id: String,
    /// COSE public key.
    pub public_key: Vec<u8>,
    /// Last accepted signature counter.
    pub sign_count: u32,
    /// Authenticator model id (hex).
    pub aaguid: String,
    /// When it was registered (ms since the epoch).
    pub created_ms: i64,
    /// When it was last used (ms since the epoch).
    pub last_used_ms: Option<i64>,
}

/// A new credential to save.
#[derive(Debug, Clone)]
pub struct NewPasskey<'a> {
    /// Name.
    pub name: &'a str,
    /// Credential id, base64url.
    pub credential_id: &'a str,
    /// COSE public key.
    pub public_key: &'a [u8],
    /// Initial counter.
    pub sign_count: u32,
    /// AAGUID (hex).
    pub aaguid: &'a str,
}

/// A name of 1-64 characters without control characters, trimmed.
pub fn valid_passkey_name(name: &str) -> Option<String> {
    let name = name.trim();
    let ok = !name.is_empty() && name.chars().count() <= MAX_PASSKEY_NAME_CHARS && !name.chars().any(char::is_control);
    ok.then(|| name.to_string())
}

fn time(now_ms: u64) -> Result<i64, StoreError> {
    i64::try_from(now_ms).map_err(|_| StoreError::Invalid("time out of range".into()))
}

fn passkey_of(r: &super::db::DbRow) -> Result<Passkey, StoreError> {
    let count: i64 = r.get("sign_count")?;
    Ok(Passkey {
        id: r.get("id")?,
        user_id: r.get("user_id")?,
        name: r.get("name")?,
        credential_id: r.get("credential_id")?,
        public_key: r.get("public_key")?,
        sign_count: u32::try_from(count)
            .map_err(|_| StoreError::Invalid(format!("stored sign count {count} out of range")))?,
        aaguid: r.get("aaguid")?,
        created_ms: r.get("created_ms")?,
        last_used_ms: r.get("last_used_ms")?,
    })
}

const COLUMNS: &str = "id, user_id, name, credential_id, public_key, sign_count, aaguid, created_ms, last_used_ms";

// === impl UserStore ===

impl UserStore {
    /// Saves a registered credential for `user_id`. A credential id already stored (for anyone)
    /// is [`StoreError::Duplicate`]; an invalid name or too many credentials is
    /// [`StoreError::Invalid`].
    pub async fn add_passkey(&self, user_id: i64, new: &NewPasskey<'_>, now_ms: u64) -> Result<i64, StoreError> {
        let name = valid_passkey_name(new.name).ok_or_else(|| {
            StoreError::Invalid(format!(
                "invalid device name (1-{MAX_PASSKEY_NAME_CHARS} characters, no control characters)"
            ))
        })?;
        let created = time(now_ms)?;
        let mut tx = self.db().begin().await?;
        let taken = tx
            .fetch_optional(
                "SELECT 1 FROM webauthn_devices WHERE credential_id = $1",
                args![new.credential_id],
            )
            .await?;
        if taken.is_some() {
            return Err(StoreError::Duplicate {
                what: "webauthn credential",
                value: "(credential id)".into(),
            });
        }
        let n: i64 = tx
            .fetch_one(
                "SELECT COUNT(*) FROM webauthn_devices WHERE user_id = $1",
                args![user_id],
            )
            .await?
            .at(0)?;
        if usize::try_from(n).unwrap_or(usize::MAX) >= MAX_PASSKEYS_PER_USER {
            return Err(StoreError::Invalid(format!(
                "at most {MAX_PASSKEYS_PER_USER} passkeys per user"
            )));
        }
        let id: i64 = tx
            .fetch_one(
                "INSERT INTO webauthn_devices (user_id, name, credential_id, public_key, sign_count, aaguid, created_ms, last_used_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, NULL) RETURNING id",
                args![
                    user_id,
                    name,
                    new.credential_id,
                    new.public_key,
                    i64::from(new.sign_count),
                    new.aaguid,
                    created
                ],
            )
            .await?
            .at(0)?;
        tx.commit().await?;
        Ok(id)
    }

    /// The user's credentials, oldest first.
    pub async fn passkeys(&self, user_id: i64) -> Result<Vec<Passkey>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM webauthn_devices WHERE user_id = $1 ORDER BY id");
        let rows = self.db().fetch_all(&sql, args![user_id]).await?;
        rows.iter().map(passkey_of).collect()
    }

    /// The credential with this id (base64url), whoever owns it.
    pub async fn passkey_by_credential(&self, credential_id: &str) -> Result<Option<Passkey>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM webauthn_devices WHERE credential_id = $1");
        let row = self.db().fetch_optional(&sql, args![credential_id]).await?;
        row.as_ref().map(passkey_of).transpose()
    }

    /// Records a use: the counter moves from `old_count` to `new_count` only if it is still
    /// `old_count` (so a replayed or concurrent assertion loses), and only for `user_id`'s
    /// device. True when recorded.
    pub async fn use_passkey(
        &self,
        user_id: i64,
        id: i64,
        old_count: u32,
        new_count: u32,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let n = self
            .db()
            .execute(
                "UPDATE webauthn_devices SET sign_count = $1, last_used_ms = $2
                 WHERE id = $3 AND user_id = $4 AND sign_count = $5",
                args![i64::from(new_count), time(now_ms)?, id, user_id, i64::from(old_count)],
            )
            .await?;
        Ok(n == 1)
    }

    /// Renames one of the user's credentials; false when the user has no such credential.
    pub async fn rename_passkey(&self, user_id: i64, id: i64, name: &str) -> Result<bool, StoreError> {
        let name = valid_passkey_name(name).ok_or_else(|| {
            StoreError::Invalid(format!("invalid device name (1-{MAX_PASSKEY_NAME_CHARS} characters)"))
        })?;
        let n = self
            .db()
            .execute(
                "UPDATE webauthn_devices SET name = $1 WHERE id = $2 AND user_id = $3",
                args![name, id, user_id],
            )
            .await?;
        Ok(n == 1)
    }

    /// Deletes one of the user's credentials; false when the user has no such credential.
    pub async fn delete_passkey(&self, user_id: i64, id: i64) -> Result<bool, StoreError> {
        let n = self
            .db()
            .execute(
                "DELETE FROM webauthn_devices WHERE id = $1 AND user_id = $2",
                args![id, user_id],
            )
            .await?;
        Ok(n == 1)
    }
}
