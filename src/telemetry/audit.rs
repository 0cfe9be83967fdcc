//! Audit events (docs/operations.md): login, login_failed, logout, enrollment, recovery,
//! password_changed, mfa_added, mfa_removed, session_revoked, lockout, reload. Each is one JSON
//! line (`time`, `event`, `user`, `client`, `flow`, `app`, `result`, `reason`, and `stage` for
//! a failed login) written to the log under the target [`AUDIT_TARGET`] and, when
//! `events.file` is set, appended to that file, which is rotated by size.
//!
//! What an event never holds: a password, a code, a token, a cookie or a session id. The
//! fields are names the gateway already knows (a user's username, a flow slug, an app name)
//! and fixed reason codes; a failed login names its user only once the identifier resolved to
//! a real account, so a password typed into the username field is never recorded.
//!
//! The file is written synchronously under a mutex: events are rare (one per login, not per
//! request) and a line lands in the page cache, so the cost is a syscall; in exchange an event
//! is on disk in order before the request that caused it is answered.

use serde_json::{Map, Value};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The tracing target of audit events (filter them with `RUST_LOG=flowgate::audit=info`).
pub const AUDIT_TARGET: &str = "flowgate::audit";

/// One audit event. Fields left `None` are written as `null`.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent<'a> {
    /// `login`, `login_failed`, `logout`, …
    pub event: &'static str,
    /// The user acted on (username).
    pub user: Option<&'a str>,
    /// The client address.
    pub client: Option<IpAddr>,
    /// The flow slug.
    pub flow: Option<&'a str>,
    /// The app name.
    pub app: Option<&'a str>,
    /// `success` or `failure`.
    pub result: &'static str,
    /// A reason code (`invalid_password`, `rate_limited`, `admin_api`, …).
    pub reason: Option<&'a str>,
    /// The stage that failed (failed logins).
    pub stage: Option<&'a str>,
}

/// Reads now as Unix milliseconds (the gateway's injected clock).
pub type NowMs = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Where audit events go. Cheap to clone.
#[derive(Clone)]
pub struct Audit {
    file: Option<Arc<Mutex<Rotating>>>,
    now: NowMs,
    counted: Option<Arc<super::Metrics>>,
}

/// An append-only file rotated at `max_bytes` into `<file>.1` … `<file>.<keep>`.
struct Rotating {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    keep: u32,
}

fn open_append(path: &Path) -> std::io::Result<(File, u64)> {
    let f = OpenOptions::new().create(true).append(true).open(path)?;
    let size = f.metadata()?.len();
    Ok((f, size))
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl Rotating {
    fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        let len = line.len() as u64 + 1;
        if self.size > 0 && self.size + len > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(format!("{line}\n").as_bytes())?;
        self.size += len;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            for n in (1..self.keep).rev() {
                let from = rotated(&self.path, n);
                if from.exists() {
                    std::fs::rename(&from, rotated(&self.path, n + 1))?;
                }
            }
            std::fs::rename(&self.path, rotated(&self.path, 1))?;
        }
        let (file, size) = open_append(&self.path)?;
        self.file = file;
        self.size = size;
        Ok(())
    }
}

/// `ms` since the Unix epoch as RFC 3339 UTC with milliseconds.
pub fn rfc3339_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

// === impl Audit ===

impl Audit {
    /// Events to the log only, timed by the system clock.
    pub fn log_only() -> Self {
        Self {
            file: None,
            now: Arc::new(|| {
                #[allow(clippy::disallowed_methods)] // no injected clock in this leaf; callers give one
                let now = std::time::SystemTime::now();
                now.duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0)
            }),
            counted: None,
        }
    }

    /// Events to the log and, when `file` is set, to that file (created if missing, rotated
    /// at `max_bytes`, `keep` old files kept); `now` reads the gateway's clock.
    pub fn new(file: Option<&Path>, max_bytes: u64, keep: u32, now: NowMs) -> std::io::Result<Self> {
        let file = match file {
            Some(p) => {
                let (f, size) = open_append(p)?;
                Some(Arc::new(Mutex::new(Rotating {
                    path: p.to_path_buf(),
                    file: f,
                    size,
                    max_bytes,
                    keep,
                })))
            }
            None => None,
        };
        Ok(Self {
            file,
            now,
            counted: None,
        })
    }

    /// Counts every event in `metrics` (`flowgate_audit_events_total`) as well.
    pub fn counted_in(mut self, metrics: Arc<super::Metrics>) -> Self {
        self.counted = Some(metrics);
        self
    }

    /// The JSON line of `ev` at `time_ms`.
    pub fn line(ev: &AuditEvent<'_>, time_ms: u64) -> String {
        let opt = |v: Option<&str>| v.map_or(Value::Null, |s| Value::String(s.to_string()));
        let mut m = Map::new();
        m.insert("time".into(), Value::String(rfc3339_ms(time_ms)));
        m.insert("event".into(), Value::String(ev.event.into()));
        m.insert("user".into(), opt(ev.user));
        m.insert(
            "client".into(),
            ev.client.map_or(Value::Null, |c| Value::String(c.to_string())),
        );
        m.insert("flow".into(), opt(ev.flow));
        m.insert("app".into(), opt(ev.app));
        m.insert("result".into(), Value::String(ev.result.into()));
        m.insert("reason".into(), opt(ev.reason));
        if ev.stage.is_some() {
            m.insert("stage".into(), opt(ev.stage));
        }
        Value::Object(m).to_string()
    }

    /// Writes `ev` to the log and the events file.
    pub fn emit(&self, ev: AuditEvent<'_>) {
        let line = Self::line(&ev, (self.now)());
        tracing::info!(target: AUDIT_TARGET, "{line}");
        if let Some(m) = &self.counted {
            m.event(ev.event);
        }
        if let Some(f) = &self.file {
            let mut f = match f.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if let Err(e) = f.write_line(&line) {
                tracing::error!(error = %e, path = %f.path.display(), "cannot write the audit events file");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_is_rfc3339_utc() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn the_file_rotates_by_size_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let a = Audit::new(Some(&p), 1024, 2, Arc::new(|| 0)).unwrap();
        for _ in 0..40 {
            a.emit(AuditEvent {
                event: "login",
                user: Some("alice"),
                result: "success",
                ..Default::default()
            });
        }
        let cur = std::fs::read_to_string(&p).unwrap();
        assert!(cur.len() <= 1024 && !cur.is_empty());
        assert!(rotated(&p, 1).exists() && rotated(&p, 2).exists());
        assert!(!rotated(&p, 3).exists());
        for l in cur.lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["event"], "login");
            assert_eq!(v["client"], Value::Null);
        }
    }
}
