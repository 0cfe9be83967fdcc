//! Identification stage: finds the user by username and/or email (case-insensitive by
//! default). Unknown identifiers continue as a pretend user when `pretend_user_exists` is on
//! and no password is asked here, so the response does not reveal whether an account exists.
//! With an embedded password stage, the password is checked in the same step (a dummy hash
//! equalises timing for unknown users) and failures are counted in the plan like the password
//! stage does. With a `webauthn_stage`, the page also carries a WebAuthn request for any
//! discoverable credential (`passkey_challenge`), which the browser offers in the username
//! field (conditional mediation, "autofill"); a `passkey` response logs its owner in
//! passwordless (`auth_method` `auth_webauthn_pwl`), as authentik.

use super::authenticator_validate::ValidateStage;
use super::password::{Check, PasswordStage};
use super::webauthn::{
    check_assertion, credential_field, new_challenge, passwordless_login, relying_party, request_options,
};
use super::{Stage, StageCx, StageOutcome};
use crate::config::Designation;
use crate::config::{IdentificationDef, StageDef};
use crate::flow::{response_str, Challenge, PendingUser};
use crate::identity::LookupField;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Component name.
const COMPONENT: &str = "ak-stage-identification";
/// Longest identifier accepted.
const MAX_IDENTIFIER_LEN: usize = 254;

/// Asks who the user is.
pub(super) struct IdentificationStage {
    user_fields: Vec<String>,
    case_insensitive_matching: bool,
    pretend_user_exists: bool,
    show_matched_user: bool,
    password: Option<PasswordStage>,
    enrollment_flow: Option<String>,
    recovery_flow: Option<String>,
    sources: Vec<crate::config::SourceButton>,
    show_source_labels: bool,
    /// The validate stage whose WebAuthn settings the autofill uses.
    webauthn: Option<ValidateStage>,
    passwordless_flow: Option<String>,
}

impl IdentificationStage {
    /// Built from its definition; the embedded password stage comes from `all`.
    pub(super) fn from_config(c: &IdentificationDef, all: &BTreeMap<String, StageDef>) -> Self {
        let password = c.password_stage.as_ref().and_then(|p| match all.get(p) {
            Some(StageDef::Password(d)) => Some(PasswordStage::from_config(d)),
            _ => None,
        });
        Self {
            user_fields: c.user_fields.clone(),
            case_insensitive_matching: c.case_insensitive_matching,
            pretend_user_exists: c.pretend_user_exists,
            show_matched_user: c.show_matched_user,
            password,
            enrollment_flow: c.enrollment_flow.clone(),
            recovery_flow: c.recovery_flow.clone(),
            sources: c.source_buttons.clone(),
            show_source_labels: c.show_source_labels,
            webauthn: c.webauthn_stage.as_ref().and_then(|w| match all.get(w) {
                Some(StageDef::AuthenticatorValidate(d)) => Some(ValidateStage::from_config(d, all)),
                _ => None,
            }),
            passwordless_flow: c.passwordless_flow.clone(),
        }
    }
}

/// `/.flowgate/flow/<slug>/?<query>`: a link to another flow keeping the original query.
pub(super) fn flow_link(slug: &str, query: &str) -> String {
    if query.is_empty() {
        format!("{}flow/{slug}/", crate::config::RESERVED_PREFIX)
    } else {
        format!("{}flow/{slug}/?{query}", crate::config::RESERVED_PREFIX)
    }
}

/// authentik's `sources` list: each button's challenge redirects to the source's login.
fn source_list(sources: &[crate::config::SourceButton], query: &str) -> Value {
    let q = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    Value::Array(
        sources
            .iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "icon_url": s.icon_url,
                    "promoted": false,
                    "challenge": {
                        "component": "xak-flow-redirect",
                        "to": format!("{}source/oauth/login/{}/{q}", crate::config::RESERVED_PREFIX, s.slug),
                    },
                })
            })
            .collect(),
    )
}

impl IdentificationStage {
    fn challenge(&self, designation: Designation, prefill: Option<&str>, query: &str) -> Challenge {
        let mut m = Map::new();
        m.insert("user_fields".into(), json!(self.user_fields));
        m.insert("password_fields".into(), json!(self.password.is_some()));
        m.insert("allow_show_password".into(), json!(false));
        m.insert("flow_designation".into(), json!(designation.as_str()));
        m.insert(
            "primary_action".into(),
            json!(if designation == Designation::Authentication {
                "Log in"
            } else {
                "Continue"
            }),
        );
        let link = |f: &Option<String>| f.as_deref().map(|s| json!(flow_link(s, query))).unwrap_or(Value::Null);
        m.insert("enroll_url".into(), link(&self.enrollment_flow));
        m.insert("recovery_url".into(), link(&self.recovery_flow));
        m.insert("passwordless_url".into(), link(&self.passwordless_flow));
        m.insert("sources".into(), source_list(&self.sources, query));
        m.insert("show_source_labels".into(), json!(self.show_source_labels));
        m.insert("enable_remember_me".into(), json!(false));
        m.insert("captcha_stage".into(), Value::Null);
        m.insert("passkey_challenge".into(), Value::Null);
        if let Some(p) = prefill {
            m.insert("pending_user_identifier".into(), json!(p));
        }
        Challenge::new(COMPONENT, m, false)
    }

    fn fields(&self) -> Vec<LookupField> {
        self.user_fields
            .iter()
            .filter_map(|f| match f.as_str() {
                "username" => Some(LookupField::Username),
                "email" => Some(LookupField::Email),
                _ => None,
            })
            .collect()
    }
}

impl IdentificationStage {
    /// Adds the passkey autofill request (a fresh challenge) when a webauthn stage is set and
    /// the host can be a relying party.
    fn with_passkey(&self, cx: &mut StageCx<'_>, mut c: Challenge) -> Challenge {
        if let (Some(w), Some((rp_id, _))) = (&self.webauthn, relying_party(cx)) {
            let challenge = new_challenge(cx);
            c.fields.insert(
                "passkey_challenge".into(),
                request_options(&challenge, &rp_id, &[], w.webauthn_uv()),
            );
        }
        c
    }

    /// A passkey instead of an identifier: its owner is the pending user.
    async fn submit_passkey(&self, cx: &mut StageCx<'_>, w: &ValidateStage, credential: &Value) -> StageOutcome {
        match check_assertion(cx, credential, w.webauthn_uv(), None).await {
            Ok((user, device)) => {
                passwordless_login(cx, user, &device);
                StageOutcome::Continue
            }
            Err(message) => {
                cx.reputation.record(cx.client_ip, "", -1).await;
                StageOutcome::Invalid(self.challenge(cx.designation, None, cx.query).with_error(
                    "non_field_errors",
                    message,
                    "invalid",
                ))
            }
        }
    }
}

#[async_trait::async_trait]
impl Stage for IdentificationStage {
    async fn challenge(&self, cx: &mut StageCx<'_>) -> StageOutcome {
        let c = self.challenge(cx.designation, cx.context.pending_user_identifier.as_deref(), cx.query);
        StageOutcome::Challenge(self.with_passkey(cx, c))
    }

    async fn submit(&self, cx: &mut StageCx<'_>, response: &Map<String, Value>) -> StageOutcome {
        match (&self.webauthn, credential_field(response, "passkey")) {
            // A refused passkey: the page comes back without a new autofill request (the
            // browser would otherwise offer the same passkey again at once); reloading the
            // page asks again.
            (Some(w), Some(credential)) => self.submit_passkey(cx, w, credential).await,
            _ => match self.submit_identifier(cx, response).await {
                StageOutcome::Invalid(c) => StageOutcome::Invalid(self.with_passkey(cx, c)),
                other => other,
            },
        }
    }
}

impl IdentificationStage {
    async fn submit_identifier(&self, cx: &mut StageCx<'_>, response: &Map<String, Value>) -> StageOutcome {
        let designation = cx.designation;
        let query = cx.query.to_string();
        let invalid = |msg: &str, code: &str| {
            StageOutcome::Invalid(
                self.challenge(designation, None, &query)
                    .with_error("non_field_errors", msg, code),
            )
        };
        let uid = response_str(response, "uid_field").map(str::trim).unwrap_or("");
        if uid.is_empty() || self.user_fields.is_empty() {
            return invalid("No identification data provided.", "invalid");
        }
        if uid.len() > MAX_IDENTIFIER_LEN || uid.chars().any(char::is_control) {
            return invalid("Failed to authenticate.", "invalid");
        }
        let found = match cx
            .users
            .find_user(uid, &self.fields(), self.case_insensitive_matching)
            .await
        {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(error = %e, "user lookup failed");
                return StageOutcome::Deny("Login is unavailable right now.".into());
            }
        };
        let known = found.is_some();
        if !known {
            tracing::debug!("identification: unknown identifier");
            cx.reputation.record(cx.client_ip, uid, -1).await;
        }
        let mut pending = PendingUser {
            user: found,
            identifier: uid.to_string(),
        };
        if !self.show_matched_user {
            cx.context.pending_user_identifier = Some(uid.to_string());
        }
        if let Some(pw_stage) = &self.password {
            let password = response_str(response, "password").unwrap_or("");
            match pw_stage.check(cx, &mut pending, password).await {
                Check::Ok => {
                    cx.context.pending_user = Some(pending);
                    return StageOutcome::Continue;
                }
                Check::Wrong => return invalid("Failed to authenticate.", "invalid"),
                Check::Cancel => return StageOutcome::Deny("Failed to authenticate.".into()),
                Check::Error => return StageOutcome::Deny("Login is unavailable right now.".into()),
                Check::Limited(wait) => return StageOutcome::RateLimited(wait),
                Check::Unavailable => return StageOutcome::Unavailable,
                Check::DirectoryDown => return invalid(super::password::DIRECTORY_DOWN, "directory_unavailable"),
            }
        }
        cx.context.pending_user = Some(pending);
        if known || self.pretend_user_exists {
            StageOutcome::Continue
        } else {
            invalid("Failed to authenticate.", "invalid")
        }
    }
}
