//! `session.store: redis`: sessions and mailed links in Redis or Valkey, shared by every
//! replica, with invalidations on a pub/sub channel (docs/decisions, "redis-client").
//!
//! Keys (all under `key_prefix`): `s:<key>` a hash {`record` JSON, `seen` ms} expiring at the
//! session's absolute expiry; `u:<user id>` the set of a user's session keys; `t:<hash>` a
//! sealed mailed-link plan; channel `events`. Commands go over one multiplexed, reconnecting
//! connection ([`redis::aio::ConnectionManager`]); the subscriber has its own connection and
//! reports every (re)connection, on which the store drops its near cache.

use super::backend::{Backend, BackendError, Event, Signal, StoredSession, RECORD_VERSION};
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use std::time::Duration;

/// How long one command may take before the store counts as unreachable.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between reconnection attempts of the subscriber.
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(200);

/// The Redis backend.
#[derive(Clone)]
pub struct RedisBackend {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl RedisBackend {
    /// Connects (`redis://`, `rediss://` for TLS; a password in the URL is sent with AUTH).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, BackendError> {
        let client = redis::Client::open(url).map_err(|e| BackendError(format!("invalid redis url: {e}")))?;
        let conn = tokio::time::timeout(
            COMMAND_TIMEOUT * 3,
            ConnectionManager::new_with_config(client.clone(), super::counters::manager_config()),
        )
        .await
        .map_err(|_| BackendError("redis: connection timed out".into()))??;
        Ok(Self {
            client,
            conn,
            prefix: prefix.to_string(),
        })
    }

    fn skey(&self, key: &str) -> String {
        format!("{}s:{key}", self.prefix)
    }

    fn ukey(&self, user_id: i64) -> String {
        format!("{}u:{user_id}", self.prefix)
    }

    fn tkey(&self, hash: &str) -> String {
        format!("{}t:{hash}", self.prefix)
    }

    fn channel(&self) -> String {
        format!("{}events", self.prefix)
    }

    async fn run<T: redis::FromRedisValue>(&self, c: &redis::Cmd) -> Result<T, BackendError> {
        let mut conn = self.conn.clone();
        tokio::time::timeout(COMMAND_TIMEOUT, c.query_async::<T>(&mut conn))
            .await
            .map_err(|_| BackendError("redis: command timed out".into()))?
            .map_err(BackendError::from)
    }

    async fn run_pipe<T: redis::FromRedisValue>(&self, p: &redis::Pipeline) -> Result<T, BackendError> {
        let mut conn = self.conn.clone();
        tokio::time::timeout(COMMAND_TIMEOUT, p.query_async::<T>(&mut conn))
            .await
            .map_err(|_| BackendError("redis: command timed out".into()))?
            .map_err(BackendError::from)
    }
}

fn parse(record: Option<String>, seen: Option<u64>) -> Option<StoredSession> {
    let mut s = serde_json::from_str::<StoredSession>(&record?)
        .ok()
        .filter(|s| s.v == RECORD_VERSION)?;
    s.last_seen_ms = s.last_seen_ms.max(seen.unwrap_or(0));
    Some(s)
}

#[async_trait::async_trait]
impl Backend for RedisBackend {
    fn shared(&self) -> bool {
        true
    }

    async fn load(&self, key: &str) -> Result<Option<StoredSession>, BackendError> {
        let (record, seen): (Option<String>, Option<u64>) = self
            .run(redis::cmd("HMGET").arg(self.skey(key)).arg("record").arg("seen"))
            .await?;
        Ok(parse(record, seen))
    }

    async fn save(&self, key: &str, s: &StoredSession) -> Result<(), BackendError> {
        let record = serde_json::to_string(s).map_err(|e| BackendError(e.to_string()))?;
        let k = self.skey(key);
        let mut p = redis::pipe();
        p.atomic()
            .cmd("HSET")
            .arg(&k)
            .arg("record")
            .arg(record)
            .arg("seen")
            .arg(s.last_seen_ms)
            .ignore()
            .cmd("PEXPIREAT")
            .arg(&k)
            .arg(i(s.expires_ms))
            .ignore();
        if let Some(u) = &s.user {
            let uk = self.ukey(u.user_id);
            p.cmd("SADD").arg(&uk).arg(key).ignore();
            // The index lives as long as its longest session (GT: never shortened).
            p.cmd("PEXPIREAT").arg(&uk).arg(i(s.expires_ms)).arg("GT").ignore();
            p.cmd("PEXPIREAT").arg(&uk).arg(i(s.expires_ms)).arg("NX").ignore();
        }
        self.run_pipe::<()>(&p).await
    }

    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.run::<()>(redis::cmd("DEL").arg(self.skey(key))).await
    }

    async fn delete_user(&self, user_id: i64, keep: Option<&str>) -> Result<Vec<String>, BackendError> {
        let uk = self.ukey(user_id);
        let keys: Vec<String> = self.run(redis::cmd("SMEMBERS").arg(&uk)).await?;
        let doomed: Vec<String> = keys.into_iter().filter(|k| Some(k.as_str()) != keep).collect();
        if doomed.is_empty() {
            return Ok(doomed);
        }
        let mut p = redis::pipe();
        p.atomic();
        for k in &doomed {
            p.cmd("DEL").arg(self.skey(k)).ignore();
            p.cmd("SREM").arg(&uk).arg(k).ignore();
        }
        self.run_pipe::<()>(&p).await?;
        Ok(doomed)
    }

    async fn list(&self, user_id: Option<i64>) -> Result<Vec<(String, StoredSession)>, BackendError> {
        let keys: Vec<String> = match user_id {
            Some(u) => self.run(redis::cmd("SMEMBERS").arg(self.ukey(u))).await?,
            None => {
                let mut conn = self.conn.clone();
                let pattern = format!("{}s:*", self.prefix);
                let mut out = Vec::new();
                let mut it = redis::cmd("SCAN")
                    .cursor_arg(0)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .clone()
                    .iter_async::<String>(&mut conn)
                    .await?;
                while let Some(k) = it.next_item().await {
                    if let Some(k) = k.strip_prefix(&format!("{}s:", self.prefix)) {
                        out.push(k.to_string());
                    }
                }
                out
            }
        };
        let mut out = Vec::new();
        for k in keys {
            if let Some(s) = self.load(&k).await? {
                if user_id.is_some() || s.user.is_some() {
                    out.push((k, s));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    async fn touch(&self, batch: &[(String, u64)]) -> Result<(), BackendError> {
        if batch.is_empty() {
            return Ok(());
        }
        // Only existing sessions are touched: a revoked one is not brought back as a stub.
        const TOUCH: &str =
            "if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'seen', ARGV[1]) end return 0";
        let mut p = redis::pipe();
        for (k, at) in batch {
            p.cmd("EVAL").arg(TOUCH).arg(1).arg(self.skey(k)).arg(*at).ignore();
        }
        self.run_pipe::<()>(&p).await
    }

    async fn purge(&self, _now_ms: u64) -> Result<u64, BackendError> {
        // Sessions and links expire in Redis itself (PEXPIREAT).
        Ok(0)
    }

    async fn put_token(&self, hash: &str, sealed: &[u8], expires_ms: u64) -> Result<(), BackendError> {
        let k = self.tkey(hash);
        let mut p = redis::pipe();
        p.atomic()
            .cmd("HSET")
            .arg(&k)
            .arg("sealed")
            .arg(sealed)
            .arg("expires")
            .arg(expires_ms)
            .ignore()
            .cmd("PEXPIREAT")
            .arg(&k)
            .arg(i(expires_ms))
            .ignore();
        self.run_pipe::<()>(&p).await
    }

    async fn get_token(&self, hash: &str) -> Result<Option<(Vec<u8>, u64)>, BackendError> {
        let (sealed, expires): (Option<Vec<u8>>, Option<u64>) = self
            .run(redis::cmd("HMGET").arg(self.tkey(hash)).arg("sealed").arg("expires"))
            .await?;
        Ok(sealed.zip(expires))
    }

    async fn take_token(&self, hash: &str) -> Result<bool, BackendError> {
        let n: i64 = self.run(redis::cmd("DEL").arg(self.tkey(hash))).await?;
        Ok(n == 1)
    }

    async fn publish(&self, ev: &Event) -> Result<(), BackendError> {
        self.run::<()>(redis::cmd("PUBLISH").arg(self.channel()).arg(ev.encode()))
            .await
    }

    fn subscribe(&self, tx: tokio::sync::mpsc::Sender<Signal>) {
        let client = self.client.clone();
        let channel = self.channel();
        tokio::spawn(async move {
            let mut down_logged = false;
            loop {
                if tx.is_closed() {
                    return;
                }
                let sub = async {
                    let mut ps = client.get_async_pubsub().await?;
                    ps.subscribe(&channel).await?;
                    Ok::<_, redis::RedisError>(ps)
                };
                match tokio::time::timeout(COMMAND_TIMEOUT, sub).await {
                    Ok(Ok(ps)) => {
                        if down_logged {
                            tracing::info!("session invalidation channel reconnected");
                        }
                        // Whatever was published while no subscription ran is lost: start clean.
                        if tx.send(Signal::Reconnected).await.is_err() {
                            return;
                        }
                        let mut stream = ps.into_on_message();
                        loop {
                            let msg = tokio::select! {
                                m = stream.next() => m,
                                _ = tx.closed() => return,
                            };
                            let Some(msg) = msg else { break };
                            let Ok(payload) = msg.get_payload::<String>() else {
                                continue;
                            };
                            if let Some(ev) = Event::decode(&payload) {
                                if tx.send(Signal::Event(ev)).await.is_err() {
                                    return;
                                }
                            }
                        }
                        tracing::warn!("session invalidation channel lost; reconnecting");
                        down_logged = true;
                        // The near cache is kept while the channel is down (docs/decisions/0010: cached
                        // sessions work until their cache life ends; nothing can be revoked
                        // in the store meanwhile) and dropped when the channel is back.
                    }
                    Ok(Err(e)) => {
                        if !down_logged {
                            tracing::error!(error = %e, "session invalidation channel unreachable");
                            down_logged = true;
                        }
                    }
                    Err(_) => {
                        if !down_logged {
                            tracing::error!("session invalidation channel: connection timed out");
                            down_logged = true;
                        }
                    }
                }
                tokio::time::sleep(RESUBSCRIBE_DELAY).await;
            }
        });
    }
}
