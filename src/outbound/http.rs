//! A small HTTP/1.1 client for the few outbound calls flowgate makes (the Have I Been Pwned range
//! API, captcha siteverify). Plain HTTP (tests, internal mirrors) or HTTPS with rustls and the
//! webpki roots; one connection per call; one hard deadline for the whole exchange (connect,
//! TLS, request, answer); an answer body bounded to `max_bytes`.
//!
//! It leaves the meaning of the answer (status codes, body format) to the caller, and never logs
//! what it sends (form fields may hold secrets).

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tracing::Instrument;

/// The error text when the deadline passed before the exchange finished.
pub const TIMED_OUT: &str = "timed out";

/// A parsed `http(s)://host[:port]/path` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

// === impl HttpUrl ===

impl HttpUrl {
    /// Parses `http(s)://host[:port][/path]` (an IPv6 host in brackets); the path defaults to `/`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("invalid URL {url:?} (expected http:// or https://)"));
        };
        let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let path = match path.chars().next() {
            None => "/".to_string(),
            Some('?') => format!("/{path}"),
            Some(_) => path.to_string(),
        };
        if authority.contains('@') {
            return Err(format!("invalid URL {url:?} (user info is not supported)"));
        }
        let bad_port = || format!("invalid port in {url:?}");
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("invalid URL {url:?} (unclosed '[')"))?;
            let port = match after {
                "" => default_port,
                p => p.strip_prefix(':').and_then(|p| p.parse().ok()).ok_or_else(bad_port)?,
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad_port())?),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() {
            return Err(format!("invalid URL {url:?} (no host)"));
        }
        Ok(Self { tls, host, port, path })
    }

    /// Whether the address is `https`.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Host name or address (an IPv6 address without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Path (and query), starting with `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The `Host` header value: the host, bracketed when IPv6, with the port when not the default.
    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl std::str::FromStr for HttpUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

// === requests ===

/// `GET <url path><path_suffix>`; returns the status and the body (at most `max_bytes`, else an
/// error). The whole exchange must finish within `timeout`, else the error is [`TIMED_OUT`].
pub async fn get(
    url: &HttpUrl,
    path_suffix: &str,
    timeout: Duration,
    max_bytes: usize,
) -> Result<(u16, Bytes), String> {
    let req = request(url, http::Method::GET, path_suffix)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    deadline(timeout, exchange(url, req, max_bytes)).await
}

/// `POST` of `form` as `application/x-www-form-urlencoded` to the URL's path; returns the status
/// and the body (at most `max_bytes`, else an error). The whole exchange must finish within
/// `timeout`, else the error is [`TIMED_OUT`].
pub async fn post_form(
    url: &HttpUrl,
    form: &[(&str, &str)],
    timeout: Duration,
    max_bytes: usize,
) -> Result<(u16, Bytes), String> {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter())
        .finish();
    let req = request(url, http::Method::POST, "")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    deadline(timeout, exchange(url, req, max_bytes)).await
}

fn request(url: &HttpUrl, method: http::Method, path_suffix: &str) -> http::request::Builder {
    http::Request::builder()
        .method(method)
        .uri(format!("{}{path_suffix}", url.path))
        .header("host", url.host_header())
        .header("user-agent", concat!("flowgate/", env!("CARGO_PKG_VERSION")))
}

async fn deadline<T>(
    timeout: Duration,
    fut: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| TIMED_OUT.to_string())?
}

/// The client config for HTTPS: the webpki roots, built once.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    if let Some(cfg) = CONFIG.get() {
        return Ok(cfg.clone());
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let cfg = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(CONFIG.get_or_init(|| Arc::new(cfg)).clone())
}

async fn exchange(url: &HttpUrl, req: http::Request<Full<Bytes>>, max_bytes: usize) -> Result<(u16, Bytes), String> {
    let tcp = tokio::net::TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    if url.tls {
        let name = rustls::pki_types::ServerName::try_from(url.host.clone()).map_err(|e| format!("tls: {e}"))?;
        let tls = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        send(TokioIo::new(tls), req, max_bytes).await
    } else {
        send(TokioIo::new(tcp), req, max_bytes).await
    }
}

/// Aborts the connection task when the exchange ends or is dropped (deadline passed), so no
/// connection outlives its call.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn send<I>(io: I, req: http::Request<Full<Bytes>>, max_bytes: usize) -> Result<(u16, Bytes), String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    // The connection task logs (if at all) under the calling request's span.
    let _conn = AbortOnDrop(tokio::spawn(
        async move {
            let _ = conn.await;
        }
        .in_current_span(),
    ));
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), max_bytes)
        .collect()
        .await
        .map_err(|e| format!("answer: {e}"))?;
    Ok((status, body.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::HttpUrl;

    #[test]
    fn parses_urls() {
        let u = HttpUrl::parse("https://api.pwnedpasswords.com/range/").unwrap();
        assert_eq!(
            (u.is_tls(), u.host(), u.port(), u.path()),
            (true, "api.pwnedpasswords.com", 443, "/range/")
        );
        assert_eq!(u.host_header(), "api.pwnedpasswords.com");
        let u = HttpUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (u.is_tls(), u.host(), u.port(), u.path()),
            (false, "127.0.0.1", 8080, "/")
        );
        assert_eq!(u.host_header(), "127.0.0.1:8080");
        let u = HttpUrl::parse("http://[::1]:99/a?b=c#frag").unwrap();
        assert_eq!((u.host(), u.port(), u.path()), ("::1", 99, "/a?b=c"));
        assert_eq!(u.host_header(), "[::1]:99");
        let u = HttpUrl::parse("https://[::1]?x").unwrap();
        assert_eq!((u.host(), u.port(), u.path()), ("::1", 443, "/?x"));
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in [
            "ftp://x/",
            "x",
            "http:///p",
            "http://h:99999/",
            "http://h:x/",
            "http://u@h/",
            "http://[::1/",
            "http://[::1]x/",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            HttpUrl::parse("ftp://x/").unwrap_err(),
            "invalid URL \"ftp://x/\" (expected http:// or https://)"
        );
    }
}
