//! The validated configuration the rest of flowgate sees: parsed addresses, durations, resolved
//! paths and references. Built only by `validate/`; nothing here touches the disk.

use ipnet::IpNet;
use regex::Regex;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use super::flow_model::*;
pub use super::policy_model::*;
pub use super::stage_model::*;
pub use super::values::database::{PostgresDatabase, UserDatabase};

/// Default session cookie name.
pub const DEFAULT_COOKIE_NAME: &str = "flowgate_session";
/// Default absolute session lifetime: 12 hours.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Default idle timeout: 1 hour without a request ends a session.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Default bound on the number of logged-in sessions kept in memory (~220 bytes each).
pub const DEFAULT_MAX_SESSIONS: u64 = 1_000_000;
/// Default bound on unfinished flows started before login (anonymous sessions), kept apart
/// from logged-in sessions (FLOOD-2); each costs about 1.1 KiB plus its flow state.
pub const DEFAULT_MAX_PENDING_FLOWS: u64 = 100_000;
/// Default lifetime of an unfinished flow (pre-login session): 30 minutes.
pub const DEFAULT_FLOW_TIMEOUT: Duration = Duration::from_secs(1800);
/// Default logout path.
pub const DEFAULT_LOGOUT_PATH: &str = "/logout";
/// Default upstream connect timeout: 5 seconds.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default upstream read timeout: 60 seconds.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Default largest form or JSON body accepted by the flow executor, in bytes (64 KiB).
pub const DEFAULT_MAX_FORM_BYTES: usize = 64 * 1024;
/// Default argon2id memory cost in KiB (OWASP: 19 MiB).
pub const DEFAULT_ARGON2_MEMORY_KIB: u32 = 19_456;
/// Default argon2id iterations (OWASP: 2).
pub const DEFAULT_ARGON2_ITERATIONS: u32 = 2;
/// Default argon2id parallelism (OWASP: 1).
pub const DEFAULT_ARGON2_PARALLELISM: u32 = 1;
/// Default `path_prefix` of an app.
pub const DEFAULT_PATH_PREFIX: &str = "/";
/// Default `ui.title`.
pub const DEFAULT_UI_TITLE: &str = "flowgate";
/// Default `data_dir`, relative to the config file.
pub const DEFAULT_DATA_DIR: &str = "data";
/// Default `groups_separator` of an identity header set.
pub const DEFAULT_GROUPS_SEPARATOR: &str = ",";
/// The reserved path prefix answered by flowgate itself and never forwarded.
pub const RESERVED_PREFIX: &str = "/.flowgate/";

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Name of the main file (for logs).
    pub source: String,
    /// Listener addresses.
    pub listen: Listen,
    /// Directory for the database and other state.
    pub data_dir: PathBuf,
    /// Session settings.
    pub session: SessionSettings,
    /// User store settings.
    pub identity: IdentitySettings,
    /// Peers whose X-Forwarded-* headers are trusted.
    pub trusted_proxies: Vec<IpNet>,
    /// Extra request headers removed from untrusted peers (lowercase), on top of the built-in
    /// client-address and forwarding families.
    pub strip_headers: Vec<String>,
    /// Logout path and flow.
    pub logout: LogoutSettings,
    /// Flows configured as the default of a designation (used without checking policies).
    pub default_flows: BTreeMap<Designation, String>,
    /// Protected applications, in file order.
    pub apps: Vec<App>,
    /// Flows by slug.
    pub flows: BTreeMap<String, Flow>,
    /// Stages by name.
    pub stages: BTreeMap<String, StageDef>,
    /// Policies by name.
    pub policies: BTreeMap<String, PolicyDef>,
    /// External identity sources by key (`sources:`).
    pub sources: BTreeMap<String, super::SourceDef>,
    /// Request size limits.
    pub limits: Limits,
    /// Mail transport, when any email stage is configured.
    pub mail: Option<MailSettings>,
    /// Page settings.
    pub ui: UiSettings,
    /// Brute-force limits on password and code checks.
    pub rate_limits: super::values::ratelimit::RateLimitSettings,
    /// The sign-on portal for apps outside `session.cookie_domain` (`portal:`).
    pub portal: Option<PortalSettings>,
    /// The admin listener (metrics, health, admin API), when configured.
    pub admin: Option<AdminSettings>,
    /// Where audit events go besides the log.
    pub events: EventSettings,
    /// Directory sources (`sources:` of `type: ldap`), by key.
    pub directories: BTreeMap<String, std::sync::Arc<super::ldap_model::LdapSourceDef>>,
    /// What imported blueprints could not express (shown by `check`, logged at start).
    pub notes: Vec<String>,
    /// The text of every file read (main, included, imported), for export.
    pub texts: Vec<String>,
    /// The files read from disk (main, included, imported blueprints), for reload watching.
    pub paths: Vec<PathBuf>,
}

/// Default `events.max_bytes`: the events file is rotated at 10 MiB.
pub const DEFAULT_EVENTS_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Default `events.keep`: rotated event files kept (`events.jsonl.1` … `.5`).
pub const DEFAULT_EVENTS_KEEP: u32 = 5;
/// Shortest admin token accepted, in bytes.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 16;

/// `admin:`: the admin listener.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// Bind address (never a public listener's).
    pub listen: SocketAddr,
    /// Bearer token of the admin API; `None`: the API answers 403 (metrics and health stay).
    pub token: Option<super::values::secret::Secret>,
}

/// `events:`: the audit events file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSettings {
    /// JSON-lines file; `None`: events go to the log only.
    pub file: Option<PathBuf>,
    /// Size in bytes at which the file is rotated.
    pub max_bytes: u64,
    /// Rotated files kept.
    pub keep: u32,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            file: None,
            max_bytes: DEFAULT_EVENTS_MAX_BYTES,
            keep: DEFAULT_EVENTS_KEEP,
        }
    }
}

/// Listener addresses.
#[derive(Debug, Clone)]
pub struct Listen {
    /// Plain HTTP listener.
    pub http: Option<SocketAddr>,
    /// HTTPS listener.
    pub https: Option<HttpsListen>,
    /// Connection worker threads, each with a single-threaded runtime (`listen.workers`;
    /// default one per CPU; docs/decisions/0015).
    pub workers: usize,
}

/// An HTTPS listener with its certificate and key files.
#[derive(Debug, Clone)]
pub struct HttpsListen {
    /// Bind address.
    pub addr: SocketAddr,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Session settings.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Cookie name (prefixed `__Host-` on HTTPS).
    pub cookie: String,
    /// Absolute lifetime of an authenticated session unless the login stage sets one.
    pub ttl: Duration,
    /// Idle timeout.
    pub idle_timeout: Duration,
    /// Bound on logged-in sessions kept.
    pub max_sessions: u64,
    /// Bound on anonymous sessions (flows started before login), kept in their own cache.
    pub max_pending_flows: u64,
    /// Lifetime of an unfinished flow.
    pub flow_timeout: Duration,
    /// Where sessions, unfinished flows and mailed links are kept (`session.store`).
    pub store: SessionStoreKind,
    /// `session.cookie_domain`: one session cookie (`Domain=`) for every host under it.
    pub cookie_domain: Option<String>,
}

impl SessionSettings {
    /// Whether `host` (canonical, without port) is `cookie_domain` or under it.
    pub fn in_cookie_domain(&self, host: &str) -> bool {
        self.cookie_domain.as_deref().is_some_and(|d| host_within(host, d))
    }
}

/// Whether `host` is `domain` or a subdomain of it (both canonical, without port).
pub fn host_within(host: &str, domain: &str) -> bool {
    host == domain
        || (host.len() > domain.len() + 1
            && host.ends_with(domain)
            && host.as_bytes()[host.len() - domain.len() - 1] == b'.')
}

/// `portal:`: the host that runs the sign-on for apps outside `session.cookie_domain`
/// (docs/decisions/0013-sign-on-portal-handshake.md).
#[derive(Debug, Clone)]
pub struct PortalSettings {
    /// The portal's host name (canonical, without port).
    pub host: String,
    /// The port named in `portal.host`, if any; else the request's port is kept.
    pub port: Option<u16>,
    /// App hosts that sign in through the portal (every app host outside the cookie domain).
    pub app_hosts: std::collections::BTreeSet<String>,
}

/// Default `session.redis.key_prefix`.
pub const DEFAULT_REDIS_KEY_PREFIX: &str = "flowgate:";

/// `session.store` (docs/decisions/0010).
#[derive(Clone, PartialEq, Eq)]
pub enum SessionStoreKind {
    /// moka in front of the embedded SQLite file `<data_dir>/sessions.db` (default).
    Local,
    /// moka as a near cache in front of Redis or Valkey.
    Redis {
        /// `redis://` or `rediss://` URL, possibly with a password (never logged).
        url: String,
        /// Prefix of every key and of the channel.
        key_prefix: String,
    },
}

impl std::fmt::Debug for SessionStoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local => f.write_str("Local"),
            Self::Redis { key_prefix, .. } => write!(f, "Redis {{ url: <redacted>, key_prefix: {key_prefix:?} }}"),
        }
    }
}

/// User store settings.
#[derive(Debug, Clone)]
pub struct IdentitySettings {
    /// Where users are stored: an SQLite file or a PostgreSQL database.
    pub database: UserDatabase,
    /// Users seeded at start.
    pub seed: Option<PathBuf>,
    /// argon2id parameters.
    pub argon2: Argon2Settings,
    /// Usernames nobody may choose for themselves (nor anything that looks like one).
    pub reserved_usernames: Vec<String>,
}

/// Usernames refused at sign-up by default (`identity.reserved_usernames`): names an app or a
/// reader may take for an administrator, the system or the mail roles of RFC 2142.
pub const DEFAULT_RESERVED_USERNAMES: &[&str] = &[
    "admin",
    "administrator",
    "akadmin",
    "root",
    "system",
    "sysadmin",
    "superuser",
    "operator",
    "support",
    "security",
    "staff",
    "moderator",
    "owner",
    "flowgate",
    "authentik",
    "postmaster",
    "hostmaster",
    "webmaster",
    "abuse",
    "noc",
    "anonymous",
    "nobody",
    "null",
    "daemon",
];

/// argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Settings {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

/// Logout settings.
#[derive(Debug, Clone)]
pub struct LogoutSettings {
    /// Path that runs the invalidation flow.
    pub path: String,
    /// Invalidation flow slug; `None` chooses per request (first by slug whose policies pass).
    pub flow: Option<String>,
}

/// Request size limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest flow form or JSON body.
    pub max_form_bytes: usize,
    /// Most client connections open at once (per process).
    pub max_connections: usize,
    /// Largest request body forwarded to an app, unless the app sets its own; `None`: no limit.
    pub max_body_bytes: Option<u64>,
    /// Time a client has to send a whole request header, from its first byte (from the accept
    /// for a new connection). Slow senders are disconnected.
    pub header_timeout: Duration,
    /// How long an idle keep-alive connection waits for the next request.
    pub keepalive_timeout: Duration,
    /// How long shutdown waits for requests in flight before closing anyway.
    pub shutdown_timeout: Duration,
}

/// Default bound on open client connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default request header timeout: 10 seconds.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default keep-alive idle timeout: 60 seconds.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default drain time at shutdown: 30 seconds.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// A protected application.
#[derive(Debug, Clone)]
pub struct App {
    /// Name, used in titles and headers.
    pub name: String,
    /// Hosts (lowercase, no port); empty matches any host.
    pub hosts: Vec<String>,
    /// Path prefix, always starting with `/`.
    pub path_prefix: String,
    /// Upstream.
    pub upstream: Upstream,
    /// Identity headers to set.
    pub headers: HeaderSet,
    /// Paths (normalised) that skip authentication.
    pub skip_auth: Vec<Regex>,
    /// Access policies checked after login.
    pub policies: Vec<PolicyBinding>,
    /// How access policies combine.
    pub policy_engine_mode: EngineMode,
    /// Flow used to log in; `None` chooses per request (first by slug whose policies pass).
    pub authentication_flow: Option<String>,
    /// The app names its own `authentication_flow` (not inherited from `default_flows`): a
    /// session must have been authenticated through it, or as strongly, or it steps up (STEP-1).
    pub requires_flow: Option<String>,
    /// Upstream connect timeout.
    pub connect_timeout: Duration,
    /// Upstream read timeout.
    pub read_timeout: Duration,
    /// Largest request body forwarded to the app (413 above); `None`: no limit.
    pub max_body_bytes: Option<u64>,
    /// API clients (`basic_auth: true`); `None`: sessions only.
    pub api_clients: Option<ApiClients>,
    /// Signed identity (`jwt:`); `None`: no token.
    pub jwt: Option<std::sync::Arc<super::values::jwt::JwtSettings>>,
}

/// `apps[].basic_auth`: which credentials API clients may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiClients {
    /// The user's own password is accepted besides app passwords
    /// (`basic_auth_user_passwords`).
    pub user_passwords: bool,
}

/// Where an app's traffic goes.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The URL as written.
    pub url: String,
    /// Resolved address.
    pub addr: SocketAddr,
    /// Whether to speak TLS upstream.
    pub tls: bool,
    /// Host name for SNI and the Host header when TLS.
    pub host: String,
}

/// The identity headers set on authenticated requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderSet {
    /// Preset name or `custom`.
    pub preset: String,
    /// Header carrying the username.
    pub user: Option<String>,
    /// Header carrying the email.
    pub email: Option<String>,
    /// Header carrying the groups.
    pub groups: Option<String>,
    /// Header carrying the display name.
    pub name: Option<String>,
    /// Header carrying the stable user id.
    pub uid: Option<String>,
    /// Separator between group names.
    pub groups_separator: String,
    /// Extra fixed headers (authentik meta headers).
    pub meta: bool,
}

/// Mail settings (`mail:`).
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// Transport.
    pub transport: super::values::mail::MailTransport,
    /// Base of links in mail (`https://auth.example.com`); `None`: the request's host when it
    /// is a configured app host or loopback.
    pub public_url: Option<String>,
}

/// Page settings (`ui:`).
#[derive(Debug, Clone, Default)]
pub struct UiSettings {
    /// Brand title (pages, TOTP issuer).
    pub title: String,
    /// Directory of templates overriding the built-in ones.
    pub templates: Option<PathBuf>,
}
