//! A captcha siteverify endpoint for tests (hyper, loopback, port 0): records each posted form
//! and answers a JSON document chosen by the test (or a raw body, a status, a delay).
//!
//! Include it with `#[path = "common/siteverify.rs"] mod siteverify;`.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One posted form.
#[derive(Debug, Clone, Default)]
pub struct Posted {
    /// `secret` field.
    pub secret: String,
    /// `response` field (the token).
    pub response: String,
    /// `remoteip` field, when sent.
    pub remoteip: Option<String>,
    /// Every field in order.
    pub fields: Vec<(String, String)>,
    /// Request method.
    pub method: String,
    /// Request path and query.
    pub path: String,
    /// `Content-Type` header.
    pub content_type: Option<String>,
    /// `User-Agent` header.
    pub user_agent: Option<String>,
    /// `Host` header.
    pub host: Option<String>,
}

struct State {
    status: u16,
    body: String,
    delay: Duration,
    posted: Vec<Posted>,
}

/// A running siteverify endpoint; it stops when dropped.
pub struct SiteVerify {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SiteVerify {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SiteVerify {
    /// Answers `answer` with status 200.
    pub async fn spawn(answer: serde_json::Value) -> Self {
        Self::start(answer, Duration::ZERO).await
    }

    /// Answers `{"success": true}` after `delay` (for timeouts).
    pub async fn spawn_slow(delay: Duration) -> Self {
        Self::start(serde_json::json!({"success": true}), delay).await
    }

    /// Answers `answer` from now on.
    pub fn set_answer(&self, answer: serde_json::Value) {
        self.state.lock().unwrap().body = answer.to_string();
    }

    /// Answers this raw body from now on (for malformed JSON).
    pub fn set_raw_answer(&self, body: &str) {
        self.state.lock().unwrap().body = body.to_string();
    }

    /// Answers with this status from now on.
    pub fn set_status(&self, status: u16) {
        self.state.lock().unwrap().status = status;
    }

    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>/siteverify`.
    pub fn url(&self) -> String {
        format!("http://{}/siteverify", self.addr)
    }

    /// Forms posted so far.
    pub fn requests(&self) -> Vec<Posted> {
        self.state.lock().unwrap().posted.clone()
    }

    async fn start(answer: serde_json::Value, delay: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            status: 200,
            body: answer.to_string(),
            delay,
            posted: Vec::new(),
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let st = st.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(req, st).await) }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
                });
            }
        });
        Self { addr, state, task }
    }
}

async fn handle(req: Request<hyper::body::Incoming>, st: Arc<Mutex<State>>) -> Response<Full<Bytes>> {
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut posted = Posted {
        method: req.method().to_string(),
        path: req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default(),
        content_type: header("content-type"),
        user_agent: header("user-agent"),
        host: header("host"),
        ..Default::default()
    };
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    for (k, v) in form_urlencoded::parse(&body) {
        match k.as_ref() {
            "secret" => posted.secret = v.to_string(),
            "response" => posted.response = v.to_string(),
            "remoteip" => posted.remoteip = Some(v.to_string()),
            _ => {}
        }
        posted.fields.push((k.into_owned(), v.into_owned()));
    }
    let (status, answer, delay) = {
        let mut s = st.lock().unwrap();
        s.posted.push(posted);
        (s.status, s.body.clone(), s.delay)
    };
    tokio::time::sleep(delay).await;
    let mut resp = Response::new(Full::new(Bytes::from(answer)));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}
