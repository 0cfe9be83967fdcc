//! Authenticator stages: TOTP setup (docs/design.md §5.15), recovery-code setup (the static
//! sibling) and validation (§5.14) for the device classes `totp` and `static`.
//!
//! Setup secrets and codes live in the flow context (server-side) until the user confirms
//! them; only then are they stored. Validation accepts a TOTP code within ±1 step and never
//! the same step twice, or an unused recovery code; five wrong codes cancel the flow.

mod static_codes;
mod totp;
mod validate;

pub(super) use static_codes::StaticSetupStage;
pub(super) use totp::TotpSetupStage;
pub(super) use validate::ValidateStage;

use super::{StageCx, StageOutcome};
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

pub(super) fn code_of(response: &Map<String, Value>) -> String {
    match response.get("code") {
        Some(Value::Number(n)) => n.to_string(),
        _ => response_str(response, "code").unwrap_or("").trim().to_string(),
    }
}
