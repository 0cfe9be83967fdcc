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
//!                   ├─ no session ─▶ Login
//!                   └─ session ─▶ app policies ─▶ Allow | Deny
//! ```

use super::{path, ProxyState};
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
    /// No valid session: the user has to log in.
    Login(Arc<App>),
    /// A session, but the app's policies deny; the policies' messages.
    Deny(Arc<App>, Arc<Identity>, Vec<String>),
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
    let name = session::cookie_name(&state.cookie, f.https);
    let cookies = super::checks::joined_cookie_header(f.headers);
    let identity = cookies
        .as_deref()
        .and_then(|v| session::session_id_from_cookie_header(v, &name))
        .and_then(|id| state.sessions.get(id))
        .and_then(|s| s.user.clone());
    let Some(who) = identity else {
        let upgrade = f.headers.contains_key("upgrade");
        if !upgrade && !norm.ambiguous && app.skip_auth.iter().any(|r| r.is_match(&norm.path)) {
            return Verdict::Anonymous(app);
        }
        return Verdict::Login(app);
    };
    if app.policies.is_empty() {
        return Verdict::Allow(app, who);
    }
    let subject = subject_of_identity(&who);
    let (passing, messages) = match policies::evaluate_static(&app.policies, app.policy_engine_mode, &subject) {
        Some(p) => (p, Vec::new()),
        None => {
            let input = PolicyInput {
                user: Some(subject),
                path: norm.path,
                method: f.method.to_string(),
                client_ip: f.client_ip,
                headers: f
                    .headers
                    .iter()
                    .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), v.to_string())))
                    .collect(),
                now_ms: state.sessions.clock().now_ms(),
                ..Default::default()
            };
            let r = policies::evaluate(&app.policies, app.policy_engine_mode, &state.policies, &input).await;
            (r.passing, r.messages)
        }
    };
    if passing {
        Verdict::Allow(app, who)
    } else {
        Verdict::Deny(app, who, messages)
    }
}

/// The login URL for `app`: its authentication flow (or the first one whose policies pass),
/// with `next=<original>` when `original` (path and query) passes [`safe_next`]; an unsafe
/// original is left out, so the flow ends on its default. `None` when no flow applies.
pub(crate) async fn login_url(
    state: &ProxyState,
    app: &App,
    client_ip: Option<IpAddr>,
    original: &str,
) -> Option<String> {
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
