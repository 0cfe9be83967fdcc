//! The gateway's Prometheus metrics (docs/decisions/0014-prometheus-metrics-crate.md): one
//! [`prometheus::Registry`] per gateway, so that several gateways in one process (tests) each
//! count their own. Every metric is named `flowgate_*`, except the process collector's
//! `process_*` figures.
//!
//! The proxy records through an [`AppMetrics`] resolved once per app when the config is built:
//! one counter per (route kind, status code), looked up by index on its first use and an
//! atomic add after that; no label hashing, formatting or allocation per request.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Buckets of the upstream latency histogram, in seconds.
pub const UPSTREAM_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Buckets of the store latency histogram, in seconds.
pub const STORE_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The `app` label of requests no app answered (unknown host, the login UI before routing).
pub const NO_APP: &str = "-";

/// Which part of the gateway answered a request (label `route`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// A protected app (forwarded, or refused on its behalf).
    App = 0,
    /// The login UI under `/.flowgate/` and the logout path.
    Ui = 1,
    /// A forward-auth endpoint.
    ForwardAuth = 2,
}

impl RouteKind {
    const ALL: [RouteKind; 3] = [RouteKind::App, RouteKind::Ui, RouteKind::ForwardAuth];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::App => "app",
            Self::Ui => "ui",
            Self::ForwardAuth => "forward_auth",
        }
    }
}

/// A session store operation (label `op` of the store metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    /// Read a session.
    Load = 0,
    /// Write a session.
    Save,
    /// Delete a session.
    Delete,
    /// Delete a user's sessions.
    DeleteUser,
    /// List sessions.
    List,
    /// Record last-seen times.
    Touch,
    /// Delete expired records.
    Purge,
    /// Store a mailed-link plan.
    PutToken,
    /// Read a mailed-link plan.
    GetToken,
    /// Use up a mailed link.
    TakeToken,
    /// Publish an invalidation event.
    Publish,
}

impl StoreOp {
    const ALL: [StoreOp; 11] = [
        StoreOp::Load,
        StoreOp::Save,
        StoreOp::Delete,
        StoreOp::DeleteUser,
        StoreOp::List,
        StoreOp::Touch,
        StoreOp::Purge,
        StoreOp::PutToken,
        StoreOp::GetToken,
        StoreOp::TakeToken,
        StoreOp::Publish,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Load => "load",
            Self::Save => "save",
            Self::Delete => "delete",
            Self::DeleteUser => "delete_user",
            Self::List => "list",
            Self::Touch => "touch",
            Self::Purge => "purge",
            Self::PutToken => "put_token",
            Self::GetToken => "get_token",
            Self::TakeToken => "take_token",
            Self::Publish => "publish",
        }
    }
}

/// Status codes with a counter slot each (100..=599); anything else shares slot 0.
const STATUS_SLOTS: usize = 501;

fn status_slot(status: u16) -> usize {
    if (100..600).contains(&status) {
        usize::from(status) - 99
    } else {
        0
    }
}

/// Request counters of one (app, route kind): one lazily resolved counter per status code.
struct StatusCounters {
    vec: IntCounterVec,
    app: Box<str>,
    route: &'static str,
    slots: Box<[OnceLock<IntCounter>]>,
}

impl StatusCounters {
    fn new(vec: &IntCounterVec, app: &str, route: RouteKind) -> Self {
        Self {
            vec: vec.clone(),
            app: app.into(),
            route: route.label(),
            slots: (0..STATUS_SLOTS).map(|_| OnceLock::new()).collect(),
        }
    }

    fn get(&self, status: u16) -> &IntCounter {
        let slot = status_slot(status);
        self.slots[slot].get_or_init(|| {
            // First request with this status for this app and route: the only allocation.
            let label = if slot == 0 {
                "other".to_string()
            } else {
                status.to_string()
            };
            self.vec.with_label_values(&[&*self.app, self.route, &label])
        })
    }
}

/// The handles the proxy records a request of one app into.
pub struct AppMetrics {
    routes: [StatusCounters; 3],
    upstream: Histogram,
}

// === impl AppMetrics ===

impl AppMetrics {
    /// Counts one answered request (`status` 0: the client left before an answer).
    #[inline]
    pub fn request(&self, route: RouteKind, status: u16) {
        self.routes[route as usize].get(status).inc();
    }

    /// Records how long the app took to answer (request sent to response headers received).
    #[inline]
    pub fn upstream(&self, took: Duration) {
        self.upstream.observe(took.as_secs_f64());
    }
}

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    upstream: HistogramVec,
    logins: IntCounterVec,
    rate_limited: IntCounterVec,
    reloads: IntCounterVec,
    events: IntCounterVec,
    store_errors: [IntCounter; StoreOp::ALL.len()],
    store_seconds: [Histogram; StoreOp::ALL.len()],
    user_store_failures: IntCounter,
    sessions_live: IntGauge,
    pending_flows: IntGauge,
    open_connections: IntGauge,
    runtime: IntGaugeVec,
    apps: Mutex<HashMap<String, Arc<AppMetrics>>>,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let v = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry.register(Box::new(v.clone())).expect("distinct metric names");
    v
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric definition");
    registry.register(Box::new(g.clone())).expect("distinct metric names");
    g
}

fn histogram_vec(registry: &Registry, name: &str, help: &str, buckets: &[f64], labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    let h = HistogramVec::new(opts, labels).expect("valid metric definition");
    registry.register(Box::new(h.clone())).expect("distinct metric names");
    h
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

// === impl Metrics ===

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Self {
        let r = Registry::new();
        let requests = counter_vec(
            &r,
            "flowgate_requests_total",
            "Requests answered, by app, route kind (app, ui, forward_auth) and status code.",
            &["app", "route", "status"],
        );
        let upstream = histogram_vec(
            &r,
            "flowgate_upstream_response_seconds",
            "Time from sending a request to an app until its response headers arrived.",
            UPSTREAM_BUCKETS,
            &["app"],
        );
        let logins = counter_vec(
            &r,
            "flowgate_logins_total",
            "Login attempts by flow and result (success, failure, denied, rate_limited, unavailable).",
            &["flow", "result"],
        );
        let rate_limited = counter_vec(
            &r,
            "flowgate_rate_limit_hits_total",
            "Attempts refused by a rate limit, by limit (password, code, mail, signup).",
            &["limit"],
        );
        let reloads = counter_vec(
            &r,
            "flowgate_reloads_total",
            "Config reloads by result (ok, error).",
            &["result"],
        );
        let events = counter_vec(
            &r,
            "flowgate_audit_events_total",
            "Audit events written, by event.",
            &["event"],
        );
        let store_errors_vec = counter_vec(
            &r,
            "flowgate_store_errors_total",
            "Failed calls to a store, by store and operation.",
            &["store", "op"],
        );
        let store_seconds_vec = histogram_vec(
            &r,
            "flowgate_store_operation_seconds",
            "Duration of calls to the session store, by operation.",
            STORE_BUCKETS,
            &["store", "op"],
        );
        let store_errors = StoreOp::ALL.map(|op| store_errors_vec.with_label_values(&["session", op.label()]));
        let store_seconds = StoreOp::ALL.map(|op| store_seconds_vec.with_label_values(&["session", op.label()]));
        let user_store_failures = store_errors_vec.with_label_values(&["users", "any"]);
        let sessions_live = gauge(
            &r,
            "flowgate_sessions_live",
            "Logged-in sessions held by this instance.",
        );
        let pending_flows = gauge(
            &r,
            "flowgate_pending_flows",
            "Unfinished flows (sessions before login) held by this instance.",
        );
        let open_connections = gauge(&r, "flowgate_open_connections", "Client connections open now.");
        let runtime = IntGaugeVec::new(
            Opts::new(
                "flowgate_runtime",
                "Tokio runtime figures: workers, alive_tasks, global_queue_depth.",
            ),
            &["figure"],
        )
        .expect("valid metric definition");
        r.register(Box::new(runtime.clone())).expect("distinct metric names");
        let build = IntGaugeVec::new(
            Opts::new("flowgate_build_info", "Always 1; the version label."),
            &["version"],
        )
        .expect("valid metric definition");
        r.register(Box::new(build.clone())).expect("distinct metric names");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        #[cfg(target_os = "linux")]
        {
            let pc = prometheus::process_collector::ProcessCollector::for_self();
            if let Err(e) = r.register(Box::new(pc)) {
                tracing::warn!(error = %e, "process metrics unavailable");
            }
        }
        Self {
            registry: r,
            requests,
            upstream,
            logins,
            rate_limited,
            reloads,
            events,
            store_errors,
            store_seconds,
            user_store_failures,
            sessions_live,
            pending_flows,
            open_connections,
            runtime,
            apps: Mutex::new(HashMap::new()),
        }
    }

    /// The handles of `app` (resolved once; the same handles after a reload). [`NO_APP`] for
    /// requests no app answered.
    pub fn app(&self, app: &str) -> Arc<AppMetrics> {
        let mut apps = match self.apps.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        apps.entry(app.to_string())
            .or_insert_with(|| {
                Arc::new(AppMetrics {
                    routes: RouteKind::ALL.map(|k| StatusCounters::new(&self.requests, app, k)),
                    upstream: self.upstream.with_label_values(&[app]),
                })
            })
            .clone()
    }

    /// Counts a login attempt of `flow` with `result` (success, failure, denied, rate_limited,
    /// unavailable).
    pub fn login(&self, flow: &str, result: &str) {
        self.logins.with_label_values(&[flow, result]).inc();
    }

    /// Counts an attempt refused by the rate limit `limit`.
    pub fn rate_limited(&self, limit: &str) {
        self.rate_limited.with_label_values(&[limit]).inc();
    }

    /// Counts a reload (`ok` true: the new config runs).
    pub fn reload(&self, ok: bool) {
        self.reloads.with_label_values(&[if ok { "ok" } else { "error" }]).inc();
    }

    /// Counts an audit event.
    pub fn event(&self, event: &str) {
        self.events.with_label_values(&[event]).inc();
    }

    /// Records one session store call.
    pub fn store_call(&self, op: StoreOp, took: Duration, ok: bool) {
        self.store_seconds[op as usize].observe(took.as_secs_f64());
        if !ok {
            self.store_errors[op as usize].inc();
        }
    }

    /// Figures read at scrape time: logged-in sessions, unfinished flows, open connections,
    /// and the user database's failure count since start.
    pub fn set_live(&self, sessions: u64, pending: u64, connections: usize, user_store_failures: u64) {
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.sessions_live.set(clamp(sessions));
        self.pending_flows.set(clamp(pending));
        self.open_connections.set(clamp(connections as u64));
        let seen = self.user_store_failures.get();
        if user_store_failures > seen {
            self.user_store_failures.inc_by(user_store_failures - seen);
        }
    }

    /// Sets a runtime figure (`workers`, `alive_tasks`, `global_queue_depth`).
    pub fn set_runtime(&self, figure: &str, value: usize) {
        self.runtime
            .with_label_values(&[figure])
            .set(i64::try_from(value).unwrap_or(i64::MAX));
    }

    /// Everything in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        use prometheus::Encoder;
        let mut out = Vec::new();
        let enc = prometheus::TextEncoder::new();
        if let Err(e) = enc.encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_app_route_and_status() {
        let m = Metrics::new();
        let a = m.app("wiki");
        a.request(RouteKind::App, 200);
        a.request(RouteKind::App, 200);
        a.request(RouteKind::Ui, 302);
        a.request(RouteKind::App, 0);
        assert!(Arc::ptr_eq(&a, &m.app("wiki")));
        let text = m.render();
        assert!(
            text.contains(r#"flowgate_requests_total{app="wiki",route="app",status="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"flowgate_requests_total{app="wiki",route="ui",status="302"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"flowgate_requests_total{app="wiki",route="app",status="other"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn user_store_failures_follow_the_total() {
        let m = Metrics::new();
        m.set_live(3, 1, 2, 5);
        m.set_live(3, 1, 2, 4);
        m.set_live(3, 1, 2, 7);
        let text = m.render();
        assert!(
            text.contains(r#"flowgate_store_errors_total{op="any",store="users"} 7"#),
            "{text}"
        );
        assert!(text.contains("flowgate_sessions_live 3"), "{text}");
    }
}
