//! The login UI and flow API under the reserved prefix `/.flowgate/`, plus the logout path.
//! Transport-neutral: the proxy hands over an [`HttpRequest`] (body already read within the
//! size limit) and writes back the [`HttpResponse`]. Nothing here forwards upstream.
//! [`respond`] renders every refusal, the proxy's and the UI's, as a page, JSON or a
//! forward-auth answer.

pub mod forms;
mod pages;
pub mod respond;
mod routes;
mod sign_on;
mod source;

pub use pages::Pages;
pub use routes::Ui;

use bytes::Bytes;
use std::net::IpAddr;

/// A request for the UI.
#[derive(Debug)]
pub struct HttpRequest {
    /// Method.
    pub method: http::Method,
    /// Path (raw, as received).
    pub path: String,
    /// Query string without `?`.
    pub query: String,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Bytes,
    /// Client address.
    pub client_ip: IpAddr,
    /// Arrived over TLS.
    pub https: bool,
}

impl HttpRequest {
    /// A header as text, if present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the client prefers HTML (a browser).
    pub fn wants_html(&self) -> bool {
        self.header("accept").is_some_and(|a| a.contains("text/html"))
    }
}

/// A response from the UI.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers (name, value).
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: Bytes,
}

impl HttpResponse {
    /// An HTML response with security headers.
    pub fn html(status: u16, body: String) -> Self {
        let mut r = Self {
            status,
            headers: security_headers(),
            body: Bytes::from(body),
        };
        r.headers.push(("content-type", "text/html; charset=utf-8".into()));
        r
    }

    /// A JSON response.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        let mut r = Self {
            status,
            headers: security_headers(),
            body: Bytes::from(body.to_string()),
        };
        r.headers.push(("content-type", "application/json".into()));
        r
    }

    /// A 302 redirect.
    pub fn redirect(location: &str) -> Self {
        let mut r = Self {
            status: 302,
            headers: security_headers(),
            body: Bytes::new(),
        };
        r.headers.push(("location", location.to_string()));
        r
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// Headers on every response flowgate writes itself.
pub fn security_headers() -> Vec<(&'static str, String)> {
    vec![
        ("cache-control", "no-store".into()),
        ("x-content-type-options", "nosniff".into()),
        ("x-frame-options", "DENY".into()),
        ("referrer-policy", "same-origin".into()),
        ("content-security-policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'".into()),
    ]
}
