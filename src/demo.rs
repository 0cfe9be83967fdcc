//! `flowgate demo`: a built-in echo upstream on loopback that shows the identity headers it
//! received, and the embedded default config that protects it.

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// The default authentication flow shipped in `config/flows/`.
pub const DEFAULT_AUTHENTICATION_FLOW: &str = include_str!("../config/flows/default-authentication.yaml");
/// The default invalidation flow shipped in `config/flows/`.
pub const DEFAULT_INVALIDATION_FLOW: &str = include_str!("../config/flows/default-invalidation.yaml");

/// Every flow file shipped in `config/flows/` (file name, text), embedded for `flowgate demo`.
pub const SHIPPED_FLOWS: &[(&str, &str)] = &[
    ("default-authentication.yaml", DEFAULT_AUTHENTICATION_FLOW),
    ("default-invalidation.yaml", DEFAULT_INVALIDATION_FLOW),
    (
        "default-enrollment.yaml",
        include_str!("../config/flows/default-enrollment.yaml"),
    ),
    (
        "default-enrollment-email.yaml",
        include_str!("../config/flows/default-enrollment-email.yaml"),
    ),
    (
        "default-recovery.yaml",
        include_str!("../config/flows/default-recovery.yaml"),
    ),
    (
        "default-unenrollment.yaml",
        include_str!("../config/flows/default-unenrollment.yaml"),
    ),
    (
        "default-password-change.yaml",
        include_str!("../config/flows/default-password-change.yaml"),
    ),
    (
        "default-authenticator-setup.yaml",
        include_str!("../config/flows/default-authenticator-setup.yaml"),
    ),
    (
        "default-passwordless.yaml",
        include_str!("../config/flows/default-passwordless.yaml"),
    ),
    (
        "default-authenticator-webauthn-setup.yaml",
        include_str!("../config/flows/default-authenticator-webauthn-setup.yaml"),
    ),
    (
        "reputation-captcha-authentication.yaml",
        include_str!("../config/flows/reputation-captcha-authentication.yaml"),
    ),
];

/// Starts the echo upstream on `addr` (port 0 for any) and returns the bound address.
pub async fn start_echo(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    Ok::<_, std::convert::Infallible>(echo(&req))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Ok(bound)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn echo(req: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let mut rows = String::new();
    for (k, v) in req.headers() {
        let v = v.to_str().unwrap_or("<binary>");
        let mark = if k.as_str().starts_with("x-forwarded-")
            || k.as_str().starts_with("x-authentik-")
            || k.as_str().starts_with("remote-")
        {
            " class=\"id\""
        } else {
            ""
        };
        rows.push_str(&format!(
            "<tr{mark}><th>{}</th><td>{}</td></tr>\n",
            escape(k.as_str()),
            escape(v)
        ));
    }
    let user = req
        .headers()
        .get("x-forwarded-user")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(none)");
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>flowgate demo upstream</title>\
         <style>body{{font:15px system-ui;margin:2rem}}table{{border-collapse:collapse}}th,td{{text-align:left;padding:.2rem .6rem;border-bottom:1px solid #ccc}}tr.id{{background:#e0f2fe}}</style></head>\
         <body><h1>Hello, {}</h1><p>This is the demo app behind flowgate. It received <code>{} {}</code> with these headers (identity headers highlighted):</p>\
         <table>{rows}</table><p><a href=\"/.flowgate/flow/default-password-change-flow/\">Change password</a> · \
         <a href=\"/.flowgate/flow/default-authenticator-totp-setup/\">Set up two-factor authentication</a> · \
         <a href=\"/.flowgate/flow/default-unenrollment-flow/\">Delete account</a> · <a href=\"/logout\">Log out</a></p></body></html>",
        escape(user),
        escape(req.method().as_str()),
        escape(&req.uri().to_string()),
    );
    Response::builder()
        .header("content-type", "text/html; charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// The demo's main config for an upstream at `upstream` and a listener at `listen`.
pub fn demo_config(
    listen: SocketAddr,
    upstream: SocketAddr,
    data_dir: &std::path::Path,
    seed: &std::path::Path,
) -> String {
    format!(
        "# flowgate demo (generated)\nlisten: {{ http: \"{listen}\" }}\ndata_dir: \"{}\"\nidentity: {{ seed: \"{}\" }}\napps:\n  - name: demo\n    upstream: \"http://{upstream}\"\n    headers: default\n    skip_auth: [\"^/public/\"]\nmail: {{ transport: file, dir: \"{}\" }}\n",
        data_dir.display(),
        seed.display(),
        data_dir.join("mail").display()
    )
}
