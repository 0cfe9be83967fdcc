//! The Have I Been Pwned range check: SHA-1 the password, send only the first five hex digits
//! to `<url><prefix>` (k-anonymity), and find the rest in the answer. Plain HTTP (for tests and
//! internal mirrors) or HTTPS with rustls and the webpki roots; one hard deadline for the whole
//! exchange; a bounded answer.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};
use std::sync::Arc;
use std::time::Duration;

/// Default range API.
pub const DEFAULT_URL: &str = "https://api.pwnedpasswords.com/range/";
/// Default deadline for one lookup.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer read.
pub const MAX_ANSWER_BYTES: usize = 2 * 1024 * 1024;

/// A parsed range API address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeUrl {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

impl RangeUrl {
    /// Parses `http(s)://host[:port]/path/`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("invalid URL {url:?} (expected http:// or https://)"));
        };
        let (authority, path) = rest
            .split_once('/')
            .map(|(a, p)| (a, format!("/{p}")))
            .unwrap_or((rest, "/".into()));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse().map_err(|_| format!("invalid port in {url:?}"))?,
            ),
            None => (authority.to_string(), if tls { 443 } else { 80 }),
        };
        if host.is_empty() {
            return Err(format!("invalid URL {url:?} (no host)"));
        }
        Ok(Self { tls, host, port, path })
    }
}

async fn fetch(url: &RangeUrl, prefix: &str) -> Result<Bytes, String> {
    let tcp = tokio::net::TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let req = http::Request::get(format!("{}{prefix}", url.path))
        .header("host", url.host.as_str())
        .header("user-agent", concat!("flowgate/", env!("CARGO_PKG_VERSION")))
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = if url.tls {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let cfg = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from(url.host.clone()).map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(req).await.map_err(|e| e.to_string())?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        send.send_request(req).await.map_err(|e| e.to_string())?
    };
    if !resp.status().is_success() {
        return Err(format!("range API answered {}", resp.status()));
    }
    let body = Limited::new(resp.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| format!("answer: {e}"))?;
    Ok(body.to_bytes())
}

/// How many times `password` appears in breaches, according to the range API at `url`.
pub async fn count(url: &RangeUrl, password: &str, timeout: Duration) -> Result<u64, String> {
    let digest = hex::encode_upper(Sha1::digest(password.as_bytes()));
    let (prefix, suffix) = digest.split_at(5);
    let body = tokio::time::timeout(timeout, fetch(url, prefix))
        .await
        .map_err(|_| "range API timed out".to_string())??;
    let text = std::str::from_utf8(&body).map_err(|_| "range API answer is not text".to_string())?;
    for line in text.lines() {
        if let Some((s, n)) = line.trim().split_once(':') {
            if s.eq_ignore_ascii_case(suffix) {
                return n
                    .trim()
                    .parse()
                    .map_err(|_| "range API answer is malformed".to_string());
            }
        }
    }
    Ok(0)
}
