//! Second baseline for benches/load.sh: a minimal hyper 1 + tokio proxy (no auth, no pingora)
//! from 127.0.0.1:18191 to the peer kit's upstream on 127.0.0.1:18080. It is shaped like
//! flowgate's connection workers (ADR 0015): one current-thread runtime per CPU, each with its own
//! `SO_REUSEPORT` listener and its own keep-alive pool of upstream connections, so nothing is
//! shared across threads. It shows what a proxy costs per request on this stack without
//! pingora's path (issue 14 item 3, ADR 0022).
//!
//!   cargo run --release --example bare_hyper
//!
//! BARE_HYPER_ADDR sets the listen address, BARE_HYPER_WORKERS the number of threads.
//!
//! `BARE_HYPER_AUTH=1` makes it a prototype of the leaner data path ADR 0022 proposes: before
//! forwarding, each request goes through flowgate's own per-request functions, the ones its
//! pingora path calls (the session cookie found in `Cookie`, the session looked up in a
//! `SessionStore` holding 100 000 sessions, the client's identity, rewrite and forwarding headers
//! stripped with the gateway's `StripSet`, the session cookie removed, the host canonicalised,
//! `X-Forwarded-*`, a fresh `X-Request-Id` and the `default` preset's identity headers set); a
//! request without a live session gets a 401. Not included: routing, policies, path
//! normalisation, metrics, tracing spans, read deadlines. It prints the session id to use
//! (cookie `flowgate_session`) on its first line.

use std::cell::RefCell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use flowgate::config::{self, App, Upstream};
use flowgate::proxy::headers::{
    identity_headers, StripSet, X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID,
};
use flowgate::proxy::request_id;
use flowgate::routing;
use flowgate::session::{self, Identity, SessionStore, SystemClock};
use http::header::{HeaderName, HeaderValue, COOKIE, HOST};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};

const UPSTREAM: &str = "127.0.0.1:18080";

type Pool = Rc<RefCell<Vec<SendRequest<Incoming>>>>;

/// The prototype's auth state (`BARE_HYPER_AUTH=1`), shared by the workers.
struct Auth {
    store: SessionStore,
    strip: StripSet,
    app: App,
    who: Arc<Identity>,
}

const COOKIE_NAME: &str = "flowgate_session";

impl Auth {
    fn new() -> Self {
        let store = SessionStore::new(1_000_000, Duration::from_secs(3600), Arc::new(SystemClock));
        let who = Arc::new(Identity {
            user_id: 1,
            uid: "0123456789abcdef0123456789abcdef".into(),
            username: "bench".into(),
            email: "bench@example.test".into(),
            name: "Bench User".into(),
            groups: vec!["staff".into()],
            is_superuser: false,
        });
        let hour = Duration::from_secs(3600);
        for _ in 0..100_000 {
            store.create(Some(who.clone()), hour, hour);
        }
        let app = App {
            name: "bench".into(),
            hosts: vec![],
            path_prefix: "/".into(),
            upstream: Upstream {
                url: format!("http://{UPSTREAM}"),
                addr: UPSTREAM.parse().expect("upstream address"),
                tls: false,
                host: "127.0.0.1".into(),
            },
            headers: config::preset("default").expect("default preset"),
            skip_auth: vec![],
            policies: vec![],
            policy_engine_mode: config::EngineMode::Any,
            authentication_flow: None,
            requires_flow: None,
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(10),
            max_body_bytes: None,
            api_clients: None,
            jwt: None,
        };
        let strip = StripSet::new(std::slice::from_ref(&app), &[]);
        Self { store, strip, app, who }
    }

    /// Flowgate's per-request work on `req` (see the module doc); `false`: no live session.
    fn authorize(&self, req: &mut Request<Incoming>, peer: IpAddr) -> bool {
        let h = req.headers_mut();
        let Some(who) = h
            .get(COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|c| session::session_id_from_cookie_header(c, COOKIE_NAME))
            .and_then(|id| self.store.get(id))
            .and_then(|s| s.user.clone())
        else {
            return false;
        };
        let host = h
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .and_then(routing::canonical_host);
        let doomed: Vec<HeaderName> = h
            .keys()
            .filter(|n| self.strip.matches(n.as_str(), false))
            .cloned()
            .collect();
        for n in doomed {
            h.remove(&n);
        }
        let kept: Vec<String> = h
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| session::strip_cookie(v, COOKIE_NAME))
            .collect();
        h.remove(COOKIE);
        let value = |v: String| HeaderValue::try_from(v).ok();
        if let Some(v) = value(kept.join("; ")).filter(|_| !kept.is_empty()) {
            h.insert(COOKIE, v);
        }
        if let Some(v) = host.and_then(value) {
            h.insert(HOST, v.clone());
            h.insert(X_FORWARDED_HOST, v);
        }
        if let Some(v) = value(peer.to_string()) {
            h.insert(X_FORWARDED_FOR, v);
        }
        h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        if let Some(v) = value(request_id::new_id()) {
            h.insert(X_REQUEST_ID, v);
        }
        for (n, v) in identity_headers(&self.app.headers, &self.app, &who) {
            if let (Ok(n), Some(v)) = (HeaderName::from_bytes(n.as_bytes()), value(v)) {
                h.insert(n, v);
            }
        }
        true
    }
}

/// A response body that hands its upstream connection back to the worker's pool once the body
/// has been forwarded (or dropped: a closed connection is discarded on the next checkout).
struct Pooled {
    body: Option<Incoming>,
    back: Option<(SendRequest<Incoming>, Pool)>,
}

impl hyper::body::Body for Pooled {
    type Data = bytes::Bytes;
    type Error = hyper::Error;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        match self.body.as_mut() {
            Some(body) => std::pin::Pin::new(body).poll_frame(cx),
            None => std::task::Poll::Ready(None),
        }
    }
    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(|b| b.is_end_stream())
    }
    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body
            .as_ref()
            .map_or(hyper::body::SizeHint::with_exact(0), |b| b.size_hint())
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some((sender, pool)) = self.back.take() {
            pool.borrow_mut().push(sender);
        }
    }
}

async fn checkout(pool: &Pool) -> std::io::Result<SendRequest<Incoming>> {
    loop {
        let Some(mut sender) = pool.borrow_mut().pop() else {
            break;
        };
        if sender.is_closed() {
            continue;
        }
        if sender.ready().await.is_ok() {
            return Ok(sender);
        }
    }
    let stream = TcpStream::connect(UPSTREAM).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn proxy(
    pool: Pool,
    auth: Option<Arc<Auth>>,
    peer: IpAddr,
    mut req: Request<Incoming>,
) -> Result<Response<Pooled>, Infallible> {
    let answer = |status| {
        let mut resp = Response::new(Pooled { body: None, back: None });
        *resp.status_mut() = status;
        resp
    };
    let bad_gateway = || answer(hyper::StatusCode::BAD_GATEWAY);
    if auth.is_some_and(|a| !a.authorize(&mut req, peer)) {
        return Ok(answer(hyper::StatusCode::UNAUTHORIZED));
    }
    let Ok(mut sender) = checkout(&pool).await else {
        return Ok(bad_gateway());
    };
    match sender.send_request(req).await {
        Ok(resp) => Ok(resp.map(|body| Pooled {
            body: Some(body),
            back: Some((sender, pool)),
        })),
        Err(_) => Ok(bad_gateway()),
    }
}

fn worker(addr: SocketAddr, auth: Option<Arc<Auth>>) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(1024)?;
        let pool: Pool = Rc::default();
        loop {
            let (stream, peer) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let pool = pool.clone();
            let auth = auth.clone();
            tokio::task::spawn_local(async move {
                let svc = hyper::service::service_fn(move |req| proxy(pool.clone(), auth.clone(), peer.ip(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}

fn main() {
    let addr: SocketAddr = std::env::var("BARE_HYPER_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:18191".into())
        .parse()
        .expect("BARE_HYPER_ADDR");
    let workers = std::env::var("BARE_HYPER_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let auth = std::env::var("BARE_HYPER_AUTH").is_ok_and(|v| v == "1").then(|| {
        let a = Arc::new(Auth::new());
        let hour = Duration::from_secs(3600);
        let s = a.store.create(Some(a.who.clone()), hour, hour);
        println!("{}", s.id);
        a
    });
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let auth = auth.clone();
            std::thread::spawn(move || worker(addr, auth))
        })
        .collect();
    for t in threads {
        if let Ok(Err(e)) = t.join() {
            eprintln!("bare_hyper: {e}");
            std::process::exit(1);
        }
    }
}
