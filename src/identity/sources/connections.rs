//! The user-source connection: provider subject ↔ user, so a user whose email changes at the
//! provider is still found (authentik's `UserSourceConnection`). One row per (source,
//! subject); a user may be linked to several sources. Deleting the user deletes the links.

use crate::identity::db::args;
use crate::identity::store::{StoreError, User, UserStore};

/// The tables of this module, in the markers of `db::Dialect::ddl`.
pub(crate) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS source_connections (
        source TEXT NOT NULL,
        identifier TEXT NOT NULL,
        user_id {int} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_ms {int} NOT NULL,
        PRIMARY KEY (source, identifier)
    )",
    "CREATE INDEX IF NOT EXISTS source_connections_user ON source_connections(user_id)",
];

/// One stored link.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourceConnection {
    /// Source key.
    pub source: String,
    /// Provider subject.
    pub identifier: String,
    /// Linked user id.
    pub user_id: i64,
}

impl UserStore {
    /// The user linked to `identifier` at `source`, if any.
    pub async fn source_user(&self, source: &str, identifier: &str) -> Result<Option<User>, StoreError> {
        let row = self
            .db()
            .fetch_optional(
                "SELECT user_id FROM source_connections WHERE source = $1 AND identifier = $2",
                args![source, identifier],
            )
            .await?;
        match row {
            Some(r) => self.get_by_id(r.at::<i64>(0)?).await,
            None => Ok(None),
        }
    }

    /// Links `identifier` at `source` to user `user_id`. A subject already linked to another
    /// user is never moved: that is a `Duplicate` error.
    pub async fn link_source(
        &self,
        source: &str,
        identifier: &str,
        user_id: i64,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.db()
            .execute(
                "INSERT INTO source_connections (source, identifier, user_id, created_ms) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (source, identifier) DO NOTHING",
                args![source, identifier, user_id, i64::try_from(now_ms).unwrap_or(i64::MAX)],
            )
            .await?;
        match self.source_user(source, identifier).await? {
            Some(u) if u.id == user_id => Ok(()),
            _ => Err(StoreError::Duplicate {
                what: "source connection",
                value: format!("{source}/{identifier}"),
            }),
        }
    }

    /// The links of user `user_id`.
    pub async fn source_connections_of(&self, user_id: i64) -> Result<Vec<SourceConnection>, StoreError> {
        let rows = self
            .db()
            .fetch_all(
                "SELECT source, identifier, user_id FROM source_connections WHERE user_id = $1 ORDER BY source, identifier",
                args![user_id],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SourceConnection {
                    source: r.get("source")?,
                    identifier: r.get("identifier")?,
                    user_id: r.get("user_id")?,
                })
            })
            .collect()
    }
}
