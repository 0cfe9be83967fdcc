//! The request the app receives: the client's request with what the app must not believe
//! removed (identity headers in every spelling, rewrite headers, forwarding headers from
//! untrusted peers, the gateway's session cookie) and what flowgate vouches for set (the
//! canonical `Host`, `X-Forwarded-*`, `X-Request-Id`, the identity headers).

use super::{headers, request_id, RequestCtx};
use crate::session;
use pingora::http::RequestHeader;
use pingora::{Error, ErrorType, Result};

/// Rewrites the upstream request header for `ctx`'s request (see the module doc).
pub(super) fn rewrite(req: &mut RequestHeader, ctx: &RequestCtx) -> Result<()> {
    let doomed: Vec<http::HeaderName> = req
        .headers
        .keys()
        .filter(|n| ctx.state.strip.matches(n.as_str(), ctx.peer_trusted))
        .cloned()
        .collect();
    for n in doomed {
        tracing::debug!(header = %n, "stripped client header");
        req.remove_header(&n);
    }
    // An API client's credentials were flowgate's to check: the app never sees them.
    if ctx.api_client {
        req.remove_header("authorization");
    }
    // Neither scheme's session cookie is ever shown to the app (the other scheme's is a
    // valid session too); the cookie lines are joined into one.
    if req.headers.contains_key("cookie") {
        let cookies: Vec<String> = req
            .headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| session::strip_cookie(v, &ctx.state.cookie))
            .collect();
        req.remove_header("cookie");
        if !cookies.is_empty() {
            req.insert_header("cookie", cookies.join("; "))?;
        }
    }
    // The app sees the host in the canonical form it was routed by.
    let host = ctx.host.as_deref().unwrap_or("");
    if !host.is_empty() {
        req.insert_header("host", host)?;
    }
    // X-Forwarded-*: client values are kept only from trusted proxies.
    let peer = ctx.peer_ip;
    let trusted = ctx.peer_trusted;
    let peer_s = peer.map(|i| i.to_string()).unwrap_or_default();
    let proto = if ctx.https { "https" } else { "http" };
    if trusted {
        // Every line the proxy sent, in order (a proxy may add its hop as a line of its
        // own), then the peer; `effective_client_ip` reads the same lines.
        let mut chain: Vec<&[u8]> = req
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.as_bytes().trim_ascii())
            .filter(|v| !v.is_empty())
            .collect();
        chain.push(peer_s.as_bytes());
        let joined = http::HeaderValue::from_bytes(&chain.join(&b", "[..]))
            .map_err(|e| Error::because(ErrorType::InternalError, "x-forwarded-for", e))?;
        req.insert_header("x-forwarded-for", joined)?;
        if !req.headers.contains_key("x-forwarded-proto") {
            req.insert_header("x-forwarded-proto", proto)?;
        }
        if !req.headers.contains_key("x-forwarded-host") {
            req.insert_header("x-forwarded-host", host)?;
        }
    } else {
        req.insert_header("x-forwarded-for", peer_s)?;
        req.insert_header("x-forwarded-proto", proto)?;
        req.insert_header("x-forwarded-host", host)?;
    }
    // The request's id: a trusted proxy's, kept, or flowgate's own (`request_id`); any other
    // spelling from an untrusted client was stripped above.
    req.insert_header(request_id::HEADER, ctx.request_id.as_str())?;
    if let (Some(app), Some(who)) = (ctx.app.as_ref(), ctx.identity.as_ref()) {
        for (n, v) in headers::identity_headers(&app.headers, app, who) {
            req.insert_header(n, v)?;
        }
        if let Some(s) = app.jwt.as_deref() {
            let now = ctx.state.sessions.clock().now_ms();
            if let Some(t) = ctx.state.jwt.token(s, app, who, now) {
                req.insert_header(s.header.clone(), &*t)?;
            }
        }
    }
    Ok(())
}
