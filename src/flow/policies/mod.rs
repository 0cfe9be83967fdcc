//! The policy engine: evaluates a list of policy bindings with authentik's semantics
//! (docs/design.md §4.1): enabled bindings by order; user and group bindings aggregated into one
//! "static" result; policy bindings one by one with `negate`, a hard `timeout` and
//! `failure_result` on error or timeout; no results → pass; `any`/`all` combination; every
//! message collected in order.
//!
//! Policies themselves (one per file) are pure `evaluate` functions over a [`PolicyInput`].

mod dummy;
pub mod expression;
mod header;
pub mod hibp;
mod method;
pub mod password;
mod path;
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

async fn run_policy(def: &PolicyDef, input: &PolicyInput) -> Result<Decision, PolicyError> {
    match def {
        PolicyDef::Dummy { result, wait } => dummy::evaluate(*result, *wait, input).await,
        PolicyDef::Path { regex } => Ok(path::path(regex, input)),
        PolicyDef::Method { methods } => Ok(method::method(methods, input)),
        PolicyDef::SourceCidr { cidrs } => Ok(source_cidr::source_cidr(cidrs, input)),
        PolicyDef::Header { name, regex } => Ok(header::header(name, regex.as_ref(), input)),
        PolicyDef::Time {
            weekdays,
            from_minute,
            to_minute,
        } => Ok(time::time(weekdays, *from_minute, *to_minute, input)),
        PolicyDef::Reputation {
            check_ip,
            check_username,
            threshold,
        } => {
            let (ip, user) = input.reputation;
            let passing = (*check_ip && ip <= *threshold) || (*check_username && user <= *threshold);
            Ok(Decision {
                passing,
                messages: Vec::new(),
            })
        }
        PolicyDef::Expression { expression } => expression.evaluate_async(input).await,
        PolicyDef::Password { rules } => password::evaluate(rules, input).await,
        PolicyDef::PasswordExpiry { days, deny_only } => {
            let d = password_expiry(*days, *deny_only, input);
            // As authentik: without deny_only, an expired password is also made unusable.
            if !d.passing && !*deny_only {
                if let (Some(store), Some(u)) = (&input.users, &input.user) {
                    store
                        .set_password_unusable(&u.username)
                        .await
                        .map_err(|e| PolicyError(e.to_string()))?;
                    tracing::info!(user = %u.username, "expired password made unusable");
                }
            }
            Ok(d)
        }
    }
}

/// Fails once the user's password is `days` old (the message differs with `deny_only`).
fn password_expiry(days: u32, deny_only: bool, input: &PolicyInput) -> Decision {
    let changed = input.user.as_ref().and_then(|u| u.password_changed_ms);
    let Some(changed) = changed else {
        return Decision {
            passing: true,
            messages: Vec::new(),
        };
    };
    let age_days = input.now_ms.saturating_sub(changed) / 86_400_000;
    if age_days < u64::from(days) {
        return Decision {
            passing: true,
            messages: Vec::new(),
        };
    }
    let message = if deny_only {
        "Password has expired.".to_string()
    } else {
        format!(
            "Password expired {} days ago. Please update your password.",
            age_days - u64::from(days)
        )
    };
    Decision {
        passing: false,
        messages: vec![message],
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
