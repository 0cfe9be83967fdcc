//! The admin listener (docs/operations.md, `admin.listen`): `/metrics` (Prometheus text), `/health/live`,
//! `/health/ready`, and the admin API under `/api/` ([`api`]). It is a plain hyper HTTP/1.1
//! server on its own socket, never the public listener (the config check refuses the same
//! address), so nothing of the proxy path runs here and no public route reaches it.
//!
//! Metrics and health need no token (scrapers and orchestrators); every `/api/` request needs
//! `Authorization: Bearer <admin token>`, compared in constant time ([`token_matches`]).

mod api;

use crate::config::values::secret::Secret;
use crate::identity::UserStore;
use crate::session::{SessionStore, SharedClock};
use crate::telemetry::Telemetry;
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long a readiness check waits for a store before calling it unreachable.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest admin API request body.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// What the admin listener serves from.
pub(crate) struct Admin {
    /// Bearer token of the API; `None`: the API is off.
    pub(crate) token: Option<Secret>,
    pub(crate) telemetry: Telemetry,
    pub(crate) users: UserStore,
    pub(crate) sessions: SessionStore,
    pub(crate) clock: SharedClock,
    pub(crate) slots: Arc<crate::listen::Slots>,
    /// API-client checks: their cache is emptied when an app password is revoked.
    pub(crate) api: Arc<crate::proxy::ApiAuth>,
}

/// A response.
type Resp = Response<Full<Bytes>>;

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r.headers_mut()
        .insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    r
}

/// A JSON response.
fn json(status: StatusCode, v: &serde_json::Value) -> Resp {
    respond(status, "application/json", v.to_string())
}

/// A JSON error `{"error": message}`.
fn error(status: StatusCode, message: &str) -> Resp {
    json(status, &serde_json::json!({ "error": message }))
}

/// Whether `given` is the admin token. Both sides are hashed first, so the comparison runs
/// over 32 bytes whatever their lengths and takes the same time wherever they differ.
pub fn token_matches(expected: &str, given: &str) -> bool {
    use sha2::Digest;
    use subtle::ConstantTimeEq;
    let a = sha2::Sha256::digest(expected.as_bytes());
    let b = sha2::Sha256::digest(given.as_bytes());
    a.ct_eq(&b).into()
}

/// The bearer token of a request, if it sent one.
fn bearer(req: &Request<hyper::body::Incoming>) -> Option<&str> {
    let v = req.headers().get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

// === impl Admin ===

impl Admin {
    /// Refreshes the figures read at scrape time, then renders every metric.
    fn metrics(&self) -> Resp {
        let m = &self.telemetry.metrics;
        m.set_live(
            self.sessions.len(),
            self.sessions.pending_len(),
            self.slots.open.load(Ordering::Relaxed),
            self.users.unavailable_count(),
        );
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            let rt = h.metrics();
            m.set_runtime("workers", rt.num_workers());
            m.set_runtime("alive_tasks", rt.num_alive_tasks());
            m.set_runtime("global_queue_depth", rt.global_queue_depth());
        }
        respond(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", m.render())
    }

    /// Ready: the config is loaded (it is, or this would not run) and both stores answer
    /// within [`READY_TIMEOUT`].
    async fn ready(&self) -> Resp {
        let sessions = async {
            match self.sessions.backend() {
                Some(b) => matches!(
                    tokio::time::timeout(READY_TIMEOUT, b.load("readiness-probe")).await,
                    Ok(Ok(_))
                ),
                None => true,
            }
        };
        let users = async { matches!(tokio::time::timeout(READY_TIMEOUT, self.users.ping()).await, Ok(Ok(()))) };
        let (s, u) = tokio::join!(sessions, users);
        let word = |ok: bool| if ok { "ok" } else { "unreachable" };
        let body = serde_json::json!({
            "ready": s && u,
            "checks": { "config": "ok", "session_store": word(s), "user_store": word(u) },
        });
        let status = if s && u {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        json(status, &body)
    }

    async fn handle(self: Arc<Self>, req: Request<hyper::body::Incoming>) -> Resp {
        let path = req.uri().path().to_string();
        match (req.method(), path.as_str()) {
            (&Method::GET, "/metrics") => self.metrics(),
            (&Method::GET, "/health/live") => json(StatusCode::OK, &serde_json::json!({ "live": true })),
            (&Method::GET, "/health/ready") => self.ready().await,
            (_, p) if p == "/api" || p.starts_with("/api/") => {
                let Some(expected) = &self.token else {
                    return error(
                        StatusCode::FORBIDDEN,
                        "the admin API is off: set admin.token_env or admin.token_file",
                    );
                };
                match bearer(&req) {
                    Some(given) if token_matches(expected.expose(), given) => api::route(&self, req).await,
                    _ => {
                        let mut r = error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
                        r.headers_mut()
                            .insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
                        r
                    }
                }
            }
            _ => error(StatusCode::NOT_FOUND, "not found"),
        }
    }
}

/// Serves the admin listener until `shutdown` turns true.
pub(crate) async fn serve(listener: TcpListener, admin: Arc<Admin>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (tcp, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "admin listener: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admin = admin.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, std::convert::Infallible>(admin.handle(req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), svc);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "admin connection ended with an error");
                    }
                }
                _ = stop.changed() => {}
            }
        });
    }
}
