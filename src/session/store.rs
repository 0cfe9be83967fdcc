//! The session store: two bounded moka caches of `Arc<Session>`, with absolute and idle expiry
//! decided by the injected clock on every lookup (moka's own idle eviction is only a backstop
//! that frees memory).
//!
//! Logged-in sessions and anonymous ones (a flow started before login) live in separate caches
//! with separate bounds (FLOOD-2): anyone can start flows without limit, so anonymous sessions
//! only ever evict each other, never a logged-in session.

use super::clock::{Millis, SharedClock};
use std::any::Any;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Who a session belongs to, fixed when the session is created at login.
#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// The logged-in user, if any. Never changes for the life of the session.
    pub user: Option<Arc<Identity>>,
    /// How the user was authenticated; default for an anonymous session.
    pub auth: AuthInfo,
    /// CSRF token for forms rendered in this session.
    pub csrf: String,
    /// Creation time.
    pub created_ms: Millis,
    /// Absolute expiry.
    pub expires_ms: Millis,
    /// Idle timeout in milliseconds.
    pub idle_ms: u64,
    last_seen: AtomicU64,
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

impl Session {
    /// When the session was last used.
    pub fn last_seen(&self) -> Millis {
        self.last_seen.load(Ordering::Relaxed)
    }

    /// Weight in the anonymous-session cache: one, plus one per [`PENDING_WEIGHT_UNIT`] bytes
    /// of parked flow state.
    fn weight(&self) -> u32 {
        1 + self.state_bytes.load(Ordering::Relaxed) / PENDING_WEIGHT_UNIT
    }
}

/// Bytes of parked flow state that weigh as much as one more anonymous session.
pub const PENDING_WEIGHT_UNIT: u32 = 2048;

/// Default bound on anonymous (pre-login) sessions, used by [`SessionStore::new`].
pub const DEFAULT_MAX_PENDING: u64 = 100_000;

/// The store.
#[derive(Clone)]
pub struct SessionStore {
    /// Logged-in sessions.
    cache: moka::sync::Cache<String, Arc<Session>>,
    /// Anonymous sessions: unfinished flows started before login.
    pending: moka::sync::Cache<String, Arc<Session>>,
    clock: SharedClock,
}

fn lru_cache(max: u64, backstop_idle: Duration, weighed: bool) -> moka::sync::Cache<String, Arc<Session>> {
    let b = moka::sync::Cache::builder()
        .max_capacity(max)
        .eviction_policy(moka::policy::EvictionPolicy::lru())
        .time_to_idle(backstop_idle + Duration::from_secs(60));
    if weighed {
        b.weigher(|_, s: &Arc<Session>| s.weight()).build()
    } else {
        b.build()
    }
}

impl SessionStore {
    /// A store bounded to `max_sessions` logged-in sessions and [`DEFAULT_MAX_PENDING`]
    /// anonymous ones; see [`SessionStore::with_bounds`].
    pub fn new(max_sessions: u64, backstop_idle: Duration, clock: SharedClock) -> Self {
        Self::with_bounds(max_sessions, DEFAULT_MAX_PENDING, backstop_idle, clock)
    }

    /// A store bounded to `max_sessions` logged-in sessions and `max_pending` anonymous ones
    /// (each bound on its own cache, so no number of anonymous sessions evicts a logged-in
    /// one); `backstop_idle` is moka's own idle eviction, which should be at least the longest
    /// idle timeout in use. An anonymous session with a large parked flow counts as several
    /// (see [`SessionStore::set_state_size`]), so the anonymous space is bounded in memory too:
    /// about `max_pending` × (1.1 KiB + [`PENDING_WEIGHT_UNIT`]).
    ///
    /// When full, the least recently used session is evicted (LRU). moka's default TinyLFU
    /// policy would instead refuse to admit a new entry that is less "popular" than the
    /// victim: under a flood of flow starts a fresh login was dropped at once (AVAIL-3).
    pub fn with_bounds(max_sessions: u64, max_pending: u64, backstop_idle: Duration, clock: SharedClock) -> Self {
        Self {
            cache: lru_cache(max_sessions, backstop_idle, false),
            pending: lru_cache(max_pending, backstop_idle, true),
            clock,
        }
    }

    /// The clock the store reads.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Creates and stores a session with a fresh id (an anonymous one when `user` is `None`).
    pub fn create(&self, user: Option<Arc<Identity>>, lifetime: Duration, idle: Duration) -> Arc<Session> {
        self.create_with_auth(user, AuthInfo::default(), lifetime, idle)
    }

    /// Creates and stores a session with a fresh id, recording how the user authenticated.
    pub fn create_with_auth(
        &self,
        user: Option<Arc<Identity>>,
        auth: AuthInfo,
        lifetime: Duration,
        idle: Duration,
    ) -> Arc<Session> {
        let now = self.clock.now_ms();
        let s = Arc::new(Session {
            id: super::new_id(),
            user,
            auth,
            csrf: super::new_id(),
            created_ms: now,
            expires_ms: now.saturating_add(lifetime.as_millis() as u64),
            idle_ms: idle.as_millis() as u64,
            last_seen: AtomicU64::new(now),
            state_bytes: AtomicU32::new(0),
            flow: tokio::sync::Mutex::new(None),
        });
        if s.user.is_some() {
            self.cache.insert(s.id.clone(), s.clone());
        } else {
            self.pending.insert(s.id.clone(), s.clone());
        }
        s
    }

    /// Looks a session up, enforcing absolute and idle expiry, and marks it used.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let s = self.cache.get(id).or_else(|| self.pending.get(id))?;
        let now = self.clock.now_ms();
        let idle_for = now.saturating_sub(s.last_seen());
        if now >= s.expires_ms || idle_for >= s.idle_ms {
            self.remove(id);
            return None;
        }
        // Only write when the value moves by a second or more: keeps the cache line quiet.
        if idle_for >= 1000 {
            s.last_seen.store(now, Ordering::Relaxed);
        }
        Some(s)
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
            && self.pending.contains_key(&s.id)
        {
            self.pending.invalidate(&s.id);
            self.pending.insert(s.id.clone(), s.clone());
        }
    }

    /// Deletes a session server-side.
    pub fn remove(&self, id: &str) {
        self.cache.invalidate(id);
        self.pending.invalidate(id);
    }

    /// Deletes every session of user `user_id` except `keep` (a scan: logouts of this kind
    /// are rare, lookups are not).
    pub fn remove_user_sessions(&self, user_id: i64, keep: Option<&str>) -> usize {
        let doomed: Vec<String> = self
            .cache
            .iter()
            .filter(|(id, s)| s.user.as_ref().is_some_and(|u| u.user_id == user_id) && Some(id.as_str()) != keep)
            .map(|(id, _)| (*id).clone())
            .collect();
        for id in &doomed {
            self.cache.invalidate(id);
        }
        doomed.len()
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
