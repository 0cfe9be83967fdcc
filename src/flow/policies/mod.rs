//! The policy engine: evaluates a list of policy bindings with authentik's semantics
//! (docs/design.md §4.1): enabled bindings by order; user and group bindings aggregated into one
//! "static" result; policy bindings one by one with `negate`, a hard `timeout` and
//! `failure_result` on error or timeout; no results → pass; `any`/`all` combination; every
//! message collected in order.
//!
//! Policies themselves are one kind per file (named after the kind; `hibp.rs` is the range
//! check the password policy uses), each an `evaluate` function over its validated settings
//! and a [`PolicyInput`]; [`run_policy`] is the registry, one line per kind.

mod dummy;
pub mod expression;
mod header;
pub mod hibp;
mod method;
pub mod password;
mod password_expiry;
mod path;
mod reputation;
mod source_cidr;
mod time;

use crate::config::{BindingTarget, EngineMode, PolicyBinding, PolicyDef};
use std::collections::BTreeMap;

/// The user a policy is evaluated for.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    /// Username; empty for anonymous.
    pub username: String,
    /// Groups including inherited ones.
    pub groups: Vec<String>,
    /// Superuser flag.
    pub is_superuser: bool,
    /// Whether this is a real stored user (anonymous and pretend users are not).
    pub is_authenticated_user: bool,
    /// Email, may be empty.
    pub email: String,
    /// Display name, may be empty.
    pub name: String,
    /// When the password was last set, milliseconds since the Unix epoch.
    pub password_changed_ms: Option<u64>,
}

/// What a policy sees.
#[derive(Debug, Clone, Default)]
pub struct PolicyInput {
    /// The evaluation user, if any.
    pub user: Option<Subject>,
    /// The request path (normalised); empty inside flows.
    pub path: String,
    /// The request method; empty inside flows.
    pub method: String,
    /// Client address.
    pub client_ip: Option<std::net::IpAddr>,
    /// Request headers (lowercase names); empty inside flows.
    pub headers: Vec<(String, String)>,
    /// Evaluation time, milliseconds since the Unix epoch (from the injected clock).
    pub now_ms: u64,
    /// Reputation scores of the client IP and of the identifier in play (0 when unknown).
    pub reputation: (i64, i64),
    /// The flow context as JSON (`pending_user`, `auth_method`, `prompt_data`, ...).
    pub context: serde_json::Map<String, serde_json::Value>,
    /// Evaluated inside a flow (expressions then see `flow_plan`).
    pub in_flow: bool,
    /// The flow runs in an SSO context (`ak_is_sso_flow`).
    pub is_sso: bool,
    /// The user store, for `ak_user_by` in expressions.
    pub users: Option<crate::identity::UserStore>,
}

/// A single policy's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Pass or fail.
    pub passing: bool,
    /// Messages for the user.
    pub messages: Vec<String>,
}

/// A policy failed to produce a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

/// The engine's combined result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineResult {
    /// Combined pass/fail.
    pub passing: bool,
    /// Every message in order.
    pub messages: Vec<String>,
}

/// The policy registry: evaluates one policy definition, one line per kind.
async fn run_policy(def: &PolicyDef, input: &PolicyInput) -> Result<Decision, PolicyError> {
    match def {
        PolicyDef::Dummy { result, wait } => dummy::evaluate(*result, *wait, input).await,
        PolicyDef::Path { regex } => Ok(path::evaluate(regex, input)),
        PolicyDef::Method { methods } => Ok(method::evaluate(methods, input)),
        PolicyDef::SourceCidr { cidrs } => Ok(source_cidr::evaluate(cidrs, input)),
        PolicyDef::Header { name, regex } => Ok(header::evaluate(name, regex.as_ref(), input)),
        PolicyDef::Time { weekdays, from, to } => Ok(time::time(weekdays, *from, *to, input)),
        PolicyDef::Reputation {
            check_ip,
            check_username,
            threshold,
        } => Ok(reputation::evaluate(*check_ip, *check_username, *threshold, input)),
        PolicyDef::Expression { expression } => expression.evaluate_async(input).await,
        PolicyDef::Password { rules } => password::evaluate(rules, input).await,
        PolicyDef::PasswordExpiry { days, deny_only } => password_expiry::evaluate(*days, *deny_only, input).await,
    }
}

/// One binding's part in an evaluation, for the flow inspector.
#[derive(Debug, Clone)]
pub struct BindingTrace {
    /// What the binding points at (`policy x`, `group g`, `user u`).
    pub target: String,
    /// The binding's result after `negate`.
    pub passing: bool,
    /// Messages the policy produced.
    pub messages: Vec<String>,
    /// Time the policy took.
    pub elapsed: std::time::Duration,
}

/// Evaluates `bindings` (already sorted by order) for `input`.
pub async fn evaluate(
    bindings: &[PolicyBinding],
    mode: EngineMode,
    policies: &BTreeMap<String, PolicyDef>,
    input: &PolicyInput,
) -> EngineResult {
    evaluate_traced(bindings, mode, policies, input, None).await
}

/// [`evaluate`], recording each binding's result in `trace` when given.
pub async fn evaluate_traced(
    bindings: &[PolicyBinding],
    mode: EngineMode,
    policies: &BTreeMap<String, PolicyDef>,
    input: &PolicyInput,
    mut trace: Option<&mut Vec<BindingTrace>>,
) -> EngineResult {
    let mut record = |target: String, passing: bool, messages: &[String], elapsed| {
        if let Some(t) = trace.as_deref_mut() {
            t.push(BindingTrace {
                target,
                passing,
                messages: messages.to_vec(),
                elapsed,
            });
        }
    };
    let mut results: Vec<bool> = Vec::new();
    let mut messages = Vec::new();
    let mut statics: Vec<bool> = Vec::new();
    for b in bindings.iter().filter(|b| b.enabled) {
        match &b.target {
            BindingTarget::Group(g) => {
                let member = input
                    .user
                    .as_ref()
                    .is_some_and(|u| u.is_authenticated_user && u.groups.iter().any(|x| x == g));
                statics.push(member != b.negate);
                record(format!("group {g}"), member != b.negate, &[], std::time::Duration::ZERO);
            }
            BindingTarget::User(name) => {
                let me = input
                    .user
                    .as_ref()
                    .is_some_and(|u| u.is_authenticated_user && &u.username == name);
                statics.push(me != b.negate);
                record(format!("user {name}"), me != b.negate, &[], std::time::Duration::ZERO);
            }
            BindingTarget::Policy(name) => {
                let started = crate::session::clock::instant_now();
                let decision = match policies.get(name) {
                    None => Decision {
                        passing: b.failure_result,
                        messages: vec![format!("policy {name} is not defined")],
                    },
                    Some(def) => match tokio::time::timeout(b.timeout, run_policy(def, input)).await {
                        Ok(Ok(d)) => d,
                        Ok(Err(e)) => Decision {
                            passing: b.failure_result,
                            messages: vec![e.0],
                        },
                        Err(_) => {
                            tracing::warn!(policy = %name, timeout_ms = b.timeout.as_millis() as u64, "policy timed out");
                            Decision {
                                passing: b.failure_result,
                                messages: vec!["Timed out".into()],
                            }
                        }
                    },
                };
                results.push(decision.passing != b.negate);
                record(
                    format!("policy {name}"),
                    decision.passing != b.negate,
                    &decision.messages,
                    started.elapsed(),
                );
                messages.extend(decision.messages);
            }
        }
    }
    if !statics.is_empty() {
        results.push(match mode {
            EngineMode::Any => statics.iter().any(|x| *x),
            EngineMode::All => statics.iter().all(|x| *x),
        });
    }
    let passing = if results.is_empty() {
        true
    } else {
        match mode {
            EngineMode::Any => results.iter().any(|x| *x),
            EngineMode::All => results.iter().all(|x| *x),
        }
    };
    EngineResult { passing, messages }
}

/// Evaluates bindings that need no I/O and no policy (only user and group bindings) without
/// awaiting; `None` when a policy binding is present and [`evaluate`] must be used.
pub fn evaluate_static(bindings: &[PolicyBinding], mode: EngineMode, user: &Subject) -> Option<bool> {
    let mut statics = Vec::new();
    for b in bindings.iter().filter(|b| b.enabled) {
        let v = match &b.target {
            BindingTarget::Group(g) => user.is_authenticated_user && user.groups.iter().any(|x| x == g),
            BindingTarget::User(n) => user.is_authenticated_user && &user.username == n,
            BindingTarget::Policy(_) => return None,
        };
        statics.push(v != b.negate);
    }
    Some(match (statics.is_empty(), mode) {
        (true, _) => true,
        (false, EngineMode::Any) => statics.iter().any(|x| *x),
        (false, EngineMode::All) => statics.iter().all(|x| *x),
    })
}

/// A request matcher's decision: `what` does not match, when it does not.
fn verdict(passing: bool, what: &str) -> Decision {
    let messages = if passing {
        Vec::new()
    } else {
        vec![format!("{what} does not match")]
    };
    Decision { passing, messages }
}

#[cfg(test)]
mod tests;
