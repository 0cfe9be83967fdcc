//! Stages, one per file. Each is built once from its validated definition and answers two
//! calls: `challenge` (GET: what to show, or an immediate outcome for stages without UI) and
//! `submit` (POST: the user's response). Stages see the flow context and the user store, never
//! sessions, sockets or HTML.

mod deny;
mod identification;
mod password;
mod user_login;
mod user_logout;

use super::{Challenge, FlowContext};
use crate::config::{Designation, StageDef};
use crate::identity::{User, UserStore};
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
    },
    /// Log the current user out, then continue.
    Logout,
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
}

/// Builds the stage named `name` from its definition.
pub fn build(name: &str, def: &StageDef, all: &BTreeMap<String, StageDef>) -> Arc<dyn Stage> {
    let _ = name;
    match def {
        StageDef::Identification {
            user_fields,
            case_insensitive_matching,
            pretend_user_exists,
            show_matched_user,
            password_stage,
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
            })
        }
        StageDef::Password {
            failed_attempts_before_cancel,
            allow_show_password,
        } => Arc::new(password::PasswordStage::new(
            *failed_attempts_before_cancel,
            *allow_show_password,
        )),
        StageDef::UserLogin { session_duration } => Arc::new(user_login::UserLoginStage {
            session_duration: *session_duration,
        }),
        StageDef::UserLogout => Arc::new(user_logout::UserLogoutStage),
        StageDef::Deny { deny_message } => Arc::new(deny::DenyStage {
            message: deny_message.clone(),
        }),
    }
}
