//! Validation of flows, stage bindings, stages, policies, policy bindings and identity header
//! sets. Split from `validate.rs`, which owns the top-level pipeline.

use super::{known, Collector, ENGINE_MODES};
use crate::config::duration::parse_duration;
use crate::config::model::*;
use crate::config::presets::{preset, PRESET_NAMES};
use crate::config::raw::*;
use std::collections::BTreeMap;

const USER_FIELDS: &[&str] = &["username", "email"];

/// Stage and policy names: free text as in authentik (they are keys, never in URLs), without
/// control characters or surrounding spaces.
fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.chars().count() <= 150 && !s.chars().any(char::is_control) && s.trim() == s
}

fn slug_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(crate) fn policy(c: &mut Collector<'_>, fi: usize, name: &str, raw: &RawPolicy) -> Option<PolicyDef> {
    let p = format!("policies.{name}");
    if !name_ok(name) {
        c.err(
            fi,
            &p,
            format!("invalid policy name {name:?} (1-150 characters, no control characters or surrounding spaces)"),
        );
    }
    match raw {
        RawPolicy::Dummy {
            result,
            wait_min,
            wait_max,
        } => {
            let min = wait_min.as_deref().map(parse_duration).transpose();
            let max = wait_max.as_deref().map(parse_duration).transpose();
            match (min, max) {
                (Ok(a), Ok(b)) => {
                    let a = a.unwrap_or_default();
                    let b = b.unwrap_or(a);
                    if b < a {
                        c.err(fi, format!("{p}.wait_max"), "must not be less than wait_min");
                    }
                    Some(PolicyDef::Dummy {
                        result: result.unwrap_or(false),
                        wait: a.max(b),
                    })
                }
                (Err(e), _) => {
                    c.err(fi, format!("{p}.wait_min"), e);
                    None
                }
                (_, Err(e)) => {
                    c.err(fi, format!("{p}.wait_max"), e);
                    None
                }
            }
        }
        other => super::policies::request_policy(c, fi, &p, other),
    }
}

pub(crate) fn stage(c: &mut Collector<'_>, fi: usize, name: &str, raw: &RawStage) -> Option<StageDef> {
    let p = format!("stages.{name}");
    if !name_ok(name) {
        c.err(
            fi,
            &p,
            format!("invalid stage name {name:?} (1-150 characters, no control characters or surrounding spaces)"),
        );
    }
    Some(match raw {
        RawStage::Identification {
            user_fields,
            case_insensitive_matching,
            pretend_user_exists,
            show_matched_user,
            password_stage,
            enrollment_flow,
            recovery_flow,
        } => {
            for (i, f) in user_fields.iter().enumerate() {
                if !USER_FIELDS.contains(&f.as_str()) {
                    c.err(
                        fi,
                        format!("{p}.user_fields[{i}]"),
                        format!("unknown user field {f:?} (expected one of: {})", USER_FIELDS.join(", ")),
                    );
                }
            }
            if user_fields.is_empty() {
                c.err(
                    fi,
                    format!("{p}.user_fields"),
                    "at least one user field is needed (username, email)",
                );
            }
            StageDef::Identification {
                user_fields: user_fields.clone(),
                case_insensitive_matching: case_insensitive_matching.unwrap_or(true),
                pretend_user_exists: pretend_user_exists.unwrap_or(true),
                show_matched_user: show_matched_user.unwrap_or(true),
                password_stage: password_stage.clone(),
                enrollment_flow: enrollment_flow.clone(),
                recovery_flow: recovery_flow.clone(),
            }
        }
        RawStage::Password {
            failed_attempts_before_cancel,
            allow_show_password,
        } => {
            let n = failed_attempts_before_cancel.unwrap_or(DEFAULT_FAILED_ATTEMPTS_BEFORE_CANCEL);
            if n == 0 {
                c.err(fi, format!("{p}.failed_attempts_before_cancel"), "must be at least 1");
            }
            StageDef::Password {
                failed_attempts_before_cancel: n,
                allow_show_password: allow_show_password.unwrap_or(false),
            }
        }
        RawStage::UserLogin {
            session_duration,
            remember_me_offset,
            terminate_other_sessions,
        } => {
            let mut opt = |key: &str, v: &Option<String>| match v.as_deref().map(parse_duration) {
                None => None,
                Some(Ok(d)) if d.is_zero() => None,
                Some(Ok(d)) => Some(d),
                Some(Err(e)) => {
                    c.err(fi, format!("{p}.{key}"), e);
                    None
                }
            };
            StageDef::UserLogin {
                session_duration: opt("session_duration", session_duration),
                remember_me_offset: opt("remember_me_offset", remember_me_offset),
                terminate_other_sessions: terminate_other_sessions.unwrap_or(false),
            }
        }
        RawStage::UserLogout {} => StageDef::UserLogout,
        RawStage::Deny { deny_message } => StageDef::Deny {
            deny_message: deny_message.clone().unwrap_or_default(),
        },
        other => super::stages::stage(c, fi, &p, other),
    })
}

/// Checks references between stages (an identification stage's embedded password stage).
pub(crate) fn check_stage_refs(c: &mut Collector<'_>, files: &[RawFile], stages: &BTreeMap<String, StageDef>) {
    for (fi, f) in files.iter().enumerate() {
        for (name, raw) in &f.stages {
            if let RawStage::Identification {
                password_stage: Some(ps),
                ..
            } = raw
            {
                match stages.get(ps) {
                    Some(StageDef::Password { .. }) => {}
                    Some(other) => c.err(
                        fi,
                        format!("stages.{name}.password_stage"),
                        format!("stage {ps:?} is a {} stage, not a password stage", other.kind()),
                    ),
                    None => c.err(
                        fi,
                        format!("stages.{name}.password_stage"),
                        format!("unknown stage {ps:?} (known: {})", known(stages.keys())),
                    ),
                }
            }
        }
    }
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
        &[
            ("none", AuthRequirement::None),
            ("require_authenticated", AuthRequirement::RequireAuthenticated),
            ("require_unauthenticated", AuthRequirement::RequireUnauthenticated),
            ("require_superuser", AuthRequirement::RequireSuperuser),
            ("require_redirect", AuthRequirement::RequireRedirect),
        ],
    );
    let denied_action = c.choice(
        fi,
        format!("{p}.denied_action"),
        &raw.denied_action,
        DeniedAction::MessageContinue,
        &[
            ("message_continue", DeniedAction::MessageContinue),
            ("message", DeniedAction::Message),
            ("continue", DeniedAction::Continue),
        ],
    );
    let policy_engine_mode = c.choice(
        fi,
        format!("{p}.policy_engine_mode"),
        &raw.policy_engine_mode,
        EngineMode::Any,
        ENGINE_MODES,
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
            &[
                ("retry", InvalidResponseAction::Retry),
                ("restart", InvalidResponseAction::Restart),
                ("restart_with_context", InvalidResponseAction::RestartWithContext),
            ],
        );
        let policy_engine_mode = c.choice(
            fi,
            format!("{bp}.policy_engine_mode"),
            &b.policy_engine_mode,
            EngineMode::Any,
            ENGINE_MODES,
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
        layout: raw.layout.clone().unwrap_or_else(|| "stacked".to_string()),
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

/// Header names an identity header may never take.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "cookie",
    "set-cookie",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-authorization",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
];

pub(crate) fn headers(c: &mut Collector<'_>, p: &str, raw: Option<&RawHeaders>) -> Option<HeaderSet> {
    match raw {
        None => Some(preset("default")?),
        Some(RawHeaders::Preset(name)) => match preset(name) {
            Some(h) => Some(h),
            None => {
                c.err(0, p, format!("unknown header preset {name:?} (expected one of: {}, or a map with user, email, groups, name, uid)", PRESET_NAMES.join(", ")));
                None
            }
        },
        Some(RawHeaders::Custom(m)) => {
            let mut check = |field: &str, v: &Option<String>| -> Option<String> {
                let v = v.as_ref()?;
                let lower = v.to_ascii_lowercase();
                if http::HeaderName::from_bytes(v.as_bytes()).is_err() || RESERVED_HEADERS.contains(&lower.as_str()) {
                    c.err(0, format!("{p}.{field}"), format!("invalid identity header name {v:?} (expected a valid HTTP header name that is not hop-by-hop, Host, Cookie or X-Forwarded-For/-Proto/-Host)"));
                    return None;
                }
                Some(v.clone())
            };
            let set = HeaderSet {
                preset: "custom".into(),
                user: check("user", &m.user),
                email: check("email", &m.email),
                groups: check("groups", &m.groups),
                name: check("name", &m.name),
                uid: check("uid", &m.uid),
                groups_separator: m.groups_separator.clone().unwrap_or_else(|| ",".into()),
                meta: false,
            };
            if set.groups_separator.is_empty() || set.groups_separator.chars().any(|ch| ch.is_control()) {
                c.err(
                    0,
                    format!("{p}.groups_separator"),
                    "must be a non-empty string without control characters",
                );
            }
            if m.user.is_none() {
                c.err(
                    0,
                    format!("{p}.user"),
                    "a custom header set needs at least the user header",
                );
            }
            Some(set)
        }
    }
}
