//! Stages, one per file. Each is built once from its validated definition and answers two
//! calls: `challenge` (GET: what to show, or an immediate outcome for stages without UI) and
//! `submit` (POST: the user's response). Stages see the flow context and the user store, never
//! sessions, sockets or HTML.

mod authenticator;
mod captcha;
mod consent;
mod deny;
mod dummy;
mod email;
mod identification;
mod invitation;
mod password;
mod prompt;
mod redirect;
mod user_login;
mod user_logout;
mod user_write;

use super::services::Services;
use super::{Challenge, FlowContext, PlanEntry};
use crate::config::{Designation, PolicyDef, StageDef};
use crate::flow::policies::PolicyInput;
use crate::identity::{User, UserStore};
use crate::session::Identity;
pub(crate) use email::ISSUED as MAILED_TOKENS;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What a stage decided.
#[derive(Debug)]
pub enum StageOutcome {
    /// Show this challenge.
    Challenge(Challenge),
    /// The response was invalid: show the challenge with its errors (or restart, per binding).
    Invalid(Challenge),
    /// Stage done (`stage_ok`).
    Continue,
    /// Hard failure (`stage_invalid`): the flow is cancelled with this message.
    Deny(String),
    /// Log this user in (new session id), then continue.
    Login {
        /// The user.
        user: Box<User>,
        /// Session lifetime; `None` uses the configured ttl.
        duration: Option<Duration>,
        /// Also delete the user's other sessions.
        terminate_others: bool,
    },
    /// Log the current user out, then continue.
    Logout,
    /// Stage done; send the browser to this URL (the rest of the plan stays parked).
    Redirect(String),
    /// Stage done; continue in another flow, planned now (redirect stage, flow mode).
    SwitchFlow {
        /// Target flow slug.
        slug: String,
        /// Carry the context over.
        keep_context: bool,
    },
    /// Stage done; run this configured stage next.
    Inject(String),
    /// Too many attempts: answer 429 with this wait; the plan stays as it is.
    RateLimited(Duration),
    /// A store the stage needs (the shared limits) cannot be reached: answer 503; the plan
    /// stays as it is (fail closed).
    Unavailable,
}

/// What a stage may look at and change.
pub struct StageCx<'a> {
    /// The flow context.
    pub context: &'a mut FlowContext,
    /// The user store.
    pub users: &'a UserStore,
    /// The flow's designation.
    pub designation: Designation,
    /// Reputation scores, updated on failures.
    pub reputation: &'a crate::flow::reputation::ReputationStore,
    /// Client address.
    pub client_ip: Option<std::net::IpAddr>,
    /// Shared services (mail, tokens, sessions).
    pub services: &'a Services,
    /// Now (Unix ms, injected clock).
    pub now_ms: u64,
    /// The running flow's slug.
    pub flow_slug: &'a str,
    /// The original query string of the flow (holds `next`, `itoken`).
    pub query: &'a str,
    /// The app being accessed.
    pub app: Option<&'a str>,
    /// The logged-in user of the request, if any.
    pub request_user: Option<&'a Identity>,
    /// The id of the session the flow runs in (never log it): binds mailed links to this
    /// browser and is kept when a password change ends the user's other sessions.
    pub session_id: &'a str,
    /// `scheme://host` of the request when it may be used in links.
    pub origin: Option<&'a str>,
    /// Policy definitions (prompt validation policies).
    pub policies: &'a BTreeMap<String, PolicyDef>,
    /// What policies see in this flow (user, client, time), for stages that evaluate some.
    pub policy_input: PolicyInput,
    /// The remaining plan, this stage first.
    pub plan: &'a [PlanEntry],
}

impl StageCx<'_> {
    /// The user the stage acts on: the pending user, else the logged-in user (re-read).
    pub async fn acting_user(&self) -> Result<Option<User>, crate::identity::StoreError> {
        if let Some(u) = self.context.pending_user.as_ref().and_then(|p| p.user.as_ref()) {
            return self.users.get_by_id(u.id).await;
        }
        match self.request_user {
            Some(i) => self.users.get_by_id(i.user_id).await,
            None => Ok(None),
        }
    }

    /// `prompt_data` of the context (an empty map when absent).
    pub fn prompt_data(&self) -> Map<String, Value> {
        self.context
            .extra
            .get("prompt_data")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }
}

/// A stage implementation.
#[async_trait::async_trait]
pub trait Stage: Send + Sync {
    /// Called when the stage is reached or shown again (GET). Stages without UI act here.
    async fn challenge(&self, cx: &mut StageCx<'_>) -> StageOutcome;

    /// Called with the user's response (POST). The default re-shows the challenge.
    async fn submit(&self, cx: &mut StageCx<'_>, response: &Map<String, Value>) -> StageOutcome {
        let _ = response;
        self.challenge(cx).await
    }

    /// Whether the stage changes an existing user's credentials or account (password, email,
    /// second factors, deletion). The executor asks a logged-in user for the current password
    /// first unless this plan checked it or the login is fresh (CRED-1).
    fn changes_credentials(&self) -> bool {
        false
    }
}

/// The password check inserted before a credential change: the logged-in user's password,
/// five wrong answers cancel the flow.
pub fn reauthenticate_stage() -> Arc<dyn Stage> {
    Arc::new(password::PasswordStage::new(5, false))
}

/// Builds the stage named `name` from its definition.
pub fn build(name: &str, def: &StageDef, all: &BTreeMap<String, StageDef>) -> Arc<dyn Stage> {
    match def {
        StageDef::Identification {
            user_fields,
            case_insensitive_matching,
            pretend_user_exists,
            show_matched_user,
            password_stage,
            enrollment_flow,
            recovery_flow,
        } => {
            let embedded = password_stage.as_ref().and_then(|p| match all.get(p) {
                Some(StageDef::Password {
                    failed_attempts_before_cancel,
                    allow_show_password,
                }) => Some(password::PasswordStage::new(
                    *failed_attempts_before_cancel,
                    *allow_show_password,
                )),
                _ => None,
            });
            Arc::new(identification::IdentificationStage {
                user_fields: user_fields.clone(),
                case_insensitive: *case_insensitive_matching,
                pretend_user_exists: *pretend_user_exists,
                show_matched_user: *show_matched_user,
                password: embedded,
                enrollment_flow: enrollment_flow.clone(),
                recovery_flow: recovery_flow.clone(),
            })
        }
        StageDef::Password {
            failed_attempts_before_cancel,
            allow_show_password,
        } => Arc::new(password::PasswordStage::new(
            *failed_attempts_before_cancel,
            *allow_show_password,
        )),
        StageDef::UserLogin {
            session_duration,
            remember_me_offset,
            terminate_other_sessions,
        } => Arc::new(user_login::UserLoginStage {
            session_duration: *session_duration,
            remember_me_offset: *remember_me_offset,
            terminate_other_sessions: *terminate_other_sessions,
        }),
        StageDef::UserLogout => Arc::new(user_logout::UserLogoutStage),
        StageDef::Deny { deny_message } => Arc::new(deny::DenyStage {
            message: deny_message.clone(),
        }),
        StageDef::UserWrite {
            user_creation_mode,
            create_users_as_inactive,
            create_users_group,
        } => Arc::new(user_write::UserWriteStage {
            mode: *user_creation_mode,
            inactive: *create_users_as_inactive,
            group: create_users_group.clone(),
        }),
        StageDef::UserDelete => Arc::new(user_write::UserDeleteStage),
        StageDef::Prompt {
            fields,
            validation_policies,
        } => Arc::new(prompt::PromptStage {
            fields: fields.clone(),
            validation_policies: validation_policies.clone(),
        }),
        StageDef::Email {
            from_address,
            subject,
            template,
            token_expiry,
            activate_user_on_success,
        } => Arc::new(email::EmailStage {
            from: from_address.clone(),
            subject: subject.clone(),
            template: *template,
            expiry: *token_expiry,
            activate: *activate_user_on_success,
        }),
        StageDef::Captcha(c) => Arc::new(captcha::CaptchaStage::new(c)),
        StageDef::Consent { mode } => Arc::new(consent::ConsentStage {
            mode: *mode,
            name: name.to_string(),
        }),
        StageDef::Redirect { target, keep_context } => Arc::new(redirect::RedirectStage {
            target: target.clone(),
            keep_context: *keep_context,
        }),
        StageDef::Dummy { throw_error } => Arc::new(dummy::DummyStage {
            name: name.to_string(),
            throw_error: *throw_error,
        }),
        StageDef::Invitation {
            continue_flow_without_invitation,
        } => Arc::new(invitation::InvitationStage {
            continue_without: *continue_flow_without_invitation,
        }),
        StageDef::AuthenticatorTotp { digits, friendly_name } => Arc::new(authenticator::TotpSetupStage {
            digits: *digits,
            friendly_name: friendly_name.clone(),
        }),
        StageDef::AuthenticatorStatic { token_count } => Arc::new(authenticator::StaticSetupStage {
            count: *token_count as usize,
        }),
        StageDef::AuthenticatorValidate {
            device_classes,
            not_configured_action,
            configuration_stages,
        } => Arc::new(authenticator::ValidateStage {
            classes: device_classes.clone(),
            not_configured: *not_configured_action,
            configuration_stages: configuration_stages
                .iter()
                .map(|s| (s.clone(), all.get(s).map(StageDef::kind).unwrap_or("unknown")))
                .collect(),
        }),
    }
}
