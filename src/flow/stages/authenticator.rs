//! What the authenticator stages share (`authenticator_totp.rs`, `authenticator_static.rs`,
//! `authenticator_validate.rs`): TOTP setup (docs/design.md §5.15), recovery-code setup (the static
//! sibling) and validation (§5.14) for the device classes `totp` and `static`.
//!
//! Setup secrets and codes live in the flow context (server-side) until the user confirms
//! them; only then are they stored. Validation accepts a TOTP code within ±1 step and never
//! the same step twice, or an unused recovery code; five wrong codes cancel the flow.

use super::{StageCx, StageOutcome};
use crate::flow::ratelimit::{Guess, Limited};
use crate::flow::response_str;
use crate::identity::User;
use serde_json::{Map, Value};

/// Context key of a TOTP secret being set up (hex).
pub(super) const TOTP_SECRET: &str = "totp_setup_secret";
/// Context key of recovery codes being set up.
pub(super) const STATIC_CODES: &str = "static_setup_codes";
/// Context key counting wrong codes in this plan.
pub(super) const FAILURES: &str = "mfa_failures";
/// Wrong codes before the flow is cancelled.
pub(super) const MAX_FAILURES: u64 = 5;

/// The logged-in or pending stored user, or why there is none.
pub(super) async fn user_of(cx: &StageCx<'_>) -> Result<Option<User>, StageOutcome> {
    cx.acting_user().await.map_err(|e| {
        tracing::error!(error = %e, "user store failed");
        StageOutcome::Deny("Authenticators are unavailable right now.".into())
    })
}

/// The user a setup stage saves for; without one there is nothing to set up and the flow goes
/// on (`Err(Continue)`); a store failure cancels it.
pub(super) async fn setup_user(cx: &StageCx<'_>) -> Result<User, StageOutcome> {
    match user_of(cx).await {
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(StageOutcome::Continue),
        Err(o) => Err(o),
    }
}

/// The brute-force check before a code is tried (TOTP or recovery code): `Err` with the
/// outcome when the user must wait (429) or the shared limiter cannot be reached (503).
pub(super) async fn check_code_limit(cx: &StageCx<'_>, username: &str) -> Result<(), StageOutcome> {
    match cx.services.limits.check(Guess::Code, cx.client_ip, username).await {
        Ok(()) => Ok(()),
        Err(Limited::Wait(wait)) => {
            tracing::warn!(user = %username, wait_s = wait.as_secs(), "code attempts rate-limited");
            cx.services.telemetry.metrics.rate_limited("code");
            Err(StageOutcome::RateLimited(wait))
        }
        Err(Limited::Unavailable) => Err(StageOutcome::Unavailable),
    }
}

pub(super) fn code_of(response: &Map<String, Value>) -> String {
    match response.get("code") {
        Some(Value::Number(n)) => n.to_string(),
        _ => response_str(response, "code").unwrap_or("").trim().to_string(),
    }
}

/// The log lines and the user's message of one setup stage, for [`finish_setup`].
pub(super) struct SetupTexts {
    /// Logged when saved.
    pub(super) done: &'static str,
    /// Logged with the error when saving failed.
    pub(super) failed: &'static str,
    /// Shown when saving failed (the flow is cancelled).
    pub(super) deny: &'static str,
}

/// Ends a setup stage once the store answered: when saved, the setup secret under `key` leaves
/// the context and the flow goes on; otherwise the flow is cancelled and the error logged.
pub(super) fn finish_setup<T, E: std::fmt::Display>(
    cx: &mut StageCx<'_>,
    username: &str,
    saved: Result<T, E>,
    key: &str,
    texts: &SetupTexts,
) -> StageOutcome {
    match saved {
        Ok(_) => {
            tracing::info!(user = %username, "{}", texts.done);
            cx.audit("mfa_added", Some(username));
            cx.context.extra.remove(key);
            StageOutcome::Continue
        }
        Err(e) => {
            tracing::error!(error = %e, "{}", texts.failed);
            StageOutcome::Deny(texts.deny.into())
        }
    }
}
