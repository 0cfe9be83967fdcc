//! One session as the store holds it: who it belongs to, how they authenticated, its expiry and
//! its parked flow; its cache key (the SHA-256 of the id) and the record written to the backend.

use super::*;

/// Who a session belongs to, as at login (the proxy resolves the current identity per request
/// through [`SessionStore::identity`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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
///
/// What many sessions have in common (the flows, methods, `auth_method` and scope) is one
/// [`AuthShape`] shared between them (interned when a session is built); only the time and the
/// sign-on id are per session, so a million sessions do not hold a million copies of the same
/// names (docs/decisions/0012). Reads go through `Deref` to the shape
/// (`auth.flows`, `auth.methods`, `auth.auth_method`, `auth.scope`); [`AuthInfo::shape_mut`]
/// changes it. Stored as the same JSON object as before (`AuthRepr`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(from = "AuthRepr", into = "AuthRepr")]
pub struct AuthInfo {
    shape: Arc<AuthShape>,
    /// When the user last authenticated (the latest login or step-up).
    pub at_ms: Millis,
    /// The sign-on this session belongs to: set at login, kept by step-ups and copied into the
    /// sessions the portal handshake derives on other hosts; logout ends every session of the
    /// sign-on (docs/decisions/0013). Empty in sessions made before it existed.
    pub sign_on: SignOn,
}

/// The part of an [`AuthInfo`] that sessions share.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AuthShape {
    /// Slugs of the flows that logged this user in during this sign-on (the first login and
    /// every step-up since).
    pub flows: crate::session::NameSet,
    /// Methods proved during this sign-on: `password`, `totp`, `static` (a recovery code).
    pub methods: crate::session::NameSet,
    /// authentik's `auth_method` of the last login (`password`, `auth_mfa`), empty when none.
    pub auth_method: String,
    /// Where the session's cookie is valid, for the logout page: the host, or `*.<domain>`
    /// with `session.cookie_domain`.
    pub scope: String,
}

impl std::ops::Deref for AuthInfo {
    type Target = AuthShape;
    fn deref(&self) -> &AuthShape {
        &self.shape
    }
}

impl AuthInfo {
    /// An authentication record.
    pub fn new(shape: AuthShape, at_ms: Millis, sign_on: SignOn) -> Self {
        Self {
            shape: Arc::new(shape),
            at_ms,
            sign_on,
        }
    }

    /// The shared part, to change (copied first when shared).
    pub fn shape_mut(&mut self) -> &mut AuthShape {
        Arc::make_mut(&mut self.shape)
    }

    /// This record with its shape replaced by the interned copy of an equal one.
    pub(super) fn interned(mut self, shapes: &Interner<AuthShape>) -> Self {
        self.shape = shapes.intern(self.shape);
        self
    }
}

/// The JSON form of [`AuthInfo`] (unchanged from when its fields were plain).
#[derive(serde::Serialize, serde::Deserialize)]
struct AuthRepr {
    flows: crate::session::NameSet,
    methods: crate::session::NameSet,
    auth_method: String,
    at_ms: Millis,
    #[serde(default, skip_serializing_if = "SignOn::is_empty")]
    sign_on: SignOn,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    scope: String,
}

impl From<AuthRepr> for AuthInfo {
    fn from(r: AuthRepr) -> Self {
        let shape = AuthShape {
            flows: r.flows,
            methods: r.methods,
            auth_method: r.auth_method,
            scope: r.scope,
        };
        Self::new(shape, r.at_ms, r.sign_on)
    }
}

impl From<AuthInfo> for AuthRepr {
    fn from(a: AuthInfo) -> Self {
        let shape = Arc::unwrap_or_clone(a.shape);
        Self {
            flows: shape.flows,
            methods: shape.methods,
            auth_method: shape.auth_method,
            at_ms: a.at_ms,
            sign_on: a.sign_on,
            scope: shape.scope,
        }
    }
}

/// A sign-on id: 128 random bits, written as 32 hex digits; empty (all zero bits, which
/// [`new_sign_on`] never makes) for sessions made before sign-ons existed. Held inline
/// (16 bytes instead of a 56-byte string).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SignOn([u8; 16]);

impl SignOn {
    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0 == [0; 16]
    }

    /// The hex form ("" when none).
    pub fn hex(&self) -> String {
        if self.is_empty() {
            String::new()
        } else {
            hex::encode(self.0)
        }
    }
}

impl serde::Serialize for SignOn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> serde::Deserialize<'de> for SignOn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut b = [0u8; 16];
        if !text.is_empty() {
            hex::decode_to_slice(text.as_bytes(), &mut b)
                .map_err(|_| serde::de::Error::custom("a sign-on id is 32 hex digits"))?;
        }
        Ok(Self(b))
    }
}

/// A new sign-on id: 128 bits from the OS CSPRNG.
pub fn new_sign_on() -> SignOn {
    use rand::RngCore;
    let mut b = [0u8; 16];
    while b == [0; 16] {
        rand::rngs::OsRng.fill_bytes(&mut b);
    }
    SignOn(b)
}

/// Shares equal values: sessions built from the same login (or the same user) point at one
/// copy. Holds weak references, so a value no session uses any more is freed; dead entries are
/// dropped by [`Interner::prune`] (the store's purge) and from a bucket when it is added to.
pub(super) struct Interner<T> {
    map: std::sync::Mutex<std::collections::HashMap<u64, Vec<std::sync::Weak<T>>>>,
    /// Keys of this process's own (values carry user input: no bucket can be aimed at).
    hasher: std::collections::hash_map::RandomState,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Self {
            map: Default::default(),
            hasher: Default::default(),
        }
    }
}

impl<T: std::hash::Hash + Eq> Interner<T> {
    /// The shared copy of a value equal to `v` (`v` itself when there is none yet).
    pub(super) fn intern(&self, v: Arc<T>) -> Arc<T> {
        use std::hash::BuildHasher;
        let hash = self.hasher.hash_one(&*v);
        let Ok(mut map) = self.map.lock() else { return v };
        let bucket = map.entry(hash).or_default();
        for w in bucket.iter() {
            if let Some(old) = w.upgrade() {
                if *old == *v {
                    return old;
                }
            }
        }
        bucket.retain(|w| w.strong_count() > 0);
        bucket.push(Arc::downgrade(&v));
        v
    }

    /// Drops entries whose value is gone.
    pub(super) fn prune(&self) {
        if let Ok(mut map) = self.map.lock() {
            map.retain(|_, b| {
                b.retain(|w| w.strong_count() > 0);
                !b.is_empty()
            });
        }
    }
}

/// Opaque per-session state owned by the flow executor.
pub type FlowSlot = tokio::sync::Mutex<Option<Box<dyn Any + Send>>>;

/// A session id held inline (its 43 base64url characters; no heap allocation). Reads as `&str`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SessionId([u8; crate::session::SESSION_ID_CHARS]);

impl SessionId {
    /// The id if `text` has the shape of one ([`crate::session::is_well_formed_id`]).
    pub fn parse(text: &str) -> Option<Self> {
        if !crate::session::is_well_formed_id(text) {
            return None;
        }
        let mut b = [0u8; crate::session::SESSION_ID_CHARS];
        b.copy_from_slice(text.as_bytes());
        Some(Self(b))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (checked by `parse`).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::ops::Deref for SessionId {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One session: anonymous (only running a flow) or authenticated.
///
/// Kept small (one ~190-byte allocation; docs/decisions/0012): the id inline, the identity and
/// the common part of the authentication shared with the other sessions of the same user and
/// login, the CSRF token and the cache key derived when needed, the flow slot made on first use.
pub struct Session {
    /// The id (the cookie value). Never log it; use [`super::log_tag`].
    pub id: SessionId,
    /// The logged-in user as at login, if any. Never changes for the life of the session.
    pub user: Option<Arc<Identity>>,
    /// How the user was authenticated; default for an anonymous session.
    pub auth: AuthInfo,
    /// Creation time.
    pub created_ms: Millis,
    /// Absolute expiry.
    pub expires_ms: Millis,
    /// Idle timeout in milliseconds (49 days at most: longer ones are held as that).
    idle_ms: u32,
    pub(super) last_seen: AtomicU64,
    /// The last-seen time last sent to the store.
    pub(super) saved_seen: AtomicU64,
    /// When this copy was read from a shared store (bounds the near cache's life).
    pub(super) cached_ms: Millis,
    /// Estimated size of the parked flow state in bytes (weighs anonymous sessions).
    pub(super) state_bytes: AtomicU32,
    /// Used since the session table last looked for entries to evict (second chance).
    pub(super) referenced: std::sync::atomic::AtomicBool,
    /// Unfinished flow state, owned by the flow executor (made on first use).
    flow: arc_swap::ArcSwapOption<FlowSlot>,
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

/// The longest step between two last-seen writes of a session ([`Session::save_step`]).
pub const SAVE_STEP_MAX_MS: u64 = 15 * 60 * 1000;

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
        id: SessionId,
        user: Option<Arc<Identity>>,
        auth: AuthInfo,
        created: Millis,
        expires: Millis,
        idle: u64,
        seen: Millis,
        now: Millis,
    ) -> Self {
        Self {
            id,
            user,
            auth,
            created_ms: created,
            expires_ms: expires,
            idle_ms: u32::try_from(idle).unwrap_or(u32::MAX),
            last_seen: AtomicU64::new(seen),
            saved_seen: AtomicU64::new(seen),
            cached_ms: now,
            state_bytes: AtomicU32::new(0),
            referenced: Default::default(),
            flow: arc_swap::ArcSwapOption::empty(),
        }
    }

    /// The idle timeout in milliseconds.
    pub fn idle_ms(&self) -> u64 {
        u64::from(self.idle_ms)
    }

    /// The cache key: the SHA-256 of the id.
    pub fn key(&self) -> Key {
        key_bytes(&self.id)
    }

    /// The CSRF token for forms rendered in this session (derived from the id, never stored).
    pub fn csrf(&self) -> String {
        csrf_of(&self.id)
    }

    /// The unfinished flow state, owned by the flow executor (`lock_owned` it).
    pub fn flow(&self) -> Arc<FlowSlot> {
        if let Some(slot) = self.flow.load_full() {
            return slot;
        }
        let fresh = Arc::new(tokio::sync::Mutex::new(None));
        // Two first uses at once: the one stored first wins for both.
        let prev = self.flow.compare_and_swap(&None::<Arc<FlowSlot>>, Some(fresh.clone()));
        match &*prev {
            Some(slot) => slot.clone(),
            None => fresh,
        }
    }

    /// The store key ([`backend::key_of`] of the id).
    pub fn store_key(&self) -> String {
        hex::encode(self.key())
    }

    /// When the session was last used.
    pub fn last_seen(&self) -> Millis {
        self.last_seen.load(Ordering::Relaxed)
    }

    /// How far the last-seen time moves before it is written to the store again: an eighth
    /// of the idle timeout, between one second and [`SAVE_STEP_MAX_MS`]. A session read back
    /// (another replica, a restart) is then at most that much closer to its idle expiry than it
    /// should be (it ends up to an eighth of its idle timeout early, never late), and a busy
    /// gateway writes each session at most once per step: with a million sessions in use and the
    /// default hour of idle timeout, ~2 200 rows a second instead of one per request
    /// (docs/decisions/0012).
    pub(super) fn save_step(&self) -> u64 {
        (self.idle_ms() / 8).clamp(1_000, SAVE_STEP_MAX_MS)
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
            idle_ms: self.idle_ms(),
            last_seen_ms: self.last_seen(),
            flow,
        }
    }

    pub(super) fn expired(&self, now: Millis) -> bool {
        now >= self.expires_ms || now.saturating_sub(self.last_seen()) >= self.idle_ms()
    }
}
