//! The planner: checks the flow's `authentication` requirement and its policies once, then
//! walks the bindings in (order, stage name) order, dropping those whose `evaluate_on_plan`
//! policies fail and marking the rest for run-time re-evaluation. Pure apart from policy
//! evaluation; no responses, no sessions.

use super::policies::{self, PolicyInput, Subject};
use super::{FlowRegistry, PlanEntry};
use crate::config::{AuthRequirement, Flow};

/// Why a flow does not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotApplicable {
    /// Policy messages (empty for a failed authentication requirement).
    pub messages: Vec<String>,
}

/// Facts about the request the plan is built for.
#[derive(Debug, Clone, Default)]
pub struct PlanFacts {
    /// The logged-in user, if any (used for the authentication requirement).
    pub request_user: Option<Subject>,
    /// Policy input (user = pending user or request user).
    pub input: PolicyInput,
    /// The flow was entered through a redirect.
    pub is_redirected: bool,
}

/// Builds the plan for `flow`, or says why it does not apply.
pub async fn plan(reg: &FlowRegistry, flow: &Flow, facts: &PlanFacts) -> Result<Vec<PlanEntry>, NotApplicable> {
    let logged_in = facts.request_user.as_ref().is_some_and(|u| u.is_authenticated_user);
    let ok = match flow.authentication {
        AuthRequirement::None => true,
        AuthRequirement::RequireAuthenticated => logged_in,
        AuthRequirement::RequireUnauthenticated => !logged_in,
        AuthRequirement::RequireSuperuser => logged_in && facts.request_user.as_ref().is_some_and(|u| u.is_superuser),
        AuthRequirement::RequireRedirect => facts.is_redirected,
    };
    if !ok {
        return Err(NotApplicable { messages: Vec::new() });
    }
    let r = policies::evaluate(&flow.policies, flow.policy_engine_mode, &reg.policies, &facts.input).await;
    if !r.passing {
        return Err(NotApplicable { messages: r.messages });
    }
    let mut out = Vec::with_capacity(flow.bindings.len());
    for (i, b) in flow.bindings.iter().enumerate() {
        if b.evaluate_on_plan && !b.policies.is_empty() {
            let r = policies::evaluate(&b.policies, b.policy_engine_mode, &reg.policies, &facts.input).await;
            if !r.passing {
                continue;
            }
        }
        out.push(PlanEntry {
            binding: i,
            reevaluate: b.re_evaluate_policies && !b.policies.is_empty(),
        });
    }
    Ok(out)
}
