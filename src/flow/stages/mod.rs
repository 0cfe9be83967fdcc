//! Stages, one kind per file (the file is named after the kind; `authenticator.rs` holds what
//! the `authenticator_*` kinds share), and the registry [`build`]. Each is built once from its validated definition and answers two
//! calls: `challenge` (GET: what to show, or an immediate outcome for stages without UI) and
//! `submit` (POST: the user's response). Stages see the flow context and the user store, never
//! sessions, sockets or HTML.

mod authenticator;
mod authenticator_static;
mod authenticator_totp;
mod authenticator_validate;
mod authenticator_webauthn;
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
mod user_delete;
mod user_login;
mod user_logout;
mod user_write;
mod webauthn;

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
    /// Log the current user out (the whole sign-on), then continue.
    Logout {
        /// Also end the user's sessions on other devices.
        other_devices: bool,
    },
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
    /// The WebAuthn relying party id: the cookie domain when the host lies under it, else the
    /// host (no port); `None` when the host is not a configured one (then `origin` is `None`).
    pub rp_id: Option<&'a str>,
    /// Policy definitions (prompt validation policies).
    pub policies: &'a BTreeMap<String, PolicyDef>,
    /// What policies see in this flow (user, client, time), for stages that evaluate some.
    pub policy_input: PolicyInput,
    /// The remaining plan, this stage first.
    pub plan: &'a [PlanEntry],
}

impl StageCx<'_> {
    /// Writes the audit event `event` (result `success`) for `user` in this flow.
    pub fn audit(&self, event: &'static str, user: Option<&str>) {
        self.services.telemetry.audit.emit(crate::telemetry::AuditEvent {
            event,
            user,
            client: self.client_ip,
            flow: Some(self.flow_slug),
            app: self.app,
            result: "success",
            ..Default::default()
        });
    }

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

/// The stage registry: builds the stage named `name` from its definition, one line per kind.
/// `all` holds every definition, for kinds that embed or name other stages.
pub fn build(name: &str, def: &StageDef, all: &BTreeMap<String, StageDef>) -> Arc<dyn Stage> {
    match def {
        StageDef::Identification(c) => Arc::new(identification::IdentificationStage::from_config(c, all)),
        StageDef::Password(c) => Arc::new(password::PasswordStage::from_config(c)),
        StageDef::UserLogin(c) => Arc::new(user_login::UserLoginStage::from_config(c)),
        StageDef::UserLogout {
            terminate_other_sessions,
        } => Arc::new(user_logout::UserLogoutStage {
            other_devices: *terminate_other_sessions,
        }),
        StageDef::Deny(c) => Arc::new(deny::DenyStage::from_config(c)),
        StageDef::UserWrite(c) => Arc::new(user_write::UserWriteStage::from_config(c)),
        StageDef::UserDelete => Arc::new(user_delete::UserDeleteStage),
        StageDef::Prompt(c) => Arc::new(prompt::PromptStage::from_config(c)),
        StageDef::Email(c) => Arc::new(email::EmailStage::from_config(c)),
        StageDef::Captcha(c) => Arc::new(captcha::CaptchaStage::from_config(c)),
        StageDef::Consent(c) => Arc::new(consent::ConsentStage::from_config(name, c)),
        StageDef::Redirect(c) => Arc::new(redirect::RedirectStage::from_config(c)),
        StageDef::Dummy(c) => Arc::new(dummy::DummyStage::from_config(name, c)),
        StageDef::Invitation(c) => Arc::new(invitation::InvitationStage::from_config(c)),
        StageDef::AuthenticatorTotp(c) => Arc::new(authenticator_totp::TotpSetupStage::from_config(c)),
        StageDef::AuthenticatorStatic(c) => Arc::new(authenticator_static::StaticSetupStage::from_config(c)),
        StageDef::AuthenticatorValidate(c) => Arc::new(authenticator_validate::ValidateStage::from_config(c, all)),
        StageDef::AuthenticatorWebauthn(c) => Arc::new(authenticator_webauthn::WebauthnSetupStage::from_config(c)),
    }
}
