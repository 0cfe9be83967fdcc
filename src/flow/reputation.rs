//! Reputation scores per client IP and per identifier (docs/design.md §4.4): −1 for a failed password
//! or an unknown identifier, +1 for a successful login, clamped to [−5, +5], forgotten 24 hours
//! after the last change. Read by the reputation policy; time comes from the injected clock.
//!
//! Deviation from authentik: scores are kept per IP and per identifier separately (authentik
//! keeps rows per (identifier, IP) pair and sums them), which bounds memory and makes each
//! lookup O(1).

use crate::session::counters::RedisCounters;
use crate::session::SharedClock;
use std::collections::HashMap;
use std::sync::Mutex;

/// Lowest score kept.
pub const SCORE_MIN: i64 = -5;
/// Highest score kept.
pub const SCORE_MAX: i64 = 5;
/// How long a score lives after its last change, in milliseconds (24 hours).
pub const EXPIRY_MS: u64 = 86_400_000;
/// Most entries kept per table; the oldest are dropped beyond it.
pub const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
struct Table {
    rows: HashMap<String, (i64, u64)>,
}

impl Table {
    fn get(&self, key: &str, now: u64) -> i64 {
        match self.rows.get(key) {
            Some((score, at)) if now.saturating_sub(*at) < EXPIRY_MS => *score,
            _ => 0,
        }
    }

    fn add(&mut self, key: &str, delta: i64, now: u64) {
        let current = self.get(key, now);
        let next = (current + delta).clamp(SCORE_MIN, SCORE_MAX);
        if self.rows.len() >= MAX_ENTRIES && !self.rows.contains_key(key) {
            self.rows.retain(|_, (_, at)| now.saturating_sub(*at) < EXPIRY_MS);
            if self.rows.len() >= MAX_ENTRIES {
                if let Some(oldest) = self.rows.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| k.clone()) {
                    self.rows.remove(&oldest);
                }
            }
        }
        self.rows.insert(key.to_string(), (next, now));
    }
}

/// The scores.
pub struct ReputationStore {
    clock: SharedClock,
    by_ip: Mutex<Table>,
    by_identifier: Mutex<Table>,
    /// With `session.store: redis`: the scores live there, shared by every replica.
    shared: Option<RedisCounters>,
}

impl ReputationStore {
    /// An empty store reading `clock`, in this process.
    pub fn new(clock: SharedClock) -> Self {
        Self::with_store(clock, None)
    }

    /// A store reading `clock`, in `shared` (Redis, every replica) when given.
    pub fn with_store(clock: SharedClock, shared: Option<RedisCounters>) -> Self {
        Self {
            clock,
            by_ip: Mutex::default(),
            by_identifier: Mutex::default(),
            shared,
        }
    }

    /// Changes the scores of `ip` and `identifier` (lowercased) by `delta`. With a shared store
    /// that cannot be reached the change is lost (logged once per outage by the store); the
    /// reads then answer the lowest score, so nothing is granted meanwhile.
    pub async fn record(&self, ip: Option<std::net::IpAddr>, identifier: &str, delta: i64) {
        let now = self.clock.now_ms();
        if let Some(c) = &self.shared {
            if let Some(ip) = ip {
                let _ = c
                    .add_score("ip", &ip.to_string(), delta, (SCORE_MIN, SCORE_MAX), now, EXPIRY_MS)
                    .await;
            }
            if !identifier.is_empty() {
                let _ = c
                    .add_score(
                        "id",
                        &identifier.to_lowercase(),
                        delta,
                        (SCORE_MIN, SCORE_MAX),
                        now,
                        EXPIRY_MS,
                    )
                    .await;
            }
            return;
        }
        if let (Some(ip), Ok(mut t)) = (ip, self.by_ip.lock()) {
            t.add(&ip.to_string(), delta, now);
        }
        if !identifier.is_empty() {
            if let Ok(mut t) = self.by_identifier.lock() {
                t.add(&identifier.to_lowercase(), delta, now);
            }
        }
    }

    /// Current scores of `ip` and `identifier`; [`SCORE_MIN`] for a score the shared store
    /// cannot tell (fail closed).
    pub async fn scores(&self, ip: Option<std::net::IpAddr>, identifier: &str) -> (i64, i64) {
        let now = self.clock.now_ms();
        if let Some(c) = &self.shared {
            let ip_score = match ip {
                Some(ip) => c
                    .score("ip", &ip.to_string(), now, EXPIRY_MS)
                    .await
                    .unwrap_or(SCORE_MIN),
                None => 0,
            };
            let id_score = c
                .score("id", &identifier.to_lowercase(), now, EXPIRY_MS)
                .await
                .unwrap_or(SCORE_MIN);
            return (ip_score, id_score);
        }
        let ip_score = ip
            .and_then(|ip| self.by_ip.lock().ok().map(|t| t.get(&ip.to_string(), now)))
            .unwrap_or(0);
        let id_score = self
            .by_identifier
            .lock()
            .ok()
            .map(|t| t.get(&identifier.to_lowercase(), now))
            .unwrap_or(0);
        (ip_score, id_score)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::ManualClock;
    use std::sync::Arc;

    #[tokio::test]
    async fn clamps_and_expires() {
        let clock = ManualClock::new(1_000);
        let st = ReputationStore::new(Arc::new(clock.clone()));
        let ip = Some("10.1.2.3".parse().unwrap());
        for _ in 0..9 {
            st.record(ip, "Alice", -1).await;
        }
        assert_eq!(st.scores(ip, "alice").await, (-5, -5));
        st.record(ip, "alice", 1).await;
        assert_eq!(st.scores(ip, "ALICE").await, (-4, -4));
        clock.advance(std::time::Duration::from_millis(EXPIRY_MS));
        assert_eq!(st.scores(ip, "alice").await, (0, 0));
    }
}
