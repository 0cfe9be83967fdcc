//! `session.store: local`: sessions, mailed links and the revocation log in an embedded SQLite
//! file (`<data_dir>/sessions.db`, WAL). The gateway is its only writer of sessions; the CLI
//! (another process) appends to `session_events`, which every gateway using the file polls
//! every [`POLL_INTERVAL`].

use super::backend::{Backend, BackendError, Event, Signal, StoredSession, RECORD_VERSION};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the revocation log is read.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long revocation-log rows are kept (long enough for every poller to see them).
const EVENT_KEEP_MS: u64 = 10 * 60 * 1000;

/// Schema, applied in order on open; each statement is idempotent.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS sessions (
        key TEXT PRIMARY KEY,
        user_id INTEGER,
        record TEXT NOT NULL,
        expires_ms INTEGER NOT NULL,
        idle_ms INTEGER NOT NULL,
        last_seen_ms INTEGER NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS sessions_user ON sessions(user_id)",
    "CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions(expires_ms)",
    "CREATE TABLE IF NOT EXISTS flow_tokens (
        hash TEXT PRIMARY KEY,
        sealed BLOB NOT NULL,
        expires_ms INTEGER NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS session_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event TEXT NOT NULL,
        at_ms INTEGER NOT NULL
    )",
];

/// The session database file for a data directory.
pub fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join("sessions.db")
}

/// The SQLite backend.
#[derive(Clone)]
pub struct LocalBackend {
    pool: SqlitePool,
}

/// Wall-clock time for the revocation log (shared with other processes, whatever clock the
/// sessions of this one read).
fn now_ms() -> u64 {
    use super::clock::Clock;
    super::clock::SystemClock.now_ms()
}

fn i(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl LocalBackend {
    /// Opens (creating) the file and applies the schema.
    pub async fn open(path: &Path) -> Result<Self, BackendError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| BackendError(format!("{}: {e}", dir.display())))?;
        }
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(opts).await?;
        for stmt in MIGRATIONS {
            sqlx::query(stmt).execute(&pool).await?;
        }
        Ok(Self { pool })
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn parse(record: &str) -> Option<StoredSession> {
    serde_json::from_str::<StoredSession>(record)
        .ok()
        .filter(|s| s.v == RECORD_VERSION)
}

#[async_trait::async_trait]
impl Backend for LocalBackend {
    fn shared(&self) -> bool {
        false
    }

    async fn load(&self, key: &str) -> Result<Option<StoredSession>, BackendError> {
        let row = sqlx::query("SELECT record, last_seen_ms FROM sessions WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.and_then(|r| {
            let mut s = parse(r.get::<&str, _>(0))?;
            s.last_seen_ms = s.last_seen_ms.max(r.get::<i64, _>(1).max(0) as u64);
            Some(s)
        }))
    }

    async fn save(&self, key: &str, s: &StoredSession) -> Result<(), BackendError> {
        let record = serde_json::to_string(s).map_err(|e| BackendError(e.to_string()))?;
        sqlx::query(
            "INSERT INTO sessions (key, user_id, record, expires_ms, idle_ms, last_seen_ms) VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT(key) DO UPDATE SET user_id = excluded.user_id, record = excluded.record,
             expires_ms = excluded.expires_ms, idle_ms = excluded.idle_ms, last_seen_ms = excluded.last_seen_ms",
        )
        .bind(key)
        .bind(s.user.as_ref().map(|u| u.user_id))
        .bind(record)
        .bind(i(s.expires_ms))
        .bind(i(s.idle_ms))
        .bind(i(s.last_seen_ms))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        sqlx::query("DELETE FROM sessions WHERE key = ?")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_user(&self, user_id: i64, keep: Option<&str>) -> Result<Vec<String>, BackendError> {
        let rows = sqlx::query("DELETE FROM sessions WHERE user_id = ? AND key != ? RETURNING key")
            .bind(user_id)
            .bind(keep.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| r.get::<String, _>(0)).collect())
    }

    async fn list(&self, user_id: Option<i64>) -> Result<Vec<(String, StoredSession)>, BackendError> {
        let rows = match user_id {
            Some(u) => {
                sqlx::query("SELECT key, record FROM sessions WHERE user_id = ? ORDER BY key")
                    .bind(u)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT key, record FROM sessions WHERE user_id IS NOT NULL ORDER BY key")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        Ok(rows
            .iter()
            .filter_map(|r| Some((r.get::<String, _>(0), parse(r.get::<&str, _>(1))?)))
            .collect())
    }

    async fn touch(&self, batch: &[(String, u64)]) -> Result<(), BackendError> {
        // One statement per chunk (a JSON array of [key, time] pairs), not one per session: a
        // busy gateway sends thousands of last-seen times per batch, and every statement is a
        // round trip to sqlx's worker thread.
        let mut tx = self.pool.begin().await?;
        for chunk in batch.chunks(4096) {
            let pairs: Vec<(&str, i64)> = chunk.iter().map(|(k, at)| (k.as_str(), i(*at))).collect();
            let json = serde_json::to_string(&pairs).map_err(|e| BackendError(e.to_string()))?;
            sqlx::query(
                "UPDATE sessions SET last_seen_ms = max(sessions.last_seen_ms, t.at)
                 FROM (SELECT json_extract(value, '$[0]') AS key, json_extract(value, '$[1]') AS at FROM json_each(?)) AS t
                 WHERE sessions.key = t.key",
            )
            .bind(json)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn purge(&self, now: u64) -> Result<u64, BackendError> {
        let now = i(now);
        let a = sqlx::query("DELETE FROM sessions WHERE expires_ms <= ? OR last_seen_ms + idle_ms <= ?")
            .bind(now)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let b = sqlx::query("DELETE FROM flow_tokens WHERE expires_ms <= ?")
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        // The revocation log is read by wall-clock age, whatever clock sessions use.
        sqlx::query("DELETE FROM session_events WHERE at_ms < ?")
            .bind(i(now_ms().saturating_sub(EVENT_KEEP_MS)))
            .execute(&self.pool)
            .await?;
        Ok(a + b)
    }

    async fn put_token(&self, hash: &str, sealed: &[u8], expires_ms: u64) -> Result<(), BackendError> {
        sqlx::query("INSERT OR REPLACE INTO flow_tokens (hash, sealed, expires_ms) VALUES (?, ?, ?)")
            .bind(hash)
            .bind(sealed)
            .bind(i(expires_ms))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn get_token(&self, hash: &str) -> Result<Option<(Vec<u8>, u64)>, BackendError> {
        let row = sqlx::query("SELECT sealed, expires_ms FROM flow_tokens WHERE hash = ?")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| (r.get::<Vec<u8>, _>(0), r.get::<i64, _>(1).max(0) as u64)))
    }

    async fn take_token(&self, hash: &str) -> Result<bool, BackendError> {
        let n = sqlx::query("DELETE FROM flow_tokens WHERE hash = ?")
            .bind(hash)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    async fn publish(&self, ev: &Event) -> Result<(), BackendError> {
        sqlx::query("INSERT INTO session_events (event, at_ms) VALUES (?, ?)")
            .bind(ev.encode())
            .bind(i(now_ms()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn subscribe(&self, tx: tokio::sync::mpsc::Sender<Signal>) {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let mut last: i64 = match sqlx::query("SELECT coalesce(max(id), 0) FROM session_events")
                .fetch_one(&pool)
                .await
            {
                Ok(r) => r.get(0),
                Err(_) => 0,
            };
            let mut failing = false;
            let mut tick = tokio::time::interval(POLL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if tx.is_closed() || pool.is_closed() {
                    return;
                }
                let rows = sqlx::query("SELECT id, event FROM session_events WHERE id > ? ORDER BY id")
                    .bind(last)
                    .fetch_all(&pool)
                    .await;
                match rows {
                    Ok(rows) => {
                        if failing {
                            failing = false;
                            tracing::info!("session revocation log readable again");
                            if tx.send(Signal::Reconnected).await.is_err() {
                                return;
                            }
                        }
                        for r in rows {
                            last = r.get(0);
                            if let Some(ev) = Event::decode(r.get::<&str, _>(1)) {
                                if tx.send(Signal::Event(ev)).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    Err(e) => {
                        if !failing {
                            failing = true;
                            tracing::error!(error = %e, "cannot read the session revocation log");
                        }
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::store::{AuthInfo, Identity};

    fn record(user: Option<i64>, expires_ms: u64, last_seen_ms: u64) -> StoredSession {
        StoredSession {
            v: RECORD_VERSION,
            user: user.map(|id| Identity {
                user_id: id,
                uid: "u".into(),
                username: format!("user{id}"),
                email: String::new(),
                name: String::new(),
                groups: vec!["g".into()],
                is_superuser: false,
            }),
            auth: AuthInfo::default(),
            created_ms: 0,
            expires_ms,
            idle_ms: 1_000,
            last_seen_ms,
            flow: None,
        }
    }

    #[tokio::test]
    async fn sessions_tokens_and_events_round_trip_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::open(&database_path(dir.path())).await.unwrap();
        b.save("k1", &record(Some(7), 10_000, 100)).await.unwrap();
        b.save("k2", &record(Some(7), 10_000, 100)).await.unwrap();
        b.save("k3", &record(None, 10_000, 100)).await.unwrap();
        assert_eq!(b.load("k1").await.unwrap().unwrap().user.unwrap().username, "user7");
        assert_eq!(
            b.list(None).await.unwrap().len(),
            2,
            "anonymous sessions are not listed"
        );
        // Last-seen in a batch: never moves back.
        b.touch(&[("k1".into(), 900), ("k2".into(), 50)]).await.unwrap();
        assert_eq!(b.load("k1").await.unwrap().unwrap().last_seen_ms, 900);
        assert_eq!(b.load("k2").await.unwrap().unwrap().last_seen_ms, 100);
        // Idle (last seen + 1 s) and absolute expiry purge.
        assert_eq!(b.purge(1_200).await.unwrap(), 2, "k2 and k3 idle out");
        assert!(b.load("k1").await.unwrap().is_some());
        assert_eq!(b.delete_user(7, Some("none")).await.unwrap(), vec!["k1".to_string()]);
        assert!(b.load("k1").await.unwrap().is_none());
        // Links: single use, purged when expired.
        b.put_token("h", b"sealed", 5_000).await.unwrap();
        assert_eq!(b.get_token("h").await.unwrap(), Some((b"sealed".to_vec(), 5_000)));
        assert!(b.take_token("h").await.unwrap());
        assert!(!b.take_token("h").await.unwrap());
        b.put_token("old", b"x", 10).await.unwrap();
        b.purge(20).await.unwrap();
        assert!(b.get_token("old").await.unwrap().is_none());
        // The revocation log reaches a subscriber opened on the same file.
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        b.subscribe(tx);
        tokio::time::sleep(POLL_INTERVAL * 2).await;
        let other = LocalBackend::open(&database_path(dir.path())).await.unwrap();
        other.publish(&Event::UserSessions(7)).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await.unwrap();
        assert_eq!(got, Some(Signal::Event(Event::UserSessions(7))));
        // A record of another version reads as absent.
        let mut future = record(Some(1), 10_000, 100);
        future.v = RECORD_VERSION + 1;
        b.save("k9", &future).await.unwrap();
        assert!(b.load("k9").await.unwrap().is_none());
    }
}
