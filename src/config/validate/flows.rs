//! Validation of flows (`flows:`), their stage bindings and the policy bindings of flows,
//! stage bindings and apps.

use super::{known, Collector};
use crate::config::duration::parse_duration;
use crate::config::model::*;
use crate::config::raw::*;
use std::collections::BTreeMap;

fn slug_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(crate) fn flow(
    c: &mut Collector<'_>,
    fi: usize,
    p: &str,
    raw: &RawFlow,
    stages: &BTreeMap<String, StageDef>,
    policies: &BTreeMap<String, PolicyDef>,
) -> Option<Flow> {
    if !slug_ok(&raw.slug) {
        c.err(
            fi,
            format!("{p}.slug"),
            format!("invalid slug {:?} (expected 1-128 of A-Z a-z 0-9 - _)", raw.slug),
        );
    }
    let designation = match Designation::parse(&raw.designation) {
        Some(d) => d,
        None => {
            let names: Vec<&str> = Designation::ALL.iter().map(|(n, _)| *n).collect();
            c.err(
                fi,
                format!("{p}.designation"),
                format!(
                    "unknown designation {:?} (expected one of: {})",
                    raw.designation,
                    names.join(", ")
                ),
            );
            Designation::Authentication
        }
    };
    let authentication = c.choice(
        fi,
        format!("{p}.authentication"),
        &raw.authentication,
        AuthRequirement::None,
        AuthRequirement::ALL,
    );
    let denied_action = c.choice(
        fi,
        format!("{p}.denied_action"),
        &raw.denied_action,
        DeniedAction::MessageContinue,
        DeniedAction::ALL,
    );
    let policy_engine_mode = c.choice(
        fi,
        format!("{p}.policy_engine_mode"),
        &raw.policy_engine_mode,
        EngineMode::Any,
        EngineMode::ALL,
    );
    let flow_policies = policy_bindings(c, fi, &format!("{p}.policies"), &raw.policies, policies);
    let mut bindings = Vec::new();
    for (i, b) in raw.bindings.iter().enumerate() {
        let bp = format!("{p}.bindings[{i}]");
        if !stages.contains_key(&b.stage) {
            c.err(
                fi,
                format!("{bp}.stage"),
                format!("unknown stage {:?} (known: {})", b.stage, known(stages.keys())),
            );
        }
        if raw
            .bindings
            .iter()
            .take(i)
            .any(|o| o.stage == b.stage && o.order == b.order)
        {
            c.err(
                fi,
                format!("{bp}.order"),
                format!("stage {:?} is already bound at order {}", b.stage, b.order),
            );
        }
        let invalid_response_action = c.choice(
            fi,
            format!("{bp}.invalid_response_action"),
            &b.invalid_response_action,
            InvalidResponseAction::Retry,
            InvalidResponseAction::ALL,
        );
        let policy_engine_mode = c.choice(
            fi,
            format!("{bp}.policy_engine_mode"),
            &b.policy_engine_mode,
            EngineMode::Any,
            EngineMode::ALL,
        );
        bindings.push(Binding {
            stage: b.stage.clone(),
            order: b.order,
            evaluate_on_plan: b.evaluate_on_plan.unwrap_or(false),
            re_evaluate_policies: b.re_evaluate_policies.unwrap_or(true),
            invalid_response_action,
            policy_engine_mode,
            policies: policy_bindings(c, fi, &format!("{bp}.policies"), &b.policies, policies),
        });
    }
    // Deterministic order: by order, then by stage name (authentik leaves ties to the database).
    bindings.sort_by(|a, b| a.order.cmp(&b.order).then_with(|| a.stage.cmp(&b.stage)));
    Some(Flow {
        slug: raw.slug.clone(),
        name: raw.name.clone().unwrap_or_else(|| raw.slug.clone()),
        title: raw
            .title
            .clone()
            .unwrap_or_else(|| raw.name.clone().unwrap_or_else(|| raw.slug.clone())),
        designation,
        authentication,
        denied_action,
        policy_engine_mode,
        layout: raw.layout.clone().unwrap_or_else(|| DEFAULT_FLOW_LAYOUT.to_string()),
        policies: flow_policies,
        bindings,
    })
}

pub(crate) fn policy_bindings(
    c: &mut Collector<'_>,
    fi: usize,
    p: &str,
    raw: &[RawPolicyBinding],
    policies: &BTreeMap<String, PolicyDef>,
) -> Vec<PolicyBinding> {
    let mut out = Vec::new();
    for (i, b) in raw.iter().enumerate() {
        let bp = format!("{p}[{i}]");
        let target = match (&b.policy, &b.group, &b.user) {
            (Some(n), None, None) => {
                if !policies.contains_key(n) {
                    c.err(
                        fi,
                        format!("{bp}.policy"),
                        format!("unknown policy {n:?} (known: {})", known(policies.keys())),
                    );
                }
                BindingTarget::Policy(n.clone())
            }
            (None, Some(g), None) => BindingTarget::Group(g.clone()),
            (None, None, Some(u)) => BindingTarget::User(u.clone()),
            _ => {
                c.err(fi, &bp, "a policy binding needs exactly one of: policy, group, user");
                continue;
            }
        };
        let timeout = match b.timeout.as_deref().map(parse_duration) {
            None => DEFAULT_POLICY_TIMEOUT,
            Some(Ok(d)) if !d.is_zero() => d,
            Some(Ok(_)) => {
                c.err(fi, format!("{bp}.timeout"), "must be greater than zero");
                DEFAULT_POLICY_TIMEOUT
            }
            Some(Err(e)) => {
                c.err(fi, format!("{bp}.timeout"), e);
                DEFAULT_POLICY_TIMEOUT
            }
        };
        out.push(PolicyBinding {
            target,
            negate: b.negate.unwrap_or(false),
            enabled: b.enabled.unwrap_or(true),
            order: b.order.unwrap_or(0),
            timeout,
            failure_result: b.failure_result.unwrap_or(false),
        });
    }
    out.sort_by_key(|b| b.order);
    out
}
