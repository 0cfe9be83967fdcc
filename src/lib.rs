//! flowgate: a reverse-proxy authentication gateway that runs authentik-style flows.
//!
//! Wiring only: [`Gateway::start`] builds state from a validated [`Config`], opens the user
//! store, binds the listeners and runs pingora's HTTP proxy on them from our own accept loop
//! (so listeners can bind port 0 and tests run the same server in-process).
#![forbid(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms)]

pub mod admin;
pub mod blueprint;
pub mod config;
pub mod demo;
pub mod error;
pub mod expression;
pub mod flow;
pub mod http;
pub mod identity;
pub mod input_limits;
mod listen;
pub mod loader;
pub mod outbound;
pub mod proxy;
mod reload;
pub mod routing;
pub mod session;
pub mod telemetry;
pub mod tls;

pub use config::Config;
pub use error::GatewayError;
pub use reload::{ConfigFingerprint, ReloadError};

use flow::executor::Executor;
use flow::FlowRegistry;
use identity::{HashParams, PasswordHasher, UserStore};
use pingora::server::configuration::ServerConf;
use session::{SessionStore, SharedClock, SystemClock};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Whether a log record may be written. pingora's TRACE records print whole request headers
/// (cookies, `Authorization`), and so do pingora-proxy's DEBUG ones (the header sent upstream,
/// with the identity JWT and a client's `Authorization`), so they are dropped whatever
/// `RUST_LOG` asks for.
pub fn log_record_allowed(meta: &tracing::Metadata<'_>) -> bool {
    let target = meta.target();
    let level = *meta.level();
    !((level == tracing::Level::TRACE && target.starts_with("pingora"))
        || (level == tracing::Level::DEBUG && target.starts_with("pingora_proxy")))
}

/// Options that tests change; production uses the defaults.
#[derive(Clone)]
pub struct StartOptions {
    /// The clock sessions read.
    pub clock: SharedClock,
}

impl Default for StartOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
        }
    }
}

/// The proxy application the listeners serve.
type ProxyApp = pingora::proxy::HttpProxy<proxy::GatewayProxy>;

/// The gateway.
pub struct Gateway;

/// A running gateway.
pub struct Running {
    /// Bound HTTP address.
    pub http_addr: Option<SocketAddr>,
    /// Bound HTTPS address.
    pub https_addr: Option<SocketAddr>,
    /// The user store.
    pub users: UserStore,
    /// The session store.
    pub sessions: SessionStore,
    /// Bound admin listener address (`admin.listen`).
    pub admin_addr: Option<SocketAddr>,
    /// Metrics and audit events.
    pub telemetry: telemetry::Telemetry,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The proxy of each worker (ADR 0022).
    apps: Arc<[Arc<ProxyApp>]>,
    /// One permit per open connection; all returned means every connection is closed.
    slots: Arc<listen::Slots>,
    /// The threads connections run on (`listen.workers`).
    workers: Arc<listen::workers::Workers>,
    max_connections: u32,
    shutdown_timeout: std::time::Duration,
    current: Arc<arc_swap::ArcSwap<proxy::ProxyState>>,
    shared: Shared,
    running_config: std::sync::Mutex<Config>,
}

impl Running {
    /// Blocks until every mail accepted so far was sent (or failed), or `timeout` passed; true
    /// when nothing is left. Mail leaves off the request path, so tests and benches that read
    /// what was sent wait here first.
    pub fn wait_mail_idle(&self, timeout: std::time::Duration) -> bool {
        self.shared.mail_queue.wait_idle(timeout)
    }

    /// Stops accepting, then drains: idle keep-alive connections close, requests in flight
    /// finish (their connections are not kept alive), for at most `limits.shutdown_timeout`;
    /// connections still open then are closed.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
        use pingora::apps::ServerApp;
        for app in self.apps.iter() {
            app.cleanup().await;
        }
        let all = self.max_connections;
        if tokio::time::timeout(self.shutdown_timeout, self.slots.permits.acquire_many(all))
            .await
            .is_err()
        {
            let open = self.open_connections();
            tracing::warn!(open, "shutdown timeout reached with requests in flight; closing them");
            self.slots.abort.send_replace(true);
            // Dropping a connection's future closes its socket; give the tasks a moment to run.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), self.slots.permits.acquire_many(all)).await;
        }
        self.workers.stop();
        self.sessions.close();
        self.users.close().await;
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.slots.open.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Gateway {
    /// Starts the gateway with default options.
    pub async fn start(config: Config) -> Result<Running, GatewayError> {
        Self::start_with(config, StartOptions::default()).await
    }

    /// Starts the gateway.
    pub async fn start_with(config: Config, opts: StartOptions) -> Result<Running, GatewayError> {
        let hasher = PasswordHasher::new(HashParams::from(config.identity.argon2));
        let users = UserStore::connect(&config.identity.database, hasher).await?;
        if let Some(seed) = &config.identity.seed {
            let (file, base) = identity::seed::SeedFile::load(seed).map_err(|e| GatewayError::Seed(e.to_string()))?;
            let report = users.seed(&file, &base).await?;
            tracing::info!(
                created = report.created.len(),
                updated = report.updated.len(),
                kept_passwords = report.password_kept.len(),
                "users seeded"
            );
        }
        for n in &config.notes {
            tracing::warn!("{n}");
        }
        let telemetry = {
            let clock = opts.clock.clone();
            let ev = &config.events;
            let metrics = Arc::new(telemetry::Metrics::new());
            let audit = telemetry::Audit::new(
                ev.file.as_deref(),
                ev.max_bytes,
                ev.keep,
                Arc::new(move || session::Clock::now_ms(&*clock)),
            )
            .map_err(|e| {
                let file = ev.file.as_deref().unwrap_or(std::path::Path::new("")).display();
                GatewayError::Events(format!("{file}: {e}"))
            })?
            .counted_in(metrics.clone());
            telemetry::Telemetry { metrics, audit }
        };
        let s = &config.session;
        let backend: Arc<dyn session::Backend> = Arc::new(session::metered::Metered::new(
            session::revoke::open_backend(&config)
                .await
                .map_err(|e| GatewayError::SessionStore(e.to_string()))?,
            telemetry.metrics.clone(),
        ));
        let sessions = SessionStore::with_backend(
            s.max_sessions,
            s.max_pending_flows,
            s.idle_timeout.max(s.flow_timeout),
            opts.clock.clone(),
            backend,
        );
        sessions.set_user_source(Arc::new(LiveUsers(users.clone())));
        let counters = match &config.session.store {
            config::SessionStoreKind::Redis { url, key_prefix } => Some(
                session::counters::RedisCounters::connect(url, key_prefix)
                    .await
                    .map_err(|e| GatewayError::SessionStore(e.to_string()))?,
            ),
            config::SessionStoreKind::Local => None,
        };
        let shared = Shared {
            users: users.clone(),
            sessions: sessions.clone(),
            reputation: Arc::new(flow::reputation::ReputationStore::with_store(
                opts.clock.clone(),
                counters.clone(),
            )),
            tokens: flow::services::FlowTokens::with_store(
                100_000,
                std::time::Duration::from_secs(7 * 86_400),
                sessions.clone(),
            ),
            clock: opts.clock.clone(),
            limits: Arc::new(std::sync::Mutex::new(None)),
            counters,
            mail_queue: outbound::mail_queue::MailQueue::start()
                .map_err(|e| GatewayError::Mail(format!("mail thread: {e}")))?,
            telemetry: telemetry.clone(),
            api: Arc::new(proxy::ApiAuth::default()),
        };
        let state = build_state(&config, &shared)?;
        let current = Arc::new(arc_swap::ArcSwap::from_pointee(state));
        let conf = Arc::new(ServerConf::default());
        let app = Arc::new(pingora::proxy::http_proxy(
            &conf,
            proxy::GatewayProxy {
                current: current.clone(),
            },
        ));
        let (tx, rx) = watch::channel(false);
        let max_connections = u32::try_from(config.limits.max_connections).unwrap_or(u32::MAX);
        let slots = Arc::new(listen::Slots {
            permits: tokio::sync::Semaphore::new(max_connections as usize),
            open: Default::default(),
            abort: tokio::sync::watch::channel(false).0,
        });
        let deadlines = listen::Deadlines {
            header: config.limits.header_timeout,
            idle: config.limits.keepalive_timeout,
        };
        let workers = Arc::new(listen::workers::Workers::start(config.listen.workers).map_err(GatewayError::Workers)?);
        // One proxy per worker, each with its own upstream pool (ADR 0022); the first is `app`.
        let apps: Arc<[Arc<ProxyApp>]> = std::iter::once(app.clone())
            .chain((1..workers.len()).map(|_| {
                Arc::new(pingora::proxy::http_proxy(
                    &conf,
                    proxy::GatewayProxy {
                        current: current.clone(),
                    },
                ))
            }))
            .collect();
        let mut tasks = Vec::new();
        let mut http_addr = None;
        let mut https_addr = None;
        if let Some(addr) = config.listen.http {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|source| GatewayError::Bind { addr, source })?;
            http_addr = l.local_addr().ok();
            tasks.push(tokio::spawn(listen::accept_loop(
                l,
                apps.clone(),
                None,
                rx.clone(),
                slots.clone(),
                deadlines,
                workers.clone(),
            )));
        }
        if let Some(h) = &config.listen.https {
            let tls_cfg = tls::server_config(&h.cert, &h.key)?;
            let acceptor = Arc::new(pingora::listeners::tls::Acceptor::from_server_config(tls_cfg));
            let l = TcpListener::bind(h.addr)
                .await
                .map_err(|source| GatewayError::Bind { addr: h.addr, source })?;
            https_addr = l.local_addr().ok();
            tasks.push(tokio::spawn(listen::accept_loop(
                l,
                apps.clone(),
                Some(acceptor),
                rx.clone(),
                slots.clone(),
                deadlines,
                workers.clone(),
            )));
        }
        let admin_addr = match &config.admin {
            Some(a) => {
                let l = TcpListener::bind(a.listen)
                    .await
                    .map_err(|source| GatewayError::Bind { addr: a.listen, source })?;
                let addr = l.local_addr().ok();
                let admin = Arc::new(admin::Admin {
                    token: a.token.clone(),
                    telemetry: telemetry.clone(),
                    users: users.clone(),
                    sessions: sessions.clone(),
                    clock: opts.clock.clone(),
                    slots: slots.clone(),
                    api: shared.api.clone(),
                });
                tasks.push(tokio::spawn(admin::serve(l, admin, rx.clone())));
                addr
            }
            None => None,
        };
        tracing::info!(version = env!("CARGO_PKG_VERSION"), config = %config.source, http = ?http_addr, https = ?https_addr, admin = ?admin_addr, "flowgate started");
        Ok(Running {
            http_addr,
            https_addr,
            users,
            sessions,
            admin_addr,
            telemetry,
            shutdown: tx,
            tasks,
            apps,
            slots,
            workers,
            max_connections,
            shutdown_timeout: config.limits.shutdown_timeout,
            current,
            shared,
            running_config: std::sync::Mutex::new(config),
        })
    }
}

/// Users as the session store resolves them per request: the current identity, `None` when
/// the user is gone or inactive.
struct LiveUsers(UserStore);

#[async_trait::async_trait]
impl session::UserSource for LiveUsers {
    async fn identity(&self, user_id: i64) -> Result<Option<session::Identity>, String> {
        match self.0.get_by_id(user_id).await {
            Ok(Some(u)) if u.is_active => Ok(Some(flow::executor::identity_of(&u))),
            Ok(_) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// What survives a reload: stores and the clock.
#[derive(Clone)]
struct Shared {
    users: UserStore,
    sessions: SessionStore,
    reputation: Arc<flow::reputation::ReputationStore>,
    tokens: flow::services::FlowTokens,
    clock: SharedClock,
    /// The limiters with their settings: kept across reloads that leave the settings alone, so a
    /// reload does not hand attackers a fresh budget.
    limits: Arc<std::sync::Mutex<Option<LimitsSlot>>>,
    /// Where the limiters and reputation keep their state with `session.store: redis`.
    counters: Option<session::counters::RedisCounters>,
    /// Mail leaves from here, off the request path.
    mail_queue: outbound::mail_queue::MailQueue,
    /// Metrics and audit events.
    telemetry: telemetry::Telemetry,
    /// API-client checks and their cache (emptied when an app password is revoked).
    api: Arc<proxy::ApiAuth>,
}

/// Rate-limit settings with the limiters built from them.
type LimitsSlot = (flow::ratelimit::RateLimitSettings, Arc<flow::ratelimit::RateLimits>);

impl Shared {
    fn limits_for(&self, s: &flow::ratelimit::RateLimitSettings) -> Arc<flow::ratelimit::RateLimits> {
        let mut slot = match self.limits.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        match slot.as_ref() {
            Some((old, l)) if old == s => l.clone(),
            _ => {
                let l = Arc::new(flow::ratelimit::RateLimits::with_store(
                    s,
                    &self.clock,
                    self.counters.as_ref(),
                ));
                *slot = Some((*s, l.clone()));
                l
            }
        }
    }
}

/// Builds everything that depends on the config (routes, flows, pages, mail, limits).
fn build_state(config: &Config, shared: &Shared) -> Result<proxy::ProxyState, GatewayError> {
    let registry = Arc::new(FlowRegistry::from_config(config));
    let templates_dir = config.ui.templates.as_deref();
    let mailer = match &config.mail {
        Some(m) => Some(outbound::mail::Mailer::new(&m.transport).map_err(|e| GatewayError::Mail(e.to_string()))?),
        None => None,
    };
    let services = Arc::new(flow::services::Services {
        sessions: shared.sessions.clone(),
        mailer,
        mail_queue: shared.mail_queue.clone(),
        public_url: config.mail.as_ref().and_then(|m| m.public_url.clone()),
        mail_templates: flow::services::MailTemplates::load(templates_dir).map_err(GatewayError::Templates)?,
        tokens: shared.tokens.clone(),
        title: config.ui.title.clone(),
        limits: shared.limits_for(&config.rate_limits),
        reserved_usernames: identity::names::ReservedNames::new(&config.identity.reserved_usernames),
        telemetry: shared.telemetry.clone(),
        sources: Arc::new(identity::sources::clients(&config.sources)),
        directories: Arc::new(
            flow::directories::Directories::from_config(&config.directories).map_err(GatewayError::Directory)?,
        ),
    });
    let executor = Executor {
        reg: registry,
        sessions: shared.sessions.clone(),
        users: shared.users.clone(),
        settings: config.session.clone(),
        reputation: shared.reputation.clone(),
        services,
    };
    let router = routing::Router::new(&config.apps);
    let pages = http::Pages::new(templates_dir).map_err(GatewayError::Templates)?;
    let ui = Arc::new(http::Ui {
        executor,
        sessions: shared.sessions.clone(),
        pages,
        cookie: config.session.cookie.clone(),
        logout_path: config.logout.path.clone(),
        logout_flow: config.logout.flow.clone(),
        router: router.clone(),
        users: shared.users.clone(),
        cookie_domain: config.session.cookie_domain.clone(),
        portal: config.portal.clone(),
    });
    Ok(proxy::ProxyState {
        router,
        sessions: shared.sessions.clone(),
        ui,
        strip: proxy::headers::StripSet::new(&config.apps, &config.strip_headers),
        trusted_proxies: config.trusted_proxies.clone(),
        cookie: config.session.cookie.clone(),
        logout_path: config.logout.path.clone(),
        max_form_bytes: config.limits.max_form_bytes,
        policies: config.policies.clone(),
        cookie_domain: config.session.cookie_domain.is_some(),
        portal_hosts: config.portal.as_ref().map(|p| p.app_hosts.clone()).unwrap_or_default(),
        app_metrics: config
            .apps
            .iter()
            .map(|a| (a.name.clone(), shared.telemetry.metrics.app(&a.name)))
            .collect(),
        no_app_metrics: shared.telemetry.metrics.app(telemetry::metrics::NO_APP),
        jwt: proxy::jwt::Tokens::default(),
        jwks: proxy::jwt::jwks_body(&config.apps),
        api: shared.api.clone(),
    })
}
