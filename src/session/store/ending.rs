//! Ending sessions (logout, revocation of one session or of every session of a user, a user
//! changed elsewhere) and the mailed-link tokens kept in the store.

use super::*;
use std::collections::BTreeSet;

/// What a logout ended ([`SessionStore::end_sign_on`]), for the page that says so.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ended {
    /// Where the ended sessions were valid (hosts, `*.<cookie domain>`), sorted, each once.
    pub scopes: BTreeSet<String>,
    /// How many sessions ended.
    pub sessions: usize,
    /// How many sessions of the user on other devices ended too (`terminate_other_sessions`).
    pub other_devices: usize,
}

impl Ended {
    fn note(&mut self, scope: &str) {
        self.sessions += 1;
        if !scope.is_empty() {
            self.scopes.insert(scope.to_string());
        }
    }
}

impl SessionStore {
    /// Deletes a session here without waiting for the store (see [`SessionStore::end`]):
    /// with a local store it is deleted there in the next batch and never read back.
    pub fn remove(&self, id: &str) {
        let key = key_bytes(id);
        self.forget(&key);
        self.bury(&key);
    }

    /// Local store: marks `key` deleted (never read back) and queues its deletion.
    pub(super) fn bury(&self, key: &Key) {
        if let Some(d) = self.durable.as_ref().filter(|d| !d.shared) {
            d.evicted.insert(*key, ());
            let _ = d.touch_tx.try_send(Touch::Evicted(*key));
        }
    }

    /// Ends a session everywhere: caches, store, and (shared store) every replica's cache.
    pub async fn end(&self, s: &Session) {
        self.forget(&s.key());
        let Some(d) = &self.durable else { return };
        if let Err(e) = d.backend.delete(&s.store_key()).await {
            self.note_err(&e);
            tracing::error!(session = %crate::session::log_tag(&s.id), "session not deleted from the store");
        }
        if d.shared {
            if let Err(e) = d.backend.publish(&Event::Session(s.store_key())).await {
                tracing::error!(error = %e, "session end not announced to other replicas");
            }
        }
    }

    /// Ends the sign-on `s` belongs to (docs/decisions/0013): `s` and every session of the same
    /// user with the same sign-on id (the portal session and the sessions derived from it on
    /// other hosts), here, in the store and (shared store) on every replica. Returns what ended.
    /// A session without a sign-on id (made before they existed) ends alone.
    pub async fn end_sign_on(&self, s: &Session) -> Ended {
        let mut ended = Ended::default();
        ended.note(&s.auth.scope);
        self.end(s).await;
        let (Some(user), false) = (s.user.as_ref(), s.auth.sign_on.is_empty()) else {
            return ended;
        };
        let same = |auth: &AuthInfo| auth.sign_on == s.auth.sign_on;
        // With a store, its list of the user's sessions names the others (every logged-in
        // session is written there before it is handed out): they leave the cache by key. A
        // scan of the whole table (a million sessions) per logout is only the fallback, with no
        // store or when it cannot be read.
        let listed = match &self.durable {
            None => None,
            Some(d) => match d.backend.list(Some(user.user_id)).await {
                Ok(l) => Some((d, l)),
                Err(e) => {
                    self.note_err(&e);
                    tracing::error!(
                        user_id = user.user_id,
                        "sessions of the sign-on not read from the store; the cached ones end"
                    );
                    None
                }
            },
        };
        let Some((d, listed)) = listed else {
            let cached = self.cache.remove_where(|c| {
                c.id != s.id && c.user.as_ref().is_some_and(|u| u.user_id == user.user_id) && same(&c.auth)
            });
            for (k, c) in cached {
                self.bury(&k);
                ended.note(&c.auth.scope);
            }
            return ended;
        };
        for (hex_key, rec) in listed {
            if hex_key == s.store_key() || !same(&rec.auth) {
                continue;
            }
            if let Some(k) = key_from_hex(&hex_key) {
                self.cache.remove(&k);
                // Not read back from the store while its deletion is pending (`local`).
                self.bury(&k);
            }
            ended.note(&rec.auth.scope);
            if let Err(e) = d.backend.delete(&hex_key).await {
                self.note_err(&e);
                tracing::error!("a session of the sign-on was not deleted from the store");
                continue;
            }
            if d.shared {
                if let Err(e) = d.backend.publish(&Event::Session(hex_key)).await {
                    tracing::error!(error = %e, "session end not announced to other replicas");
                }
            }
        }
        ended
    }

    /// Whether the logged-in session stored under `hex_key` (its store key) is still valid:
    /// from the cache when it holds a current copy, else from the store. Used when a sign-on
    /// code is redeemed, so a code issued just before a logout logs nobody in.
    pub async fn alive_by_key(&self, hex_key: &str) -> Result<bool, BackendError> {
        let Some(key) = key_from_hex(hex_key) else {
            return Ok(false);
        };
        let now = self.clock.now_ms();
        let cached = self.cache.get_by_key(&key);
        let Some(d) = &self.durable else {
            return Ok(cached.is_some_and(|s| !s.expired(now)));
        };
        if let Some(s) = cached {
            if !d.shared || now.saturating_sub(s.cached_ms) < NEAR_CACHE_LIFE.as_millis() as u64 {
                return Ok(!s.expired(now));
            }
        } else if !d.shared && d.evicted.contains_key(&key) {
            return Ok(false);
        }
        match d.backend.load(hex_key).await {
            Ok(rec) => {
                self.note_ok();
                Ok(rec.is_some_and(|r| {
                    r.user.is_some() && now < r.expires_ms && now.saturating_sub(r.last_seen_ms) < r.idle_ms
                }))
            }
            Err(e) => {
                self.note_err(&e);
                Err(e)
            }
        }
    }

    /// Drops every cached session of `user_id` except `keep` (a key); returns how many.
    pub(super) fn forget_user(&self, user_id: i64, keep: Option<&Key>) -> usize {
        let doomed = self
            .cache
            .remove_where(|s| s.user.as_ref().is_some_and(|u| u.user_id == user_id) && Some(&s.key()) != keep);
        for (k, _) in &doomed {
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
        d.forget_users(Some(user_id));
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
        d.forget_users(Some(user_id));
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
}
