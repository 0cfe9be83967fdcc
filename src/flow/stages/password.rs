//! Password stage: checks the pending user's password. Unknown (pretend) users get a full
//! dummy verify so that timing does not tell them apart; failures are counted in the plan
//! context and cancel the flow at `failed_attempts_before_cancel`.
//!
//! Without a pending user the stage checks the logged-in user's password (authentik's
//! `get_pending_user` does the same): a settings flow asks for the current password this way
//! before a credential change (CRED-1).

use super::{Stage, StageCx, StageOutcome};
use crate::config::ldap_model::PasswordBackend;
use crate::config::PasswordDef;
use crate::flow::directories::{self, DirectoryLogin};
use crate::flow::ratelimit::{Guess, Limited};
use crate::flow::{response_str, Challenge, PendingUser};
use crate::identity::directory_users::directory_of;
use serde_json::{json, Map, Value};

/// Component name.
pub(crate) const COMPONENT: &str = "ak-stage-password";

/// The message when the password was not accepted and a directory could not be asked.
pub(crate) const DIRECTORY_DOWN: &str = "The user directory cannot be reached right now. Please try again later.";

/// Checks a password.
pub(crate) struct PasswordStage {
    failed_attempts_before_cancel: u32,
    allow_show_password: bool,
    /// Where the password is checked, in order (`backends`).
    backends: Vec<PasswordBackend>,
}

impl PasswordStage {
    /// Built from its definition.
    pub(crate) fn from_config(c: &PasswordDef) -> Self {
        let mut s = Self::new(c.failed_attempts_before_cancel, c.allow_show_password);
        s.backends = c.backends.clone();
        s
    }
}

/// What the backends said about a password.
enum Verdict {
    /// Right; the user (mirrored when a directory said so).
    Ok(Option<crate::identity::User>),
    /// No backend accepted it.
    Wrong,
    /// No backend accepted it and a directory could not be asked.
    DirectoryDown,
    /// The user store failed.
    Error(String),
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
    /// No backend accepted the password and a directory could not be reached.
    DirectoryDown,
}

impl PasswordStage {
    pub(crate) fn new(failed_attempts_before_cancel: u32, allow_show_password: bool) -> Self {
        Self {
            failed_attempts_before_cancel,
            allow_show_password,
            backends: vec![PasswordBackend::Local],
        }
    }

    /// Asks the backends in order until one accepts `password` (see `backends`). A directory
    /// is asked about a user that is unknown here or was mirrored from it, never about a local
    /// user, and a mirrored user's local hash is never checked; an empty password is never
    /// sent to a directory.
    async fn verify(&self, cx: &StageCx<'_>, pending: &PendingUser, password: &str) -> Verdict {
        let mut down = false;
        let mut local_done = false;
        for b in &self.backends {
            match b {
                PasswordBackend::Local => {
                    local_done = true;
                    let r = match &pending.user {
                        // A directory user's password is its directory's alone (a local hash
                        // written by a recovery or password-change flow never logs it in).
                        Some(u) if directory_of(u).is_none() => cx.users.verify_password(u, password).await,
                        _ => {
                            cx.users.hasher().verify_dummy(password.to_string()).await;
                            Ok(false)
                        }
                    };
                    match r {
                        Ok(true) => return Verdict::Ok(None),
                        Ok(false) => {}
                        Err(e) => return Verdict::Error(e.to_string()),
                    }
                }
                PasswordBackend::Ldap(slug) => {
                    let Some(dir) = cx.services.directories.get(slug) else {
                        continue;
                    };
                    let name = match &pending.user {
                        Some(u) if directory_of(u) == Some(slug.as_str()) => u.username.as_str(),
                        Some(_) => {
                            // Not this directory's user; while it is down, a wrong password
                            // gets the same answer as an unknown name (no enumeration).
                            down |= dir.is_down();
                            continue;
                        }
                        None => pending.identifier.as_str(),
                    };
                    match directories::login(dir, cx.users, &cx.services.sessions, name, password).await {
                        DirectoryLogin::Ok(u) => return Verdict::Ok(Some(u)),
                        DirectoryLogin::Failed => {}
                        DirectoryLogin::Down(_) => down = true,
                        DirectoryLogin::StoreFailed => {
                            return Verdict::Error("mirroring a directory user failed".into())
                        }
                    }
                }
            }
        }
        if !local_done && pending.user.is_none() {
            // Unknown everywhere: cost what a local check costs.
            cx.users.hasher().verify_dummy(password.to_string()).await;
        }
        if down {
            Verdict::DirectoryDown
        } else {
            Verdict::Wrong
        }
    }

    fn challenge_fields(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("allow_show_password".into(), json!(self.allow_show_password));
        m.insert("recovery_url".into(), Value::Null);
        m
    }

    /// Verifies `password` for the pending user, counting failures in the context. A directory
    /// login replaces the pending user with the mirrored one.
    pub(crate) async fn check(&self, cx: &mut StageCx<'_>, pending: &mut PendingUser, password: &str) -> Check {
        // Rate limits come first, so a flood of guesses costs no hashing.
        let who = pending
            .user
            .as_ref()
            .map(|u| u.username.clone())
            .unwrap_or_else(|| pending.identifier.clone());
        let who = who.as_str();
        match cx.services.limits.check(Guess::Password, cx.client_ip, who).await {
            Ok(()) => {}
            Err(Limited::Wait(wait)) => {
                tracing::warn!(user = %who, wait_s = wait.as_secs(), "password attempts rate-limited");
                cx.services.telemetry.metrics.rate_limited("password");
                return Check::Limited(wait);
            }
            Err(Limited::Unavailable) => return Check::Unavailable,
        }
        let verified = match self.verify(cx, pending, password).await {
            Verdict::Ok(mirrored) => {
                if let Some(u) = mirrored {
                    pending.identifier = u.username.clone();
                    pending.user = Some(u);
                }
                Ok(true)
            }
            Verdict::Wrong => Ok(false),
            Verdict::DirectoryDown => {
                tracing::warn!(user = %who, "password not accepted and a directory is unreachable");
                return Check::DirectoryDown;
            }
            Verdict::Error(e) => Err(e),
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
        let mut pending = match subject(cx).await {
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
        match self.check(cx, &mut pending, password).await {
            Check::Ok => {
                if cx.context.pending_user.is_some() {
                    cx.context.pending_user = Some(pending);
                }
                StageOutcome::Continue
            }
            Check::DirectoryDown => {
                StageOutcome::Invalid(Challenge::new(COMPONENT, self.challenge_fields(), true).with_error(
                    "password",
                    DIRECTORY_DOWN,
                    "directory_unavailable",
                ))
            }
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
