//! What goes into the executor and what comes out: one request ([`ExecInput`]) and a
//! transport-neutral answer ([`ExecOutput`]) that `http` renders as HTML or JSON.

use crate::flow::Challenge;
use crate::session::Session;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// The `flow_info` block of every challenge.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FlowInfo {
    /// Formatted title.
    pub title: String,
    /// Background image URL.
    pub background: String,
    /// Themed backgrounds (none).
    pub background_themed_urls: Option<Value>,
    /// Where "cancel" goes.
    pub cancel_url: String,
    /// Layout.
    pub layout: String,
}

/// What the executor decided.
#[derive(Debug)]
pub enum ExecKind {
    /// Show a challenge.
    Challenge {
        /// Flow info.
        flow_info: FlowInfo,
        /// The challenge.
        challenge: Challenge,
        /// Display name of the pending user.
        pending_user: Option<String>,
    },
    /// A stage finished and more remain: 302 to the executor itself.
    StageDone,
    /// The flow finished: go here.
    Redirect(String),
    /// Access denied: the plan is cancelled.
    AccessDenied {
        /// Flow info.
        flow_info: FlowInfo,
        /// Message.
        message: String,
        /// Display name of the pending user.
        pending_user: Option<String>,
    },
    /// No such flow.
    UnknownFlow,
    /// A store the flow needs cannot be reached: 503 (fail closed).
    Unavailable {
        /// Flow info.
        flow_info: FlowInfo,
    },
    /// Too many attempts: 429 with `Retry-After`.
    RateLimited {
        /// Flow info.
        flow_info: FlowInfo,
        /// How long to wait.
        retry_after: Duration,
    },
}

/// The executor's answer plus the cookie to set or clear.
#[derive(Debug)]
pub struct ExecOutput {
    /// Decision.
    pub kind: ExecKind,
    /// Set the cookie to this session (new or rotated), with a Max-Age if persistent.
    pub set_session: Option<(Arc<Session>, Option<Duration>)>,
    /// Clear the session cookie.
    pub clear_cookie: bool,
    /// What a logout in this request ended (the sign-on's sessions), for the page.
    pub ended: Option<crate::session::Ended>,
}

/// One executor request.
pub struct ExecInput {
    /// Flow slug.
    pub slug: String,
    /// The challenge response for POST.
    pub response: Option<Map<String, Value>>,
    /// The original query string (holds `next`).
    pub query: String,
    /// The caller's session, if it has a valid one.
    pub session: Option<Arc<Session>>,
    /// App being accessed, for titles.
    pub app: Option<String>,
    /// Client address.
    pub client_ip: Option<std::net::IpAddr>,
    /// `scheme://host` of the request when it may appear in links (loopback or an app host).
    pub origin: Option<String>,
    /// The request's canonical host without port (the scope a login's cookie gets).
    pub host: Option<String>,
}
