//! Validation of the main file's settings blocks: `listen:`, `session:`, `identity:`,
//! `trusted_proxies:` and `strip_headers:`.

use super::Collector;
use crate::config::model::*;
use crate::config::raw::*;
use std::net::SocketAddr;
use std::path::Path;

fn socket_addr(c: &mut Collector<'_>, path: &str, s: &str) -> Option<SocketAddr> {
    match s.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            c.err(
                0,
                path,
                format!("invalid listen address {s:?} (expected IP:PORT, e.g. 127.0.0.1:8080 or [::1]:8443)"),
            );
            None
        }
    }
}

pub(super) fn listen(c: &mut Collector<'_>, main: &RawFile, base: &Path) -> Listen {
    let Some(l) = &main.listen else {
        return Listen {
            http: "127.0.0.1:8080".parse().ok(),
            https: None,
            workers: default_workers(),
        };
    };
    let http = l.http.as_deref().and_then(|s| socket_addr(c, "listen.http", s));
    let https = l.https.as_ref().and_then(|h| {
        let addr = socket_addr(c, "listen.https.addr", &h.addr)?;
        Some(HttpsListen {
            addr,
            cert: base.join(&h.cert),
            key: base.join(&h.key),
        })
    });
    if l.http.is_none() && l.https.is_none() {
        c.err(
            0,
            "listen",
            "no listener configured (set listen.http, listen.https or both)",
        );
    }
    let workers = match l.workers {
        None => default_workers(),
        Some(n @ 1..=MAX_WORKERS) => n,
        Some(n) => {
            c.err(
                0,
                "listen.workers",
                format!("{n} worker threads: give 1 to {MAX_WORKERS} (one per CPU is the default)"),
            );
            1
        }
    };
    Listen { http, https, workers }
}

/// Most connection worker threads `listen.workers` accepts.
const MAX_WORKERS: usize = 1024;

/// One connection worker per CPU the process may use.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Whether two bind addresses would take the same port on a shared interface (equal, or the
/// same port with either side on the unspecified address). Port 0 picks a free port: no clash.
fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0 && a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// `admin:` (listen address apart from the public listeners, token from env or file).
pub(super) fn admin(c: &mut Collector<'_>, main: &RawFile, listen: &Listen) -> Option<AdminSettings> {
    let a = main.admin.as_ref()?;
    let addr = socket_addr(c, "admin.listen", &a.listen)?;
    let public = listen.http.into_iter().chain(listen.https.as_ref().map(|h| h.addr));
    for p in public {
        if same_socket(addr, p) {
            c.err(
                0,
                "admin.listen",
                format!("{addr} is a public listener's address ({p}); the admin listener needs its own port"),
            );
        }
    }
    let token = if a.token_env.is_some() || a.token_file.is_some() {
        let t = super::secrets::secret(
            c,
            0,
            "admin",
            None,
            a.token_env.as_ref(),
            a.token_file.as_ref(),
            "token",
        );
        match t {
            Some(t) if t.len() < MIN_ADMIN_TOKEN_BYTES => {
                let key = if a.token_env.is_some() {
                    "admin.token_env"
                } else {
                    "admin.token_file"
                };
                c.err(
                    0,
                    key,
                    format!("the admin token is too short (at least {MIN_ADMIN_TOKEN_BYTES} characters)"),
                );
                None
            }
            t => t.map(Into::into),
        }
    } else {
        None
    };
    Some(AdminSettings { listen: addr, token })
}

/// `events:` (the audit events file and its rotation).
pub(super) fn events(c: &mut Collector<'_>, main: &RawFile, base: &Path) -> EventSettings {
    let Some(e) = &main.events else {
        return EventSettings::default();
    };
    let max_bytes = e.max_bytes.unwrap_or(DEFAULT_EVENTS_MAX_BYTES);
    if max_bytes < 1024 {
        c.err(0, "events.max_bytes", "must be at least 1024 (bytes)");
    }
    let keep = e.keep.unwrap_or(DEFAULT_EVENTS_KEEP);
    if keep > 100 {
        c.err(0, "events.keep", "must be at most 100 (rotated files kept)");
    }
    if e.file.as_deref().is_some_and(str::is_empty) {
        c.err(0, "events.file", "must not be empty (leave it out to log events only)");
    }
    EventSettings {
        file: e.file.as_deref().filter(|f| !f.is_empty()).map(|f| base.join(f)),
        max_bytes,
        keep,
    }
}

pub(super) fn session(c: &mut Collector<'_>, main: &RawFile) -> SessionSettings {
    let empty = RawSession {
        cookie: None,
        ttl: None,
        idle_timeout: None,
        max_sessions: None,
        max_pending_flows: None,
        flow_timeout: None,
        store: None,
        redis: None,
        cookie_domain: None,
    };
    let s = main.session.as_ref().unwrap_or(&empty);
    let cookie = s.cookie.clone().unwrap_or_else(|| DEFAULT_COOKIE_NAME.to_string());
    let token_ok = !cookie.is_empty()
        && cookie.len() <= 64
        && cookie
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && !cookie.starts_with("__");
    if !token_ok {
        c.err(
            0,
            "session.cookie",
            format!("invalid cookie name {cookie:?} (expected 1-64 of A-Z a-z 0-9 _ -, not starting with __)"),
        );
    }
    let ttl = c.duration(0, "session.ttl".into(), &s.ttl, DEFAULT_SESSION_TTL);
    let idle_timeout = c.duration(0, "session.idle_timeout".into(), &s.idle_timeout, DEFAULT_IDLE_TIMEOUT);
    let flow_timeout = c.duration(0, "session.flow_timeout".into(), &s.flow_timeout, DEFAULT_FLOW_TIMEOUT);
    for (name, d) in [
        ("ttl", ttl),
        ("idle_timeout", idle_timeout),
        ("flow_timeout", flow_timeout),
    ] {
        if d.is_zero() {
            c.err(0, format!("session.{name}"), "must be greater than zero");
        }
    }
    let max_sessions = s.max_sessions.unwrap_or(DEFAULT_MAX_SESSIONS);
    if max_sessions == 0 {
        c.err(0, "session.max_sessions", "must be at least 1");
    }
    let max_pending_flows = s.max_pending_flows.unwrap_or(DEFAULT_MAX_PENDING_FLOWS);
    if max_pending_flows == 0 {
        c.err(0, "session.max_pending_flows", "must be at least 1");
    }
    let store = session_store(c, s);
    let cookie_domain = s
        .cookie_domain
        .as_deref()
        .and_then(|d| super::sign_on::cookie_domain(c, d));
    SessionSettings {
        cookie,
        ttl,
        idle_timeout,
        max_sessions,
        max_pending_flows,
        flow_timeout,
        store,
        cookie_domain,
    }
}

/// `session.store` and `session.redis` (docs/decisions/0010).
fn session_store(c: &mut Collector<'_>, s: &RawSession) -> SessionStoreKind {
    match s.store.as_deref().unwrap_or("local") {
        "local" => {
            if s.redis.is_some() {
                c.err(
                    0,
                    "session.redis",
                    "only used with session.store: redis (store is local)",
                );
            }
            SessionStoreKind::Local
        }
        "redis" => {
            let Some(r) = &s.redis else {
                c.err(
                    0,
                    "session.store",
                    "session.store: redis needs session.redis with one of url, url_env, url_file",
                );
                return SessionStoreKind::Local;
            };
            if r.url.is_none() && r.url_env.is_none() && r.url_file.is_none() {
                c.err(0, "session.redis", "set one of url, url_env, url_file");
                return SessionStoreKind::Local;
            }
            let key_prefix = r
                .key_prefix
                .clone()
                .unwrap_or_else(|| DEFAULT_REDIS_KEY_PREFIX.to_string());
            if key_prefix.len() > 64
                || key_prefix
                    .chars()
                    .any(|ch| ch.is_whitespace() || ch.is_control() || ch == '*')
            {
                c.err(
                    0,
                    "session.redis.key_prefix",
                    format!(
                        "invalid key prefix {key_prefix:?} (at most 64 characters, no spaces, control characters or *)"
                    ),
                );
            }
            let Some(url) = super::secrets::secret(
                c,
                0,
                "session.redis",
                r.url.as_ref(),
                r.url_env.as_ref(),
                r.url_file.as_ref(),
                "url",
            ) else {
                return SessionStoreKind::Local;
            };
            let scheme_ok = url.starts_with("redis://") || url.starts_with("rediss://");
            if !scheme_ok || url.chars().any(char::is_whitespace) {
                // The URL may hold a password: never echo it.
                c.err(
                    0,
                    "session.redis.url",
                    "invalid redis URL (expected redis://[user:password@]host[:port][/db] or rediss:// for TLS)",
                );
            }
            SessionStoreKind::Redis { url, key_prefix }
        }
        other => {
            c.err(
                0,
                "session.store",
                format!("unknown session store {other:?} (expected one of: local, redis)"),
            );
            SessionStoreKind::Local
        }
    }
}

pub(super) fn identity(c: &mut Collector<'_>, main: &RawFile, base: &Path, data_dir: &Path) -> IdentitySettings {
    let raw = main.identity.as_ref();
    let database = super::database::database(c, raw, base, data_dir);
    let seed = raw.and_then(|i| i.seed.as_deref()).map(|s| base.join(s));
    let a = raw.and_then(|i| i.argon2.as_ref());
    let argon2 = Argon2Settings {
        memory_kib: a.and_then(|a| a.memory_kib).unwrap_or(DEFAULT_ARGON2_MEMORY_KIB),
        iterations: a.and_then(|a| a.iterations).unwrap_or(DEFAULT_ARGON2_ITERATIONS),
        parallelism: a.and_then(|a| a.parallelism).unwrap_or(DEFAULT_ARGON2_PARALLELISM),
    };
    if argon2.memory_kib < DEFAULT_ARGON2_MEMORY_KIB {
        c.err(
            0,
            "identity.argon2.memory_kib",
            format!(
                "{} is below the OWASP minimum (at least {DEFAULT_ARGON2_MEMORY_KIB})",
                argon2.memory_kib
            ),
        );
    }
    if argon2.iterations < DEFAULT_ARGON2_ITERATIONS {
        c.err(
            0,
            "identity.argon2.iterations",
            format!(
                "{} is below the OWASP minimum (at least {DEFAULT_ARGON2_ITERATIONS})",
                argon2.iterations
            ),
        );
    }
    if argon2.parallelism < DEFAULT_ARGON2_PARALLELISM || argon2.parallelism > 16 {
        c.err(
            0,
            "identity.argon2.parallelism",
            format!("{} is out of range (1 to 16)", argon2.parallelism),
        );
    }
    let reserved_usernames = match raw.and_then(|i| i.reserved_usernames.as_ref()) {
        None => DEFAULT_RESERVED_USERNAMES.iter().map(|s| s.to_string()).collect(),
        Some(list) => {
            let mut out = Vec::with_capacity(list.len());
            for (i, name) in list.iter().enumerate() {
                if name.trim().is_empty() || name.trim() != name || name.chars().any(char::is_control) {
                    c.err(
                        0,
                        format!("identity.reserved_usernames[{i}]"),
                        format!("{name:?} is not a username (expected a non-empty name without surrounding spaces or control characters)"),
                    );
                } else {
                    out.push(name.clone());
                }
            }
            out
        }
    };
    IdentitySettings {
        database,
        seed,
        argon2,
        reserved_usernames,
    }
}

pub(super) fn trusted(c: &mut Collector<'_>, main: &RawFile) -> Vec<ipnet::IpNet> {
    let mut out = Vec::new();
    for (i, s) in main.trusted_proxies.iter().enumerate() {
        if let Ok(n) = s.parse::<ipnet::IpNet>() {
            out.push(n);
        } else if let Ok(ip) = s.parse::<std::net::IpAddr>() {
            out.push(ipnet::IpNet::from(ip));
        } else {
            c.err(
                0,
                format!("trusted_proxies[{i}]"),
                format!("invalid address or CIDR {s:?} (expected e.g. 10.0.0.0/8 or 127.0.0.1)"),
            );
        }
    }
    out
}

/// Headers the request path cannot do without; removing them would break every request.
const UNSTRIPPABLE_HEADERS: [&str; 7] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "cookie",
];

pub(super) fn strip_headers(c: &mut Collector<'_>, main: &RawFile) -> Vec<String> {
    let mut out = Vec::new();
    for (i, name) in main.strip_headers.iter().enumerate() {
        let lower = name.to_ascii_lowercase();
        if http::HeaderName::from_bytes(lower.as_bytes()).is_err() {
            c.err(
                0,
                format!("strip_headers[{i}]"),
                format!("invalid header name {name:?} (expected e.g. X-Client-Address)"),
            );
        } else if UNSTRIPPABLE_HEADERS.contains(&lower.as_str()) {
            c.err(
                0,
                format!("strip_headers[{i}]"),
                format!("{name:?} cannot be stripped (requests need it)"),
            );
        } else {
            out.push(lower);
        }
    }
    out
}
