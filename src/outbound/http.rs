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

pub use crate::config::values::url::HttpUrl;

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

/// A request with headers of the caller's (an `Authorization`, an `Accept`) and an optional
/// form body: `GET` without a form, `POST` with one. Same deadline and body bound as [`get`].
pub async fn call(
    url: &HttpUrl,
    headers: &[(&str, &str)],
    form: Option<&[(&str, &str)]>,
    timeout: Duration,
    max_bytes: usize,
) -> Result<(u16, Bytes), String> {
    let method = if form.is_some() {
        http::Method::POST
    } else {
        http::Method::GET
    };
    let mut b = request(url, method, "");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let body = match form {
        Some(f) => {
            b = b.header("content-type", "application/x-www-form-urlencoded");
            Bytes::from(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(f.iter())
                    .finish(),
            )
        }
        None => Bytes::new(),
    };
    let req = b.body(Full::new(body)).map_err(|e| e.to_string())?;
    deadline(timeout, exchange(url, req, max_bytes)).await
}

fn request(url: &HttpUrl, method: http::Method, path_suffix: &str) -> http::request::Builder {
    http::Request::builder()
        .method(method)
        .uri(format!("{}{path_suffix}", url.path()))
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
    let tcp = tokio::net::TcpStream::connect((url.host(), url.port()))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    if url.is_tls() {
        let name = rustls::pki_types::ServerName::try_from(url.host().to_string()).map_err(|e| format!("tls: {e}"))?;
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
