//! The CLI's way to a running gateway: when the config has `admin.listen` and a token and the
//! admin listener answers, `flowgate user|session|invitation` act through the admin API
//! (`src/admin/api.rs`), so the running process applies the change at once (its caches
//! included); otherwise they use the database and the session store directly, as before.

use flowgate::config::Config;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

/// How long the CLI waits for the admin listener before using the database directly.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// How long one admin API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The admin API of the running gateway.
pub(crate) struct AdminClient {
    addr: SocketAddr,
    token: String,
}

/// Where to reach a listener bound to `addr` (the unspecified address means this host).
fn reachable(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

impl AdminClient {
    /// The running gateway's admin API, when `cfg` configures one with a token and it answers.
    pub(crate) async fn connect(cfg: &Config) -> Option<Self> {
        let admin = cfg.admin.as_ref()?;
        let token = admin.token.as_ref()?.expose().to_string();
        if admin.listen.port() == 0 {
            return None;
        }
        let addr = reachable(admin.listen);
        let c = Self { addr, token };
        match tokio::time::timeout(CONNECT_TIMEOUT, c.call(Method::GET, "/health/live", None)).await {
            Ok(Ok((200, _))) => {
                eprintln!("(through the admin API of the running gateway at {addr})");
                Some(c)
            }
            _ => None,
        }
    }

    /// One call: status and JSON body (`null` when empty or not JSON).
    pub(crate) async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<(u16, Value)> {
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(self.addr)).await??;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(bytes::Bytes::from(body)))?;
        let resp = tokio::time::timeout(CALL_TIMEOUT, send.send_request(req)).await??;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    /// [`Self::call`], failing with the API's error message unless the status is 2xx.
    pub(crate) async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let (status, v) = self.call(method, path, body).await?;
        if !(200..300).contains(&status) {
            let msg = v["error"].as_str().unwrap_or("request failed");
            anyhow::bail!("admin API: {msg} ({status})");
        }
        Ok(v)
    }
}

/// A path segment, percent-encoded.
pub(crate) fn seg(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
