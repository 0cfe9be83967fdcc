//! The request the app receives: the client's request with what the app must not believe
//! removed (identity headers in every spelling, rewrite headers, forwarding headers from
//! untrusted peers, the gateway's session cookie) and what flowgate vouches for set (the
//! canonical `Host`, `X-Forwarded-*`, `X-Request-Id`, the identity headers).
//!
//! The header map is edited directly, outside pingora's case-preserving [`RequestHeader`]: its
//! `insert_header` parses every name again and keeps a second map of the names as spelled,
//! which cost two to three allocations per header set (a fifth of flowgate's own CPU per
//! proxied request, ADR 0023). The app therefore receives header names in lowercase (and the
//! few standard ones pingora titles, `Host`, `Content-Type`…), as every HTTP/2 hop sends them;
//! names are case-insensitive (RFC 9110 §5.1). The request target is kept byte for byte.

use super::{headers, RequestCtx};
use crate::session;
use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, COOKIE, HOST};
use pingora::http::RequestHeader;
use pingora::{Error, ErrorType, Result};

use headers::{X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID};

/// Rewrites the upstream request header for `ctx`'s request (see the module doc).
pub(super) fn rewrite(req: &mut RequestHeader, ctx: &RequestCtx) -> Result<()> {
    // An absolute-form (or otherwise non-origin-form) target does not survive the trip
    // through `http` parts: it is put back as it was.
    let raw_target = {
        let from_uri = req.uri.path_and_query().map(|p| p.as_str().as_bytes());
        (from_uri != Some(req.raw_path())).then(|| req.raw_path().to_vec())
    };
    let end_stream = req.send_end_stream();
    let placeholder = RequestHeader::from(http::Request::new(()).into_parts().0);
    let mut parts: http::request::Parts = std::mem::replace(req, placeholder).into();
    edit(&mut parts.headers, ctx)?;
    let mut out = RequestHeader::from(parts);
    if let Some(raw) = raw_target {
        out.set_raw_path(&raw)?;
    }
    if let Some(e) = end_stream {
        out.set_send_end_stream(e);
    }
    *req = out;
    Ok(())
}

fn value(v: impl TryInto<HeaderValue>, what: &'static str) -> Result<HeaderValue> {
    v.try_into()
        .map_err(|_| Error::explain(ErrorType::InvalidHTTPHeader, what))
}

/// The header edits of [`rewrite`].
fn edit(h: &mut HeaderMap, ctx: &RequestCtx) -> Result<()> {
    // Room for what is set below, so that the map grows once (if at all).
    h.reserve(12);
    let doomed: Vec<HeaderName> = h
        .keys()
        .filter(|n| ctx.state.strip.matches(n.as_str(), ctx.peer_trusted))
        .cloned()
        .collect();
    for n in doomed {
        tracing::debug!(header = %n, "stripped client header");
        h.remove(&n);
    }
    // An API client's credentials were flowgate's to check: the app never sees them. On an
    // app with `basic_auth` the header is flowgate's whatever decided the request: a browser
    // that answered the `Basic` challenge keeps sending the password beside its session
    // cookie and on skip-auth paths.
    if ctx.api_client || ctx.app.as_ref().is_some_and(|a| a.api_clients.is_some()) {
        h.remove(AUTHORIZATION);
    }
    // Neither scheme's session cookie is ever shown to the app (the other scheme's is a
    // valid session too); the cookie lines are joined into one.
    if h.contains_key(COOKIE) {
        let cookies: Vec<String> = h
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| session::strip_cookie(v, &ctx.state.cookie))
            .collect();
        h.remove(COOKIE);
        if !cookies.is_empty() {
            h.insert(COOKIE, value(cookies.join("; "), "cookie")?);
        }
    }
    // The app sees the host in the canonical form it was routed by (one `Host` line: a
    // request with two was refused).
    let host = ctx.host.as_deref().unwrap_or("");
    let host_value = match h.get(HOST) {
        _ if host.is_empty() => HeaderValue::from_static(""),
        Some(v) if v.as_bytes() == host.as_bytes() => v.clone(),
        _ => {
            let v = value(host, "host")?;
            h.insert(HOST, v.clone());
            v
        }
    };
    // X-Forwarded-*: client values are kept only from trusted proxies.
    let peer_s = ctx.peer_ip.map(|i| i.to_string()).unwrap_or_default();
    let proto = HeaderValue::from_static(if ctx.https { "https" } else { "http" });
    if ctx.peer_trusted {
        // Every line the proxy sent, in order (a proxy may add its hop as a line of its
        // own), then the peer; `effective_client_ip` reads the same lines.
        let mut chain: Vec<&[u8]> = h
            .get_all(X_FORWARDED_FOR)
            .iter()
            .map(|v| v.as_bytes().trim_ascii())
            .filter(|v| !v.is_empty())
            .collect();
        chain.push(peer_s.as_bytes());
        let joined = HeaderValue::from_bytes(&chain.join(&b", "[..]))
            .map_err(|e| Error::because(ErrorType::InternalError, "x-forwarded-for", e))?;
        h.insert(X_FORWARDED_FOR, joined);
        if !h.contains_key(X_FORWARDED_PROTO) {
            h.insert(X_FORWARDED_PROTO, proto);
        }
        if !h.contains_key(X_FORWARDED_HOST) {
            h.insert(X_FORWARDED_HOST, host_value);
        }
    } else {
        h.insert(X_FORWARDED_FOR, value(peer_s, "x-forwarded-for")?);
        h.insert(X_FORWARDED_PROTO, proto);
        h.insert(X_FORWARDED_HOST, host_value);
    }
    // The request's id: a trusted proxy's, kept, or flowgate's own (`request_id`); any other
    // spelling from an untrusted client was stripped above.
    h.insert(X_REQUEST_ID, value(ctx.request_id.as_str(), "x-request-id")?);
    if let (Some(app), Some(who)) = (ctx.app.as_ref(), ctx.identity.as_ref()) {
        for (n, v) in headers::identity_headers(&app.headers, app, who) {
            let name = HeaderName::from_bytes(n.as_bytes())
                .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "identity header name", e))?;
            h.insert(name, value(v, "identity header")?);
        }
        if let Some(s) = app.jwt.as_deref() {
            let now = ctx.state.sessions.clock().now_ms();
            if let Some(t) = ctx.state.jwt.token(s, app, who, now) {
                let name = HeaderName::from_bytes(s.header.as_bytes())
                    .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "jwt header name", e))?;
                h.insert(name, value(&*t, "jwt")?);
            }
        }
    }
    Ok(())
}
