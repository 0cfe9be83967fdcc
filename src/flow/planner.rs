//! The planner: checks the flow's `authentication` requirement and its policies once, then
//! walks the bindings in (order, stage name) order, dropping those whose `evaluate_on_plan`
//! policies fail and marking the rest for run-time re-evaluation. Pure apart from policy
//! evaluation; no responses, no sessions. [`plan_traced`] also records every decision for
//! the flow inspector (`flowgate plan`).

use super::policies::{self, BindingTrace, EngineResult, PolicyInput, Subject};
use super::{FlowRegistry, PlanEntry};
use crate::config::{AuthRequirement, EngineMode, Flow, PolicyBinding};

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
    /// A logged-in user steps up through this flow for an app (STEP-1): a flow that requires
    /// an unauthenticated user applies to them.
    pub step_up: bool,
}

/// Every decision the planner made, for the inspector.
#[derive(Debug, Default)]
pub struct PlanTrace {
    /// The authentication requirement held.
    pub requirement_ok: bool,
    /// The flow's own policies, combined and per binding.
    pub flow_policies: Option<(EngineResult, Vec<BindingTrace>)>,
    /// Per stage binding: its index, whether it is in the plan, and its plan-time evaluation.
    pub bindings: Vec<BindingDecision>,
}

/// What the planner did with one stage binding.
#[derive(Debug)]
pub struct BindingDecision {
    /// Index into `Flow::bindings`.
    pub binding: usize,
    /// Kept in the plan.
    pub planned: bool,
    /// Marked for re-evaluation before the stage runs.
    pub reevaluate: bool,
    /// The `evaluate_on_plan` result, when evaluated.
    pub evaluated: Option<(EngineResult, Vec<BindingTrace>)>,
}

/// Whether a flow's `authentication` requirement holds for the request's user. Checked when a
/// plan is made and again when a plan is resumed from a mailed link (LINK-1).
pub fn requirement_holds(requirement: AuthRequirement, request_user: Option<&Subject>, is_redirected: bool) -> bool {
    let logged_in = request_user.is_some_and(|u| u.is_authenticated_user);
    match requirement {
        AuthRequirement::None => true,
        AuthRequirement::RequireAuthenticated => logged_in,
        AuthRequirement::RequireUnauthenticated => !logged_in,
        AuthRequirement::RequireSuperuser => logged_in && request_user.is_some_and(|u| u.is_superuser),
        AuthRequirement::RequireRedirect => is_redirected,
    }
}

/// Evaluates policy bindings against the facts' input; with `traced`, also what each binding
/// decided (for the flow inspector).
async fn evaluate(
    reg: &FlowRegistry,
    bindings: &[PolicyBinding],
    mode: EngineMode,
    facts: &PlanFacts,
    traced: bool,
) -> (EngineResult, Vec<BindingTrace>) {
    let mut trace = traced.then(Vec::new);
    let result = policies::evaluate_traced(bindings, mode, &reg.policies, &facts.input, trace.as_mut()).await;
    (result, trace.unwrap_or_default())
}

/// Builds the plan for `flow`, or says why it does not apply.
pub async fn plan(reg: &FlowRegistry, flow: &Flow, facts: &PlanFacts) -> Result<Vec<PlanEntry>, NotApplicable> {
    plan_traced(reg, flow, facts, None).await
}

/// [`plan`], recording each decision in `trace` when given.
pub async fn plan_traced(
    reg: &FlowRegistry,
    flow: &Flow,
    facts: &PlanFacts,
    mut trace: Option<&mut PlanTrace>,
) -> Result<Vec<PlanEntry>, NotApplicable> {
    // A step-up runs the flow for a user who is already logged in (docs/decisions/0005-step-up.md).
    let step_up_ok = facts.step_up && matches!(flow.authentication, AuthRequirement::RequireUnauthenticated);
    let ok = step_up_ok || requirement_holds(flow.authentication, facts.request_user.as_ref(), facts.is_redirected);
    if let Some(t) = trace.as_deref_mut() {
        t.requirement_ok = ok;
    }
    if !ok {
        return Err(NotApplicable { messages: Vec::new() });
    }
    let (r, bt) = evaluate(reg, &flow.policies, flow.policy_engine_mode, facts, trace.is_some()).await;
    if let Some(t) = trace.as_deref_mut() {
        t.flow_policies = Some((r.clone(), bt));
    }
    if !r.passing {
        return Err(NotApplicable { messages: r.messages });
    }
    let mut out = Vec::with_capacity(flow.bindings.len());
    for (i, b) in flow.bindings.iter().enumerate() {
        let mut evaluated = None;
        let mut planned = true;
        if b.evaluate_on_plan && !b.policies.is_empty() {
            let (r, bt) = evaluate(reg, &b.policies, b.policy_engine_mode, facts, trace.is_some()).await;
            planned = r.passing;
            evaluated = Some((r, bt));
        }
        let reevaluate = b.re_evaluate_policies && !b.policies.is_empty();
        if planned {
            out.push(PlanEntry::binding(i, reevaluate));
        }
        if let Some(t) = trace.as_deref_mut() {
            t.bindings.push(BindingDecision {
                binding: i,
                planned,
                reevaluate,
                evaluated,
            });
        }
    }
    Ok(out)
}
