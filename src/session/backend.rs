//! What the moka caches sit in front of (docs/decisions/0010): a small async [`Backend`] trait with two
//! implementations, [`super::local::LocalBackend`] (SQLite, `session.store: local`) and
//! [`super::redis::RedisBackend`] (`session.store: redis`).
//!
//! Records are keyed by [`key_of`] (SHA-256 of the session id, hex), never by the id. The only
//! parts that could help an attacker (unfinished flow state, which may hold a new password, a
//! TOTP secret or recovery codes; the plan behind a mailed link) are sealed with a key derived
//! from the session id or the link token ([`seal`]), which the store never sees: a copy of the
//! store (a dump, a backup) holds neither usable ids nor readable secrets.

use super::store::{AuthInfo, Identity};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Version of [`StoredSession`]'s JSON form.
pub const RECORD_VERSION: u32 = 1;

/// The store key of a session id (or a link token): hex SHA-256. Its first 8 characters are
/// the log tag ([`super::log_tag`]).
pub fn key_of(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A session as stored (everything but the id and the CSRF token, which derive from the id).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct StoredSession {
    /// [`RECORD_VERSION`] when written.
    pub v: u32,
    /// The user as at login (for listing and as a fallback when the user store is down).
    pub user: Option<Identity>,
    /// How the user authenticated.
    pub auth: AuthInfo,
    /// Creation time.
    pub created_ms: u64,
    /// Absolute expiry.
    pub expires_ms: u64,
    /// Idle timeout.
    pub idle_ms: u64,
    /// Last use (written in batches).
    pub last_seen_ms: u64,
    /// Unfinished flow state, sealed with the session id ([`seal`]); hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
}

/// What travels on the invalidation channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// One session ended (by its key).
    Session(String),
    /// A user changed (groups, email, name, active flag): drop the cached identity.
    User(i64),
    /// Every session of a user ended (password change, disabled, deleted, `session revoke --user`).
    UserSessions(i64),
}

impl Event {
    /// Wire form: `s:<key>`, `u:<id>`, `r:<id>`.
    pub fn encode(&self) -> String {
        match self {
            Self::Session(k) => format!("s:{k}"),
            Self::User(id) => format!("u:{id}"),
            Self::UserSessions(id) => format!("r:{id}"),
        }
    }

    /// Parses the wire form; anything else is `None`.
    pub fn decode(s: &str) -> Option<Self> {
        let (kind, rest) = s.split_once(':')?;
        match kind {
            "s" if rest.len() == 64 && rest.bytes().all(|b| b.is_ascii_hexdigit()) => Some(Self::Session(rest.into())),
            "u" => rest.parse().ok().map(Self::User),
            "r" => rest.parse().ok().map(Self::UserSessions),
            _ => None,
        }
    }
}

/// What the subscription task reports to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    /// An event from any replica or the CLI.
    Event(Event),
    /// The channel was (re)connected: messages may have been lost, drop every cached entry.
    Reconnected,
}

/// A store failure (unreachable, refused, malformed).
#[derive(Debug, thiserror::Error)]
#[error("session store: {0}")]
pub struct BackendError(pub String);

impl From<sqlx::Error> for BackendError {
    fn from(e: sqlx::Error) -> Self {
        Self(e.to_string())
    }
}

impl From<redis::RedisError> for BackendError {
    fn from(e: redis::RedisError) -> Self {
        // The URL (and its password) is never part of a RedisError's text.
        Self(e.to_string())
    }
}

/// The durable (or shared) store behind the caches.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Whether other processes write sessions too (replicas): the near cache then holds
    /// entries for a bounded time and flow state is re-read at every step.
    fn shared(&self) -> bool;
    /// Reads a session.
    async fn load(&self, key: &str) -> Result<Option<StoredSession>, BackendError>;
    /// Writes a session (whole record).
    async fn save(&self, key: &str, s: &StoredSession) -> Result<(), BackendError>;
    /// Deletes a session.
    async fn delete(&self, key: &str) -> Result<(), BackendError>;
    /// Deletes every session of `user_id` except `keep`; returns the deleted keys.
    async fn delete_user(&self, user_id: i64, keep: Option<&str>) -> Result<Vec<String>, BackendError>;
    /// Every live session (of one user), for `flowgate session list`.
    async fn list(&self, user_id: Option<i64>) -> Result<Vec<(String, StoredSession)>, BackendError>;
    /// Records last-seen times (batched).
    async fn touch(&self, batch: &[(String, u64)]) -> Result<(), BackendError>;
    /// Deletes expired sessions and links; returns how many.
    async fn purge(&self, now_ms: u64) -> Result<u64, BackendError>;
    /// Stores a sealed mailed-link plan under the token's hash.
    async fn put_token(&self, hash: &str, sealed: &[u8], expires_ms: u64) -> Result<(), BackendError>;
    /// Reads a sealed link plan and its expiry.
    async fn get_token(&self, hash: &str) -> Result<Option<(Vec<u8>, u64)>, BackendError>;
    /// Deletes a link; true when this call deleted it (single use across replicas).
    async fn take_token(&self, hash: &str) -> Result<bool, BackendError>;
    /// Tells every replica (and this one) about `ev`.
    async fn publish(&self, ev: &Event) -> Result<(), BackendError>;
    /// Starts delivering events from other processes to `tx`; the first signal after each
    /// (re)connection is [`Signal::Reconnected`].
    fn subscribe(&self, tx: tokio::sync::mpsc::Sender<Signal>);
}

/// Seals `plain` with a key derived from `secret` (a session id or a link token), bound to
/// `aad` (the record key): nonce (12 bytes) then ciphertext and tag.
pub fn seal(secret: &str, aad: &str, plain: &[u8]) -> Vec<u8> {
    let cipher = ChaCha20Poly1305::new(&derive(secret).into());
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let mut out = nonce.to_vec();
    // Encryption with a 32-byte key and a 12-byte nonce cannot fail for in-memory sizes.
    if let Ok(ct) = cipher.encrypt(
        Nonce::from_slice(&nonce),
        Payload {
            msg: plain,
            aad: aad.as_bytes(),
        },
    ) {
        out.extend_from_slice(&ct);
    }
    out
}

/// Opens what [`seal`] produced; `None` for a wrong key, tampered or truncated data.
pub fn open(secret: &str, aad: &str, sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < 12 + 16 {
        return None;
    }
    let cipher = ChaCha20Poly1305::new(&derive(secret).into());
    let (nonce, ct) = sealed.split_at(12);
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: aad.as_bytes(),
            },
        )
        .ok()
}

fn derive(secret: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"flowgate seal v1\0");
    h.update(secret.as_bytes());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_and_tamper() {
        let s = seal("id", "k", b"hello");
        assert_eq!(open("id", "k", &s).as_deref(), Some(&b"hello"[..]));
        assert!(open("other", "k", &s).is_none());
        assert!(open("id", "other", &s).is_none());
        let mut t = s.clone();
        t[20] ^= 1;
        assert!(open("id", "k", &t).is_none());
        assert!(open("id", "k", &s[..10]).is_none());
    }

    #[test]
    fn events_round_trip() {
        let k = key_of("x");
        for e in [Event::Session(k), Event::User(7), Event::UserSessions(-1)] {
            assert_eq!(Event::decode(&e.encode()), Some(e));
        }
        assert_eq!(Event::decode("s:nothex"), None);
        assert_eq!(Event::decode("zz"), None);
    }
}
