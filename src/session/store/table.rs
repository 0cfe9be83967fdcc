//! The table of logged-in sessions: a sharded hash map from the first 8 bytes of a session's
//! key to the session, bounded by `session.max_sessions`, evicting with second chance (CLOCK).
//!
//! It replaces moka for logged-in sessions only (docs/decisions/0012): moka costs ~300 bytes
//! per entry on its own, more than the whole budget of a session when a million are live. Here
//! an entry costs a map slot (16 bytes and a control byte) next to the session itself. A
//! lookup takes one shard's read lock and clones an `Arc`; there is no per-read bookkeeping
//! beyond setting the entry's "used" flag.
//!
//! Keys are SHA-256 digests of random ids, so their first 8 bytes are already uniformly
//! distributed: they are the map key as they are (no second hash). Two sessions sharing those 8
//! bytes cannot be confused: every read compares the full id (or the full key), and an insert
//! replaces the other one (it stays in the store and is read back when next used).

use super::session::{key_bytes, Key, Session};
use super::Millis;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// At most this many shards, and one per [`MIN_PER_SHARD`] sessions of the bound.
const MAX_SHARDS: usize = 64;
const MIN_PER_SHARD: u64 = 4096;

/// The identity hasher for keys that are already uniform (the first 8 bytes of a SHA-256).
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `u64` keys; anything else folds in (never hit).
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashMap<u64, Arc<Session>, BuildHasherDefault<Prehashed>>;

/// The table (cheap to clone: the shards are shared).
#[derive(Clone)]
pub(super) struct Table {
    shards: Arc<[RwLock<Shard>]>,
    /// Sessions held, over all shards (changed under a shard's write lock).
    len: Arc<AtomicUsize>,
    /// The bound: an insert into a full table first evicts from the shard it goes to.
    max: usize,
}

impl Table {
    /// A table for at most `max` sessions.
    pub(super) fn new(max: u64) -> Self {
        let n = usize::try_from(max / MIN_PER_SHARD)
            .unwrap_or(MAX_SHARDS)
            .clamp(1, MAX_SHARDS);
        Self {
            shards: (0..n).map(|_| RwLock::new(Shard::default())).collect(),
            len: Default::default(),
            max: usize::try_from(max).unwrap_or(usize::MAX).max(1),
        }
    }

    /// The shard of a key and the key's map key.
    fn split(&self, key: &Key) -> (usize, u64) {
        let mut head = [0u8; 8];
        head.copy_from_slice(&key[..8]);
        let h = u64::from_le_bytes(head);
        // The shard from the high bits, the map's buckets from the low ones.
        ((h >> 32) as usize % self.shards.len(), h)
    }

    fn shard(&self, i: usize) -> &RwLock<Shard> {
        &self.shards[i]
    }

    /// The session with id `id` (whose key is `key`).
    pub(super) fn get(&self, key: &Key, id: &str) -> Option<Arc<Session>> {
        let (i, h) = self.split(key);
        let shard = self.shard(i).read().unwrap_or_else(|e| e.into_inner());
        let s = shard.get(&h).filter(|s| s.id.as_str() == id)?;
        s.referenced.store(true, Ordering::Relaxed);
        Some(s.clone())
    }

    /// The session whose key is `key` (when only the key is known: the id's hash is checked).
    pub(super) fn get_by_key(&self, key: &Key) -> Option<Arc<Session>> {
        let (i, h) = self.split(key);
        let shard = self.shard(i).read().unwrap_or_else(|e| e.into_inner());
        shard.get(&h).filter(|s| key_bytes(&s.id) == *key).cloned()
    }

    /// Records a shard's change of size from `before` to `after`.
    fn resized(&self, before: usize, after: usize) {
        if after > before {
            self.len.fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.len.fetch_sub(before - after, Ordering::Relaxed);
        }
    }

    /// Adds or replaces a session; when the table is full, sessions of the shard it goes to
    /// are evicted first (an eighth of the shard): expired ones (at `now`), then those not used
    /// since the shard's last eviction, then any. Keys are uniform, so every shard evicts in
    /// turn and the table as a whole approximates "least recently used".
    pub(super) fn insert(&self, s: Arc<Session>, now: Millis) {
        let (i, h) = self.split(&s.key());
        let mut shard = self.shard(i).write().unwrap_or_else(|e| e.into_inner());
        let before = shard.len();
        if self.len.load(Ordering::Relaxed) >= self.max && !shard.contains_key(&h) {
            evict(&mut shard, now);
        }
        shard.insert(h, s);
        self.resized(before, shard.len());
    }

    /// Removes the session whose key is `key`, if held.
    pub(super) fn remove(&self, key: &Key) {
        let (i, h) = self.split(key);
        let mut shard = self.shard(i).write().unwrap_or_else(|e| e.into_inner());
        if shard.get(&h).is_some_and(|s| key_bytes(&s.id) == *key) {
            shard.remove(&h);
            self.resized(1, 0);
        }
    }

    /// Removes every session for which `doomed` is true; returns their keys.
    pub(super) fn remove_where(&self, mut doomed: impl FnMut(&Session) -> bool) -> Vec<(Key, Arc<Session>)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let mut shard = shard.write().unwrap_or_else(|e| e.into_inner());
            let before = shard.len();
            shard.retain(|_, s| {
                if doomed(s) {
                    out.push((s.key(), s.clone()));
                    false
                } else {
                    true
                }
            });
            self.resized(before, shard.len());
        }
        out
    }

    /// Empties the table.
    pub(super) fn clear(&self) {
        for shard in self.shards.iter() {
            let mut shard = shard.write().unwrap_or_else(|e| e.into_inner());
            self.resized(shard.len(), 0);
            shard.clear();
        }
    }

    /// How many sessions are held.
    pub(super) fn len(&self) -> u64 {
        self.len.load(Ordering::Relaxed) as u64
    }
}

/// Makes room in a shard of a full table: drops expired sessions and those not used since the
/// last call (clearing the flag of the others); if that frees less than an eighth of the shard,
/// drops arbitrary ones until it does. One pass over the shard per eighth of it inserted.
fn evict(shard: &mut Shard, now: Millis) {
    let want = (shard.len() / 8).max(1);
    let before = shard.len();
    shard.retain(|_, s| !s.expired(now) && s.referenced.swap(false, Ordering::Relaxed));
    let mut short = want.saturating_sub(before - shard.len());
    if short > 0 {
        shard.retain(|_, _| {
            if short > 0 {
                short -= 1;
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::session::{AuthInfo, SessionId};
    use super::*;

    fn session(expires: Millis) -> Arc<Session> {
        let id = SessionId::parse(&crate::session::new_id()).unwrap();
        Arc::new(Session::build(
            id,
            None,
            AuthInfo::default(),
            0,
            expires,
            u64::MAX,
            0,
            0,
        ))
    }

    #[test]
    fn finds_by_id_and_key_and_removes() {
        let t = Table::new(1000);
        let s = session(10);
        t.insert(s.clone(), 0);
        assert!(t.get(&s.key(), &s.id).is_some());
        assert!(t.get_by_key(&s.key()).is_some());
        let other = crate::session::new_id();
        assert!(
            t.get(&s.key(), &other).is_none(),
            "a different id under the same key is not it"
        );
        t.remove(&s.key());
        assert!(t.get(&s.key(), &s.id).is_none());
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn stays_within_its_bound_and_keeps_the_sessions_in_use() {
        let t = Table::new(16 * 1024);
        let hot: Vec<_> = (0..64).map(|_| session(u64::MAX)).collect();
        for s in &hot {
            t.insert(s.clone(), 0);
        }
        for _ in 0..40_000 {
            t.insert(session(u64::MAX), 0);
            for s in &hot {
                t.get(&s.key(), &s.id);
            }
            assert!(t.len() <= 16 * 1024, "over the bound: {}", t.len());
        }
        let kept = hot.iter().filter(|s| t.get(&s.key(), &s.id).is_some()).count();
        assert_eq!(kept, 64, "sessions used between evictions are kept");
    }

    #[test]
    fn holds_exactly_its_bound_over_several_shards() {
        let t = Table::new(50_000);
        assert!(t.shards.len() > 1);
        let all: Vec<_> = (0..50_000).map(|_| session(u64::MAX)).collect();
        for s in &all {
            t.insert(s.clone(), 0);
        }
        assert_eq!(t.len(), 50_000);
        assert!(
            all.iter().all(|s| t.get(&s.key(), &s.id).is_some()),
            "nothing evicted below the bound"
        );
        t.insert(session(u64::MAX), 0);
        assert!(t.len() <= 50_000);
        t.clear();
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn eviction_takes_expired_then_unused_sessions() {
        let mut shard = Shard::default();
        let dead: Vec<_> = (0..4).map(|_| session(5)).collect();
        let used: Vec<_> = (0..2).map(|_| session(u64::MAX)).collect();
        let idle: Vec<_> = (0..2).map(|_| session(u64::MAX)).collect();
        for (n, s) in dead.iter().chain(&used).chain(&idle).enumerate() {
            shard.insert(n as u64, s.clone());
        }
        for s in &used {
            s.referenced.store(true, Ordering::Relaxed);
        }
        evict(&mut shard, 10);
        let left: Vec<_> = shard.values().collect();
        assert_eq!(left.len(), 2);
        assert!(used.iter().all(|u| left.iter().any(|l| Arc::ptr_eq(u, l))));
        // Nothing used since: the next eviction still frees an eighth.
        evict(&mut shard, 10);
        assert_eq!(shard.len(), 0, "unused since the last pass");
        shard.insert(1, session(u64::MAX));
        shard.insert(2, session(u64::MAX));
        for s in shard.values() {
            s.referenced.store(true, Ordering::Relaxed);
        }
        evict(&mut shard, 10);
        assert_eq!(shard.len(), 1, "all in use: one goes anyway");
    }
}
