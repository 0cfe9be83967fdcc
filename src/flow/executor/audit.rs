//! What the executor reports to operations (docs/operations.md): audit events for logins, failed
//! logins, lock-outs, logouts, finished enrollments and recoveries, and the login counters of
//! `flowgate_logins_total`. A failed login names the user only once the identifier resolved
//! to a real account (never the identifier as typed, which may be a mistyped password) and
//! carries the failing stage and the first error code of its answer, never a value the
//! client sent.

use super::{ExecInput, Executor};
use crate::config::{Designation, Flow};
use crate::flow::{Challenge, FlowState};
use crate::telemetry::AuditEvent;

/// The user a flow acts on, when it is a real account.
fn pending_username(st: &FlowState) -> Option<&str> {
    st.context
        .pending_user
        .as_ref()
        .and_then(|p| p.user.as_ref())
        .map(|u| u.username.as_str())
}

/// The reason code of a refused answer: its first error's code and field, such as
/// `invalid_password`, `invalid_code` or `required_uid_field` (the code alone for errors not
/// tied to a field; `invalid` when the stage named none).
fn reason_of(c: &Challenge) -> String {
    match c.errors.iter().find_map(|(field, v)| v.first().map(|e| (field, e))) {
        Some((field, e)) if field == "non_field_errors" => e.code.clone(),
        Some((field, e)) => format!("{}_{field}", e.code),
        None => "invalid".into(),
    }
}

impl Executor {
    fn event(&self, flow: &Flow, st: Option<&FlowState>, input: &ExecInput, ev: AuditEvent<'_>) {
        self.services.telemetry.audit.emit(AuditEvent {
            client: input.client_ip,
            flow: Some(&flow.slug),
            app: st.and_then(|s| s.app.as_deref()).or(input.app.as_deref()),
            ..ev
        });
    }

    /// A session was opened for `user`.
    pub(super) fn report_login(&self, flow: &Flow, st: &FlowState, input: &ExecInput, user: &str) {
        self.services.telemetry.metrics.login(&flow.slug, "success");
        self.event(
            flow,
            Some(st),
            input,
            AuditEvent {
                event: "login",
                user: Some(user),
                result: "success",
                ..Default::default()
            },
        );
    }

    /// A stage of an authentication flow refused an answer (`Invalid`) or denied.
    pub(super) fn report_failed(
        &self,
        flow: &Flow,
        st: &FlowState,
        input: &ExecInput,
        stage: &str,
        refused: Option<&Challenge>,
    ) {
        if flow.designation != Designation::Authentication || input.response.is_none() {
            return;
        }
        let (result, reason) = match refused {
            Some(c) => ("failure", reason_of(c)),
            None => ("denied", "denied".to_string()),
        };
        self.services.telemetry.metrics.login(&flow.slug, result);
        self.event(
            flow,
            Some(st),
            input,
            AuditEvent {
                event: "login_failed",
                user: pending_username(st),
                result: "failure",
                reason: Some(&reason),
                stage: Some(stage),
                ..Default::default()
            },
        );
    }

    /// A stage refused to check more answers for now (rate limit): a lock-out.
    pub(super) fn report_lockout(&self, flow: &Flow, st: &FlowState, input: &ExecInput, stage: &str) {
        if flow.designation == Designation::Authentication {
            self.services.telemetry.metrics.login(&flow.slug, "rate_limited");
        }
        self.event(
            flow,
            Some(st),
            input,
            AuditEvent {
                event: "lockout",
                user: pending_username(st),
                result: "failure",
                reason: Some("rate_limited"),
                stage: Some(stage),
                ..Default::default()
            },
        );
    }

    /// The session of `user` ended through the logout stage.
    pub(super) fn report_logout(&self, flow: &Flow, st: &FlowState, input: &ExecInput, user: &str) {
        self.event(
            flow,
            Some(st),
            input,
            AuditEvent {
                event: "logout",
                user: Some(user),
                result: "success",
                ..Default::default()
            },
        );
    }

    /// The plan ran to its end: an enrollment or a recovery is complete.
    pub(super) fn report_finished(&self, flow: &Flow, st: &FlowState, input: &ExecInput) {
        let event = match flow.designation {
            Designation::Enrollment => "enrollment",
            Designation::Recovery => "recovery",
            _ => return,
        };
        self.event(
            flow,
            Some(st),
            input,
            AuditEvent {
                event,
                user: pending_username(st),
                result: "success",
                ..Default::default()
            },
        );
    }
}
