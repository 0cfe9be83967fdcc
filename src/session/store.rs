//! The session store: two bounded moka caches of `Arc<Session>`, with absolute and idle expiry
//! decided by the injected clock on every lookup (moka's own idle eviction is only a backstop
//! that frees memory).
//!
//! Logged-in sessions and anonymous ones (a flow started before login) live in separate caches
//! with separate bounds (FLOOD-2): anyone can start flows without limit, so anonymous sessions
//! only ever evict each other, never a logged-in session.

use super::backend::{self, Backend, BackendError, Event, Signal, StoredSession, RECORD_VERSION};
use super::clock::{Millis, SharedClock};
use std::any::Any;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
    pub flows: BTreeSet<String>,
    /// Methods proved during this sign-on: `password`, `totp`, `static` (a recovery code).
    pub methods: BTreeSet<String>,
    /// authentik's `auth_method` of the last login (`password`, `auth_mfa`), empty when none.
    pub auth_method: String,
    /// When the user last authenticated (the latest login or step-up).
    pub at_ms: Millis,
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
    last_seen: AtomicU64,
    /// When this copy was read from a shared store (bounds the near cache's life).
    cached_ms: Millis,
    /// Estimated size of the parked flow state in bytes (weighs anonymous sessions).
    state_bytes: AtomicU32,
    /// Unfinished flow state, owned by the flow executor.
    pub flow: FlowSlot,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &super::log_tag(&self.id))
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

fn key_bytes(id: &str) -> Key {
    use sha2::Digest;
    sha2::Sha256::digest(id.as_bytes()).into()
}

fn key_from_hex(k: &str) -> Option<Key> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(k, &mut out).ok()?;
    Some(out)
}

fn csrf_of(id: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"flowgate csrf\0");
    h.update(id.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.finalize())
}

impl Session {
    #[allow(clippy::too_many_arguments)] // one constructor for fresh and stored sessions
    fn build(
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

    /// Weight in the anonymous-session cache: one, plus one per [`PENDING_WEIGHT_UNIT`] bytes
    /// of parked flow state.
    fn weight(&self) -> u32 {
        1 + self.state_bytes.load(Ordering::Relaxed) / PENDING_WEIGHT_UNIT
    }

    fn record(&self, flow: Option<String>) -> StoredSession {
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

    fn expired(&self, now: Millis) -> bool {
        now >= self.expires_ms || now.saturating_sub(self.last_seen()) >= self.idle_ms
    }
}

/// Bytes of parked flow state that weigh as much as one more anonymous session.
pub const PENDING_WEIGHT_UNIT: u32 = 2048;

/// Default bound on anonymous (pre-login) sessions, used by [`SessionStore::new`].
pub const DEFAULT_MAX_PENDING: u64 = 100_000;

/// With a shared store (`redis`), how long a replica trusts its cached copy of a session or a
/// user before reading it again: the bound on how long a lost invalidation message can keep a
/// revoked session or an old identity alive.
pub const NEAR_CACHE_LIFE: Duration = Duration::from_secs(30);

/// How often last-seen times are written (in one batch) and evicted sessions deleted.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(2);

/// How often expired sessions and links are purged from the store.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// Where the store reads users' current identities (wired in `lib.rs` to the user store).
#[async_trait::async_trait]
pub trait UserSource: Send + Sync + 'static {
    /// The user's current identity; `Ok(None)` when the user is gone or inactive.
    async fn identity(&self, user_id: i64) -> Result<Option<Identity>, String>;
}

/// Why a parked flow could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum FlowLoadError {
    /// The store failed.
    #[error("{0}")]
    Store(#[from] BackendError),
    /// The record is there but cannot be opened (tampered, or sealed for another id).
    #[error("flow state unreadable")]
    Unreadable,
}

/// A cached identity and when it was read.
type CachedIdentity = (Option<Arc<Identity>>, Millis);

struct Durable {
    backend: Arc<dyn Backend>,
    shared: bool,
    /// Last-seen updates and keys evicted for size, for the background writer.
    touch_tx: tokio::sync::mpsc::Sender<Touch>,
    /// Keys evicted for size whose deletion may still be pending (`local` only).
    evicted: moka::sync::Cache<Key, ()>,
    users: moka::sync::Cache<i64, CachedIdentity>,
    source: std::sync::OnceLock<Arc<dyn UserSource>>,
    /// Whether the store is failing (logged once per outage).
    down: std::sync::atomic::AtomicBool,
    /// Set at shutdown: the background tasks stop.
    closed: tokio::sync::watch::Sender<bool>,
}

enum Touch {
    Seen(Key, Millis),
    Evicted(Key),
}

/// The store.
#[derive(Clone)]
pub struct SessionStore {
    /// Logged-in sessions, by key.
    cache: moka::sync::Cache<Key, Arc<Session>>,
    /// Anonymous sessions (unfinished flows started before login), by key.
    pending: moka::sync::Cache<Key, Arc<Session>>,
    clock: SharedClock,
    durable: Option<Arc<Durable>>,
}

type Listener = Arc<dyn Fn(Arc<Key>, Arc<Session>, moka::notification::RemovalCause) + Send + Sync>;

fn lru_cache(
    max: u64,
    backstop_idle: Duration,
    weighed: bool,
    listener: Option<Listener>,
) -> moka::sync::Cache<Key, Arc<Session>> {
    let mut b = moka::sync::Cache::builder()
        .max_capacity(max)
        .eviction_policy(moka::policy::EvictionPolicy::lru())
        .time_to_idle(backstop_idle + Duration::from_secs(60));
    if let Some(l) = listener {
        b = b.eviction_listener(move |k, v, c| l(k, v, c));
    }
    if weighed {
        b.weigher(|_, s: &Arc<Session>| s.weight()).build()
    } else {
        b.build()
    }
}

impl SessionStore {
    /// A memory-only store bounded to `max_sessions` logged-in sessions and
    /// [`DEFAULT_MAX_PENDING`] anonymous ones; see [`SessionStore::with_bounds`].
    pub fn new(max_sessions: u64, backstop_idle: Duration, clock: SharedClock) -> Self {
        Self::with_bounds(max_sessions, DEFAULT_MAX_PENDING, backstop_idle, clock)
    }

    /// A memory-only store (nothing survives the process; tests and benches) bounded to
    /// `max_sessions` logged-in sessions and `max_pending` anonymous ones (each bound on its
    /// own cache, so no number of anonymous sessions evicts a logged-in one); `backstop_idle`
    /// is moka's own idle eviction, which should be at least the longest idle timeout in use.
    /// An anonymous session with a large parked flow counts as several (see
    /// [`SessionStore::set_state_size`]), so the anonymous space is bounded in memory too:
    /// about `max_pending` × (1.1 KiB + [`PENDING_WEIGHT_UNIT`]).
    ///
    /// When full, the least recently used session is evicted (LRU). moka's default TinyLFU
    /// policy would instead refuse to admit a new entry that is less "popular" than the
    /// victim: under a flood of flow starts a fresh login was dropped at once (AVAIL-3).
    pub fn with_bounds(max_sessions: u64, max_pending: u64, backstop_idle: Duration, clock: SharedClock) -> Self {
        Self {
            cache: lru_cache(max_sessions, backstop_idle, false, None),
            pending: lru_cache(max_pending, backstop_idle, true, None),
            clock,
            durable: None,
        }
    }

    /// A store whose caches sit in front of `backend` (SPEC §9). Must be called inside a
    /// tokio runtime: it spawns the last-seen writer, the purger and the invalidation listener.
    ///
    /// With a local backend the caches hold every live session and a session evicted for
    /// size is deleted from the store as well (the bounds keep their meaning). With a shared
    /// one they are a near cache: eviction only forgets the copy, copies older than
    /// [`NEAR_CACHE_LIFE`] are read again, and the invalidation channel drops entries.
    pub fn with_backend(
        max_sessions: u64,
        max_pending: u64,
        backstop_idle: Duration,
        clock: SharedClock,
        backend: Arc<dyn Backend>,
    ) -> Self {
        let shared = backend.shared();
        let (touch_tx, touch_rx) = tokio::sync::mpsc::channel(65_536);
        let evicted = moka::sync::Cache::builder()
            .max_capacity(1_000_000)
            .time_to_live(Duration::from_secs(120))
            .build();
        let listener: Option<Listener> = if shared {
            None
        } else {
            let tx = touch_tx.clone();
            let ev = evicted.clone();
            Some(Arc::new(move |k: Arc<Key>, _s, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    ev.insert(*k, ());
                    let _ = tx.try_send(Touch::Evicted(*k));
                }
            }))
        };
        let durable = Arc::new(Durable {
            backend: backend.clone(),
            shared,
            touch_tx,
            evicted,
            users: moka::sync::Cache::builder()
                .max_capacity(max_sessions.max(1024))
                .build(),
            source: std::sync::OnceLock::new(),
            down: Default::default(),
            closed: tokio::sync::watch::channel(false).0,
        });
        let store = Self {
            cache: lru_cache(max_sessions, backstop_idle, false, listener.clone()),
            pending: lru_cache(max_pending, backstop_idle, true, listener),
            clock,
            durable: Some(durable),
        };
        store.spawn_writer(touch_rx);
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        backend.subscribe(tx);
        store.spawn_listener(rx);
        store
    }

    /// Resolves identities through `source` from now on (live identity, SPEC §9).
    pub fn set_user_source(&self, source: Arc<dyn UserSource>) {
        if let Some(d) = &self.durable {
            let _ = d.source.set(source);
        }
    }

    /// Stops the background tasks (last-seen writer, purger, invalidation listener).
    pub fn close(&self) {
        if let Some(d) = &self.durable {
            d.closed.send_replace(true);
        }
    }

    fn spawn_writer(&self, mut rx: tokio::sync::mpsc::Receiver<Touch>) {
        let Some(d) = self.durable.clone() else { return };
        let mut closed = d.closed.subscribe();
        let clock = self.clock.clone();
        let weak = Arc::downgrade(&d);
        drop(d);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TOUCH_INTERVAL);
            let purge_every = (PURGE_INTERVAL.as_millis() / TOUCH_INTERVAL.as_millis()).max(1) as u64;
            let mut ticks: u64 = 0;
            let mut seen: std::collections::HashMap<Key, Millis> = Default::default();
            let mut gone: Vec<Key> = Vec::new();
            loop {
                let closed = tokio::select! {
                    _ = closed.changed() => true,
                    m = rx.recv() => match m {
                        Some(Touch::Seen(k, at)) => { seen.insert(k, at); false }
                        Some(Touch::Evicted(k)) => { seen.remove(&k); gone.push(k); false }
                        None => true,
                    },
                    _ = tick.tick() => {
                        let Some(d) = weak.upgrade() else { return };
                        let batch: Vec<(String, Millis)> = seen.drain().map(|(k, at)| (hex::encode(k), at)).collect();
                        if !batch.is_empty() {
                            if let Err(e) = d.backend.touch(&batch).await {
                                tracing::warn!(error = %e, sessions = batch.len(), "last-seen times not written");
                            }
                        }
                        for k in gone.drain(..) {
                            if d.backend.delete(&hex::encode(k)).await.is_ok() {
                                d.evicted.invalidate(&k);
                            }
                        }
                        ticks += 1;
                        if ticks.is_multiple_of(purge_every) {
                            match d.backend.purge(clock.now_ms()).await {
                                Ok(n) if n > 0 => tracing::debug!(purged = n, "expired sessions and links purged"),
                                Ok(_) => {}
                                Err(e) => tracing::warn!(error = %e, "purge of expired sessions failed"),
                            }
                        }
                        false
                    }
                };
                if closed {
                    return;
                }
            }
        });
    }

    fn spawn_listener(&self, mut rx: tokio::sync::mpsc::Receiver<Signal>) {
        let me = self.downgrade();
        let Some(mut closed) = self.durable.as_ref().map(|d| d.closed.subscribe()) else {
            return;
        };
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = closed.changed() => return,
                    sig = rx.recv() => {
                        let Some(sig) = sig else { return };
                        let Some(store) = me.upgrade() else { return };
                        store.apply(sig);
                    }
                }
            }
        });
    }

    /// Applies an invalidation signal to the caches.
    fn apply(&self, sig: Signal) {
        let Some(d) = &self.durable else { return };
        match sig {
            Signal::Event(Event::Session(k)) => {
                if let Some(k) = key_from_hex(&k) {
                    self.cache.invalidate(&k);
                    self.pending.invalidate(&k);
                }
            }
            Signal::Event(Event::User(id)) => d.users.invalidate(&id),
            Signal::Event(Event::UserSessions(id)) => {
                d.users.invalidate(&id);
                self.forget_user(id, None);
            }
            Signal::Reconnected => {
                self.cache.invalidate_all();
                d.users.invalidate_all();
                if d.shared {
                    self.pending.invalidate_all();
                }
            }
        }
    }

    fn downgrade(&self) -> WeakStore {
        WeakStore {
            cache: self.cache.clone(),
            pending: self.pending.clone(),
            clock: self.clock.clone(),
            durable: self.durable.as_ref().map(Arc::downgrade),
        }
    }

    /// The clock the store reads.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Whether other processes write the same sessions (flow state is then re-read at each step).
    pub fn is_shared(&self) -> bool {
        self.durable.as_ref().is_some_and(|d| d.shared)
    }

    /// Whether sessions are written to a store (anything but the memory-only test store).
    pub fn is_durable(&self) -> bool {
        self.durable.is_some()
    }

    /// Whether the last call to the store failed (it is unreachable until a call succeeds):
    /// a lookup that found nothing then means "cannot tell", not "unknown session".
    pub fn is_failing(&self) -> bool {
        self.durable.as_ref().is_some_and(|d| d.down.load(Ordering::Relaxed))
    }

    fn note_ok(&self) {
        if let Some(d) = &self.durable {
            if d.down.swap(false, Ordering::Relaxed) {
                tracing::info!("session store reachable again");
            }
        }
    }

    fn note_err(&self, e: &BackendError) {
        if let Some(d) = &self.durable {
            if !d.down.swap(true, Ordering::Relaxed) {
                tracing::error!(error = %e, "session store failing; new logins and unknown sessions are refused");
            }
        }
    }

    /// Creates a session with a fresh id in the caches only (memory-only stores, tests and
    /// benches; the gateway uses [`SessionStore::open`]).
    pub fn create(&self, user: Option<Arc<Identity>>, lifetime: Duration, idle: Duration) -> Arc<Session> {
        self.create_with_auth(user, AuthInfo::default(), lifetime, idle)
    }

    /// Creates a session with a fresh id in the caches only, recording how the user
    /// authenticated (see [`SessionStore::create`]).
    pub fn create_with_auth(
        &self,
        user: Option<Arc<Identity>>,
        auth: AuthInfo,
        lifetime: Duration,
        idle: Duration,
    ) -> Arc<Session> {
        let now = self.clock.now_ms();
        let s = Arc::new(Session::build(
            super::new_id(),
            user,
            auth,
            now,
            now.saturating_add(lifetime.as_millis() as u64),
            idle.as_millis() as u64,
            now,
            now,
        ));
        self.insert(s.clone());
        s
    }

    fn insert(&self, s: Arc<Session>) {
        if s.user.is_some() {
            self.cache.insert(s.key, s);
        } else {
            self.pending.insert(s.key, s);
        }
    }

    /// Creates a session and writes it to the store before it is handed out (at login, and
    /// when a flow starts), so any replica and any later process finds it. A store failure
    /// refuses the session (fail closed).
    pub async fn open(
        &self,
        user: Option<Arc<Identity>>,
        auth: AuthInfo,
        lifetime: Duration,
        idle: Duration,
    ) -> Result<Arc<Session>, BackendError> {
        let s = self.create_with_auth(user, auth, lifetime, idle);
        if let Some(d) = &self.durable {
            if let Err(e) = d.backend.save(&s.store_key(), &s.record(None)).await {
                self.cache.invalidate(&s.key);
                self.pending.invalidate(&s.key);
                self.note_err(&e);
                return Err(e);
            }
            self.note_ok();
        }
        Ok(s)
    }

    /// Looks a session up in the caches only, enforcing absolute and idle expiry (tests,
    /// benches; the request path uses [`SessionStore::lookup`]).
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let key = key_bytes(id);
        let s = self.cache.get(&key).or_else(|| self.pending.get(&key))?;
        self.check(&key, s)
    }

    fn check(&self, key: &Key, s: Arc<Session>) -> Option<Arc<Session>> {
        let now = self.clock.now_ms();
        if s.expired(now) {
            self.cache.invalidate(key);
            self.pending.invalidate(key);
            return None;
        }
        let idle_for = now.saturating_sub(s.last_seen());
        // Only write when the value moves by a second or more: keeps the cache line quiet.
        if idle_for >= 1000 {
            s.last_seen.store(now, Ordering::Relaxed);
            if let Some(d) = &self.durable {
                let _ = d.touch_tx.try_send(Touch::Seen(*key, now));
            }
        }
        Some(s)
    }

    /// Looks a session up for a request: from the cache without any round trip when it holds
    /// a current copy, else from the store (then cached). `None` for an unknown, expired or
    /// revoked session, and when the store cannot be read (fail closed; logged once).
    pub async fn lookup(&self, id: &str) -> Option<Arc<Session>> {
        let key = key_bytes(id);
        let cached = self.cache.get(&key).or_else(|| self.pending.get(&key));
        let Some(d) = &self.durable else {
            return self.check(&key, cached?);
        };
        let now = self.clock.now_ms();
        if let Some(s) = cached {
            if !d.shared || now.saturating_sub(s.cached_ms) < NEAR_CACHE_LIFE.as_millis() as u64 {
                return self.check(&key, s);
            }
        } else if !d.shared && d.evicted.contains_key(&key) {
            return None;
        }
        let hex_key = hex::encode(key);
        match d.backend.load(&hex_key).await {
            Ok(Some(rec)) => {
                self.note_ok();
                let user = rec.user.map(Arc::new);
                let s = Arc::new(Session::build(
                    id.to_string(),
                    user,
                    rec.auth,
                    rec.created_ms,
                    rec.expires_ms,
                    rec.idle_ms,
                    rec.last_seen_ms,
                    now,
                ));
                if s.expired(now) {
                    let _ = d.backend.delete(&hex_key).await;
                    return None;
                }
                self.insert(s.clone());
                self.check(&key, s)
            }
            Ok(None) => {
                self.note_ok();
                self.cache.invalidate(&key);
                self.pending.invalidate(&key);
                None
            }
            Err(e) => {
                self.note_err(&e);
                None
            }
        }
    }

    /// The session user's current identity (groups, email and name as they are now): from the
    /// user cache, else from the user source. `None` when the user was deleted or disabled.
    /// When the user store cannot be read the identity as at login is used, so proxying of
    /// existing sessions continues.
    pub async fn identity(&self, s: &Session) -> Option<Arc<Identity>> {
        let at_login = s.user.as_ref()?;
        let Some(d) = &self.durable else {
            return Some(at_login.clone());
        };
        let Some(src) = d.source.get() else {
            return Some(at_login.clone());
        };
        let now = self.clock.now_ms();
        if let Some((who, at)) = d.users.get(&at_login.user_id) {
            if now.saturating_sub(at) < NEAR_CACHE_LIFE.as_millis() as u64 {
                return who;
            }
        }
        match src.identity(at_login.user_id).await {
            Ok(who) => {
                let who = who.map(Arc::new);
                d.users.insert(at_login.user_id, (who.clone(), now));
                who
            }
            Err(e) => {
                tracing::warn!(error = %e, "user store unreadable; using the identity as at login");
                Some(at_login.clone())
            }
        }
    }

    /// Records the estimated size of the flow state parked in `s`; an anonymous session is
    /// weighed again, so large unfinished flows make room sooner (FLOOD-2). The entry is
    /// removed and inserted anew: moka evicts an entry whose weight grows in place instead of
    /// the least recently used ones. A lookup of this session in between (microseconds, only
    /// when the weight changes) misses it, which a visitor sees as a restarted flow.
    pub fn set_state_size(&self, s: &Arc<Session>, bytes: usize) {
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        let before = s.state_bytes.swap(bytes, Ordering::Relaxed);
        if s.user.is_none()
            && before / PENDING_WEIGHT_UNIT != bytes / PENDING_WEIGHT_UNIT
            && self.pending.contains_key(&s.key)
        {
            self.pending.invalidate(&s.key);
            self.pending.insert(s.key, s.clone());
        }
    }

    /// Writes the session's unfinished flow (`None`: none) to the store, sealed with the
    /// session id. No-op for a memory-only store.
    pub async fn save_flow(&self, s: &Session, flow: Option<&[u8]>) -> Result<(), BackendError> {
        let Some(d) = &self.durable else { return Ok(()) };
        let key = s.store_key();
        let sealed = flow.map(|f| hex::encode(backend::seal(&s.id, &key, f)));
        let r = d.backend.save(&key, &s.record(sealed)).await;
        match &r {
            Ok(()) => self.note_ok(),
            Err(e) => self.note_err(e),
        }
        r
    }

    /// Reads the session's unfinished flow back from the store.
    pub async fn load_flow(&self, s: &Session) -> Result<Option<Vec<u8>>, FlowLoadError> {
        let Some(d) = &self.durable else { return Ok(None) };
        let key = s.store_key();
        let rec = d.backend.load(&key).await?;
        let Some(sealed) = rec.and_then(|r| r.flow) else {
            return Ok(None);
        };
        let bytes = hex::decode(sealed).map_err(|_| FlowLoadError::Unreadable)?;
        backend::open(&s.id, &key, &bytes)
            .map(Some)
            .ok_or(FlowLoadError::Unreadable)
    }

    /// Deletes a session here without waiting for the store (see [`SessionStore::end`]):
    /// with a local store it is deleted there in the next batch and never read back.
    pub fn remove(&self, id: &str) {
        let key = key_bytes(id);
        self.cache.invalidate(&key);
        self.pending.invalidate(&key);
        self.bury(&key);
    }

    /// Local store: marks `key` deleted (never read back) and queues its deletion.
    fn bury(&self, key: &Key) {
        if let Some(d) = self.durable.as_ref().filter(|d| !d.shared) {
            d.evicted.insert(*key, ());
            let _ = d.touch_tx.try_send(Touch::Evicted(*key));
        }
    }

    /// Ends a session everywhere: caches, store, and (shared store) every replica's cache.
    pub async fn end(&self, s: &Session) {
        self.cache.invalidate(&s.key);
        self.pending.invalidate(&s.key);
        let Some(d) = &self.durable else { return };
        if let Err(e) = d.backend.delete(&s.store_key()).await {
            self.note_err(&e);
            tracing::error!(session = %super::log_tag(&s.id), "session not deleted from the store");
        }
        if d.shared {
            if let Err(e) = d.backend.publish(&Event::Session(s.store_key())).await {
                tracing::error!(error = %e, "session end not announced to other replicas");
            }
        }
    }

    /// Drops every cached session of `user_id` except `keep` (a key); returns how many.
    fn forget_user(&self, user_id: i64, keep: Option<&Key>) -> usize {
        let doomed: Vec<Key> = self
            .cache
            .iter()
            .filter(|(k, s)| s.user.as_ref().is_some_and(|u| u.user_id == user_id) && Some(k.as_ref()) != keep)
            .map(|(k, _)| *k)
            .collect();
        for k in &doomed {
            self.cache.invalidate(k);
            self.bury(k);
        }
        doomed.len()
    }

    /// Deletes every cached session of user `user_id` except the one with id `keep` (a scan:
    /// logouts of this kind are rare, lookups are not). Caches only; see
    /// [`SessionStore::end_user_sessions`].
    pub fn remove_user_sessions(&self, user_id: i64, keep: Option<&str>) -> usize {
        let keep = keep.map(key_bytes);
        self.forget_user(user_id, keep.as_ref())
    }

    /// Ends every session of user `user_id` except the one with id `keep`, everywhere, and
    /// drops the user's cached identity on every replica; returns how many ended.
    pub async fn end_user_sessions(&self, user_id: i64, keep: Option<&str>) -> usize {
        let keep = keep.map(key_bytes);
        let mut n = self.forget_user(user_id, keep.as_ref());
        let Some(d) = &self.durable else { return n };
        d.users.invalidate(&user_id);
        let keep = keep.map(hex::encode);
        match d.backend.delete_user(user_id, keep.as_deref()).await {
            Ok(keys) => {
                n = n.max(keys.len());
                if d.shared {
                    for k in keys {
                        let _ = d.backend.publish(&Event::Session(k)).await;
                    }
                    let _ = d.backend.publish(&Event::User(user_id)).await;
                }
            }
            Err(e) => {
                self.note_err(&e);
                tracing::error!(user_id, "sessions of the user not deleted from the store");
            }
        }
        n
    }

    /// A user's groups, email, name or active flag changed here: drop the cached identity on
    /// this and (shared store) every replica.
    pub async fn user_changed(&self, user_id: i64) {
        let Some(d) = &self.durable else { return };
        d.users.invalidate(&user_id);
        if d.shared {
            if let Err(e) = d.backend.publish(&Event::User(user_id)).await {
                tracing::error!(error = %e, "user change not announced to other replicas");
            }
        }
    }

    /// Stores a sealed plan behind a mailed link (`token` is the raw token, never stored).
    /// `Ok(false)` for a memory-only store (the caller keeps it itself).
    pub async fn put_token(&self, token: &str, plain: &[u8], expires_ms: u64) -> Result<bool, BackendError> {
        let Some(d) = &self.durable else { return Ok(false) };
        let hash = backend::key_of(token);
        d.backend
            .put_token(&hash, &backend::seal(token, &hash, plain), expires_ms)
            .await?;
        Ok(true)
    }

    /// Reads the plan behind a mailed link (by the raw token); `None` when gone or unreadable.
    pub async fn get_token(&self, token: &str) -> Result<Option<(Vec<u8>, u64)>, BackendError> {
        let Some(d) = &self.durable else { return Ok(None) };
        let hash = backend::key_of(token);
        Ok(d.backend
            .get_token(&hash)
            .await?
            .and_then(|(sealed, exp)| Some((backend::open(token, &hash, &sealed)?, exp))))
    }

    /// Whether a link exists and has not expired at `now_ms` (by its hash).
    pub async fn token_alive(&self, hash: &str, now_ms: u64) -> Result<bool, BackendError> {
        let Some(d) = &self.durable else { return Ok(false) };
        Ok(d.backend.get_token(hash).await?.is_some_and(|(_, exp)| now_ms < exp))
    }

    /// Uses a link up (by its hash): true once, across every replica.
    pub async fn take_token(&self, hash: &str, now_ms: u64) -> Result<bool, BackendError> {
        let Some(d) = &self.durable else { return Ok(false) };
        let alive = self.token_alive(hash, now_ms).await?;
        Ok(d.backend.take_token(hash).await? && alive)
    }

    /// Number of logged-in sessions currently held (approximate, for metrics).
    pub fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// Number of anonymous (pre-login) sessions currently held (approximate, for metrics).
    pub fn pending_len(&self) -> u64 {
        self.pending.run_pending_tasks();
        self.pending.entry_count()
    }

    /// Whether the store holds no session at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.pending_len() == 0
    }
}

/// A handle that does not keep the store alive (for its background tasks).
struct WeakStore {
    cache: moka::sync::Cache<Key, Arc<Session>>,
    pending: moka::sync::Cache<Key, Arc<Session>>,
    clock: SharedClock,
    durable: Option<std::sync::Weak<Durable>>,
}

impl WeakStore {
    fn upgrade(&self) -> Option<SessionStore> {
        let durable = match &self.durable {
            Some(w) => Some(w.upgrade()?),
            None => None,
        };
        Some(SessionStore {
            cache: self.cache.clone(),
            pending: self.pending.clone(),
            clock: self.clock.clone(),
            durable,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::clock::ManualClock;
    use super::*;

    fn store() -> (SessionStore, ManualClock) {
        let clock = ManualClock::new(1_000_000);
        (
            SessionStore::new(100, Duration::from_secs(3600), Arc::new(clock.clone())),
            clock,
        )
    }

    #[test]
    fn idle_expiry() {
        let (st, clock) = store();
        let s = st.create(None, Duration::from_secs(3600), Duration::from_secs(60));
        clock.advance(Duration::from_secs(59));
        assert!(st.get(&s.id).is_some());
        clock.advance(Duration::from_secs(59));
        assert!(st.get(&s.id).is_some(), "use refreshes idle");
        clock.advance(Duration::from_secs(60));
        assert!(st.get(&s.id).is_none());
    }

    #[test]
    fn absolute_expiry_despite_activity() {
        let (st, clock) = store();
        let s = st.create(None, Duration::from_secs(100), Duration::from_secs(60));
        for _ in 0..3 {
            clock.advance(Duration::from_secs(30));
            assert!(st.get(&s.id).is_some());
        }
        clock.advance(Duration::from_secs(15));
        assert!(st.get(&s.id).is_none());
    }

    #[test]
    fn anonymous_sessions_never_evict_logged_in_ones() {
        let clock = ManualClock::new(1_000_000);
        let st = SessionStore::with_bounds(10, 20, Duration::from_secs(3600), Arc::new(clock));
        let user = Arc::new(Identity {
            user_id: 1,
            uid: "u".into(),
            username: "alice".into(),
            email: String::new(),
            name: String::new(),
            groups: Vec::new(),
            is_superuser: false,
        });
        let hour = Duration::from_secs(3600);
        let logged: Vec<_> = (0..10).map(|_| st.create(Some(user.clone()), hour, hour)).collect();
        let anon: Vec<_> = (0..1000).map(|_| st.create(None, hour, hour)).collect();
        assert!(logged.iter().all(|s| st.get(&s.id).is_some()));
        assert_eq!(st.len(), 10);
        assert!(st.pending_len() <= 20, "{}", st.pending_len());
        assert!(
            st.get(&anon[0].id).is_none(),
            "the oldest anonymous session was evicted"
        );
        assert!(st.get(&anon[999].id).is_some());
    }

    #[test]
    fn large_unfinished_flows_weigh_more() {
        let clock = ManualClock::new(1_000_000);
        let st = SessionStore::with_bounds(10, 100, Duration::from_secs(3600), Arc::new(clock));
        let hour = Duration::from_secs(3600);
        let anon: Vec<_> = (0..50).map(|_| st.create(None, hour, hour)).collect();
        for s in &anon {
            // Each parks ~20 KiB: weight 11, so at most 9 fit in 100.
            st.set_state_size(s, 20 * 1024);
        }
        st.pending_len();
        let alive: Vec<usize> = (0..50).filter(|i| st.get(&anon[*i].id).is_some()).collect();
        assert!(alive.len() <= 9, "{alive:?} large flows kept");
        assert!(alive.contains(&49), "the newest stays: {alive:?}");
    }

    #[test]
    fn remove_deletes() {
        let (st, _) = store();
        let s = st.create(None, Duration::from_secs(100), Duration::from_secs(60));
        st.remove(&s.id);
        assert!(st.get(&s.id).is_none());
    }
}
