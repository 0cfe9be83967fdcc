//! User login stage: logs the pending user in. The executor mints a new session id (the
//! pre-login id is never promoted), so a fixated cookie is worthless.
//!
//! Two cases finish the stage without a login: a plan resumed from a mailed link in another
//! browser than the one that asked for it (login CSRF, LINK-1), and a recovery flow that did
//! not check the second factor of a user who has one (CRED-3). The user then signs in through
//! the authentication flow.
//!
//! A user mirrored from a directory logs in only when the directory confirms the entry at that
//! moment (`flow::directories::confirm`), also after a password check (one more search; the
//! check is then seconds old): a passkey, a mailed link or a source never asks it otherwise.

use super::password::DIRECTORY_DOWN;
use super::{Stage, StageCx, StageOutcome};
use crate::config::Designation;
use crate::config::UserLoginDef;
use crate::flow::directories::{self, Standing};
use crate::flow::services::LINK_OPENED_ELSEWHERE;
use crate::flow::Challenge;
use crate::identity::User;
use serde_json::{Map, Value};
use std::time::Duration;

/// Logs the pending user in.
pub(super) struct UserLoginStage {
    session_duration: Option<Duration>,
    remember_me_offset: Option<Duration>,
    terminate_other_sessions: bool,
}

impl UserLoginStage {
    /// Built from its definition.
    pub(super) fn from_config(c: &UserLoginDef) -> Self {
        Self {
            session_duration: c.session_duration,
            remember_me_offset: c.remember_me_offset,
            terminate_other_sessions: c.terminate_other_sessions,
        }
    }
}

/// Component shown when "remember me" is offered.
const COMPONENT: &str = "ak-stage-user-login";

impl UserLoginStage {
    async fn login(&self, cx: &mut StageCx<'_>, remember: bool) -> StageOutcome {
        let Some(user) = cx.context.pending_user.as_ref().and_then(|p| p.user.as_ref()) else {
            return StageOutcome::Deny("No Pending user to login.".into());
        };
        // Re-read the user: groups or the active flag may have changed during the flow.
        let fresh = match cx.users.get_by_id(user.id).await {
            Ok(Some(u)) => u,
            Ok(None) => return StageOutcome::Deny("No Pending user to login.".into()),
            Err(e) => {
                tracing::error!(error = %e, "user store failed during login");
                return StageOutcome::Deny("Login is unavailable right now.".into());
            }
        };
        if !fresh.is_active {
            return StageOutcome::Deny("User is not active.".into());
        }
        if cx.context.extra.contains_key(LINK_OPENED_ELSEWHERE) {
            tracing::info!(user = %fresh.username, "mailed link opened in another browser: not logged in");
            return StageOutcome::Continue;
        }
        if cx.designation == Designation::Recovery && cx.context.auth_method.as_deref() != Some("auth_mfa") {
            match has_second_factor(cx, &fresh).await {
                Ok(false) => {}
                Ok(true) => {
                    tracing::info!(user = %fresh.username, "recovery without the second factor: not logged in");
                    return StageOutcome::Continue;
                }
                Err(o) => return o,
            }
        }
        // A directory user's standing is confirmed by the directory whatever proved who they
        // are (passkey, mailed link, source, TOTP): a password check alone asked it.
        match directories::confirm(&cx.services.directories, &cx.services.sessions, &fresh).await {
            Standing::Active => {}
            Standing::Refused | Standing::Gone => return StageOutcome::Deny("User is not active.".into()),
            Standing::Down(_) => return StageOutcome::Deny(DIRECTORY_DOWN.into()),
        }
        let duration = match (remember, self.remember_me_offset) {
            (true, Some(extra)) => Some(self.session_duration.unwrap_or_default() + extra),
            _ => self.session_duration,
        };
        StageOutcome::Login {
            user: Box::new(fresh),
            duration,
            terminate_others: self.terminate_other_sessions,
        }
    }
}

/// Whether the user has a TOTP device, a passkey or unused recovery codes.
async fn has_second_factor(cx: &StageCx<'_>, user: &User) -> Result<bool, StageOutcome> {
    let fail = |e: crate::identity::StoreError| {
        tracing::error!(error = %e, "device lookup failed during login");
        StageOutcome::Deny("Login is unavailable right now.".into())
    };
    if !cx.users.totp_devices(user.id).await.map_err(fail)?.is_empty() {
        return Ok(true);
    }
    if !cx.users.passkeys(user.id).await.map_err(fail)?.is_empty() {
        return Ok(true);
    }
    Ok(cx.users.static_code_count(user.id).await.map_err(fail)? > 0)
}

#[async_trait::async_trait]
impl Stage for UserLoginStage {
    async fn challenge(&self, cx: &mut StageCx<'_>) -> StageOutcome {
        if self.remember_me_offset.is_none() {
            return self.login(cx, false).await;
        }
        if cx.context.pending_user.as_ref().and_then(|p| p.user.as_ref()).is_none() {
            return StageOutcome::Deny("No Pending user to login.".into());
        }
        StageOutcome::Challenge(Challenge::new(COMPONENT, Map::new(), true))
    }

    async fn submit(&self, cx: &mut StageCx<'_>, response: &Map<String, Value>) -> StageOutcome {
        if self.remember_me_offset.is_none() {
            return self.login(cx, false).await;
        }
        let remember = match response.get("remember_me") {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => matches!(s.as_str(), "on" | "true" | "1"),
            _ => false,
        };
        self.login(cx, remember).await
    }
}
