//! Brute-force counters and reputation scores shared by every replica (`session.store: redis`,
//! issue 12 item 4): the flow layer's GCRA limiters and reputation tables keep their state here
//! instead of in process memory, so N replicas do not grant N times the attempts.
//!
//! Keys (under `key_prefix`): `rl:<limiter>:<hex SHA-256 of the key>` holds a limiter's
//! theoretical arrival time (ms), `rep:<table>:<hex SHA-256 of the key>` a hash {`score`,
//! `at`}. Usernames and addresses are hashed, never stored in clear. Each check or change is
//! one Lua script, so concurrent replicas cannot both take the last attempt. Time comes from
//! the caller (the injected clock), so Redis's own clock never decides a limit; key TTLs
//! (Redis time) only collect garbage after a limiter period or a score's life.
//!
//! An unreachable Redis is an error for the caller, which refuses the attempt (fail closed);
//! it is logged once per outage and once on recovery.

use super::backend::BackendError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long one script may take before Redis counts as unreachable.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// GCRA: KEYS[1] the TAT; ARGV now, interval, tolerance, ttl (ms). Returns 0 when the attempt
/// is taken, else the wait in ms (at least 1).
const GCRA: &str = r"
local now = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if tat < now then tat = now end
local over = tat - now - tonumber(ARGV[3])
if over > 0 then return over end
redis.call('SET', KEYS[1], string.format('%.0f', tat + tonumber(ARGV[2])), 'PX', ARGV[4])
return 0
";

/// Score change: KEYS[1] the hash; ARGV now, delta, min, max, life (ms). Returns the new score.
const ADD: &str = r"
local now = tonumber(ARGV[1])
local life = tonumber(ARGV[5])
local v = redis.call('HMGET', KEYS[1], 'score', 'at')
local score = 0
if v[1] and v[2] and now - tonumber(v[2]) < life then score = tonumber(v[1]) end
score = score + tonumber(ARGV[2])
if score < tonumber(ARGV[3]) then score = tonumber(ARGV[3]) end
if score > tonumber(ARGV[4]) then score = tonumber(ARGV[4]) end
redis.call('HSET', KEYS[1], 'score', score, 'at', ARGV[1])
redis.call('PEXPIRE', KEYS[1], life)
return score
";

/// How the reconnecting connections (these counters' and the session backend's) retry: three
/// quick attempts (100, 200, 400 ms) per failed command, each connection attempt bounded, so a
/// Redis that comes back is used again within about a second (redis-rs's default backs off
/// for up to 12 s).
pub fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_exponent_base(2)
        .set_factor(50)
        .set_number_of_retries(3)
        .set_max_delay(1000)
        .set_connection_timeout(Duration::from_secs(1))
        .set_response_timeout(COMMAND_TIMEOUT)
}

/// Counters in Redis, on their own multiplexed, reconnecting connection.
#[derive(Clone)]
pub struct RedisCounters {
    conn: ConnectionManager,
    prefix: String,
    /// Whether the last command failed (logged once per outage).
    down: Arc<AtomicBool>,
}

fn hashed(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl RedisCounters {
    /// Connects to `url` (as `session.redis` resolved it); keys go under `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, BackendError> {
        let client = redis::Client::open(url).map_err(|e| BackendError(format!("invalid redis url: {e}")))?;
        let conn = tokio::time::timeout(
            COMMAND_TIMEOUT * 3,
            ConnectionManager::new_with_config(client, manager_config()),
        )
        .await
        .map_err(|_| BackendError("redis: connection timed out".into()))??;
        Ok(Self {
            conn,
            prefix: prefix.to_string(),
            down: Arc::default(),
        })
    }

    async fn eval(&self, script: &str, key: String, args: &[i64]) -> Result<i64, BackendError> {
        let mut c = redis::cmd("EVAL");
        c.arg(script).arg(1).arg(key);
        for a in args {
            c.arg(*a);
        }
        let mut conn = self.conn.clone();
        let r = match tokio::time::timeout(COMMAND_TIMEOUT, c.query_async::<i64>(&mut conn)).await {
            Ok(r) => r.map_err(BackendError::from),
            Err(_) => Err(BackendError("redis: command timed out".into())),
        };
        match &r {
            Ok(_) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    tracing::info!("shared limits store reachable again");
                }
            }
            Err(e) => {
                if !self.down.swap(true, Ordering::Relaxed) {
                    tracing::error!(error = %e, "shared limits store failing; limited attempts are refused");
                }
            }
        }
        r
    }

    /// Takes one attempt from limiter `limiter` for `key` at `now_ms`: `Ok(None)` when taken,
    /// `Ok(Some(wait))` when refused.
    pub async fn gcra(
        &self,
        limiter: &str,
        key: &str,
        now_ms: u64,
        interval_ms: u64,
        tolerance_ms: u64,
        period_ms: u64,
    ) -> Result<Option<Duration>, BackendError> {
        let k = format!("{}rl:{limiter}:{}", self.prefix, hashed(key));
        let wait = self
            .eval(
                GCRA,
                k,
                &[i(now_ms), i(interval_ms), i(tolerance_ms), i(period_ms.max(1))],
            )
            .await?;
        Ok((wait > 0).then(|| Duration::from_millis(wait.unsigned_abs())))
    }

    /// Adds `delta` to the score of `key` in `table`, clamped to `[min, max]`; a score unchanged
    /// for `life_ms` counts as 0.
    pub async fn add_score(
        &self,
        table: &str,
        key: &str,
        delta: i64,
        (min, max): (i64, i64),
        now_ms: u64,
        life_ms: u64,
    ) -> Result<i64, BackendError> {
        let k = format!("{}rep:{table}:{}", self.prefix, hashed(key));
        self.eval(ADD, k, &[i(now_ms), delta, min, max, i(life_ms.max(1))])
            .await
    }

    /// The score of `key` in `table` (0 when none or older than `life_ms`).
    pub async fn score(&self, table: &str, key: &str, now_ms: u64, life_ms: u64) -> Result<i64, BackendError> {
        const GET: &str = r"
local v = redis.call('HMGET', KEYS[1], 'score', 'at')
if v[1] and v[2] and tonumber(ARGV[1]) - tonumber(v[2]) < tonumber(ARGV[2]) then return tonumber(v[1]) end
return 0
";
        let k = format!("{}rep:{table}:{}", self.prefix, hashed(key));
        self.eval(GET, k, &[i(now_ms), i(life_ms)]).await
    }
}
