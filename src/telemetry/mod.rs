//! Operations telemetry: the Prometheus metrics of the gateway ([`Metrics`], scraped on the
//! admin listener) and the audit events ([`Audit`], one JSON line each in the log and in an
//! optional file of their own). A leaf: it imports nothing from the crate, so every layer can
//! record into it; callers measure time themselves (`session::clock::instant_now`) and hand
//! the elapsed [`std::time::Duration`] over.
//!
//! Hot-path cost: every handle the proxy touches per request is resolved before the request
//! (per app and route kind; per status code on its first use), so recording is an atomic add.

pub mod audit;
pub mod metrics;

pub use audit::{Audit, AuditEvent, AUDIT_TARGET};
pub use metrics::{AppMetrics, Metrics, RouteKind, StoreOp};

use std::sync::Arc;

/// What the gateway records into: metrics and audit events. Cheap to clone.
#[derive(Clone)]
pub struct Telemetry {
    /// The metrics registry and its handles.
    pub metrics: Arc<Metrics>,
    /// The audit event sink.
    pub audit: Audit,
}

impl Telemetry {
    /// Fresh metrics and `audit`.
    pub fn new(audit: Audit) -> Self {
        Self {
            metrics: Arc::new(Metrics::new()),
            audit,
        }
    }
}

impl Default for Telemetry {
    /// Fresh metrics; events to the log only.
    fn default() -> Self {
        Self::new(Audit::log_only())
    }
}
