//! The pingora `ProxyHttp` implementation: the request lifecycle of docs/design.md §1 in pingora's
//! phases. It asks `session` for the identity and `flow` for policy decisions, hands the
//! reserved prefix to `http`, and does the header work itself (strip, then set). What it refuses
//! it names as an [`http::respond::Refusal`](crate::http::respond::Refusal); `http::respond`
//! renders every such answer (page, JSON or redirect).
//!
//! ```text
//! request_filter ─ request id + span (request_id) ─ size, framing, host checks ─▶ 414/431/400
//!                 ├─ /.flowgate/auth/{nginx,traefik} ─▶ forward_auth (answered here, never forwarded)
//!                 ├─ reserved prefix / logout ─▶ http::Ui (answered here, never forwarded)
//!                 └─ decide::decide (shared with forward_auth):
//!                    ├─ no app ─▶ 404 page
//!                    ├─ skip-auth (unambiguous path) ─▶ forward, no identity
//!                    ├─ session ─▶ app policies ─▶ forward with identity | 403 page
//!                    └─ none ─▶ browser 302 to the flow | API 401 JSON
//! upstream_peer ─▶ the app's upstream with its timeouts
//! upstream_request_filter ─▶ strip identity spellings + our cookie, set identity + X-Forwarded-* + X-Request-Id
//! fail_to_proxy ─▶ 502 / 504 pages
//! ```
//!
//! Every phase runs inside the request's span ([`request_id`]), so the flow executor, the
//! stages and the outbound calls they make log with the request's id.

mod api_clients;
mod checks;
mod decide;
mod forward_auth;
mod forwarding;
pub mod headers;
pub mod jwt;
pub mod path;
pub mod request_id;
mod ui;
mod write;

use crate::config::{App, PolicyDef, RESERVED_PREFIX};
use crate::http::respond::{self, Client, Refusal, TooLarge};
use crate::http::Ui;
use crate::routing::Router;
use crate::session::{self, Identity, SessionStore};
use crate::telemetry::{AppMetrics, RouteKind};
pub use api_clients::ApiAuth;
use async_trait::async_trait;
use bytes::Bytes;
pub use checks::{
    effective_client_ip, forwarded_https, framing_problem, raw_has_content_length, MAX_HEADER_BYTES, MAX_URI_BYTES,
};
use checks::{request_host, size_problem, BOTH_LENGTHS};
use decide::Verdict;
use headers::StripSet;
use ipnet::IpNet;
use pingora::http::RequestHeader;
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::proxy::FailToProxy;
use pingora::{Error, ErrorType, Result};
use request_id::Route;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use tracing::Instrument;

/// Everything the proxy path needs, built once from config.
pub struct ProxyState {
    /// App routing.
    pub router: Router,
    /// Sessions.
    pub sessions: SessionStore,
    /// UI for the reserved prefix.
    pub ui: Arc<Ui>,
    /// Identity header spellings to strip.
    pub strip: StripSet,
    /// Peers whose X-Forwarded-* are trusted.
    pub trusted_proxies: Vec<IpNet>,
    /// Base cookie name.
    pub cookie: String,
    /// Logout path.
    pub logout_path: String,
    /// Largest UI body.
    pub max_form_bytes: usize,
    /// Policies, for app access bindings.
    pub policies: BTreeMap<String, PolicyDef>,
    /// Whether `session.cookie_domain` is set (the HTTPS cookie name is `__Secure-` then).
    pub cookie_domain: bool,
    /// App hosts that sign in through the portal (`portal:`); empty without one.
    pub portal_hosts: std::collections::BTreeSet<String>,
    /// Request metrics of each app, by name (resolved when the config is built).
    pub app_metrics: std::collections::HashMap<String, Arc<AppMetrics>>,
    /// Request metrics of requests no app answered.
    pub no_app_metrics: Arc<AppMetrics>,
    /// Signed identity tokens (`apps[].jwt`), cached.
    pub jwt: jwt::Tokens,
    /// The body of `/.flowgate/jwks.json`.
    pub jwks: Bytes,
    /// API-client checks (`basic_auth`) and their cache, kept across reloads.
    pub api: Arc<api_clients::ApiAuth>,
}

/// The pingora proxy. The state is swapped whole on reload; each request takes the snapshot
/// current when it starts and keeps it to the end.
pub struct GatewayProxy {
    /// Shared state.
    pub current: Arc<arc_swap::ArcSwap<ProxyState>>,
}

/// Per-request state.
pub struct RequestCtx {
    /// The config snapshot this request runs on.
    state: Arc<ProxyState>,
    app: Option<Arc<App>>,
    identity: Option<Arc<Identity>>,
    https: bool,
    /// The client as policies and limits see it (see [`effective_client_ip`]).
    client_ip: Option<IpAddr>,
    /// The socket peer.
    peer_ip: Option<IpAddr>,
    /// Whether the socket peer is one of `trusted_proxies`.
    peer_trusted: bool,
    /// The canonical host (`routing::canonical_host`) of `:authority`, an absolute-form target
    /// or `Host`; `None` when the request named none (HTTP/1.0).
    host: Option<String>,
    /// Request body bytes forwarded so far (for `max_body_bytes`).
    body_bytes: u64,
    /// How the proxy's refusals are answered: an app's client (browser or not) or a
    /// forward-auth endpoint. Requests for the login UI that the proxy refuses before the UI
    /// sees them (a form too large) are answered as an app's.
    client: Client,
    /// The request's id ([`request_id`]), sent to the app as `X-Request-Id`.
    request_id: String,
    /// The request's span, entered in every phase.
    span: tracing::Span,
    /// Which part of the gateway answers (metrics label).
    route: RouteKind,
    /// When the request went to the app (upstream latency).
    upstream_sent: Option<std::time::Instant>,
    /// The metrics of the request's app, looked up once when the app is chosen.
    metrics: Option<Arc<AppMetrics>>,
    /// The identity came from an API client's `Authorization` (not forwarded to the app).
    api_client: bool,
}

// === impl RequestCtx ===

impl RequestCtx {
    fn set_app(&mut self, app: Arc<App>) {
        self.span.record("app", app.name.as_str());
        if cfg!(not(feature = "bench-no-request-metrics")) {
            self.metrics = self.state.app_metrics.get(app.name.as_str()).cloned();
        }
        self.app = Some(app);
    }

    fn set_user(&mut self, who: Arc<Identity>) {
        self.span.record("user", who.username.as_str());
        self.identity = Some(who);
    }
}

/// The refusal of an API client of `app`.
fn api_refusal(app: &App, why: decide::ApiRefusal) -> Refusal {
    match why {
        decide::ApiRefusal::Unauthorized => Refusal::ApiUnauthorized(app.name.clone()),
        decide::ApiRefusal::Limited(secs) => Refusal::ApiRateLimited(secs),
        decide::ApiRefusal::Unavailable => Refusal::Unavailable,
    }
}

/// The metrics of the request's app (or of no app).
fn app_metrics(ctx: &RequestCtx) -> &AppMetrics {
    ctx.metrics.as_deref().unwrap_or(&ctx.state.no_app_metrics)
}

fn is_https(session: &Session) -> bool {
    session.digest().and_then(|d| d.ssl_digest.as_ref()).is_some()
}

fn client_ip(session: &Session) -> Option<IpAddr> {
    session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip())
}

/// Answers `refusal` (rendered by [`respond::render`] for `ctx.client`); the request ends.
async fn refuse(session: &mut Session, ctx: &RequestCtx, refusal: Refusal) -> Result<()> {
    write::response(session, respond::render(&ctx.state.ui.pages, ctx.client, &refusal)).await
}

// === impl GatewayProxy ===

impl GatewayProxy {
    /// A login for `app`, back to this request's path and query afterwards.
    async fn login(
        state: &ProxyState,
        session: &Session,
        app: &App,
        client_ip: Option<IpAddr>,
        host: Option<&str>,
    ) -> Refusal {
        let h = session.req_header();
        let original = match h.uri.query() {
            Some(q) => format!("{}?{q}", h.uri.path()),
            None => h.uri.path().to_string(),
        };
        match decide::login_url(state, app, client_ip, &original, host).await {
            Some(url) => Refusal::LoginRequired(url),
            None => Refusal::NoLoginFlow,
        }
    }

    /// `proxy_upstream_filter`: a body announced larger than the app's `max_body_bytes` is
    /// refused before anything is sent upstream.
    async fn body_limit(session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let limit = ctx.app.as_ref().and_then(|a| a.max_body_bytes);
        let announced = checks::announced_length(&session.req_header().headers);
        match (limit, announced) {
            (Some(limit), Some(len)) if len > limit => {
                session.set_keepalive(None);
                refuse(session, ctx, Refusal::TooLarge(TooLarge::Body)).await?;
                Ok(false)
            }
            _ => Ok(true),
        }
    }

    /// `request_filter` inside the request's span: the checks, then the UI, forward auth or
    /// the access decision.
    async fn filter(session: &mut Session, ctx: &mut RequestCtx, route: Route) -> Result<bool> {
        ctx.https = is_https(session) || forwarded_https(&session.req_header().headers, ctx.peer_trusted);
        let xff: Vec<&str> = session
            .req_header()
            .headers
            .get_all("x-forwarded-for")
            .iter()
            // A line that is not visible ASCII is garbage: it must stop the walk, not vanish.
            .map(|v| v.to_str().unwrap_or("invalid"))
            .collect();
        ctx.client_ip = effective_client_ip(ctx.peer_ip, &xff, &ctx.state.trusted_proxies);
        if let Some(kind) = size_problem(session.req_header()) {
            let refusal = Refusal::TooLarge(kind);
            tracing::warn!(status = refusal.status(), "oversized request refused");
            session.set_keepalive(None);
            refuse(session, ctx, refusal).await?;
            return Ok(true);
        }
        let headers = &session.req_header().headers;
        let dropped_length = headers.contains_key("transfer-encoding")
            && raw_has_content_length(&session.downstream_session.to_h1_raw());
        let framing = if dropped_length {
            Some(BOTH_LENGTHS)
        } else {
            framing_problem(headers)
        };
        if let Some(why) = framing {
            tracing::warn!(reason = why, "ambiguous request framing refused");
            session.set_keepalive(None);
            refuse(session, ctx, Refusal::BadRequest(why)).await?;
            return Ok(true);
        }
        match request_host(session.req_header()) {
            Ok(host) => ctx.host = host,
            Err(()) => {
                tracing::debug!("request with an invalid host refused");
                refuse(session, ctx, Refusal::BadHost).await?;
                return Ok(true);
            }
        }
        match route {
            Route::ForwardAuth(kind) => {
                tracing::debug!(decision = "forward_auth", "proxy decision");
                return forward_auth::serve(session, ctx, kind).await;
            }
            Route::Ui => {
                tracing::debug!(decision = "ui", "proxy decision");
                return ui::serve(session, ctx).await;
            }
            Route::App => {}
        }
        let verdict = {
            let h = session.req_header();
            let facts = decide::Facts {
                host: ctx.host.as_deref(),
                raw_path: h.uri.path(),
                method: h.method.as_str(),
                headers: &h.headers,
                https: ctx.https,
                client_ip: ctx.client_ip,
            };
            decide::decide(&ctx.state, &facts).await
        };
        let decision = verdict.label();
        let refusal = match verdict {
            Verdict::Anonymous(app) => {
                ctx.set_app(app);
                None
            }
            Verdict::Allow(app, who) => {
                ctx.set_app(app);
                ctx.set_user(who);
                None
            }
            Verdict::BadPath => Some(Refusal::BadPath),
            Verdict::NoApp => Some(Refusal::NoApp),
            // An app that takes API clients answers a non-browser 401 with its challenge.
            Verdict::Login(app) if app.api_clients.is_some() && ctx.client == (Client::App { browser: false }) => {
                let r = api_refusal(&app, decide::ApiRefusal::Unauthorized);
                ctx.set_app(app);
                Some(r)
            }
            Verdict::Login(app) => {
                let r = Self::login(&ctx.state, session, &app, ctx.client_ip, ctx.host.as_deref()).await;
                ctx.set_app(app);
                Some(r)
            }
            Verdict::Unavailable(app) => {
                ctx.set_app(app);
                Some(Refusal::Unavailable)
            }
            Verdict::Deny(app, who, messages) => {
                ctx.set_app(app);
                // Named on the span only: a denied request has no identity to forward.
                ctx.span.record("user", who.username.as_str());
                Some(Refusal::Denied(messages))
            }
            Verdict::ApiAllow(app, who) => {
                ctx.set_app(app);
                ctx.set_user(who);
                ctx.api_client = true;
                None
            }
            Verdict::ApiRefused(app, why) => {
                let r = api_refusal(&app, why);
                ctx.set_app(app);
                Some(r)
            }
        };
        tracing::debug!(decision, "proxy decision");
        match refusal {
            None => Ok(false),
            Some(r) => {
                refuse(session, ctx, r).await?;
                Ok(true)
            }
        }
    }
}

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            state: self.current.load_full(),
            app: None,
            identity: None,
            https: false,
            client_ip: None,
            peer_ip: None,
            peer_trusted: false,
            host: None,
            body_bytes: 0,
            client: Client::App { browser: false },
            request_id: String::new(),
            span: tracing::Span::none(),
            route: RouteKind::App,
            upstream_sent: None,
            metrics: None,
            api_client: false,
        }
    }

    /// Gives the request its id and span (see [`request_id`]), then runs the checks and the
    /// decision inside the span.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        crate::listen::header_done(session);
        ctx.peer_ip = client_ip(session);
        ctx.peer_trusted = ctx
            .peer_ip
            .is_some_and(|ip| checks::is_trusted_peer(ip, &ctx.state.trusted_proxies));
        let h = session.req_header();
        ctx.request_id = request_id::choose(&h.headers, ctx.peer_trusted);
        let raw_path = h.uri.path();
        let route = match forward_auth::kind_of(raw_path) {
            Some(kind) => Route::ForwardAuth(kind),
            None if raw_path.starts_with(RESERVED_PREFIX) || raw_path == ctx.state.logout_path => Route::Ui,
            None => Route::App,
        };
        let browser = h
            .headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        ctx.client = Client::App {
            browser: browser && !h.headers.contains_key("upgrade"),
        };
        ctx.route = match route {
            Route::App => RouteKind::App,
            Route::Ui => RouteKind::Ui,
            Route::ForwardAuth(_) => RouteKind::ForwardAuth,
        };
        ctx.span = request_id::span(&ctx.request_id, route);
        let span = ctx.span.clone();
        Self::filter(session, ctx, route).instrument(span).await
    }

    /// A body announced larger than the app's `max_body_bytes` is refused before anything is
    /// sent upstream.
    async fn proxy_upstream_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let span = ctx.span.clone();
        Self::body_limit(session, ctx).instrument(span).await
    }

    /// A body without a length (chunked) is counted as it streams; past the limit the request
    /// fails with 413 (the app sees a cut-off request, never the excess).
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let _in = ctx.span.clone().entered();
        let Some(limit) = ctx.app.as_ref().and_then(|a| a.max_body_bytes) else {
            return Ok(());
        };
        ctx.body_bytes += body.as_ref().map_or(0, |b| b.len() as u64);
        if ctx.body_bytes > limit {
            *body = None;
            return Err(Error::explain(
                ErrorType::HTTPStatus(413),
                "request body larger than max_body_bytes",
            ));
        }
        Ok(())
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        let _in = ctx.span.clone().entered();
        let Some(app) = ctx.app.as_ref() else {
            return Err(Error::explain(ErrorType::InternalError, "no app chosen"));
        };
        let u = &app.upstream;
        let mut peer = HttpPeer::new(u.addr, u.tls, u.host.clone());
        peer.options.connection_timeout = Some(app.connect_timeout);
        peer.options.total_connection_timeout = Some(app.connect_timeout);
        peer.options.read_timeout = Some(app.read_timeout);
        Ok(Box::new(peer))
    }

    /// Strips what the app must not see from the client's request and sets what flowgate
    /// vouches for ([`forwarding::rewrite`]).
    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let _in = ctx.span.clone().entered();
        if cfg!(not(feature = "bench-no-request-metrics")) {
            ctx.upstream_sent = Some(session::clock::instant_now());
        }
        forwarding::rewrite(req, ctx)
    }

    /// The app may not set the gateway's own cookies: a `Set-Cookie` naming one (either scheme,
    /// any case, `__Host-`/`__Secure-`) would plant a session id or log the user out (COOK-3).
    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut pingora::http::ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let _in = ctx.span.clone().entered();
        if let Some(sent) = ctx.upstream_sent.take() {
            if cfg!(not(feature = "bench-no-request-metrics")) {
                app_metrics(ctx).upstream(sent.elapsed());
            }
        }
        let base = ctx.state.cookie.as_str();
        let own = |v: &http::HeaderValue| {
            let v = String::from_utf8_lossy(v.as_bytes());
            let pair = v.split(';').next().unwrap_or("");
            session::is_own_cookie_name(base, pair.split_once('=').map_or(pair, |(k, _)| k))
        };
        // Nothing is copied unless the app did name one of the gateway's cookies.
        if resp.headers.get_all("set-cookie").iter().any(own) {
            let all: Vec<http::HeaderValue> = resp.headers.get_all("set-cookie").iter().cloned().collect();
            tracing::warn!(
                app = ctx.app.as_ref().map(|a| a.name.as_str()).unwrap_or("-"),
                "dropped an upstream Set-Cookie for the gateway's session cookie"
            );
            resp.remove_header("set-cookie");
            for v in all.into_iter().filter(|v| !own(v)) {
                resp.append_header("set-cookie", v)?;
            }
        }
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
        use pingora::ErrorSource;
        let code = match e.etype() {
            ErrorType::HTTPStatus(c) => *c,
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => 504,
            _ => match e.esource() {
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 502,
            },
        };
        if code > 0 && session.response_written().is_none() {
            // The connection is not reused (`can_reuse_downstream: false` below): say so in the
            // answer (`Connection: close`), or a client may send its next request into the close.
            session.set_keepalive(None);
            let refusal = match code {
                413 => Refusal::TooLarge(TooLarge::Body),
                504 => Refusal::UpstreamTimeout,
                502 => Refusal::UpstreamDown,
                c => Refusal::Failed(c),
            };
            let span = ctx.span.clone();
            async {
                tracing::warn!(error = %e, status = code, "proxying failed");
                if let Err(err) = refuse(session, ctx, refusal).await {
                    tracing::debug!(error = %err, "could not send error page");
                }
            }
            .instrument(span)
            .await;
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        let _in = ctx.span.clone().entered();
        crate::listen::request_done(session);
        let status = session.response_written().map(|r| r.status.as_u16()).unwrap_or(0);
        if cfg!(not(feature = "bench-no-request-metrics")) {
            app_metrics(ctx).request(ctx.route, status);
        }
        tracing::debug!(
            method = %session.req_header().method,
            path = %session.req_header().uri.path(),
            status,
            app = ctx.app.as_ref().map(|a| a.name.as_str()).unwrap_or("-"),
            user = ctx.identity.as_ref().map(|i| i.username.as_str()).unwrap_or("-"),
            "request"
        );
    }
}
