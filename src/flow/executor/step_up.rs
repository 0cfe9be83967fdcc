//! Step-up in the executor (STEP-1): a logged-in user whose sign-on does not satisfy an
//! authentication flow (see [`crate::flow::step_up`]) runs it with themselves as the pending
//! user. Identification is left out (the user cannot switch accounts half-way); a password the
//! session already proved is not asked again unless the flow can set up a new authenticator;
//! every other stage (the missing second factor, captcha, consent) runs as planned. The login
//! at the end mints a new session whose record joins the old sign-on's flows and methods.

use super::*;
use crate::flow::step_up::Factor;
use crate::flow::PendingUser;
use crate::session::{AuthInfo, AuthShape};

impl Executor {
    /// Whether the logged-in session must step up to run `flow`.
    pub(super) fn needs_step_up(&self, flow: &Flow, session: &Session) -> bool {
        flow.designation == Designation::Authentication
            && session.user.is_some()
            && !self.reg.satisfies(&session.auth, &flow.slug)
    }

    /// The context a new plan starts with: empty, or for a step-up the session's user as the
    /// (fixed) pending user. `Err` is the page for a user who is gone or disabled.
    pub(super) async fn start_context(
        &self,
        flow: &Flow,
        input: &ExecInput,
        session: &Session,
    ) -> Result<FlowContext, Box<ExecKind>> {
        let Some(me) = session.user.as_ref().filter(|_| self.needs_step_up(flow, session)) else {
            return Ok(FlowContext::default());
        };
        let user = match self.users.get_by_id(me.user_id).await {
            Ok(Some(u)) if u.is_active => u,
            Ok(_) => {
                return Err(Box::new(self.access_denied(
                    flow,
                    input,
                    None,
                    "User is not active.".into(),
                )))
            }
            Err(e) => {
                tracing::error!(error = %e, "user store failed during step-up");
                return Err(Box::new(self.access_denied(
                    flow,
                    input,
                    None,
                    "Login is unavailable right now.".into(),
                )));
            }
        };
        tracing::debug!(user = %user.username, flow = %flow.slug, "step-up");
        Ok(FlowContext {
            pending_user: Some(PendingUser {
                identifier: user.username.clone(),
                user: Some(user),
            }),
            step_up: true,
            ..Default::default()
        })
    }

    /// Drops what a step-up does not ask: identification, and a password the session proved
    /// (unless the flow can enrol an authenticator). An identification stage with an embedded
    /// password stage becomes that password stage when the password is still needed.
    pub(super) fn trim_step_up_plan(&self, flow: &Flow, session: &Session, plan: Vec<PlanEntry>) -> Vec<PlanEntry> {
        let enrols = self.reg.flow_factors.get(&flow.slug).is_some_and(|f| f.enrols);
        let skip_password = session.auth.methods.contains("password") && !enrols;
        plan.into_iter()
            .filter_map(|e| {
                let stage = flow.bindings.get(e.binding).map(|b| b.stage.as_str()).unwrap_or("");
                match self.reg.factors.get(stage) {
                    Some(Factor::Identify(None)) => None,
                    Some(Factor::Identify(Some(pw))) if !skip_password => {
                        Some(PlanEntry::injected(Injected::Stage(pw.clone())))
                    }
                    Some(Factor::Identify(Some(_))) => None,
                    Some(Factor::Password) if skip_password => None,
                    _ => Some(e),
                }
            })
            .collect()
    }

    /// The sign-on record of a login by `flow`: its slug, the methods proved in this plan and
    /// the time; joined with the current session's record when the same user steps up.
    /// `host` is the request's canonical host without port: the scope of the new session's
    /// cookie (`*.<domain>` when it lies in `session.cookie_domain`).
    pub(super) fn login_auth(
        &self,
        flow: &Flow,
        context: &FlowContext,
        session: &Session,
        user: &User,
        host: Option<&str>,
    ) -> AuthInfo {
        let scope = match (host, self.settings.cookie_domain.as_deref()) {
            (Some(h), Some(d)) if crate::config::host_within(h, d) => format!("*.{d}"),
            (Some(h), _) => h.to_string(),
            (None, _) => String::new(),
        };
        let mut shape = AuthShape {
            flows: [flow.slug.as_str()].into_iter().collect(),
            methods: context.auth_methods.iter().map(String::as_str).collect(),
            auth_method: context.auth_method.clone().unwrap_or_default(),
            scope,
        };
        let mut sign_on = crate::session::new_sign_on();
        if session.user.as_ref().is_some_and(|u| u.user_id == user.id) {
            shape.flows.extend(session.auth.flows.iter());
            shape.methods.extend(session.auth.methods.iter());
            // A step-up stays in the same sign-on: one logout still ends everything.
            if !session.auth.sign_on.is_empty() {
                sign_on = session.auth.sign_on;
            }
        }
        AuthInfo::new(shape, self.sessions.clock().now_ms(), sign_on)
    }
}
