//! The pingora `ProxyHttp` implementation: the request lifecycle of docs/design.md §1 in pingora's
//! phases. It asks `session` for the identity and `flow` for policy decisions, hands the
//! reserved prefix to `http`, and does the header work itself (strip, then set).
//!
//! ```text
//! request_filter ─┬─ /.flowgate/auth/{nginx,traefik} ─▶ forward_auth (answered here, never forwarded)
//!                 ├─ reserved prefix / logout ─▶ http::Ui (answered here, never forwarded)
//!                 └─ decide::decide (shared with forward_auth):
//!                    ├─ no app ─▶ 404 page
//!                    ├─ skip-auth (unambiguous path) ─▶ forward, no identity
//!                    ├─ session ─▶ app policies ─▶ forward with identity | 403 page
//!                    └─ none ─▶ browser 302 to the flow | API 401 JSON
//! upstream_peer ─▶ the app's upstream with its timeouts
//! upstream_request_filter ─▶ strip identity spellings + our cookie, set identity + X-Forwarded-*
//! fail_to_proxy ─▶ 502 / 504 pages
//! ```

mod checks;
mod decide;
mod forward_auth;
pub mod headers;
pub mod path;
mod respond;

use crate::config::{App, PolicyDef, RESERVED_PREFIX};
use crate::http::{HttpRequest, HttpResponse, Ui};
use crate::routing::Router;
use crate::session::{self, Identity, SessionStore};
use async_trait::async_trait;
use bytes::Bytes;
pub use checks::{
    effective_client_ip, forwarded_https, framing_problem, raw_has_content_length, MAX_HEADER_BYTES, MAX_URI_BYTES,
};
use checks::{joined_cookie_header, request_host, size_problem};
use decide::Verdict;
use headers::StripSet;
use ipnet::IpNet;
use pingora::http::RequestHeader;
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::proxy::FailToProxy;
use pingora::{Error, ErrorType, Result};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

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
}

fn is_https(session: &Session) -> bool {
    session.digest().and_then(|d| d.ssl_digest.as_ref()).is_some()
}

fn client_ip(session: &Session) -> Option<IpAddr> {
    session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip())
}

impl GatewayProxy {
    fn page(state: &ProxyState, status: u16, heading: &str, message: &str, messages: &[String]) -> HttpResponse {
        HttpResponse::html(status, state.ui.pages.error(status, heading, message, messages, None))
    }

    async fn read_body(state: &ProxyState, session: &mut Session) -> Result<Option<Bytes>> {
        let limit = state.max_form_bytes;
        let declared = checks::announced_length(&session.req_header().headers);
        if declared.is_some_and(|n| n > limit as u64) {
            return Ok(None);
        }
        let mut body = Vec::new();
        while let Some(chunk) = session.read_request_body().await? {
            if body.len() + chunk.len() > limit {
                return Ok(None);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(Bytes::from(body)))
    }

    async fn ui(session: &mut Session, ctx: &RequestCtx) -> Result<bool> {
        let Some(body) = Self::read_body(&ctx.state, session).await? else {
            let r = Self::page(
                &ctx.state,
                413,
                "Request too large",
                "The submitted form is too large.",
                &[],
            );
            respond::write(session, r).await?;
            return Ok(true);
        };
        let h = session.req_header();
        // The UI reads `Host` and one `Cookie` line: give it the canonical host (HTTP/2 sends
        // `:authority` and no `Host`) and every cookie line joined (HTTP/2 sends one per cookie).
        let mut headers = h.headers.clone();
        if let Some(host) = ctx.host.as_deref().and_then(|v| http::HeaderValue::from_str(v).ok()) {
            headers.insert(http::header::HOST, host);
        }
        if let Some(joined) = joined_cookie_header(&h.headers) {
            if let Ok(v) = http::HeaderValue::from_str(&joined) {
                headers.insert(http::header::COOKIE, v);
            }
        }
        let req = HttpRequest {
            method: h.method.clone(),
            path: h.uri.path().to_string(),
            query: h.uri.query().unwrap_or("").to_string(),
            headers,
            body,
            client_ip: ctx.client_ip.unwrap_or(IpAddr::from([0, 0, 0, 0])),
            https: ctx.https,
        };
        let resp = ctx.state.ui.handle(&req).await;
        respond::write(session, resp).await?;
        Ok(true)
    }

    /// A forward-auth endpoint (see [`forward_auth`]): answered here, never forwarded.
    async fn forward_auth(session: &mut Session, ctx: &mut RequestCtx, kind: forward_auth::Kind) -> Result<bool> {
        let trusted = &ctx.state.trusted_proxies;
        let peer_trusted = ctx.peer_ip.is_some_and(|ip| checks::is_trusted_peer(ip, trusted));
        let a = {
            let h = session.req_header();
            let caller = forward_auth::Caller {
                headers: &h.headers,
                method: h.method.as_str(),
                peer_trusted,
                https: ctx.https,
                client_ip: ctx.client_ip,
            };
            forward_auth::answer(&ctx.state, kind, &caller).await
        };
        // An auth request carries no body; if one was sent anyway, do not reuse the connection.
        let h = &session.req_header().headers;
        if h.contains_key("transfer-encoding") || h.get("content-length").is_some_and(|v| v.as_bytes() != b"0") {
            session.set_keepalive(None);
        }
        ctx.app = a.app;
        ctx.identity = a.user;
        respond::write_with(session, a.response, &a.identity).await?;
        Ok(true)
    }

    async fn login_redirect(
        state: &ProxyState,
        session: &Session,
        app: &App,
        client_ip: Option<IpAddr>,
    ) -> HttpResponse {
        let h = session.req_header();
        let original = match h.uri.query() {
            Some(q) => format!("{}?{q}", h.uri.path()),
            None => h.uri.path().to_string(),
        };
        let Some(login_url) = decide::login_url(state, app, client_ip, &original).await else {
            return Self::page(
                state,
                404,
                "No login available",
                "No login flow applies to this request.",
                &[],
            );
        };
        let browser = h
            .headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        let upgrade = h.headers.contains_key("upgrade");
        if browser && !upgrade {
            HttpResponse::redirect(&login_url)
        } else {
            HttpResponse::json(
                401,
                &serde_json::json!({ "error": "authentication required", "login_url": login_url }),
            )
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
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        crate::listen::header_done(session);
        ctx.peer_ip = client_ip(session);
        let peer_trusted = ctx
            .peer_ip
            .is_some_and(|ip| checks::is_trusted_peer(ip, &ctx.state.trusted_proxies));
        ctx.peer_trusted = peer_trusted;
        ctx.https = is_https(session) || forwarded_https(&session.req_header().headers, peer_trusted);
        let xff: Vec<&str> = session
            .req_header()
            .headers
            .get_all("x-forwarded-for")
            .iter()
            // A line that is not visible ASCII is garbage: it must stop the walk, not vanish.
            .map(|v| v.to_str().unwrap_or("invalid"))
            .collect();
        ctx.client_ip = effective_client_ip(ctx.peer_ip, &xff, &ctx.state.trusted_proxies);
        let (status, why) = size_problem(session.req_header());
        if status != 0 {
            tracing::warn!(status, "oversized request refused");
            session.set_keepalive(None);
            let r = Self::page(&ctx.state, status, "Request too large", why, &[]);
            respond::write(session, r).await?;
            return Ok(true);
        }
        let headers = &session.req_header().headers;
        let dropped_length = headers.contains_key("transfer-encoding")
            && raw_has_content_length(&session.downstream_session.to_h1_raw());
        let framing = if dropped_length {
            Some("Content-Length and Transfer-Encoding together are refused.")
        } else {
            framing_problem(headers)
        };
        if let Some(why) = framing {
            tracing::warn!(reason = why, "ambiguous request framing refused");
            session.set_keepalive(None);
            let r = Self::page(&ctx.state, 400, "Bad request", why, &[]);
            respond::write(session, r).await?;
            return Ok(true);
        }
        match request_host(session.req_header()) {
            Ok(host) => ctx.host = host,
            Err(()) => {
                tracing::debug!("request with an invalid host refused");
                let r = Self::page(
                    &ctx.state,
                    400,
                    "Bad request",
                    "The request's host name is not valid.",
                    &[],
                );
                respond::write(session, r).await?;
                return Ok(true);
            }
        }
        let raw_path = session.req_header().uri.path();
        if raw_path.starts_with(RESERVED_PREFIX) || raw_path == ctx.state.logout_path {
            if let Some(kind) = forward_auth::kind_of(raw_path) {
                return Self::forward_auth(session, ctx, kind).await;
            }
            return Self::ui(session, ctx).await;
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
        let r = match verdict {
            Verdict::Anonymous(app) => {
                ctx.app = Some(app);
                return Ok(false);
            }
            Verdict::Allow(app, who) => {
                ctx.app = Some(app);
                ctx.identity = Some(who);
                return Ok(false);
            }
            Verdict::BadPath => Self::page(&ctx.state, 400, "Bad request", "The request path is not valid.", &[]),
            Verdict::NoApp => Self::page(
                &ctx.state,
                404,
                "Not found",
                "No application is configured for this address.",
                &[],
            ),
            Verdict::Login(app) => {
                let r = Self::login_redirect(&ctx.state, session, &app, ctx.client_ip).await;
                ctx.app = Some(app);
                r
            }
            Verdict::Deny(app, who, messages) => {
                tracing::debug!(user = %who.username, app = %app.name, "app policies deny");
                ctx.app = Some(app);
                Self::page(
                    &ctx.state,
                    403,
                    "Access denied",
                    "You do not have access to this application.",
                    &messages,
                )
            }
        };
        respond::write(session, r).await?;
        Ok(true)
    }

    /// A body announced larger than the app's `max_body_bytes` is refused before anything is
    /// sent upstream.
    async fn proxy_upstream_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let limit = ctx.app.as_ref().and_then(|a| a.max_body_bytes);
        let announced = checks::announced_length(&session.req_header().headers);
        match (limit, announced) {
            (Some(limit), Some(len)) if len > limit => {
                session.set_keepalive(None);
                let r = Self::page(
                    &ctx.state,
                    413,
                    "Request too large",
                    "The request body is too large.",
                    &[],
                );
                respond::write(session, r).await?;
                Ok(false)
            }
            _ => Ok(true),
        }
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

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let doomed: Vec<http::HeaderName> = req
            .headers
            .keys()
            .filter(|n| ctx.state.strip.matches(n.as_str(), ctx.peer_trusted))
            .cloned()
            .collect();
        for n in doomed {
            tracing::debug!(header = %n, "stripped client header");
            req.remove_header(&n);
        }
        // Neither scheme's session cookie is ever shown to the app (the other scheme's is a
        // valid session too); the cookie lines are joined into one.
        let cookies: Vec<String> = req
            .headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| session::strip_cookie(v, &ctx.state.cookie))
            .collect();
        req.remove_header("cookie");
        if !cookies.is_empty() {
            req.insert_header("cookie", cookies.join("; "))?;
        }
        // The app sees the host in the canonical form it was routed by.
        let host = ctx.host.clone().unwrap_or_default();
        if !host.is_empty() {
            req.insert_header("host", host.as_str())?;
        }
        // X-Forwarded-*: client values are kept only from trusted proxies.
        let peer = ctx.peer_ip;
        let trusted = ctx.peer_trusted;
        let peer_s = peer.map(|i| i.to_string()).unwrap_or_default();
        let proto = if ctx.https { "https" } else { "http" };
        if trusted {
            // Every line the proxy sent, in order (a proxy may add its hop as a line of its
            // own), then the peer; `effective_client_ip` reads the same lines.
            let mut chain: Vec<&[u8]> = req
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .map(|v| v.as_bytes().trim_ascii())
                .filter(|v| !v.is_empty())
                .collect();
            chain.push(peer_s.as_bytes());
            let joined = http::HeaderValue::from_bytes(&chain.join(&b", "[..]))
                .map_err(|e| Error::because(ErrorType::InternalError, "x-forwarded-for", e))?;
            req.insert_header("x-forwarded-for", joined)?;
            if !req.headers.contains_key("x-forwarded-proto") {
                req.insert_header("x-forwarded-proto", proto)?;
            }
            if !req.headers.contains_key("x-forwarded-host") {
                req.insert_header("x-forwarded-host", host)?;
            }
        } else {
            req.insert_header("x-forwarded-for", peer_s)?;
            req.insert_header("x-forwarded-proto", proto)?;
            req.insert_header("x-forwarded-host", host)?;
        }
        if let (Some(app), Some(who)) = (ctx.app.as_ref(), ctx.identity.as_ref()) {
            for (n, v) in headers::identity_headers(&app.headers, app, who) {
                req.insert_header(n, v)?;
            }
        }
        Ok(())
    }

    /// The app may not set the gateway's own cookies: a `Set-Cookie` naming one (either scheme,
    /// any case, `__Host-`/`__Secure-`) would plant a session id or log the user out (COOK-3).
    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        resp: &mut pingora::http::ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let base = ctx.state.cookie.as_str();
        let own = |v: &http::HeaderValue| {
            let v = String::from_utf8_lossy(v.as_bytes());
            let pair = v.split(';').next().unwrap_or("");
            session::is_own_cookie_name(base, pair.split_once('=').map_or(pair, |(k, _)| k))
        };
        let all: Vec<http::HeaderValue> = resp.headers.get_all("set-cookie").iter().cloned().collect();
        if all.iter().any(own) {
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
            let page = match code {
                413 => Self::page(
                    &ctx.state,
                    413,
                    "Request too large",
                    "The request body is too large.",
                    &[],
                ),
                504 => Self::page(
                    &ctx.state,
                    504,
                    "Gateway timeout",
                    "The application did not answer in time.",
                    &[],
                ),
                502 => Self::page(
                    &ctx.state,
                    502,
                    "Bad gateway",
                    "The application is not reachable right now.",
                    &[],
                ),
                c => Self::page(
                    &ctx.state,
                    c,
                    "Request failed",
                    "The request could not be completed.",
                    &[],
                ),
            };
            tracing::warn!(error = %e, status = code, "proxying failed");
            if let Err(err) = respond::write(session, page).await {
                tracing::debug!(error = %err, "could not send error page");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        crate::listen::request_done(session);
        let status = session.response_written().map(|r| r.status.as_u16()).unwrap_or(0);
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
