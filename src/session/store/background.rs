//! The store's background work: the batched last-seen writer and purger, the invalidation
//! listener that applies other replicas' (and the CLI's) revocations, and the weak handle they
//! hold so that they end with the store.

use super::*;

impl SessionStore {
    /// Stops the background tasks (last-seen writer, purger, invalidation listener).
    pub fn close(&self) {
        if let Some(d) = &self.durable {
            d.closed.send_replace(true);
        }
    }

    pub(super) fn spawn_writer(&self, mut rx: tokio::sync::mpsc::Receiver<Touch>) {
        let Some(d) = self.durable.clone() else { return };
        let mut closed = d.closed.subscribe();
        let clock = self.clock.clone();
        let (table, interned) = (self.cache.clone(), self.interned.clone());
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
                            // Expired sessions leave the table (they are refused anyway), and
                            // identities and shapes no session uses any more are forgotten.
                            let now = clock.now_ms();
                            table.remove_where(|s| s.expired(now));
                            interned.identities.prune();
                            interned.shapes.prune();
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

    pub(super) fn spawn_listener(&self, mut rx: tokio::sync::mpsc::Receiver<Signal>) {
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
    pub(super) fn apply(&self, sig: Signal) {
        let Some(d) = &self.durable else { return };
        match sig {
            Signal::Event(Event::Session(k)) => {
                if let Some(k) = key_from_hex(&k) {
                    self.forget(&k);
                }
            }
            Signal::Event(Event::User(id)) => d.forget_users(Some(id)),
            Signal::Event(Event::UserSessions(id)) => {
                d.forget_users(Some(id));
                self.forget_user(id, None);
            }
            Signal::Reconnected => {
                self.cache.clear();
                d.forget_users(None);
                if d.shared {
                    self.pending.invalidate_all();
                }
            }
        }
    }

    pub(super) fn downgrade(&self) -> WeakStore {
        WeakStore {
            cache: self.cache.clone(),
            pending: self.pending.clone(),
            clock: self.clock.clone(),
            durable: self.durable.as_ref().map(Arc::downgrade),
            interned: self.interned.clone(),
        }
    }
}

/// A handle that does not keep the store alive (for its background tasks).
pub(super) struct WeakStore {
    cache: table::Table,
    pending: moka::sync::Cache<Key, Arc<Session>>,
    clock: SharedClock,
    durable: Option<std::sync::Weak<Durable>>,
    interned: Arc<Interned>,
}

impl WeakStore {
    pub(super) fn upgrade(&self) -> Option<SessionStore> {
        let durable = match &self.durable {
            Some(w) => Some(w.upgrade()?),
            None => None,
        };
        Some(SessionStore {
            cache: self.cache.clone(),
            pending: self.pending.clone(),
            clock: self.clock.clone(),
            durable,
            interned: self.interned.clone(),
        })
    }
}
