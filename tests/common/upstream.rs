//! The recording upstream: a real hyper server behind the gateway that keeps every request it
//! saw (method, URI, headers, body) for the tests to assert on.

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    /// The request body as received (empty for upgrades).
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A real hyper upstream that records every request.
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Recorded>>>,
}

impl Upstream {
    pub async fn spawn() -> Self {
        Self::spawn_with_delay(Duration::ZERO).await
    }

    /// An upstream that waits `delay` before answering (for timeouts).
    pub async fn spawn_with_delay(delay: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let s2 = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let seen = s2.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        async move {
                            let upgrade = req.headers().contains_key("upgrade");
                            let set_cookies: Vec<_> =
                                req.headers().get_all("x-test-set-cookie").iter().cloned().collect();
                            let mut rec = Recorded {
                                method: req.method().to_string(),
                                uri: req.uri().to_string(),
                                headers: req
                                    .headers()
                                    .iter()
                                    .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                                    .collect(),
                                body: Vec::new(),
                            };
                            if !upgrade {
                                use http_body_util::BodyExt;
                                if let Ok(b) = req.into_body().collect().await {
                                    rec.body = b.to_bytes().to_vec();
                                }
                            }
                            seen.lock().unwrap().push(rec);
                            if !delay.is_zero() {
                                tokio::time::sleep(delay).await;
                            }
                            if upgrade {
                                let resp = Response::builder()
                                    .status(101)
                                    .header("connection", "upgrade")
                                    .header("upgrade", "websocket")
                                    .body(Full::new(Bytes::new()))
                                    .unwrap();
                                return Ok::<_, std::convert::Infallible>(resp);
                            }
                            // A test can make the app set cookies: every `x-test-set-cookie`
                            // line it sent comes back as a `Set-Cookie` line.
                            let mut resp = Response::new(Full::new(Bytes::from_static(b"upstream ok")));
                            for v in set_cookies {
                                resp.headers_mut().append("set-cookie", v);
                            }
                            Ok(resp)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Self { addr, seen }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Recorded {
        self.requests().last().cloned().expect("upstream saw no request")
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}
