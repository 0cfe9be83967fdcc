//! Password stage: checks the pending user's password. Unknown (pretend) users get a full
//! dummy verify so that timing does not tell them apart; failures are counted in the plan
//! context and cancel the flow at `failed_attempts_before_cancel`.
//!
//! Without a pending user the stage checks the logged-in user's password (authentik's
//! `get_pending_user` does the same): a settings flow asks for the current password this way
//! before a credential change (CRED-1).

use super::{Stage, StageCx, StageOutcome};
use crate::config::PasswordDef;
use crate::flow::ratelimit::{Guess, Limited};
use crate::flow::{response_str, Challenge, PendingUser};
use serde_json::{json, Map, Value};

/// Component name.
pub(crate) const COMPONENT: &str = "ak-stage-password";

/// Checks a password.
pub(crate) struct PasswordStage {
    failed_attempts_before_cancel: u32,
    allow_show_password: bool,
}

impl PasswordStage {
    /// Built from its definition.
    pub(crate) fn from_config(c: &PasswordDef) -> Self {
        Self::new(c.failed_attempts_before_cancel, c.allow_show_password)
    }
}

/// Result of one password check.
pub(crate) enum Check {
    Ok,
    Wrong,
    Cancel,
    Error,
    /// Too many attempts for this client or username: wait this long.
    Limited(std::time::Duration),
    /// The shared limits cannot be reached (fail closed).
    Unavailable,
}

impl PasswordStage {
    pub(crate) fn new(failed_attempts_before_cancel: u32, allow_show_password: bool) -> Self {
        Self {
            failed_attempts_before_cancel,
            allow_show_password,
        }
    }

    fn challenge_fields(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("allow_show_password".into(), json!(self.allow_show_password));
        m.insert("recovery_url".into(), Value::Null);
        m
    }

    /// Verifies `password` for the pending user, counting failures in the context.
    pub(crate) async fn check(&self, cx: &mut StageCx<'_>, pending: &PendingUser, password: &str) -> Check {
        // Rate limits come first, so a flood of guesses costs no hashing.
        let who = pending
            .user
            .as_ref()
            .map(|u| u.username.as_str())
            .unwrap_or(pending.identifier.as_str());
        match cx.services.limits.check(Guess::Password, cx.client_ip, who).await {
            Ok(()) => {}
            Err(Limited::Wait(wait)) => {
                tracing::warn!(user = %who, wait_s = wait.as_secs(), "password attempts rate-limited");
                cx.services.telemetry.metrics.rate_limited("password");
                return Check::Limited(wait);
            }
            Err(Limited::Unavailable) => return Check::Unavailable,
        }
        let verified = match &pending.user {
            Some(u) => cx.users.verify_password(u, password).await,
            None => {
                cx.users.hasher().verify_dummy(password.to_string()).await;
                Ok(false)
            }
        };
        match verified {
            Ok(true) => {
                cx.context.auth_method.get_or_insert_with(|| "password".into());
                cx.context.auth_methods.insert("password".into());
                Check::Ok
            }
            Ok(false) => {
                let who = pending
                    .user
                    .as_ref()
                    .map(|u| u.username.as_str())
                    .unwrap_or(pending.identifier.as_str());
                cx.reputation.record(cx.client_ip, who, -1).await;
                cx.context.failed_password_attempts += 1;
                if cx.context.failed_password_attempts >= self.failed_attempts_before_cancel {
                    Check::Cancel
                } else {
                    Check::Wrong
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "password verification failed");
                Check::Error
            }
        }
    }
}

/// The user whose password is checked: the pending user, else the logged-in user (re-read).
async fn subject(cx: &StageCx<'_>) -> Result<PendingUser, StageOutcome> {
    if let Some(p) = cx.context.pending_user.clone() {
        return Ok(p);
    }
    let Some(me) = cx.request_user else {
        return Err(StageOutcome::Deny("No pending user".into()));
    };
    match cx.users.get_by_id(me.user_id).await {
        Ok(Some(u)) => Ok(PendingUser {
            identifier: u.username.clone(),
            user: Some(u),
        }),
        Ok(None) => Err(StageOutcome::Deny("No pending user".into())),
        Err(e) => {
            tracing::error!(error = %e, "user store failed during a password check");
            Err(StageOutcome::Deny("Login is unavailable right now.".into()))
        }
    }
}

#[async_trait::async_trait]
impl Stage for PasswordStage {
    async fn challenge(&self, cx: &mut StageCx<'_>) -> StageOutcome {
        if cx.context.pending_user.is_none() && cx.request_user.is_none() {
            return StageOutcome::Deny("No pending user".into());
        }
        StageOutcome::Challenge(Challenge::new(COMPONENT, self.challenge_fields(), true))
    }

    async fn submit(&self, cx: &mut StageCx<'_>, response: &Map<String, Value>) -> StageOutcome {
        let pending = match subject(cx).await {
            Ok(p) => p,
            Err(o) => return o,
        };
        let Some(password) = response_str(response, "password") else {
            return StageOutcome::Invalid(Challenge::new(COMPONENT, self.challenge_fields(), true).with_error(
                "password",
                "This field is required.",
                "required",
            ));
        };
        match self.check(cx, &pending, password).await {
            Check::Ok => StageOutcome::Continue,
            Check::Wrong => StageOutcome::Invalid(Challenge::new(COMPONENT, self.challenge_fields(), true).with_error(
                "password",
                "Invalid password",
                "invalid",
            )),
            Check::Cancel => StageOutcome::Deny("Invalid password".into()),
            Check::Error => StageOutcome::Deny("Login is unavailable right now.".into()),
            Check::Limited(wait) => StageOutcome::RateLimited(wait),
            Check::Unavailable => StageOutcome::Unavailable,
        }
    }
}
