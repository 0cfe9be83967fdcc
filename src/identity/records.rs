//! Flow records kept beside the users: invitations (invitation stage) and consents (consent
//! stage). Times are Unix milliseconds passed in by the caller (the injected clock).

use super::db::{args, DbRow};
use super::store::{StoreError, UserStore};
use serde_json::{Map, Value};

/// The tables of this module, in the markers of `db::Dialect::ddl`.
pub(crate) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS invitations (
        token TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        flow TEXT,
        expires_ms {int},
        single_use {bool} NOT NULL DEFAULT {false},
        fixed_data TEXT NOT NULL DEFAULT '{}',
        created_ms {int} NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS consents (
        user_id {int} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        subject TEXT NOT NULL,
        expires_ms {int},
        PRIMARY KEY (user_id, subject)
    )",
];

/// An invitation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Invitation {
    /// The secret token put in links (`?itoken=`).
    pub token: String,
    /// Unique name.
    pub name: String,
    /// Flow it is bound to; `None`: any flow with an invitation stage.
    pub flow: Option<String>,
    /// Expiry; `None`: never.
    pub expires_ms: Option<i64>,
    /// Deleted on first use.
    pub single_use: bool,
    /// Merged over `prompt_data` (wins).
    pub fixed_data: Map<String, Value>,
}

/// Columns of an invitation row.
const INVITATION_COLUMNS: &str = "token, name, flow, expires_ms, single_use, fixed_data";

fn row_to_invitation(r: &DbRow) -> Result<Invitation, StoreError> {
    let fixed: String = r.get("fixed_data")?;
    Ok(Invitation {
        token: r.get("token")?,
        name: r.get("name")?,
        flow: r.get("flow")?,
        expires_ms: r.get("expires_ms")?,
        single_use: r.get("single_use")?,
        fixed_data: serde_json::from_str(&fixed).unwrap_or_default(),
    })
}

/// A fresh 256-bit token, URL-safe.
fn new_token() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl UserStore {
    /// Creates an invitation and returns it with its fresh token.
    pub async fn create_invitation(
        &self,
        name: &str,
        flow: Option<&str>,
        expires_ms: Option<i64>,
        single_use: bool,
        fixed_data: Map<String, Value>,
        now_ms: u64,
    ) -> Result<Invitation, StoreError> {
        if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
            return Err(StoreError::Invalid(format!("invalid invitation name {name:?}")));
        }
        let inv = Invitation {
            token: new_token(),
            name: name.to_string(),
            flow: flow.map(str::to_string),
            expires_ms,
            single_use,
            fixed_data,
        };
        let res = self
            .db()
            .execute(
                "INSERT INTO invitations (token, name, flow, expires_ms, single_use, fixed_data, created_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                args![
                    &inv.token,
                    &inv.name,
                    inv.flow.as_deref(),
                    inv.expires_ms,
                    inv.single_use,
                    Value::Object(inv.fixed_data.clone()).to_string(),
                    now_ms as i64,
                ],
            )
            .await;
        match res {
            Ok(_) => Ok(inv),
            Err(StoreError::Db(sqlx::Error::Database(e))) if e.is_unique_violation() => Err(StoreError::Duplicate {
                what: "invitation",
                value: name.to_string(),
            }),
            Err(e) => Err(e),
        }
    }

    /// All invitations, by name.
    pub async fn list_invitations(&self) -> Result<Vec<Invitation>, StoreError> {
        let rows = self
            .db()
            .fetch_all(
                &format!("SELECT {INVITATION_COLUMNS} FROM invitations ORDER BY name"),
                &[],
            )
            .await?;
        rows.iter().map(row_to_invitation).collect()
    }

    /// Deletes an invitation by name. False when absent.
    pub async fn delete_invitation(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .db()
            .execute("DELETE FROM invitations WHERE name = $1", args![name])
            .await?
            > 0)
    }

    /// Takes an invitation for `flow`: it must exist, be unexpired at `now_ms` and be bound
    /// to `flow` or to no flow. A single-use invitation is deleted in the same statement, so
    /// two concurrent uses cannot both succeed.
    pub async fn take_invitation(
        &self,
        token: &str,
        flow: &str,
        now_ms: u64,
    ) -> Result<Option<Invitation>, StoreError> {
        let now = now_ms as i64;
        let cond = "token = $1 AND (expires_ms IS NULL OR expires_ms > $2) AND (flow IS NULL OR flow = $3)";
        let mut tx = self.db().begin().await?;
        let row = tx
            .fetch_optional(
                &format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE {cond}"),
                args![token, now, flow],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let inv = row_to_invitation(&row)?;
        if inv.single_use {
            let n = tx
                .execute(
                    &format!("DELETE FROM invitations WHERE {cond}"),
                    args![token, now, flow],
                )
                .await?;
            if n == 0 {
                return Ok(None);
            }
        }
        tx.commit().await?;
        Ok(Some(inv))
    }

    /// Whether the user has an unexpired consent for `subject`.
    pub async fn has_consent(&self, user_id: i64, subject: &str, now_ms: u64) -> Result<bool, StoreError> {
        Ok(self
            .db()
            .fetch_optional(
                "SELECT 1 FROM consents WHERE user_id = $1 AND subject = $2 AND (expires_ms IS NULL OR expires_ms > $3)",
                args![user_id, subject, now_ms as i64],
            )
            .await?
            .is_some())
    }

    /// Records a consent (replacing an older one).
    pub async fn save_consent(&self, user_id: i64, subject: &str, expires_ms: Option<i64>) -> Result<(), StoreError> {
        self.db()
            .execute(
                "INSERT INTO consents (user_id, subject, expires_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (user_id, subject) DO UPDATE SET expires_ms = excluded.expires_ms",
                args![user_id, subject, expires_ms],
            )
            .await?;
        Ok(())
    }
}
