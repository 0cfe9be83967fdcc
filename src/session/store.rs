//! The session store: logged-in sessions in a compact table of our own and anonymous ones in
//! a bounded moka cache, both of `Arc<Session>`, with absolute and idle expiry decided by the
//! injected clock on every lookup (moka's own idle eviction and the table's purge are only
//! backstops that free memory).
//!
//! Logged-in sessions and anonymous ones (a flow started before login) live apart with separate
//! bounds (FLOOD-2): anyone can start flows without limit, so anonymous sessions only ever evict
//! each other, never a logged-in session. The table holds a million logged-in sessions in ~200
//! bytes each (docs/decisions/0012).

use super::backend::{self, Backend, BackendError, Event, Signal, StoredSession, RECORD_VERSION};
use super::clock::{Millis, SharedClock};
use std::any::Any;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod background;
mod ending;
mod session;
mod table;

pub use ending::Ended;
use session::{key_bytes, key_from_hex, Interner};
pub use session::{new_sign_on, AuthInfo, AuthShape, FlowSlot, Identity, Key, Session, SessionId, SignOn};

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
    /// Bumped before any cached identity is dropped: a read of the user source that began
    /// before the bump is not cached (it may hold what the change replaced).
    users_epoch: std::sync::atomic::AtomicU64,
    source: std::sync::OnceLock<Arc<dyn UserSource>>,
    /// Whether the store is failing (logged once per outage).
    down: std::sync::atomic::AtomicBool,
    /// Set at shutdown: the background tasks stop.
    closed: tokio::sync::watch::Sender<bool>,
}

impl Durable {
    /// Caches `who` for `user_id` unless a cached identity was dropped since `epoch` was read
    /// (before the user source was): the read may predate the change that dropped it.
    fn remember_user(&self, user_id: i64, who: &Option<Arc<Identity>>, now: Millis, epoch: u64) {
        if self.users_epoch.load(Ordering::Acquire) == epoch {
            self.users.insert(user_id, (who.clone(), now));
        }
    }

    /// Drops the cached identity of `user_id` (every one with `None`), after bumping the epoch.
    fn forget_users(&self, user_id: Option<i64>) {
        self.users_epoch.fetch_add(1, Ordering::AcqRel);
        match user_id {
            Some(id) => self.users.invalidate(&id),
            None => self.users.invalidate_all(),
        }
    }
}

enum Touch {
    Seen(Key, Millis),
    Evicted(Key),
}

/// The store.
#[derive(Clone)]
pub struct SessionStore {
    /// Logged-in sessions, by key.
    cache: table::Table,
    /// Anonymous sessions (unfinished flows started before login), by key.
    pending: moka::sync::Cache<Key, Arc<Session>>,
    clock: SharedClock,
    durable: Option<Arc<Durable>>,
    /// What sessions share: one copy of each user's identity and of each authentication shape.
    interned: Arc<Interned>,
}

/// The values sessions share ([`Interner`]).
#[derive(Default)]
pub(super) struct Interned {
    identities: Interner<Identity>,
    shapes: Interner<AuthShape>,
}

type Listener = Arc<dyn Fn(Arc<Key>, Arc<Session>, moka::notification::RemovalCause) + Send + Sync>;

/// The anonymous sessions' cache, weighed by their parked flow state.
fn pending_cache(
    max: u64,
    backstop_idle: Duration,
    listener: Option<Listener>,
) -> moka::sync::Cache<Key, Arc<Session>> {
    let mut b = moka::sync::Cache::builder()
        .max_capacity(max)
        .eviction_policy(moka::policy::EvictionPolicy::lru())
        .time_to_idle(backstop_idle + Duration::from_secs(60));
    if let Some(l) = listener {
        b = b.eviction_listener(move |k, v, c| l(k, v, c));
    }
    b.weigher(|_, s: &Arc<Session>| s.weight()).build()
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
            cache: table::Table::new(max_sessions),
            pending: pending_cache(max_pending, backstop_idle, None),
            clock,
            durable: None,
            interned: Default::default(),
        }
    }

    /// A store whose caches sit in front of `backend` (docs/decisions/0010). Must be called inside a
    /// tokio runtime: it spawns the last-seen writer, the purger and the invalidation listener.
    ///
    /// The logged-in cache holds the sessions in use: one evicted for size stays in the store
    /// and is read back at its next request, so `max_sessions` bounds memory, not how many
    /// users are logged in (docs/decisions/0012). An anonymous session (an unfinished flow)
    /// evicted for size is deleted from a local store as well, so that flow starts cannot
    /// fill the disk (FLOOD-2). With a shared backend copies older than [`NEAR_CACHE_LIFE`]
    /// are read again and the invalidation channel drops entries.
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
            // Entries are only trusted for NEAR_CACHE_LIFE: older ones are dead weight.
            users: moka::sync::Cache::builder()
                .max_capacity(max_sessions.max(1024))
                .time_to_live(NEAR_CACHE_LIFE * 2)
                .build(),
            users_epoch: Default::default(),
            source: std::sync::OnceLock::new(),
            down: Default::default(),
            closed: tokio::sync::watch::channel(false).0,
        });
        let store = Self {
            cache: table::Table::new(max_sessions),
            pending: pending_cache(max_pending, backstop_idle, listener),
            clock,
            durable: Some(durable),
            interned: Default::default(),
        };
        store.spawn_writer(touch_rx);
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        backend.subscribe(tx);
        store.spawn_listener(rx);
        store
    }

    /// Resolves identities through `source` from now on (live identity, docs/decisions/0010).
    pub fn set_user_source(&self, source: Arc<dyn UserSource>) {
        if let Some(d) = &self.durable {
            let _ = d.source.set(source);
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

    /// The store behind the caches (`None` for the memory-only test store): the admin API
    /// lists and revokes through it.
    pub fn backend(&self) -> Option<Arc<dyn Backend>> {
        self.durable.as_ref().map(|d| d.backend.clone())
    }

    /// Applies `ev` to this instance's caches at once (an action taken in this process),
    /// ahead of its delivery on the invalidation channel.
    pub fn apply_now(&self, ev: Event) {
        self.apply(Signal::Event(ev));
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
        let id = SessionId::parse(&super::new_id()).expect("fresh ids are well formed");
        let s = Arc::new(self.shared(Session::build(
            id,
            user,
            auth,
            now,
            now.saturating_add(lifetime.as_millis() as u64),
            idle.as_millis() as u64,
            now,
            now,
        )));
        self.insert(s.clone());
        s
    }

    /// `s` with its identity and authentication shape replaced by the shared copies of equal
    /// ones (before it is handed out).
    fn shared(&self, mut s: Session) -> Session {
        s.user = s.user.map(|u| self.interned.identities.intern(u));
        s.auth = std::mem::take(&mut s.auth).interned(&self.interned.shapes);
        s
    }

    fn insert(&self, s: Arc<Session>) {
        if s.user.is_some() {
            self.cache.insert(s, self.clock.now_ms());
        } else {
            self.pending.insert(s.key(), s);
        }
    }

    /// Drops a session from both caches.
    fn forget(&self, key: &Key) {
        self.cache.remove(key);
        self.pending.invalidate(key);
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
                self.forget(&s.key());
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
        let s = self.cached(&key, id)?;
        self.check(&key, s)
    }

    /// The session with id `id` (key `key`) from the table or the anonymous cache.
    fn cached(&self, key: &Key, id: &str) -> Option<Arc<Session>> {
        self.cache
            .get(key, id)
            .or_else(|| self.pending.get(key).filter(|s| s.id.as_str() == id))
    }

    fn check(&self, key: &Key, s: Arc<Session>) -> Option<Arc<Session>> {
        let now = self.clock.now_ms();
        if s.expired(now) {
            self.forget(key);
            return None;
        }
        let idle_for = now.saturating_sub(s.last_seen());
        // Only write when the value moves by a second or more: keeps the cache line quiet.
        if idle_for >= 1000 {
            s.last_seen.store(now, Ordering::Relaxed);
            // The store learns the time when it moved by a step (up to a minute): what
            // another replica or the next process reads is that much older at most.
            if let Some(d) = &self.durable {
                if now.saturating_sub(s.saved_seen.load(Ordering::Relaxed)) >= s.save_step() {
                    s.saved_seen.store(now, Ordering::Relaxed);
                    let _ = d.touch_tx.try_send(Touch::Seen(*key, now));
                }
            }
        }
        Some(s)
    }

    /// Looks a session up for a request: from the cache without any round trip when it holds
    /// a current copy, else from the store (then cached). `None` for an unknown, expired or
    /// revoked session, and when the store cannot be read (fail closed; logged once).
    pub async fn lookup(&self, id: &str) -> Option<Arc<Session>> {
        let key = key_bytes(id);
        let cached = self.cached(&key, id);
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
        let sid = SessionId::parse(id)?;
        let hex_key = hex::encode(key);
        match d.backend.load(&hex_key).await {
            Ok(Some(rec)) => {
                self.note_ok();
                let user = rec.user.map(Arc::new);
                let s = Arc::new(self.shared(Session::build(
                    sid,
                    user,
                    rec.auth,
                    rec.created_ms,
                    rec.expires_ms,
                    rec.idle_ms,
                    rec.last_seen_ms,
                    now,
                )));
                if s.expired(now) {
                    let _ = d.backend.delete(&hex_key).await;
                    return None;
                }
                self.insert(s.clone());
                self.check(&key, s)
            }
            Ok(None) => {
                self.note_ok();
                self.forget(&key);
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
        let epoch = d.users_epoch.load(Ordering::Acquire);
        match src.identity(at_login.user_id).await {
            Ok(who) => {
                let who = who.map(Arc::new);
                d.remember_user(at_login.user_id, &who, now, epoch);
                who
            }
            Err(e) => {
                tracing::warn!(error = %e, "user store unreadable; using the identity as at login");
                Some(at_login.clone())
            }
        }
    }

    /// The current identity of user `user_id`, for a request without a session (an API
    /// client): from the user cache (which the invalidation channel empties when the user
    /// changes), else from the user source. `Ok(None)` when the user was deleted or disabled;
    /// an error when there is no user source or it cannot be read (the caller refuses).
    pub async fn identity_of_user(&self, user_id: i64) -> Result<Option<Arc<Identity>>, String> {
        let Some(d) = &self.durable else {
            return Err("no user source".into());
        };
        let Some(src) = d.source.get() else {
            return Err("no user source".into());
        };
        let now = self.clock.now_ms();
        if let Some((who, at)) = d.users.get(&user_id) {
            if now.saturating_sub(at) < NEAR_CACHE_LIFE.as_millis() as u64 {
                return Ok(who);
            }
        }
        let epoch = d.users_epoch.load(Ordering::Acquire);
        let who = src.identity(user_id).await?.map(Arc::new);
        d.remember_user(user_id, &who, now, epoch);
        Ok(who)
    }

    /// A number that changes whenever a cached identity is dropped (a user changed here or on
    /// another replica): a check that read the user store while it changed must not be
    /// remembered (the API-client cache compares it before and after).
    pub fn users_epoch(&self) -> u64 {
        self.durable
            .as_ref()
            .map_or(0, |d| d.users_epoch.load(Ordering::Acquire))
    }

    /// Records the estimated size of the flow state parked in `s`; an anonymous session is
    /// weighed again, so large unfinished flows make room sooner (FLOOD-2). The entry is
    /// removed and inserted anew: moka evicts an entry whose weight grows in place instead of
    /// the least recently used ones. A lookup of this session in between (microseconds, only
    /// when the weight changes) misses it, which a visitor sees as a restarted flow.
    pub fn set_state_size(&self, s: &Arc<Session>, bytes: usize) {
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        let before = s.state_bytes.swap(bytes, Ordering::Relaxed);
        if s.user.is_none() && before / PENDING_WEIGHT_UNIT != bytes / PENDING_WEIGHT_UNIT {
            let key = s.key();
            if self.pending.contains_key(&key) {
                self.pending.invalidate(&key);
                self.pending.insert(key, s.clone());
            }
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

    /// Number of logged-in sessions currently held (approximate, for metrics).
    pub fn len(&self) -> u64 {
        self.cache.len()
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

#[cfg(test)]
mod tests;
