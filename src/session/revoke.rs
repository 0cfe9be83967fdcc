//! Acting on the live store from another process (`flowgate session list | revoke`, and the
//! `flowgate user` commands that change or remove a user): deletions go to the store, then an
//! event on the invalidation channel makes every running gateway drop its cached copies.

use super::backend::{Backend, BackendError, Event, StoredSession};
use super::local::{database_path, LocalBackend};
use super::redis::RedisBackend;
use crate::config::{Config, SessionStoreKind};
use std::sync::Arc;

/// Opens the store `config` names (`session.store`).
pub async fn open_backend(config: &Config) -> Result<Arc<dyn Backend>, BackendError> {
    Ok(match &config.session.store {
        SessionStoreKind::Local => Arc::new(LocalBackend::open(&database_path(&config.data_dir)).await?),
        SessionStoreKind::Redis { url, key_prefix } => Arc::new(RedisBackend::connect(url, key_prefix).await?),
    })
}

/// One listed session: its tag (the first 12 hex characters of the key, never the id) and record.
pub struct Listed {
    /// What `session revoke` accepts.
    pub tag: String,
    /// The record.
    pub session: StoredSession,
}

/// Characters of the key printed by `session list`.
pub const TAG_CHARS: usize = 12;

/// Live logged-in sessions (of one user).
pub async fn list(backend: &dyn Backend, user_id: Option<i64>, now_ms: u64) -> Result<Vec<Listed>, BackendError> {
    Ok(backend
        .list(user_id)
        .await?
        .into_iter()
        .filter(|(_, s)| now_ms < s.expires_ms && now_ms.saturating_sub(s.last_seen_ms) < s.idle_ms)
        .map(|(k, s)| Listed {
            tag: k.chars().take(TAG_CHARS).collect(),
            session: s,
        })
        .collect())
}

/// Why a revocation by tag did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// The store failed.
    #[error("{0}")]
    Store(#[from] BackendError),
    /// No session matches.
    #[error("no session matches {0:?}")]
    NotFound(String),
    /// More than one session matches the prefix.
    #[error("{0:?} matches several sessions; give more characters")]
    Ambiguous(String),
    /// Not a tag nor a session id.
    #[error("expected a session tag from `flowgate session list` (hex) or a session id")]
    Malformed,
}

/// Ends one session, named by a tag (a hex prefix of its key, at least 8 characters, as
/// `session list` prints it) or by the full session id. Returns the tag.
pub async fn revoke_one(backend: &dyn Backend, what: &str, now_ms: u64) -> Result<String, RevokeError> {
    let (key, _) = revoke_key(backend, what, now_ms).await?;
    Ok(key.chars().take(TAG_CHARS).collect())
}

/// [`revoke_one`], returning the ended session's whole store key and its record (for the
/// admin API, which also drops it from its own process's caches at once and names the user).
pub async fn revoke_key(
    backend: &dyn Backend,
    what: &str,
    now_ms: u64,
) -> Result<(String, StoredSession), RevokeError> {
    let what = what.trim();
    let key = if super::is_well_formed_id(what) && !what.bytes().all(|b| b.is_ascii_hexdigit()) {
        super::backend::key_of(what)
    } else if what.len() >= 8 && what.len() <= 64 && what.bytes().all(|b| b.is_ascii_hexdigit()) {
        let prefix = what.to_ascii_lowercase();
        let mut found: Vec<String> = backend
            .list(None)
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k.starts_with(&prefix))
            .collect();
        match found.len() {
            0 => return Err(RevokeError::NotFound(what.into())),
            1 => found.remove(0),
            _ => return Err(RevokeError::Ambiguous(what.into())),
        }
    } else {
        return Err(RevokeError::Malformed);
    };
    let _ = now_ms;
    let Some(record) = backend.load(&key).await? else {
        return Err(RevokeError::NotFound(what.into()));
    };
    backend.delete(&key).await?;
    backend.publish(&Event::Session(key.clone())).await?;
    Ok((key, record))
}

/// Ends every session of a user on every replica; returns how many were in the store.
pub async fn revoke_user(backend: &dyn Backend, user_id: i64) -> Result<usize, BackendError> {
    let keys = backend.delete_user(user_id, None).await?;
    for k in &keys {
        backend.publish(&Event::Session(k.clone())).await?;
    }
    backend.publish(&Event::UserSessions(user_id)).await?;
    Ok(keys.len())
}

/// Tells every replica that a user's groups, email, name or active flag changed.
pub async fn user_changed(backend: &dyn Backend, user_id: i64) -> Result<(), BackendError> {
    backend.publish(&Event::User(user_id)).await
}
