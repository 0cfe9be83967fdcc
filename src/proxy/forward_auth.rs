//! Forward-auth endpoints: another reverse proxy (nginx `auth_request`, Traefik `forwardAuth`,
//! Caddy `forward_auth`) asks flowgate whether a request may pass, and copies the identity
//! headers of a 200 answer onto the request it forwards. Nothing here forwards anything: the
//! answer is written by flowgate itself, and the decision is [`decide`], the same one the
//! proxy uses.
//!
//! | endpoint | original URL from | no session |
//! |---|---|---|
//! | `/.flowgate/auth/nginx` | `X-Original-URL` (full URL) or `X-Original-URI` (path; host from `X-Forwarded-Host`, else `Host`) | 401, JSON `{error, login_url}` and `X-Flowgate-Login` |
//! | `/.flowgate/auth/traefik` (also Caddy) | `X-Forwarded-Proto` + `X-Forwarded-Host` + `X-Forwarded-Uri` | 302 to the app's login flow, `?next=<path+query>` |
//!
//! Threat model (authentik's outpost got each of these wrong, see docs/design.md §8,
//! CVE-2026-25748, #6857, #9858):
//! - The URL headers are believed only from a configured trusted proxy; any other peer is
//!   refused with 403 before a header is read, so a direct `curl` can never get a 200.
//! - A header that is missing, repeated, not text, or does not parse is a 400; when nginx sends
//!   both `X-Original-URL` and `X-Original-URI` they must agree, so a client-sent copy of the
//!   one the proxy does not set cannot steer the decision.
//! - Fail closed: the only 200s come from [`Verdict::Anonymous`] and [`Verdict::Allow`]; every
//!   other path, including the ones not foreseen, falls through to a 4xx/5xx. A write error
//!   reaches pingora's `fail_to_proxy`, which answers 502.
//! - `next` goes through the proxy's own login URL builder (`decide::login_url`), which keeps
//!   it only if `safe_next` accepts it.
//!
//! The answers other than a 200 are [`Refusal`]s, rendered for the endpoint by
//! [`crate::http::respond`].

use super::decide::{self, Facts, Verdict};
use super::{write, ProxyState, RequestCtx};
use crate::config::{App, RESERVED_PREFIX};
use crate::http::respond::{self, Client, Refusal};
use crate::http::HttpResponse;
use crate::session::Identity;
use pingora::prelude::Session;
use std::net::IpAddr;
use std::sync::Arc;

// Which reverse proxy is asking.
pub(crate) use crate::http::respond::AuthEndpoint as Kind;

/// The endpoint a raw request path names, if any.
pub(crate) fn kind_of(raw_path: &str) -> Option<Kind> {
    match raw_path.strip_prefix(RESERVED_PREFIX)? {
        "auth/nginx" => Some(Kind::Nginx),
        "auth/traefik" => Some(Kind::Traefik),
        _ => None,
    }
}

/// The auth request as received from the reverse proxy.
pub(crate) struct Caller<'a> {
    /// Its headers (the original request's, plus the proxy's URL headers).
    pub(crate) headers: &'a http::HeaderMap,
    /// Its own method (used when the proxy does not name the original one).
    pub(crate) method: &'a str,
    /// Whether the socket peer is a configured trusted proxy.
    pub(crate) peer_trusted: bool,
    /// Whether the listener is TLS (decides the cookie name, as for the proxy).
    pub(crate) https: bool,
    /// The client as policies see it.
    pub(crate) client_ip: Option<IpAddr>,
}

/// The answer to write: a response, the identity headers to add to it (only on a 200: the
/// session's values, or empty values on a skip-auth path), and what the request log shows.
pub(crate) struct Answer {
    /// Status, flowgate's own headers, body.
    pub(crate) response: HttpResponse,
    /// Identity headers for the reverse proxy to copy onto the forwarded request.
    pub(crate) identity: Vec<(String, String)>,
    /// The app, when one was found.
    pub(crate) app: Option<Arc<App>>,
    /// The user, when a session was found.
    pub(crate) user: Option<Arc<Identity>>,
}

/// The original request, as the trusted proxy describes it.
#[derive(Debug, PartialEq, Eq)]
struct Original {
    host: String,
    /// Raw path (no query), starting with `/`.
    path: String,
    /// Raw path and query, for `next`.
    target: String,
    /// Method for app policies.
    method: Option<String>,
}

/// Serves a forward-auth endpoint for the proxy: answers, and writes the answer with its
/// identity headers. Nothing is forwarded.
pub(super) async fn serve(session: &mut Session, ctx: &mut RequestCtx, kind: Kind) -> pingora::Result<bool> {
    ctx.client = Client::ForwardAuth(kind);
    let a = {
        let h = session.req_header();
        let caller = Caller {
            headers: &h.headers,
            method: h.method.as_str(),
            peer_trusted: ctx.peer_trusted,
            https: ctx.https,
            client_ip: ctx.client_ip,
        };
        answer(&ctx.state, kind, &caller).await
    };
    // An auth request carries no body; if one was sent anyway, do not reuse the connection.
    let h = &session.req_header().headers;
    if h.contains_key("transfer-encoding") || h.get("content-length").is_some_and(|v| v.as_bytes() != b"0") {
        session.set_keepalive(None);
    }
    if let Some(app) = a.app {
        ctx.set_app(app);
    }
    if let Some(who) = a.user {
        ctx.set_user(who);
    }
    write::response_with(session, a.response, &a.identity).await?;
    Ok(true)
}

/// Answers one forward-auth request. Never panics; never answers 200 except for an allowed
/// request.
pub(crate) async fn answer(state: &ProxyState, kind: Kind, c: &Caller<'_>) -> Answer {
    let refuse = |r: Refusal| refusal(state, kind, r);
    if !c.peer_trusted {
        tracing::warn!(endpoint = ?kind, "forward-auth request from a peer that is not a trusted proxy refused");
        return refuse(Refusal::UntrustedPeer);
    }
    let original = match original(kind, c.headers) {
        Ok(o) => o,
        Err(why) => {
            tracing::warn!(endpoint = ?kind, reason = %why, "forward-auth request without a usable original URL");
            return refuse(Refusal::BadOriginal(why));
        }
    };
    let facts = Facts {
        host: Some(&original.host),
        raw_path: &original.path,
        method: original.method.as_deref().unwrap_or(c.method),
        headers: c.headers,
        https: c.https,
        client_ip: c.client_ip,
    };
    match decide::decide(state, &facts).await {
        Verdict::Anonymous(app) => Answer {
            response: respond::forward_auth_pass(),
            identity: super::headers::blank_identity_headers(&app.headers, &app),
            app: Some(app),
            user: None,
        },
        Verdict::ApiRefused(app, why) => Answer {
            app: Some(app.clone()),
            ..refuse(super::api_refusal(&app, why))
        },
        Verdict::Allow(app, who) | Verdict::ApiAllow(app, who) => {
            let mut identity = super::headers::identity_headers(&app.headers, &app, &who);
            if let Some(s) = app.jwt.as_deref() {
                let now = state.sessions.clock().now_ms();
                if let Some(t) = state.jwt.token(s, &app, &who, now) {
                    identity.push((s.header.clone(), t.to_string()));
                }
            }
            Answer {
                response: respond::forward_auth_pass(),
                identity,
                app: Some(app),
                user: Some(who),
            }
        }
        Verdict::BadPath => refuse(Refusal::BadOriginalPath),
        Verdict::NoApp => refuse(Refusal::NoApp),
        Verdict::Unavailable(app) => Answer {
            app: Some(app),
            ..refuse(Refusal::Unavailable)
        },
        Verdict::Deny(app, who, messages) => {
            tracing::debug!(user = %who.username, app = %app.name, "app policies deny (forward auth)");
            Answer {
                app: Some(app),
                user: Some(who),
                ..refuse(Refusal::Denied(messages))
            }
        }
        Verdict::Login(app) => {
            let login = match decide::login_url(state, &app, c.client_ip, &original.target, Some(&original.host)).await
            {
                Some(url) => Refusal::LoginRequired(url),
                None => Refusal::NoLoginFlow,
            };
            Answer {
                app: Some(app),
                ..refuse(login)
            }
        }
    }
}

/// A refusal, rendered for the endpoint: no identity headers.
fn refusal(state: &ProxyState, kind: Kind, r: Refusal) -> Answer {
    Answer {
        response: respond::render(&state.ui.pages, Client::ForwardAuth(kind), &r),
        identity: Vec::new(),
        app: None,
        user: None,
    }
}

/// The value of a header sent at most once, as text.
fn one<'a>(h: &'a http::HeaderMap, name: &str) -> Result<Option<&'a str>, String> {
    let mut all = h.get_all(name).iter();
    let Some(v) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(format!("{name} is sent more than once."));
    }
    match v.to_str() {
        Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim())),
        Ok(_) => Err(format!("{name} is empty.")),
        Err(_) => Err(format!("{name} is not text.")),
    }
}

fn required<'a>(h: &'a http::HeaderMap, name: &str) -> Result<&'a str, String> {
    one(h, name)?.ok_or_else(|| format!("{name} is required."))
}

/// Reads the original URL from the proxy's headers (see the module doc).
fn original(kind: Kind, h: &http::HeaderMap) -> Result<Original, String> {
    let (host, target, method) = match kind {
        Kind::Nginx => {
            let method = one(h, "x-original-method")?;
            match (one(h, "x-original-url")?, one(h, "x-original-uri")?) {
                (None, None) => return Err("X-Original-URL or X-Original-URI is required.".into()),
                (Some(url), uri) => {
                    let (host, target) = split_url(url)?;
                    if uri.is_some_and(|u| u != target) {
                        return Err("X-Original-URI does not match X-Original-URL.".into());
                    }
                    (host, target, method)
                }
                (None, Some(uri)) => {
                    let host = match one(h, "x-forwarded-host")? {
                        Some(h) => h,
                        None => required(h, "host")?,
                    };
                    (host.to_string(), uri.to_string(), method)
                }
            }
        }
        Kind::Traefik => {
            let proto = required(h, "x-forwarded-proto")?;
            if !proto.eq_ignore_ascii_case("http") && !proto.eq_ignore_ascii_case("https") {
                return Err("X-Forwarded-Proto must be http or https.".into());
            }
            let host = required(h, "x-forwarded-host")?;
            let uri = required(h, "x-forwarded-uri")?;
            (host.to_string(), uri.to_string(), one(h, "x-forwarded-method")?)
        }
    };
    // The same canonical host the proxy routes by: `app.test.` or `app.test:abc` must not miss
    // a host-bound app and fall to a catch-all (HOST-1).
    let Some(host) = crate::routing::canonical_host(&host) else {
        return Err("The original host is not a valid host name.".into());
    };
    if let Some(m) = method {
        if m.is_empty() || m.len() > 16 || !m.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err("The original method is not valid.".into());
        }
    }
    // The target is a path (and query); an absolute or scheme-relative form is refused.
    let target = target.split('#').next().unwrap_or("").to_string();
    if !target.starts_with('/') || target.starts_with("//") {
        return Err("The original URI must be a path starting with a single /.".into());
    }
    let path = target.split('?').next().unwrap_or("").to_string();
    Ok(Original {
        host,
        path,
        target,
        method: method.map(str::to_string),
    })
}

/// `scheme://host[:port]/path?query` → (host, path+query). Only http and https, no userinfo.
fn split_url(url: &str) -> Result<(String, String), String> {
    let bad = || "X-Original-URL is not a valid http(s) URL.".to_string();
    let u: http::Uri = url.parse().map_err(|_| bad())?;
    let scheme_ok = u
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"));
    let authority = u.authority().ok_or_else(bad)?.as_str();
    if !scheme_ok || authority.contains('@') {
        return Err(bad());
    }
    let target = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    };
    Ok((authority.to_string(), target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        let mut m = http::HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, http::HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn endpoints() {
        assert_eq!(kind_of("/.flowgate/auth/nginx"), Some(Kind::Nginx));
        assert_eq!(kind_of("/.flowgate/auth/traefik"), Some(Kind::Traefik));
        assert_eq!(kind_of("/.flowgate/auth/nginx/"), None);
        assert_eq!(kind_of("/.flowgate/auth/"), None);
        assert_eq!(kind_of("/auth/nginx"), None);
    }

    #[test]
    fn nginx_original() {
        let o = original(
            Kind::Nginx,
            &headers(&[("x-original-url", "https://App.test:8443/a/b?x=1")]),
        )
        .unwrap();
        assert_eq!(
            (o.host.as_str(), o.path.as_str(), o.target.as_str()),
            ("app.test:8443", "/a/b", "/a/b?x=1"),
            "the host is canonical"
        );
        let o = original(
            Kind::Nginx,
            &headers(&[("x-original-uri", "/p?q"), ("x-forwarded-host", "app.test")]),
        )
        .unwrap();
        assert_eq!((o.host.as_str(), o.target.as_str()), ("app.test", "/p?q"));
        for bad in [
            headers(&[]),
            headers(&[("x-original-url", "https://app.test/a"), ("x-original-uri", "/public/")]),
            headers(&[("x-original-url", "https://u@evil.test/a")]),
            headers(&[("x-original-url", "javascript:alert(1)")]),
            headers(&[("x-original-url", "/relative")]),
            headers(&[("x-original-url", "ftp://app.test/")]),
            headers(&[
                ("x-original-url", "https://a.test/"),
                ("x-original-url", "https://b.test/"),
            ]),
            headers(&[("x-original-uri", "//evil.test/"), ("host", "app.test")]),
            headers(&[("x-original-uri", "/x")]),
            headers(&[("x-original-uri", "/x"), ("host", "a b")]),
            headers(&[("x-original-url", "https://a.test/"), ("x-original-method", "get x")]),
        ] {
            assert!(original(Kind::Nginx, &bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn traefik_original() {
        let full = [
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.test"),
            ("x-forwarded-uri", "/a?next=/b#frag"),
            ("x-forwarded-method", "POST"),
        ];
        let o = original(Kind::Traefik, &headers(&full)).unwrap();
        assert_eq!(o.target, "/a?next=/b");
        assert_eq!(o.path, "/a");
        assert_eq!(o.method.as_deref(), Some("POST"));
        for skip in 0..3 {
            let partial: Vec<_> = full
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, p)| *p)
                .collect();
            assert!(original(Kind::Traefik, &headers(&partial)).is_err(), "without {skip}");
        }
        for uri in ["https://evil.test/", "@evil.test", "//evil.test", "evil"] {
            let h = headers(&[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "app.test"),
                ("x-forwarded-uri", uri),
            ]);
            assert!(original(Kind::Traefik, &h).is_err(), "{uri}");
        }
        let h = headers(&[
            ("x-forwarded-proto", "gopher"),
            ("x-forwarded-host", "app.test"),
            ("x-forwarded-uri", "/"),
        ]);
        assert!(original(Kind::Traefik, &h).is_err());
    }
}
