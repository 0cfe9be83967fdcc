//! The session store: a bounded moka cache of `Arc<Session>`, with absolute and idle expiry
//! decided by the injected clock on every lookup (moka's own idle eviction is only a backstop
//! that frees memory).

use super::clock::{Millis, SharedClock};
use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Opaque per-session state owned by the flow executor.
pub type FlowSlot = tokio::sync::Mutex<Option<Box<dyn Any + Send>>>;

/// One session: anonymous (only running a flow) or authenticated.
pub struct Session {
    /// The id (the cookie value). Never log it; use [`super::log_tag`].
    pub id: String,
    /// The logged-in user, if any. Never changes for the life of the session.
    pub user: Option<Arc<Identity>>,
    /// CSRF token for forms rendered in this session.
    pub csrf: String,
    /// Creation time.
    pub created_ms: Millis,
    /// Absolute expiry.
    pub expires_ms: Millis,
    /// Idle timeout in milliseconds.
    pub idle_ms: u64,
    last_seen: AtomicU64,
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
}

/// The store.
#[derive(Clone)]
pub struct SessionStore {
    cache: moka::sync::Cache<String, Arc<Session>>,
    clock: SharedClock,
}

impl SessionStore {
    /// A store bounded to `max_sessions`; `backstop_idle` is moka's own idle eviction, which
    /// should be at least the longest idle timeout in use.
    ///
    /// When full, the least recently used session is evicted (LRU). moka's default TinyLFU
    /// policy would instead refuse to admit a new entry that is less "popular" than the
    /// victim: under a flood of flow starts a fresh login was dropped at once (AVAIL-3).
    pub fn new(max_sessions: u64, backstop_idle: Duration, clock: SharedClock) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_sessions)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .time_to_idle(backstop_idle + Duration::from_secs(60))
            .build();
        Self { cache, clock }
    }

    /// The clock the store reads.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Creates and stores a session with a fresh id.
    pub fn create(&self, user: Option<Arc<Identity>>, lifetime: Duration, idle: Duration) -> Arc<Session> {
        let now = self.clock.now_ms();
        let s = Arc::new(Session {
            id: super::new_id(),
            user,
            csrf: super::new_id(),
            created_ms: now,
            expires_ms: now.saturating_add(lifetime.as_millis() as u64),
            idle_ms: idle.as_millis() as u64,
            last_seen: AtomicU64::new(now),
            flow: tokio::sync::Mutex::new(None),
        });
        self.cache.insert(s.id.clone(), s.clone());
        s
    }

    /// Looks a session up, enforcing absolute and idle expiry, and marks it used.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let s = self.cache.get(id)?;
        let now = self.clock.now_ms();
        let idle_for = now.saturating_sub(s.last_seen());
        if now >= s.expires_ms || idle_for >= s.idle_ms {
            self.cache.invalidate(id);
            return None;
        }
        // Only write when the value moves by a second or more: keeps the cache line quiet.
        if idle_for >= 1000 {
            s.last_seen.store(now, Ordering::Relaxed);
        }
        Some(s)
    }

    /// Deletes a session server-side.
    pub fn remove(&self, id: &str) {
        self.cache.invalidate(id);
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

    /// Number of sessions currently held (approximate, for metrics).
    pub fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    fn remove_deletes() {
        let (st, _) = store();
        let s = st.create(None, Duration::from_secs(100), Duration::from_secs(60));
        st.remove(&s.id);
        assert!(st.get(&s.id).is_none());
    }
}
