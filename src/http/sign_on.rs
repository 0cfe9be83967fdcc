//! The portal handshake (docs/decisions/0013): apps outside `session.cookie_domain`
//! sign in through `portal.host`.
//!
//! ```text
//! app host A                          portal P                              app host A
//! GET /x, no session
//!  └▶ 302 /.flowgate/sso/begin?next=/x
//! begin: binding cookie <cookie>_sso=N (Path=/.flowgate/sso/, HttpOnly, Lax)
//!  └▶ 302 P/.flowgate/sso/start?rd=<scheme://A/x>&s=H(N)
//!                                     start: rd on a configured app host, same scheme
//!                                      ├ no session ▶ login flow, next=start…
//!                                      └ session ▶ code C {host A, next /x, bind H(N), root}
//!                                        302 A/.flowgate/sso/callback?code=C ─────▶ callback:
//!                                                                            C redeemed (once, ≤30 s,
//!                                                                            host A, H(cookie) = bind,
//!                                                                            root session alive)
//!                                                                            ▶ session on A, same sign-on
//!                                                                            302 /x (no code, no-referrer)
//! ```
//!
//! The code never reaches the app: every step is under the reserved prefix (answered by
//! flowgate, never forwarded), and the app's first request is the clean `/x` after a redirect
//! sent with `Referrer-Policy: no-referrer`. A code is bound to the browser that began the
//! handshake (the binding cookie), so a code for an attacker's account cannot log a victim in
//! (login CSRF) and a leaked code is useless elsewhere.

use super::respond::Refusal;
use super::{HttpRequest, HttpResponse, Ui};
use crate::config::{Designation, PortalSettings, RESERVED_PREFIX};
use crate::flow::next::{next_from_query, safe_next};
use crate::session::{self, sign_on};
use std::sync::Arc;

/// Path of the handshake's endpoints (and of the binding cookie).
pub const SSO_PATH: &str = "/.flowgate/sso/";

fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn enc(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// `host[:port]` → (host, port).
fn split_port(host: &str) -> (&str, Option<&str>) {
    if host.starts_with('[') {
        return match host.split_once("]:") {
            Some((h, p)) => (&host[..h.len() + 1], Some(p)),
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (host, None),
    }
}

/// The return address of `start`, checked: the scheme of the portal request, a configured
/// app host that signs in through the portal, no user info, a same-origin path.
struct Return {
    /// `scheme://host[:port]`.
    origin: String,
    /// Host without port.
    host: String,
    /// Path and query.
    next: String,
}

fn parse_return(portal: &PortalSettings, rd: &str, https: bool) -> Result<Return, &'static str> {
    let uri: http::Uri = rd.parse().map_err(|_| "the return address is not a URL")?;
    let scheme = if https { "https" } else { "http" };
    if uri.scheme_str() != Some(scheme) {
        return Err("the return address has another scheme");
    }
    let authority = uri.authority().ok_or("the return address has no host")?.as_str();
    if authority.contains('@') {
        return Err("the return address carries user info");
    }
    let canon = crate::routing::canonical_host(authority).ok_or("the return address has an invalid host")?;
    let host = split_port(&canon).0.to_string();
    if !portal.app_hosts.contains(&host) {
        return Err("the return address is not on a configured host");
    }
    let next = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let next = safe_next(next).ok_or("the return path is not a same-origin path")?;
    Ok(Return {
        origin: format!("{scheme}://{canon}"),
        host,
        next: next.to_string(),
    })
}

impl Ui {
    /// The binding cookie's name: `<cookie>_sso`, `__Secure-` prefixed on HTTPS (its path is
    /// the handshake's, so `__Host-` does not apply).
    fn sso_cookie_name(&self, https: bool) -> String {
        let base = format!("{}{}", self.cookie, session::SSO_COOKIE_SUFFIX);
        if https {
            format!("__Secure-{base}")
        } else {
            base
        }
    }

    fn sso_cookie(&self, https: bool, value: &str, max_age: std::time::Duration) -> String {
        cookie::Cookie::build((self.sso_cookie_name(https), value.to_string()))
            .http_only(true)
            .same_site(cookie::SameSite::Lax)
            .path(SSO_PATH)
            .secure(https)
            .max_age(cookie::time::Duration::seconds(
                max_age.as_secs().min(i64::MAX as u64) as i64
            ))
            .build()
            .to_string()
    }

    /// The request's canonical host (with port, as the proxy handed it) and the host alone.
    fn host_of(req: &HttpRequest) -> Option<(String, String)> {
        let h = req.header("host")?;
        let canon = crate::routing::canonical_host(h)?;
        let bare = split_port(&canon).0.to_string();
        Some((canon, bare))
    }

    /// A handshake request on a host where it does not apply.
    fn sso_not_here(&self) -> HttpResponse {
        self.refuse_page(Refusal::NotFound)
    }

    fn refused(&self, req: &HttpRequest, why: &str) -> HttpResponse {
        tracing::info!(reason = why, "sign-on refused");
        let mut r = HttpResponse::html(
            400,
            self.pages.error(
                400,
                "Sign-in refused",
                "This sign-in link is invalid, has expired or was already used. Sign in again.",
                &[],
                Some(("/", "Sign in again")),
            ),
        );
        r.headers
            .push(("set-cookie", self.sso_cookie(req.https, "", std::time::Duration::ZERO)));
        r
    }

    /// Answers `/.flowgate/sso/<step>`.
    pub(super) async fn sign_on(&self, req: &HttpRequest, step: &str) -> HttpResponse {
        if req.method != http::Method::GET && req.method != http::Method::HEAD {
            return self.refuse_page(Refusal::MethodNotAllowed);
        }
        let (Some(portal), Some((host, bare))) = (self.portal.as_ref(), Self::host_of(req)) else {
            return self.sso_not_here();
        };
        match step {
            "begin" if portal.app_hosts.contains(&bare) => self.begin(req, portal, &host),
            "callback" if portal.app_hosts.contains(&bare) => self.callback(req, &bare).await,
            "start" if bare == portal.host => self.start(req, portal).await,
            _ => self.sso_not_here(),
        }
    }

    /// On an app host: binds the browser and sends it to the portal.
    fn begin(&self, req: &HttpRequest, portal: &PortalSettings, host: &str) -> HttpResponse {
        let next = next_from_query(&req.query).unwrap_or_else(|| "/".into());
        let scheme = if req.https { "https" } else { "http" };
        let nonce = session::new_id();
        let port = match portal.port {
            Some(p) => Some(p.to_string()),
            None => split_port(host).1.map(str::to_string),
        };
        let portal_origin = match port {
            Some(p) => format!("{scheme}://{}:{p}", portal.host),
            None => format!("{scheme}://{}", portal.host),
        };
        let rd = format!("{scheme}://{host}{next}");
        let to = format!(
            "{portal_origin}{SSO_PATH}start?rd={}&s={}",
            enc(&rd),
            sign_on::binding_of(&nonce)
        );
        HttpResponse::redirect(&to).with_header(
            "set-cookie",
            self.sso_cookie(req.https, &nonce, self.executor.settings.flow_timeout),
        )
    }

    /// On the portal: a code for the return address, after a login when there is no session.
    async fn start(&self, req: &HttpRequest, portal: &PortalSettings) -> HttpResponse {
        let (Some(rd), Some(bind)) = (query_param(&req.query, "rd"), query_param(&req.query, "s")) else {
            return self.refused(req, "start without rd or s");
        };
        if !session::is_well_formed_id(&bind) {
            return self.refused(req, "malformed browser binding");
        }
        let ret = match parse_return(portal, &rd, req.https) {
            Ok(r) => r,
            Err(why) => return self.refused(req, why),
        };
        let app = self
            .router
            .route(Some(&ret.host), ret.next.split('?').next().unwrap_or("/"))
            .cloned();
        let here = format!("{SSO_PATH}start?rd={}&s={bind}", enc(&rd));
        let session = self.session_of(req).await;
        let logged_in = session.as_ref().filter(|s| s.user.is_some());
        // The app's own flow, when it names one the portal session does not satisfy (step-up).
        let step_up = app
            .as_ref()
            .and_then(|a| a.requires_flow.clone())
            .filter(|flow| logged_in.is_some_and(|s| !self.executor.registry().satisfies(&s.auth, flow)));
        let Some(s) = logged_in.filter(|_| step_up.is_none()) else {
            let slug = match step_up.or_else(|| app.as_ref().and_then(|a| a.authentication_flow.clone())) {
                Some(slug) => Some(slug),
                None => self.select_flow(req, Designation::Authentication).await,
            };
            return match slug {
                Some(slug) => HttpResponse::redirect(&format!("{RESERVED_PREFIX}flow/{slug}/?next={}", enc(&here))),
                None => self.refuse_page(Refusal::NoLoginFlow),
            };
        };
        let Some(user) = s.user.as_deref() else {
            return self.refused(req, "no user");
        };
        let now = self.sessions.clock().now_ms();
        let rec = sign_on::record(
            ret.host.clone(),
            ret.next.clone(),
            bind,
            s.store_key(),
            s.expires_ms,
            user.clone(),
            s.auth.clone(),
            now,
        );
        match sign_on::issue(&self.sessions, &rec).await {
            Ok(code) => {
                tracing::info!(user = %user.username, host = %ret.host, "sign-on code issued");
                let mut r = HttpResponse::redirect(&format!("{}{SSO_PATH}callback?code={code}", ret.origin));
                no_referrer(&mut r);
                r
            }
            Err(e) => {
                tracing::error!(error = %e, "sign-on code not stored");
                self.refuse_page(Refusal::Unavailable)
            }
        }
    }

    /// On an app host: redeems the code for a session of this host.
    async fn callback(&self, req: &HttpRequest, bare: &str) -> HttpResponse {
        let Some(code) = query_param(&req.query, "code") else {
            return self.refused(req, "callback without a code");
        };
        let nonce = req
            .header("cookie")
            .and_then(|h| session::session_id_from_cookie_header(h, &self.sso_cookie_name(req.https)))
            .unwrap_or("")
            .to_string();
        let rec = match sign_on::redeem(&self.sessions, &code, bare, &nonce).await {
            Ok(r) => r,
            Err(sign_on::CodeError::Refused(why)) => {
                let mut r = self.refused(req, why);
                no_referrer(&mut r);
                return r;
            }
            Err(sign_on::CodeError::Store(e)) => {
                tracing::error!(error = %e, "sign-on code not read");
                return self.refuse_page(Refusal::Unavailable);
            }
        };
        match self.sessions.alive_by_key(&rec.root).await {
            Ok(true) => {}
            Ok(false) => {
                let mut r = self.refused(req, "the portal session has ended");
                no_referrer(&mut r);
                return r;
            }
            Err(_) => return self.refuse_page(Refusal::Unavailable),
        }
        let now = self.sessions.clock().now_ms();
        let lifetime = std::time::Duration::from_millis(rec.root_expires_ms.saturating_sub(now));
        let mut auth = rec.auth;
        auth.shape_mut().scope = bare.to_string();
        let user = rec.user;
        let username = user.username.clone();
        let fresh = match self
            .sessions
            .open(
                Some(Arc::new(user)),
                auth,
                lifetime,
                self.executor.settings.idle_timeout,
            )
            .await
        {
            Ok(s) => s,
            Err(_) => return self.refuse_page(Refusal::Unavailable),
        };
        // A session this browser held on this host before is replaced, not left behind.
        if let Some(old) = self.session_of(req).await {
            self.sessions.end(&old).await;
        }
        tracing::info!(user = %username, host = %bare, session = %session::log_tag(&fresh.id), "signed on through the portal");
        let name = self.cookie_name(req.https);
        let mut r = HttpResponse::redirect(&rec.next);
        r.headers.push((
            "set-cookie",
            session::set_cookie_in(&name, &fresh.id, req.https, None, None),
        ));
        r.headers
            .push(("set-cookie", self.sso_cookie(req.https, "", std::time::Duration::ZERO)));
        no_referrer(&mut r);
        r
    }
}

/// On the portal host, the pages' `form-action` also names the app hosts that sign in through
/// it: a login form's submission ends, through the flow's redirects, on an app host's
/// callback, and browsers apply `form-action` to every redirect of a form's navigation
/// (with `'self'` alone, Chromium stops on the password page).
pub(super) fn allow_portal_form_redirects(portal: &PortalSettings, req: &HttpRequest, resp: &mut HttpResponse) {
    let on_portal = Ui::host_of(req).is_some_and(|(_, bare)| bare == portal.host);
    if !on_portal || portal.app_hosts.is_empty() {
        return;
    }
    for (name, value) in resp.headers.iter_mut() {
        if *name == "content-security-policy" {
            let hosts: Vec<String> = portal.app_hosts.iter().map(|h| format!("{h}:*")).collect();
            *value = value.replace("form-action 'self'", &format!("form-action 'self' {}", hosts.join(" ")));
        }
    }
}

/// The code is in this response's URL or its `Location`: no `Referer` may carry it on.
fn no_referrer(r: &mut HttpResponse) {
    for (name, value) in r.headers.iter_mut() {
        if *name == "referrer-policy" {
            *value = "no-referrer".into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn portal() -> PortalSettings {
        PortalSettings {
            host: "auth.example.test".into(),
            port: None,
            app_hosts: ["other.test".to_string()].into(),
        }
    }

    #[test]
    fn ports() {
        assert_eq!(split_port("a.test:8080"), ("a.test", Some("8080")));
        assert_eq!(split_port("a.test"), ("a.test", None));
        assert_eq!(split_port("[::1]:8080"), ("[::1]", Some("8080")));
        assert_eq!(split_port("[::1]"), ("[::1]", None));
    }

    #[test]
    fn return_addresses() {
        let p = portal();
        let ok = parse_return(&p, "http://other.test:8080/a?b=1", false).unwrap();
        assert_eq!(
            (ok.origin.as_str(), ok.host.as_str(), ok.next.as_str()),
            ("http://other.test:8080", "other.test", "/a?b=1")
        );
        for bad in [
            "https://other.test/",
            "javascript://other.test/",
            "http://evil.test/",
            "http://user@other.test/",
            "http://other.test.evil.test/",
            "http://auth.example.test/",
            "//other.test/",
            "/relative",
            "http://other.test//evil.test",
        ] {
            assert!(parse_return(&p, bad, false).is_err(), "{bad}");
        }
    }
}
