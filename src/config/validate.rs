//! Turns parsed raw files into the validated [`Config`]. Every problem is recorded with its
//! file and field path and turned into a line and column through `locate`; all errors of a
//! load are returned together.

use super::duration::parse_duration;
use super::error::{ConfigError, ConfigErrors};
use super::locate;
use super::model::*;
use super::raw::*;
use super::Source;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Errors are collected here while validating.
pub(crate) struct Collector<'a> {
    pub(crate) sources: &'a [Source],
    pub(crate) errors: Vec<ConfigError>,
}

impl<'a> Collector<'a> {
    /// Records a semantic error at `path` in source `file`.
    pub(crate) fn err(&mut self, file: usize, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        let (name, line, column) = match self.sources.get(file) {
            Some(src) => {
                let pos = locate::locate(&src.text, &locate::parse_path(&path));
                let (l, c) = pos.map(|p| (p.line, p.column)).unwrap_or((1, 1));
                (src.name.clone(), l, c)
            }
            None => ("<config>".to_string(), 0, 0),
        };
        self.errors.push(ConfigError {
            file: name,
            line,
            column,
            path,
            message: message.into(),
        });
    }

    pub(crate) fn duration(
        &mut self,
        file: usize,
        path: String,
        v: &Option<String>,
        default: std::time::Duration,
    ) -> std::time::Duration {
        match v {
            None => default,
            Some(s) => match parse_duration(s) {
                Ok(d) => d,
                Err(e) => {
                    self.err(file, path, e);
                    default
                }
            },
        }
    }

    pub(crate) fn choice<T: Copy>(
        &mut self,
        file: usize,
        path: String,
        v: &Option<String>,
        default: T,
        allowed: &[(&str, T)],
    ) -> T {
        let Some(s) = v else { return default };
        match allowed.iter().find(|(n, _)| n == s) {
            Some((_, t)) => *t,
            None => {
                let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
                self.err(
                    file,
                    path,
                    format!("unknown value {s:?} (expected one of: {})", names.join(", ")),
                );
                default
            }
        }
    }
}

pub(crate) const ENGINE_MODES: &[(&str, EngineMode)] = &[("any", EngineMode::Any), ("all", EngineMode::All)];

/// Where each merged item came from.
pub(crate) struct Parsed {
    pub(crate) files: Vec<RawFile>,
}

/// Validates parsed files (index 0 is the main file) into a [`Config`].
pub(crate) fn validate(sources: &[Source], parsed: Parsed) -> Result<Config, ConfigErrors> {
    let mut c = Collector {
        sources,
        errors: Vec::new(),
    };
    let main = &parsed.files[0];
    let base = sources[0].base_dir.clone();

    for (fi, f) in parsed.files.iter().enumerate().skip(1) {
        let main_only = [
            ("listen", f.listen.is_some()),
            ("data_dir", f.data_dir.is_some()),
            ("session", f.session.is_some()),
            ("identity", f.identity.is_some()),
            ("trusted_proxies", !f.trusted_proxies.is_empty()),
            ("strip_headers", !f.strip_headers.is_empty()),
            ("logout", f.logout.is_some()),
            ("default_flows", f.default_flows.is_some()),
            ("apps", !f.apps.is_empty()),
            ("include", !f.include.is_empty()),
            ("blueprints", !f.blueprints.is_empty()),
            ("limits", f.limits.is_some()),
            ("mail", f.mail.is_some()),
            ("ui", f.ui.is_some()),
            ("rate_limits", f.rate_limits.is_some()),
        ];
        for (key, present) in main_only {
            if present {
                c.err(
                    fi,
                    key,
                    "only the main file may set this (included files hold flows, stages and policies)",
                );
            }
        }
    }

    let listen = listen(&mut c, main, &base);
    let data_dir = main
        .data_dir
        .as_deref()
        .map(|d| base.join(d))
        .unwrap_or_else(|| base.join("data"));
    let session = session(&mut c, main);
    let identity = identity(&mut c, main, &base, &data_dir);
    let trusted_proxies = trusted(&mut c, main);
    let strip_headers = strip_headers(&mut c, main);
    let raw_limits = main.limits.as_ref();
    let header_timeout = c.duration(
        0,
        "limits.header_timeout".into(),
        &raw_limits.and_then(|l| l.header_timeout.clone()),
        DEFAULT_HEADER_TIMEOUT,
    );
    let keepalive_timeout = c.duration(
        0,
        "limits.keepalive_timeout".into(),
        &raw_limits.and_then(|l| l.keepalive_timeout.clone()),
        DEFAULT_KEEPALIVE_TIMEOUT,
    );
    let shutdown_timeout = c.duration(
        0,
        "limits.shutdown_timeout".into(),
        &raw_limits.and_then(|l| l.shutdown_timeout.clone()),
        DEFAULT_SHUTDOWN_TIMEOUT,
    );
    for (key, d) in [
        ("limits.header_timeout", header_timeout),
        ("limits.keepalive_timeout", keepalive_timeout),
    ] {
        if d.is_zero() {
            c.err(0, key, "must be longer than 0s");
        }
    }
    let limits = Limits {
        max_body_bytes: raw_limits.and_then(|l| l.max_body_bytes),
        header_timeout,
        keepalive_timeout,
        shutdown_timeout,
        max_form_bytes: main
            .limits
            .as_ref()
            .and_then(|l| l.max_form_bytes)
            .unwrap_or(DEFAULT_MAX_FORM_BYTES),
        max_connections: main
            .limits
            .as_ref()
            .and_then(|l| l.max_connections)
            .unwrap_or(DEFAULT_MAX_CONNECTIONS),
    };
    if limits.max_connections == 0 {
        c.err(0, "limits.max_connections", "must be at least 1");
    }

    // Merge stages, policies and flows from every file, rejecting duplicates.
    let mut stages = BTreeMap::new();
    let mut policies = BTreeMap::new();
    let mut flow_src: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (fi, f) in parsed.files.iter().enumerate() {
        for (name, raw) in &f.policies {
            if policies.contains_key(name) {
                c.err(
                    fi,
                    format!("policies.{name}"),
                    format!("policy {name:?} is defined twice"),
                );
                continue;
            }
            if let Some(p) = super::validate_flows::policy(&mut c, fi, name, raw) {
                policies.insert(name.clone(), p);
            }
        }
    }
    for (fi, f) in parsed.files.iter().enumerate() {
        for (name, raw) in &f.stages {
            if stages.contains_key(name) {
                c.err(fi, format!("stages.{name}"), format!("stage {name:?} is defined twice"));
                continue;
            }
            if let Some(s) = super::validate_flows::stage(&mut c, fi, name, raw) {
                stages.insert(name.clone(), s);
            }
        }
    }
    super::validate_flows::check_stage_refs(&mut c, &parsed.files, &stages);
    let mut flows = BTreeMap::new();
    for (fi, f) in parsed.files.iter().enumerate() {
        for (i, raw) in f.flows.iter().enumerate() {
            let path = format!("flows[{i}]");
            if let Some(&(ofi, oi)) = flow_src.get(&raw.slug) {
                let other = &sources[ofi].name;
                c.err(
                    fi,
                    format!("{path}.slug"),
                    format!("flow slug {:?} is already used by flows[{oi}] in {other}", raw.slug),
                );
                continue;
            }
            flow_src.insert(raw.slug.clone(), (fi, i));
            if let Some(flow) = super::validate_flows::flow(&mut c, fi, &path, raw, &stages, &policies) {
                flows.insert(flow.slug.clone(), flow);
            }
        }
    }

    let flow_slugs: Vec<String> = flow_src.keys().cloned().collect();
    let mail = super::validate_services::mail(&mut c, main, &base, &data_dir);
    let ui = super::validate_services::ui(&mut c, main, &base);
    let rate_limits = super::validate_services::rate_limits(&mut c, main);
    super::validate_stages::check_refs(&mut c, &parsed.files, &stages, &policies, &flow_slugs, mail.is_some());
    let default_flows = default_flows(&mut c, main, &flows);
    let logout = logout(&mut c, main, &flows, &default_flows);
    let mut apps = Vec::new();
    for (i, raw) in main.apps.iter().enumerate() {
        if let Some(mut app) = super::validate_apps::app(&mut c, i, raw, &flows, &default_flows, &policies) {
            app.max_body_bytes = raw.max_body_bytes.or(limits.max_body_bytes);
            if apps.iter().any(|a: &App| a.name == app.name) {
                c.err(
                    0,
                    format!("apps[{i}].name"),
                    format!("app name {:?} is used twice", app.name),
                );
            }
            apps.push(app);
        }
    }
    for (i, a) in apps.iter().enumerate() {
        for b in apps.iter().take(i) {
            let same_hosts = a.hosts == b.hosts;
            if same_hosts && a.path_prefix == b.path_prefix {
                c.err(
                    0,
                    format!("apps[{i}].path_prefix"),
                    format!(
                        "app {:?} has the same hosts and path prefix as app {:?}",
                        a.name, b.name
                    ),
                );
            }
        }
    }

    if !c.errors.is_empty() {
        return Err(ConfigErrors(c.errors));
    }
    Ok(Config {
        source: sources[0].name.clone(),
        listen,
        data_dir,
        session,
        identity,
        trusted_proxies,
        strip_headers,
        logout,
        default_flows,
        apps,
        flows,
        stages,
        policies,
        limits,
        mail,
        ui,
        rate_limits,
        notes: Vec::new(),
        texts: sources.iter().map(|s| s.text.clone()).collect(),
        paths: sources
            .iter()
            .map(|s| PathBuf::from(s.name.trim_end_matches(" (imported)")))
            .filter(|p| p.is_file())
            .collect(),
    })
}

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

fn listen(c: &mut Collector<'_>, main: &RawFile, base: &Path) -> Listen {
    let Some(l) = &main.listen else {
        return Listen {
            http: "127.0.0.1:8080".parse().ok(),
            https: None,
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
    Listen { http, https }
}

fn session(c: &mut Collector<'_>, main: &RawFile) -> SessionSettings {
    let empty = RawSession {
        cookie: None,
        ttl: None,
        idle_timeout: None,
        max_sessions: None,
        max_pending_flows: None,
        flow_timeout: None,
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
    SessionSettings {
        cookie,
        ttl,
        idle_timeout,
        max_sessions,
        max_pending_flows,
        flow_timeout,
    }
}

fn identity(c: &mut Collector<'_>, main: &RawFile, base: &Path, data_dir: &Path) -> IdentitySettings {
    let raw = main.identity.as_ref();
    let database = match raw.and_then(|i| i.database.as_deref()) {
        None => data_dir.join("flowgate.db"),
        Some(db) => {
            let p = db.strip_prefix("sqlite://").unwrap_or(db);
            if p.is_empty() || p.contains('?') {
                c.err(
                    0,
                    "identity.database",
                    format!("invalid database {db:?} (expected sqlite://PATH or a file path)"),
                );
            }
            base.join(p)
        }
    };
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

fn trusted(c: &mut Collector<'_>, main: &RawFile) -> Vec<ipnet::IpNet> {
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

fn strip_headers(c: &mut Collector<'_>, main: &RawFile) -> Vec<String> {
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

fn default_flows(
    c: &mut Collector<'_>,
    main: &RawFile,
    flows: &BTreeMap<String, Flow>,
) -> BTreeMap<Designation, String> {
    let mut out = BTreeMap::new();
    if let Some(map) = &main.default_flows {
        for (k, slug) in map {
            let path = format!("default_flows.{k}");
            let Some(d) = Designation::parse(k) else {
                let names: Vec<&str> = Designation::ALL.iter().map(|(n, _)| *n).collect();
                c.err(
                    0,
                    path,
                    format!("unknown designation {k:?} (expected one of: {})", names.join(", ")),
                );
                continue;
            };
            match flows.get(slug) {
                None => c.err(
                    0,
                    path,
                    format!("unknown flow {slug:?} (known: {})", known(flows.keys())),
                ),
                Some(f) if f.designation != d => c.err(
                    0,
                    path,
                    format!("flow {slug:?} has designation {}, not {k}", f.designation.as_str()),
                ),
                Some(_) => {
                    out.insert(d, slug.clone());
                }
            }
        }
    }
    // Designations without an explicit default are chosen per request: the first flow of the
    // designation, in slug order, whose policies pass (flow::FlowRegistry::select).
    out
}

fn logout(
    c: &mut Collector<'_>,
    main: &RawFile,
    flows: &BTreeMap<String, Flow>,
    defaults: &BTreeMap<Designation, String>,
) -> LogoutSettings {
    let raw = main.logout.as_ref();
    let path = raw
        .and_then(|l| l.path.clone())
        .unwrap_or_else(|| DEFAULT_LOGOUT_PATH.to_string());
    if !path.starts_with('/') || path.starts_with(RESERVED_PREFIX) || path.contains(['?', '#']) {
        c.err(
            0,
            "logout.path",
            format!("invalid logout path {path:?} (expected an absolute path outside {RESERVED_PREFIX})"),
        );
    }
    let flow = match raw.and_then(|l| l.flow.clone()) {
        Some(slug) => {
            match flows.get(&slug) {
                None => c.err(
                    0,
                    "logout.flow",
                    format!("unknown flow {slug:?} (known: {})", known(flows.keys())),
                ),
                Some(f) if f.designation != Designation::Invalidation => c.err(
                    0,
                    "logout.flow",
                    format!(
                        "flow {slug:?} has designation {}, not invalidation",
                        f.designation.as_str()
                    ),
                ),
                Some(_) => {}
            }
            Some(slug)
        }
        None => {
            let any = flows.values().any(|f| f.designation == Designation::Invalidation);
            if !any && !main.apps.is_empty() {
                c.err(
                    0,
                    "logout",
                    "no flow with designation invalidation is configured (include flows/default-invalidation.yaml)",
                );
            }
            defaults.get(&Designation::Invalidation).cloned()
        }
    };
    LogoutSettings { path, flow }
}

pub(crate) fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(|s| s.as_str()).collect();
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}
