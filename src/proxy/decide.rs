//! The access decision, shared by the proxy (`request_filter`) and the forward-auth endpoints
//! (`forward_auth`): route → skip-auth → session → app policies. It reads request facts and
//! the config snapshot and returns a [`Verdict`]; turning that into a response (forward, page,
//! redirect, 200 with headers) is the caller's job. There is one copy of these rules, so the
//! two ways of protecting an app cannot drift apart.
//!
//! ```text
//! path ─ normalise ─┬─ refused / disguised reserved path ─▶ BadPath
//!                   ├─ no app for host + path ─▶ NoApp
//!                   ├─ no session, skip-auth rule matches, path unambiguous, no upgrade ─▶ Anonymous
//!                   ├─ no session, app with basic_auth, Authorization sent ─▶ ApiAllow | ApiRefused | Deny
//!                   ├─ no session ─▶ Login
//!                   ├─ session not authenticated through the app's own flow (or as strongly) ─▶ Login (step-up)
//!                   └─ session ─▶ app policies ─▶ Allow | Deny
//! ```
//!
//! Step-up (STEP-1): an app that names its own `authentication_flow` accepts a session only
//! when [`crate::flow::FlowRegistry::satisfies`] says its sign-on is good enough; otherwise the
//! verdict is `Login`, so a browser goes to the app's flow with `next` (where the executor asks
//! the known user for the missing factor) and an API client gets 401, through the proxy and the
//! forward-auth endpoints alike. App policies see the sign-on as `context.auth_method` and
//! `context.auth_method_args`.

use super::{api_clients, path, ProxyState};
use crate::config::{App, Designation, RESERVED_PREFIX};
use crate::flow::executor::subject_of_identity;
use crate::flow::next::safe_next;
use crate::flow::policies::{self, PolicyInput};
use crate::session::{self, Identity};
use std::net::IpAddr;
use std::sync::Arc;

/// What the decision needs to know about a request.
pub(crate) struct Facts<'a> {
    /// Host (may carry a port).
    pub(crate) host: Option<&'a str>,
    /// Raw path, without query.
    pub(crate) raw_path: &'a str,
    /// Method, as app policies see it.
    pub(crate) method: &'a str,
    /// Request headers: the session cookie, `Upgrade`, and what header policies read.
    pub(crate) headers: &'a http::HeaderMap,
    /// Whether the listener is TLS (decides the cookie name).
    pub(crate) https: bool,
    /// The client as policies see it.
    pub(crate) client_ip: Option<IpAddr>,
}

/// The outcome of [`decide`].
pub(crate) enum Verdict {
    /// The path is refused (control characters, invalid encoding) or is a disguised spelling
    /// of a reserved path: 400.
    BadPath,
    /// No app serves this host and path: 404.
    NoApp,
    /// A skip-auth route without a session: allowed, with no identity.
    Anonymous(Arc<App>),
    /// A session whose user the app's policies accept.
    Allow(Arc<App>, Arc<Identity>),
    /// No valid session, or one that must step up to the app's own flow: the user has to log
    /// in (the session, if any, stays valid for other apps).
    Login(Arc<App>),
    /// A session, but the app's policies deny; the policies' messages.
    Deny(Arc<App>, Arc<Identity>, Vec<String>),
    /// A session cookie the session store cannot look up now (unreachable): 503, fail closed.
    Unavailable(Arc<App>),
    /// An API client (`basic_auth`) whose credentials name a user the app's policies accept;
    /// its `Authorization` header is not forwarded.
    ApiAllow(Arc<App>, Arc<Identity>),
    /// An API client refused: 401 with `WWW-Authenticate`, 429 or 503, never a login redirect.
    ApiRefused(Arc<App>, ApiRefusal),
}

/// Why an API client is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiRefusal {
    /// No, wrong or malformed credentials, or a disabled or deleted user: 401.
    Unauthorized,
    /// Too many attempts: 429 after this many seconds.
    Limited(u64),
    /// The user store or the shared limits are unreachable: 503.
    Unavailable,
}

impl Verdict {
    /// The verdict's name, for the proxy's decision log line.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::BadPath => "bad_path",
            Self::NoApp => "no_app",
            Self::Anonymous(_) => "anonymous",
            Self::Allow(..) => "allow",
            Self::Login(_) => "login",
            Self::Deny(..) => "deny",
            Self::Unavailable(_) => "unavailable",
            Self::ApiAllow(..) => "api_allow",
            Self::ApiRefused(..) => "api_refused",
        }
    }
}

/// Decides what happens to a request (see the module doc).
pub(crate) async fn decide(state: &ProxyState, f: &Facts<'_>) -> Verdict {
    let Some(norm) = path::normalise(f.raw_path) else {
        return Verdict::BadPath;
    };
    if norm.path.starts_with(RESERVED_PREFIX) || norm.path == state.logout_path {
        // A disguised spelling of a reserved path is never forwarded nor authorised.
        return Verdict::BadPath;
    }
    let Some(app) = state.router.route(f.host, &norm.path).cloned() else {
        return Verdict::NoApp;
    };
    let name = session::cookie_name_for(&state.cookie, f.https, state.cookie_domain);
    let cookies = super::checks::joined_cookie_header(f.headers);
    let id = cookies
        .as_deref()
        .and_then(|v| session::session_id_from_cookie_header(v, &name));
    let current = match id {
        Some(id) => match state.sessions.lookup(id).await {
            // The user as they are now (groups, email, name; none when disabled or deleted).
            Some(s) => state.sessions.identity(&s).await.map(|u| (s, u)),
            None => None,
        },
        None => None,
    };
    let Some((sess, who)) = current else {
        if id.is_some() && state.sessions.is_failing() {
            return Verdict::Unavailable(app);
        }
        let upgrade = f.headers.contains_key("upgrade");
        if !upgrade && !norm.ambiguous && app.skip_auth.iter().any(|r| r.is_match(&norm.path)) {
            return Verdict::Anonymous(app);
        }
        if let Some(opts) = app.api_clients {
            if api_clients::has_credentials(f.headers) {
                return api_client(state, f, app, opts, norm.path).await;
            }
        }
        return Verdict::Login(app);
    };
    if let Some(flow) = &app.requires_flow {
        if !state.ui.executor.registry().satisfies(&sess.auth, flow) {
            tracing::debug!(user = %who.username, app = %app.name, flow = %flow, "step-up required");
            return Verdict::Login(app);
        }
    }
    let (passing, messages) = app_policies(state, f, &app, &who, norm.path, &sess.auth).await;
    if passing {
        Verdict::Allow(app, who)
    } else {
        Verdict::Deny(app, who, messages)
    }
}

/// An API client's credentials, then the app's policies (which see `auth_method`
/// `app_password` or `password`).
async fn api_client(
    state: &ProxyState,
    f: &Facts<'_>,
    app: Arc<App>,
    opts: crate::config::ApiClients,
    path: String,
) -> Verdict {
    use api_clients::ApiOutcome;
    match state.api.check(state, &app, opts, f.headers, f.client_ip).await {
        ApiOutcome::Ok(who, method) => {
            let shape = session::AuthShape {
                auth_method: method.as_str().into(),
                ..Default::default()
            };
            let auth = session::AuthInfo::new(shape, state.sessions.clock().now_ms(), Default::default());
            let (passing, messages) = app_policies(state, f, &app, &who, path, &auth).await;
            if passing {
                Verdict::ApiAllow(app, who)
            } else {
                Verdict::Deny(app, who, messages)
            }
        }
        ApiOutcome::Unauthorized => Verdict::ApiRefused(app, ApiRefusal::Unauthorized),
        ApiOutcome::Limited(w) => Verdict::ApiRefused(app, ApiRefusal::Limited(w.as_secs().max(1))),
        ApiOutcome::Unavailable => Verdict::ApiRefused(app, ApiRefusal::Unavailable),
    }
}

/// The app's access policies for `who`: whether they pass, and their messages.
async fn app_policies(
    state: &ProxyState,
    f: &Facts<'_>,
    app: &App,
    who: &Identity,
    path: String,
    auth: &session::AuthInfo,
) -> (bool, Vec<String>) {
    if app.policies.is_empty() {
        return (true, Vec::new());
    }
    let subject = subject_of_identity(who);
    match policies::evaluate_static(&app.policies, app.policy_engine_mode, &subject) {
        Some(p) => (p, Vec::new()),
        None => {
            let input = PolicyInput {
                user: Some(subject),
                path,
                method: f.method.to_string(),
                client_ip: f.client_ip,
                headers: f
                    .headers
                    .iter()
                    .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
                    .collect(),
                now_ms: state.sessions.clock().now_ms(),
                context: auth_context(auth),
                ..Default::default()
            };
            let r = policies::evaluate(&app.policies, app.policy_engine_mode, &state.policies, &input).await;
            (r.passing, r.messages)
        }
    }
}

/// The login URL for `app`: its authentication flow (or the first one whose policies pass),
/// with `next=<original>` when `original` (path and query) passes [`safe_next`]; an unsafe
/// original is left out, so the flow ends on its default. `None` when no flow applies.
/// On a host that signs in through the portal (`host`, canonical, may carry a port), the
/// handshake's first step on this host instead (docs/decisions/0013).
pub(crate) async fn login_url(
    state: &ProxyState,
    app: &App,
    client_ip: Option<IpAddr>,
    original: &str,
    host: Option<&str>,
) -> Option<String> {
    if host.is_some_and(|h| state.portal_hosts.contains(crate::routing::strip_port(h))) {
        let next = safe_next(original).unwrap_or("/");
        let q = form_urlencoded::Serializer::new(String::new())
            .append_pair("next", next)
            .finish();
        return Some(format!("{RESERVED_PREFIX}sso/begin?{q}"));
    }
    let slug = match &app.authentication_flow {
        Some(s) => s.clone(),
        None => {
            let input = PolicyInput {
                client_ip,
                now_ms: state.sessions.clock().now_ms(),
                ..Default::default()
            };
            let reg = state.ui.executor.registry();
            reg.select(Designation::Authentication, &input).await?.slug.clone()
        }
    };
    Some(match safe_next(original) {
        Some(next) => {
            let q = form_urlencoded::Serializer::new(String::new())
                .append_pair("next", next)
                .finish();
            format!("{RESERVED_PREFIX}flow/{slug}/?{q}")
        }
        None => format!("{RESERVED_PREFIX}flow/{slug}/"),
    })
}

/// The sign-on as app policies see it, after authentik's login context: `auth_method`
/// (`password`, `auth_mfa`) and `auth_method_args` with the methods and flows of this sign-on,
/// the second-factor device classes used (`mfa_devices`) and the time (`auth_time`, Unix
/// seconds).
fn auth_context(auth: &session::AuthInfo) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::{json, Value};
    let devices: Vec<Value> = auth
        .methods
        .iter()
        .filter(|m| *m != "password")
        .map(|m| json!({ "device_class": m }))
        .collect();
    let mut m = serde_json::Map::new();
    m.insert("auth_method".into(), Value::String(auth.auth_method.clone()));
    m.insert(
        "auth_method_args".into(),
        json!({
            "methods": auth.methods,
            "flows": auth.flows,
            "mfa_devices": devices,
            "auth_time": auth.at_ms / 1000,
        }),
    );
    m
}
