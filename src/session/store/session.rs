//! One session as the store holds it: who it belongs to, how they authenticated, its expiry and
//! its parked flow; its cache key (the SHA-256 of the id) and the record written to the backend.

use super::*;

/// Who a session belongs to, as at login (the proxy resolves the current identity per request
/// through [`SessionStore::identity`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// Database id.
    pub user_id: i64,
    /// Stable public id.
    pub uid: String,
    /// Username.
    pub username: String,
    /// Email, may be empty.
    pub email: String,
    /// Display name, may be empty.
    pub name: String,
    /// Group names including inherited ones.
    pub groups: Vec<String>,
    /// Superuser flag.
    pub is_superuser: bool,
}

/// How a session was authenticated (STEP-1): what `authentication_flow` checks and what app
/// policies see as `auth_method` / `auth_method_args`. Empty for an anonymous session.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuthInfo {
    /// Slugs of the flows that logged this user in during this sign-on (the first login and
    /// every step-up since).
    pub flows: crate::session::NameSet,
    /// Methods proved during this sign-on: `password`, `totp`, `static` (a recovery code).
    pub methods: crate::session::NameSet,
    /// authentik's `auth_method` of the last login (`password`, `auth_mfa`), empty when none.
    pub auth_method: String,
    /// When the user last authenticated (the latest login or step-up).
    pub at_ms: Millis,
    /// The sign-on this session belongs to (random, hex): set at login, kept by step-ups and
    /// copied into the sessions the portal handshake derives on other hosts; logout ends every
    /// session of the sign-on (docs/decisions/0013). Empty in sessions made before it existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sign_on: String,
    /// Where the session's cookie is valid, for the logout page: the host, or `*.<domain>`
    /// with `session.cookie_domain`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
}

/// A new sign-on id: 128 bits from the OS CSPRNG, hex.
pub fn new_sign_on() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Opaque per-session state owned by the flow executor.
pub type FlowSlot = tokio::sync::Mutex<Option<Box<dyn Any + Send>>>;

/// One session: anonymous (only running a flow) or authenticated.
pub struct Session {
    /// The id (the cookie value). Never log it; use [`super::log_tag`].
    pub id: String,
    /// SHA-256 of the id: the cache key; its hex form ([`Session::store_key`]) is the store's.
    pub key: Key,
    /// The logged-in user as at login, if any. Never changes for the life of the session.
    pub user: Option<Arc<Identity>>,
    /// How the user was authenticated; default for an anonymous session.
    pub auth: AuthInfo,
    /// CSRF token for forms rendered in this session (derived from the id, never stored).
    pub csrf: String,
    /// Creation time.
    pub created_ms: Millis,
    /// Absolute expiry.
    pub expires_ms: Millis,
    /// Idle timeout in milliseconds.
    pub idle_ms: u64,
    pub(super) last_seen: AtomicU64,
    /// The last-seen time last sent to the store.
    pub(super) saved_seen: AtomicU64,
    /// When this copy was read from a shared store (bounds the near cache's life).
    pub(super) cached_ms: Millis,
    /// Estimated size of the parked flow state in bytes (weighs anonymous sessions).
    pub(super) state_bytes: AtomicU32,
    /// Unfinished flow state, owned by the flow executor.
    pub flow: FlowSlot,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &crate::session::log_tag(&self.id))
            .field("user", &self.user.as_ref().map(|u| &u.username))
            .field("expires_ms", &self.expires_ms)
            .finish()
    }
}

/// The CSRF token of a session: derived from the id (so the store never holds it), in the
/// same 43-character base64url form as an id.
/// A cache key: the SHA-256 of a session id (32 bytes instead of a 64-character hex string in
/// every entry).
pub type Key = [u8; 32];

pub(super) fn key_bytes(id: &str) -> Key {
    use sha2::Digest;
    sha2::Sha256::digest(id.as_bytes()).into()
}

pub(super) fn key_from_hex(k: &str) -> Option<Key> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(k, &mut out).ok()?;
    Some(out)
}

pub(super) fn csrf_of(id: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"flowgate csrf\0");
    h.update(id.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.finalize())
}

impl Session {
    #[allow(clippy::too_many_arguments)] // one constructor for fresh and stored sessions
    pub(super) fn build(
        id: String,
        user: Option<Arc<Identity>>,
        auth: AuthInfo,
        created: Millis,
        expires: Millis,
        idle: u64,
        seen: Millis,
        now: Millis,
    ) -> Self {
        Self {
            key: key_bytes(&id),
            csrf: csrf_of(&id),
            id,
            user,
            auth,
            created_ms: created,
            expires_ms: expires,
            idle_ms: idle,
            last_seen: AtomicU64::new(seen),
            saved_seen: AtomicU64::new(seen),
            cached_ms: now,
            state_bytes: AtomicU32::new(0),
            flow: tokio::sync::Mutex::new(None),
        }
    }

    /// The store key ([`backend::key_of`] of the id).
    pub fn store_key(&self) -> String {
        hex::encode(self.key)
    }

    /// When the session was last used.
    pub fn last_seen(&self) -> Millis {
        self.last_seen.load(Ordering::Relaxed)
    }

    /// How far the last-seen time moves before it is written to the store again: an eighth
    /// of the idle timeout, between one second and one minute. A session read back (another
    /// replica, a restart) is then at most that much closer to its idle expiry than it should
    /// be, and a busy gateway does not write one row per request.
    pub(super) fn save_step(&self) -> u64 {
        (self.idle_ms / 8).clamp(1_000, 60_000)
    }

    /// Weight in the anonymous-session cache: one, plus one per [`PENDING_WEIGHT_UNIT`] bytes
    /// of parked flow state.
    pub(super) fn weight(&self) -> u32 {
        1 + self.state_bytes.load(Ordering::Relaxed) / PENDING_WEIGHT_UNIT
    }

    pub(super) fn record(&self, flow: Option<String>) -> StoredSession {
        StoredSession {
            v: RECORD_VERSION,
            user: self.user.as_deref().cloned(),
            auth: self.auth.clone(),
            created_ms: self.created_ms,
            expires_ms: self.expires_ms,
            idle_ms: self.idle_ms,
            last_seen_ms: self.last_seen(),
            flow,
        }
    }

    pub(super) fn expired(&self, now: Millis) -> bool {
        now >= self.expires_ms || now.saturating_sub(self.last_seen()) >= self.idle_ms
    }
}
