//! The login UI's requests (reserved prefix, logout path): the body is read within
//! `max_form_bytes`, the request handed to [`crate::http::Ui`] with the canonical host and one
//! `Cookie` line, and its answer written back. Nothing here is forwarded.

use super::checks::joined_cookie_header;
use super::{refuse, write, ProxyState, RequestCtx};
use crate::http::respond::{Refusal, TooLarge};
use crate::http::HttpRequest;
use bytes::Bytes;
use pingora::prelude::Session;
use pingora::Result;
use std::net::IpAddr;

/// Public keys of the signed identity tokens (`apps[].jwt`), as a JWKS.
pub const JWKS_PATH: &str = "/.flowgate/jwks.json";

/// The UI's request body, or `None` when it is over `max_form_bytes`.
async fn read_body(state: &ProxyState, session: &mut Session) -> Result<Option<Bytes>> {
    let limit = state.max_form_bytes;
    let declared = super::checks::announced_length(&session.req_header().headers);
    if declared.is_some_and(|n| n > limit as u64) {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(Bytes::from(body)))
}

/// Hands a request for the reserved prefix or the logout path to [`crate::http::Ui`] and writes
/// its answer; nothing is forwarded.
pub(super) async fn serve(session: &mut Session, ctx: &RequestCtx) -> Result<bool> {
    if session.req_header().uri.path() == JWKS_PATH {
        let mut r = crate::http::HttpResponse {
            status: 200,
            headers: vec![
                ("content-type", "application/json".into()),
                ("cache-control", "public, max-age=300".into()),
                ("x-content-type-options", "nosniff".into()),
            ],
            body: ctx.state.jwks.clone(),
        };
        if session.req_header().method != http::Method::GET && session.req_header().method != http::Method::HEAD {
            r.status = 405;
            r.body = Bytes::new();
            r.headers.push(("allow", "GET, HEAD".into()));
        }
        write::response(session, r).await?;
        return Ok(true);
    }
    let Some(body) = read_body(&ctx.state, session).await? else {
        refuse(session, ctx, Refusal::TooLarge(TooLarge::Form)).await?;
        return Ok(true);
    };
    let h = session.req_header();
    // The UI reads `Host` and one `Cookie` line: give it the canonical host (HTTP/2 sends
    // `:authority` and no `Host`) and every cookie line joined (HTTP/2 sends one per cookie).
    let mut headers = h.headers.clone();
    if let Some(host) = ctx.host.as_deref().and_then(|v| http::HeaderValue::from_str(v).ok()) {
        headers.insert(http::header::HOST, host);
    }
    if let Some(joined) = joined_cookie_header(&h.headers) {
        if let Ok(v) = http::HeaderValue::from_str(&joined) {
            headers.insert(http::header::COOKIE, v);
        }
    }
    let req = HttpRequest {
        method: h.method.clone(),
        path: h.uri.path().to_string(),
        query: h.uri.query().unwrap_or("").to_string(),
        headers,
        body,
        client_ip: ctx.client_ip.unwrap_or(IpAddr::from([0, 0, 0, 0])),
        https: ctx.https,
    };
    let resp = ctx.state.ui.handle(&req).await;
    write::response(session, resp).await?;
    Ok(true)
}
