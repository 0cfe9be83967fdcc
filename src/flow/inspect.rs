//! The flow inspector: a readable report of the plan a request would get (`flowgate plan`) and
//! a Mermaid drawing of a flow (`flowgate export --format mermaid`).

use super::planner::{plan_traced, PlanFacts, PlanTrace};
use super::policies::BindingTrace;
use super::FlowRegistry;
use crate::config::{AuthRequirement, BindingTarget, DeniedAction, EngineMode, Flow, PolicyBinding, StageDef};
use std::collections::BTreeMap;
use std::fmt::Write;

fn mode(m: EngineMode) -> &'static str {
    match m {
        EngineMode::Any => "any",
        EngineMode::All => "all",
    }
}

fn requirement(r: AuthRequirement) -> &'static str {
    match r {
        AuthRequirement::None => "none",
        AuthRequirement::RequireAuthenticated => "require_authenticated",
        AuthRequirement::RequireUnauthenticated => "require_unauthenticated",
        AuthRequirement::RequireSuperuser => "require_superuser",
        AuthRequirement::RequireRedirect => "require_redirect",
    }
}

fn denied(d: DeniedAction) -> &'static str {
    match d {
        DeniedAction::MessageContinue => "message_continue",
        DeniedAction::Message => "message",
        DeniedAction::Continue => "continue",
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "pass"
    } else {
        "FAIL"
    }
}

fn traces(out: &mut String, indent: &str, t: &[BindingTrace]) {
    for b in t {
        let _ = write!(
            out,
            "{indent}- {}: {} ({:.3} ms)",
            b.target,
            verdict(b.passing),
            b.elapsed.as_secs_f64() * 1000.0
        );
        if !b.messages.is_empty() {
            let _ = write!(out, " messages: {}", b.messages.join(" | "));
        }
        out.push('\n');
    }
}

/// Plans `flow` for `facts` and describes every decision.
pub async fn plan_report(
    reg: &FlowRegistry,
    defs: &BTreeMap<String, StageDef>,
    flow: &Flow,
    facts: &PlanFacts,
) -> String {
    let mut trace = PlanTrace::default();
    let result = plan_traced(reg, flow, facts, Some(&mut trace)).await;
    let mut out = String::new();
    let who = facts
        .input
        .user
        .as_ref()
        .map(|u| u.username.as_str())
        .filter(|u| !u.is_empty())
        .unwrap_or("anonymous");
    let _ = writeln!(out, "flow {} ({}) for {who}", flow.slug, flow.designation.as_str());
    let _ = writeln!(
        out,
        "authentication requirement {}: {}",
        requirement(flow.authentication),
        verdict(trace.requirement_ok)
    );
    if let Some((r, t)) = &trace.flow_policies {
        let _ = writeln!(
            out,
            "flow policies (mode {}): {}",
            mode(flow.policy_engine_mode),
            if t.is_empty() { "none, pass" } else { verdict(r.passing) }
        );
        traces(&mut out, "  ", t);
    }
    if !trace.bindings.is_empty() {
        out.push_str("bindings:\n");
    }
    for d in &trace.bindings {
        let b = &flow.bindings[d.binding];
        let kind = defs.get(&b.stage).map(StageDef::kind).unwrap_or("?");
        let mut status = if d.planned {
            "planned".to_string()
        } else {
            "dropped at plan time".to_string()
        };
        if d.planned && d.reevaluate {
            status.push_str(", policies re-checked when the stage runs");
        }
        let _ = writeln!(out, "  [{}] {} ({kind}): {status}", b.order, b.stage);
        if let Some((r, t)) = &d.evaluated {
            let _ = writeln!(
                out,
                "    evaluate_on_plan (mode {}): {}",
                mode(b.policy_engine_mode),
                verdict(r.passing)
            );
            traces(&mut out, "      ", t);
        }
    }
    match result {
        Ok(plan) if plan.is_empty() => out.push_str("result: empty plan (the flow finishes at once)\n"),
        Ok(plan) => {
            let names: Vec<&str> = plan.iter().map(|e| flow.bindings[e.binding].stage.as_str()).collect();
            let _ = writeln!(out, "result: {}", names.join(" -> "));
        }
        Err(na) if na.messages.is_empty() => {
            let _ = writeln!(
                out,
                "result: flow does not apply (denied_action {})",
                denied(flow.denied_action)
            );
        }
        Err(na) => {
            let _ = writeln!(
                out,
                "result: flow does not apply: {} (denied_action {})",
                na.messages.join(" | "),
                denied(flow.denied_action)
            );
        }
    }
    out
}

fn condition(bindings: &[PolicyBinding], m: EngineMode) -> Option<String> {
    let parts: Vec<String> = bindings
        .iter()
        .filter(|b| b.enabled)
        .map(|b| {
            let t = match &b.target {
                BindingTarget::Policy(p) => format!("policy {p}"),
                BindingTarget::Group(g) => format!("group {g}"),
                BindingTarget::User(u) => format!("user {u}"),
            };
            if b.negate {
                format!("not {t}")
            } else {
                t
            }
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(if m == EngineMode::All { " and " } else { " or " }))
}

fn label(s: &str) -> String {
    s.replace('"', "#quot;").replace(['<', '>'], "")
}

/// Draws a flow as a Mermaid flowchart: stages in order, conditional stages with the policies
/// that gate them and a dashed edge around them.
pub fn mermaid(flow: &Flow, defs: &BTreeMap<String, StageDef>) -> String {
    let mut out = String::from("flowchart TD\n");
    let _ = writeln!(
        out,
        "    start([\"{} ({})\"])",
        label(&flow.title),
        flow.designation.as_str()
    );
    if let Some(c) = condition(&flow.policies, flow.policy_engine_mode) {
        let _ = writeln!(out, "    denied([\"denied: {}\"])", denied(flow.denied_action));
        let _ = writeln!(out, "    start -. \"fails: {}\" .-> denied", label(&c));
    }
    let n = flow.bindings.len();
    for (i, b) in flow.bindings.iter().enumerate() {
        let kind = defs.get(&b.stage).map(StageDef::kind).unwrap_or("?");
        let _ = writeln!(out, "    s{i}[\"{} · {}<br/>{}\"]", b.order, kind, label(&b.stage));
    }
    let _ = writeln!(out, "    done([\"done: redirect to next\"])");
    let node = |i: usize| if i < n { format!("s{i}") } else { "done".to_string() };
    let _ = writeln!(out, "    start --> {}", node(0));
    for (i, b) in flow.bindings.iter().enumerate() {
        match condition(&b.policies, b.policy_engine_mode) {
            Some(c) => {
                let when = match (b.evaluate_on_plan, b.re_evaluate_policies) {
                    (true, true) => "at plan and run",
                    (true, false) => "at plan",
                    _ => "at run",
                };
                let _ = writeln!(out, "    s{i} --> {}", node(i + 1));
                let _ = writeln!(out, "    s{i}:::conditional");
                let prev = if i == 0 {
                    "start".to_string()
                } else {
                    format!("s{}", i - 1)
                };
                let _ = writeln!(
                    out,
                    "    {prev} -. \"skip unless {} ({when})\" .-> {}",
                    label(&c),
                    node(i + 1)
                );
            }
            None => {
                let _ = writeln!(out, "    s{i} --> {}", node(i + 1));
            }
        }
    }
    out.push_str("    classDef conditional stroke-dasharray: 4 3\n");
    out
}
