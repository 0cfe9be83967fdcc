//! Routes under `/.flowgate/` and the logout path: the HTML executor, the authentik-compatible
//! JSON executor, default-flow and cancel redirects, health and the stylesheet.

use super::forms::{parse_form, parse_json, BodyError};
use super::pages::{Pages, STYLESHEET, WEBAUTHN_SCRIPT, WEBAUTHN_SCRIPT_PATH};
use super::respond::{self, Client, NoFlowFor, Refusal};
use super::{HttpRequest, HttpResponse};
use crate::config::{Designation, RESERVED_PREFIX};
use crate::flow::executor::{subject_of_identity, ExecInput, ExecKind, ExecOutput, Executor};
use crate::flow::next::next_from_query;
use crate::flow::policies::PolicyInput;
use crate::routing::Router;
use crate::session::{self, Session, SessionStore};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Query parameters that carry a secret: a mailed link's `flow_token`, an invitation's
/// `itoken` (or `token`).
const TOKEN_PARAMS: &[&str] = &["flow_token", "itoken", "token"];

/// Whether a flow query carries a token.
fn carries_token(query: &str) -> bool {
    form_urlencoded::parse(query.as_bytes()).any(|(k, _)| TOKEN_PARAMS.contains(&k.as_ref()))
}

/// Keeps a token out of `Referer` (LINK-2). Every answer to a URL with a token sends
/// `Referrer-Policy: no-referrer`; a page shown for such a URL is instead a redirect to the
/// same URL without the token (the executor keeps the token server-side in the plan), so no
/// page with a form or a link ever has a token in its address. Forms cannot be served with
/// `no-referrer` themselves: browsers then send `Origin: null` with the POST, which the
/// same-origin check refuses.
fn hide_token(req: &HttpRequest, mode: Mode, mut resp: HttpResponse) -> HttpResponse {
    if mode == Mode::Html && req.method == http::Method::GET && resp.status == 200 {
        let rest = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(
                form_urlencoded::parse(req.query.as_bytes()).filter(|(k, _)| !TOKEN_PARAMS.contains(&k.as_ref())),
            )
            .finish();
        let to = if rest.is_empty() {
            req.path.clone()
        } else {
            format!("{}?{rest}", req.path)
        };
        let mut r = HttpResponse::redirect(&to);
        r.headers
            .extend(resp.headers.drain(..).filter(|(name, _)| *name == "set-cookie"));
        resp = r;
    }
    for (name, value) in resp.headers.iter_mut() {
        if *name == "referrer-policy" {
            *value = "no-referrer".into();
        }
    }
    resp
}

/// Lets a stage page load the WebAuthn script and nothing else: its CSP gets a `script-src`
/// naming exactly that file on this origin (a path-exact source), so no inline script and no
/// other file may run.
fn allow_webauthn_script(req: &HttpRequest, resp: &mut HttpResponse) {
    let Some(host) = req.header("host").and_then(crate::routing::canonical_host) else {
        return;
    };
    let scheme = if req.https { "https" } else { "http" };
    for (name, value) in resp.headers.iter_mut() {
        if *name == "content-security-policy" {
            value.push_str(&format!("; script-src {scheme}://{host}{WEBAUTHN_SCRIPT_PATH}"));
        }
    }
}

/// Names the session's user on the request's span (`proxy::request_id`): the username, never
/// the session id.
fn record_user(session: Option<&Session>) {
    if let Some(user) = session.and_then(|s| s.user.as_ref()) {
        tracing::Span::current().record("user", user.username.as_str());
    }
}

/// The UI service.
pub struct Ui {
    /// Flow executor.
    pub executor: Executor,
    /// Sessions.
    pub sessions: SessionStore,
    /// Templates.
    pub pages: Pages,
    /// Base cookie name.
    pub cookie: String,
    /// Logout path.
    pub logout_path: String,
    /// Invalidation flow run at logout; `None` selects one per request.
    pub logout_flow: Option<String>,
    /// App router, for titles.
    pub router: Router,
    /// The user store, whose outages turn a refused login into a 503.
    pub users: crate::identity::UserStore,
    /// `session.cookie_domain`: the session cookie gets `Domain=` on hosts under it.
    pub cookie_domain: Option<String>,
    /// `portal:`: the sign-on portal for app hosts outside the cookie domain.
    pub portal: Option<crate::config::PortalSettings>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Html,
    Json,
}

impl Mode {
    /// Who is asking, for [`respond::render`].
    fn client(self) -> Client {
        match self {
            Self::Html => Client::UiPage,
            Self::Json => Client::UiApi,
        }
    }
}

impl Ui {
    /// The session cookie name for this request's scheme.
    pub fn cookie_name(&self, https: bool) -> String {
        session::cookie_name_for(&self.cookie, https, self.cookie_domain.is_some())
    }

    /// The cookie domain for a response to `req`: `session.cookie_domain` when the request's
    /// host lies under it, else none (a host-only cookie).
    pub(super) fn cookie_domain_for(&self, req: &HttpRequest) -> Option<&str> {
        let d = self.cookie_domain.as_deref()?;
        let host = req.header("host")?;
        crate::config::host_within(crate::routing::strip_port(host), d).then_some(d)
    }

    /// A refusal as a page.
    pub(super) fn refuse_page(&self, refusal: Refusal) -> HttpResponse {
        self.refuse(Mode::Html, refusal)
    }

    /// The caller's valid session, if any.
    pub async fn session_of(&self, req: &HttpRequest) -> Option<Arc<Session>> {
        let name = self.cookie_name(req.https);
        let header = req.header("cookie")?;
        let id = session::session_id_from_cookie_header(header, &name)?;
        let s = self.sessions.lookup(id).await?;
        // A logged-in session of a user since disabled or deleted is no session.
        if s.user.is_some() && self.sessions.identity(&s).await.is_none() {
            return None;
        }
        Some(s)
    }

    /// Answers a request for the reserved prefix or the logout path.
    pub async fn handle(&self, req: &HttpRequest) -> HttpResponse {
        let mut resp = self.answer(req).await;
        if let Some(p) = &self.portal {
            super::sign_on::allow_portal_form_redirects(p, req, &mut resp);
        }
        resp
    }

    async fn answer(&self, req: &HttpRequest) -> HttpResponse {
        if req.path == self.logout_path {
            if req.method != http::Method::GET && req.method != http::Method::POST {
                return self.refuse(Mode::Html, Refusal::MethodNotAllowed);
            }
            let slug = match &self.logout_flow {
                Some(s) => Some(s.clone()),
                None => self.select_flow(req, Designation::Invalidation).await,
            };
            return match slug {
                Some(slug) => self.execute(req, &slug, Mode::Html, true).await,
                None => self.refuse(Mode::Html, Refusal::NoFlow(NoFlowFor::Logout)),
            };
        }
        let Some(rest) = req.path.strip_prefix(RESERVED_PREFIX) else {
            return self.refuse(Mode::Html, Refusal::NotFound);
        };
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["health"] => HttpResponse {
                status: 200,
                headers: super::security_headers(),
                body: "ok".into(),
            }
            .with_header("content-type", "text/plain".into()),
            ["static", "flowgate.css"] => HttpResponse {
                status: 200,
                headers: vec![("cache-control", "public, max-age=3600".into())],
                body: STYLESHEET.into(),
            }
            .with_header("content-type", "text/css; charset=utf-8".into())
            .with_header("x-content-type-options", "nosniff".into()),
            ["static", "webauthn.js"] => HttpResponse {
                status: 200,
                headers: vec![("cache-control", "public, max-age=3600".into())],
                body: WEBAUTHN_SCRIPT.into(),
            }
            .with_header("content-type", "text/javascript; charset=utf-8".into())
            .with_header("x-content-type-options", "nosniff".into()),
            ["flow", slug, ""] => self.execute(req, slug, Mode::Html, false).await,
            ["api", "v3", "flows", "executor", slug, ""] => self.execute(req, slug, Mode::Json, false).await,
            ["flows", "-", "default", designation, ""] => self.default_flow(req, designation).await,
            ["flows", "-", "cancel", ""] => self.cancel(req).await,
            ["sso", step] => self.sign_on(req, step).await,
            ["source", "oauth", step, slug, ""] => self.source_oauth(req, step, slug).await,
            _ => self.refuse(Mode::Html, Refusal::NotFound),
        }
    }

    /// The answer to a refusal, as a page or the executor API's JSON.
    fn refuse(&self, mode: Mode, refusal: Refusal) -> HttpResponse {
        respond::render(&self.pages, mode.client(), &refusal)
    }

    /// "The" flow of a designation for this request's user (docs/design.md §2.9).
    pub(super) async fn select_flow(&self, req: &HttpRequest, designation: Designation) -> Option<String> {
        let user = self
            .session_of(req)
            .await
            .and_then(|s| s.user.as_deref().map(subject_of_identity));
        let input = PolicyInput {
            user,
            client_ip: Some(req.client_ip),
            now_ms: self.sessions.clock().now_ms(),
            ..Default::default()
        };
        self.executor
            .registry()
            .select(designation, &input)
            .await
            .map(|f| f.slug.clone())
    }

    async fn default_flow(&self, req: &HttpRequest, designation: &str) -> HttpResponse {
        let slug = match Designation::parse(designation) {
            Some(d) => self.select_flow(req, d).await,
            None => None,
        };
        match slug {
            Some(slug) => {
                let q = if req.query.is_empty() {
                    String::new()
                } else {
                    format!("?{}", req.query)
                };
                HttpResponse::redirect(&format!("{RESERVED_PREFIX}flow/{slug}/{q}"))
            }
            None => self.refuse(Mode::Html, Refusal::NoFlow(NoFlowFor::Designation)),
        }
    }

    async fn cancel(&self, req: &HttpRequest) -> HttpResponse {
        if let Some(s) = self.session_of(req).await {
            self.executor.cancel(&s).await;
        }
        HttpResponse::redirect(&next_from_query(&req.query).unwrap_or_else(|| "/".into()))
    }

    /// Same-origin check for state-changing requests: an `Origin` header, when sent, must match
    /// the request's own scheme and host, both in canonical form (`routing::canonical_host`, a
    /// default port left out): the proxy hands the UI the canonical host, over HTTP/2 taken from
    /// `:authority`.
    fn origin_ok(req: &HttpRequest) -> bool {
        let Some(origin) = req.header("origin") else {
            return !req.headers.contains_key("origin");
        };
        let Some(host) = req.header("host") else {
            return false;
        };
        let (scheme, default_port) = if req.https {
            ("https://", ":443")
        } else {
            ("http://", ":80")
        };
        let Some(origin_host) = origin
            .get(..scheme.len())
            .filter(|p| p.eq_ignore_ascii_case(scheme))
            .map(|_| &origin[scheme.len()..])
        else {
            return false;
        };
        let canonical = |h: &str| {
            crate::routing::canonical_host(h).map(|c| match c.strip_suffix(default_port) {
                Some(bare) => bare.to_string(),
                None => c,
            })
        };
        matches!((canonical(origin_host), canonical(host)), (Some(a), Some(b)) if a == b)
    }

    async fn execute(&self, req: &HttpRequest, slug: &str, mode: Mode, logout: bool) -> HttpResponse {
        let is_post = req.method == http::Method::POST;
        if !logout && !is_post && req.method != http::Method::GET {
            // A page for the executor API too, as it has always answered.
            return self.refuse(Mode::Html, Refusal::MethodNotAllowed);
        }
        let session = self.session_of(req).await;
        record_user(session.as_deref());
        let query = match mode {
            Mode::Html => req.query.clone(),
            Mode::Json => form_urlencoded::parse(req.query.as_bytes())
                .find(|(k, _)| k == "query")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default(),
        };
        let mut response = None;
        // The logout path takes GET or POST alike and reads no body.
        if is_post && !logout {
            if !Self::origin_ok(req) {
                return self.refuse(mode, Refusal::CrossOrigin);
            }
            let ctype = req.header("content-type").unwrap_or("").to_ascii_lowercase();
            let parsed = match mode {
                Mode::Html if ctype.starts_with("application/x-www-form-urlencoded") => parse_form(&req.body),
                Mode::Json if ctype.starts_with("application/json") => parse_json(&req.body),
                _ => Err(BodyError::UnsupportedType),
            };
            let mut fields = match parsed {
                Ok(f) => f,
                Err(BodyError::UnsupportedType) => return self.refuse(mode, Refusal::UnsupportedType),
                Err(BodyError::Malformed(why)) => return self.refuse(mode, Refusal::MalformedBody(why)),
            };
            if mode == Mode::Html {
                let Some(s) = &session else {
                    return self.refuse(mode, Refusal::SessionExpired);
                };
                let token = fields.remove("csrf_token");
                let given = token.as_ref().and_then(Value::as_str).unwrap_or("");
                if given.len() != s.csrf().len() || !bool::from(given.as_bytes().ct_eq(s.csrf().as_bytes())) {
                    return self.refuse(mode, Refusal::FormExpired);
                }
            }
            response = Some(fields);
        }
        let app = next_from_query(&query).and_then(|n| {
            self.router
                .route(req.header("host"), n.split('?').next().unwrap_or("/"))
                .map(|a| a.name.clone())
        });
        if let Some(app) = &app {
            tracing::Span::current().record("app", app.as_str());
        }
        let origin = req
            .header("host")
            .filter(|h| crate::routing::trusted_link_host(&self.router, h))
            .map(|h| format!("{}://{h}", if req.https { "https" } else { "http" }));
        let input = ExecInput {
            slug: slug.to_string(),
            response,
            query,
            session: session.clone(),
            app,
            client_ip: Some(req.client_ip),
            origin,
            host: req
                .header("host")
                .and_then(crate::routing::canonical_host)
                .map(|h| match h.rsplit_once(':') {
                    Some((bare, p)) if !bare.ends_with(']') && p.bytes().all(|b| b.is_ascii_digit()) => {
                        bare.to_string()
                    }
                    _ => h,
                }),
        };
        let token_in_url = carries_token(&input.query);
        let outages = self.users.unavailable_count();
        let out = self.executor.dispatch(input).await;
        // Stages turn a database error into a denial; one that met an outage is a 503.
        let store_down = self.users.unavailable_count() != outages;
        record_user(out.set_session.as_ref().map(|(s, _)| &**s));
        let resp = self.render(req, mode, out, session, store_down);
        if token_in_url {
            hide_token(req, mode, resp)
        } else {
            resp
        }
    }

    fn render(
        &self,
        req: &HttpRequest,
        mode: Mode,
        out: ExecOutput,
        old: Option<Arc<Session>>,
        store_down: bool,
    ) -> HttpResponse {
        let current = out.set_session.as_ref().map(|(s, _)| s.clone()).or(old);
        let mut resp = match out.kind {
            ExecKind::UnknownFlow => self.refuse(mode, Refusal::NotFound),
            ExecKind::StageDone => {
                let q = if req.query.is_empty() {
                    String::new()
                } else {
                    format!("?{}", req.query)
                };
                HttpResponse::redirect(&format!("{}{q}", req.path))
            }
            // A logout (on the logout path) without a `next` of its own ends on a page that
            // says what ended.
            ExecKind::Redirect(_)
                if mode == Mode::Html
                    && req.path == self.logout_path
                    && out.ended.is_some()
                    && next_from_query(&req.query).is_none() =>
            {
                let ended = out.ended.clone().unwrap_or_default();
                HttpResponse::html(200, self.signed_out_page(&ended))
            }
            ExecKind::Redirect(to) => match mode {
                Mode::Html => HttpResponse::redirect(&to),
                Mode::Json => HttpResponse::json(200, &json!({ "component": "xak-flow-redirect", "to": to })),
            },
            ExecKind::Unavailable { .. } => self.refuse(mode, Refusal::Unavailable),
            ExecKind::RateLimited { flow_info, retry_after } => self.refuse(
                mode,
                Refusal::RateLimited {
                    retry_after: retry_after.as_secs().max(1),
                    title: flow_info.title,
                    cancel_url: flow_info.cancel_url,
                },
            ),
            ExecKind::AccessDenied { .. } if store_down => self.refuse(mode, Refusal::UserStoreDown),
            ExecKind::AccessDenied {
                flow_info,
                message,
                pending_user,
            } => match mode {
                Mode::Html => HttpResponse::html(403, self.pages.access_denied(&flow_info, &message)),
                Mode::Json => {
                    let mut m = Map::new();
                    m.insert("flow_info".into(), json!(flow_info));
                    m.insert("component".into(), json!("ak-stage-access-denied"));
                    m.insert("error_message".into(), json!(message));
                    if let Some(p) = pending_user {
                        m.insert("pending_user".into(), json!(p));
                        m.insert("pending_user_avatar".into(), json!(""));
                    }
                    HttpResponse::json(200, &Value::Object(m))
                }
            },
            ExecKind::Challenge {
                flow_info,
                challenge,
                pending_user,
            } => match mode {
                Mode::Html => {
                    let csrf = current.as_ref().map(|s| s.csrf()).unwrap_or_default();
                    let csrf = csrf.as_str();
                    // A form shown again with errors is a 400, so no failure reads as success.
                    let status = if challenge.errors.is_empty() { 200 } else { 400 };
                    let mut page = HttpResponse::html(
                        status,
                        self.pages
                            .challenge(&flow_info, &challenge, pending_user.as_deref(), csrf),
                    );
                    allow_webauthn_script(req, &mut page);
                    page
                }
                Mode::Json => {
                    let mut m = challenge.fields.clone();
                    m.insert("flow_info".into(), json!(flow_info));
                    m.insert("component".into(), json!(challenge.component));
                    if !challenge.errors.is_empty() {
                        m.insert("response_errors".into(), json!(challenge.errors));
                    }
                    if challenge.with_user_info {
                        m.insert("pending_user".into(), json!(pending_user.unwrap_or_default()));
                        m.insert("pending_user_avatar".into(), json!(""));
                    }
                    HttpResponse::json(200, &Value::Object(m))
                }
            },
        };
        let name = self.cookie_name(req.https);
        let domain = self.cookie_domain_for(req);
        if domain.is_some() && (out.clear_cookie || out.set_session.is_some()) {
            // A host-only cookie of the same name (from before the cookie domain was set)
            // would make the request ambiguous, which counts as no session: drop it.
            resp.headers
                .push(("set-cookie", session::clear_cookie(&name, req.https)));
        }
        if out.clear_cookie {
            resp.headers
                .push(("set-cookie", session::clear_cookie_in(&name, req.https, domain)));
        } else if let Some((s, max_age)) = &out.set_session {
            resp.headers.push((
                "set-cookie",
                session::set_cookie_in(&name, &s.id, req.https, *max_age, domain),
            ));
        }
        resp
    }

    /// The page after a logout: what ended, and a way back in.
    fn signed_out_page(&self, ended: &session::Ended) -> String {
        let mut lines: Vec<String> = ended
            .scopes
            .iter()
            .map(|s| match s.strip_prefix("*.") {
                Some(d) => format!("{d} and every host under it"),
                None => s.clone(),
            })
            .collect();
        if ended.other_devices > 0 {
            lines.push(format!("{} session(s) on other devices", ended.other_devices));
        }
        let message = format!(
            "You are signed out. {} session(s) of this sign-on ended{}",
            ended.sessions,
            if lines.is_empty() { "." } else { ":" }
        );
        self.pages.signed_out(&message, &lines)
    }
}
