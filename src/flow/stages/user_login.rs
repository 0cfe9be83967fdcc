//! User login stage: logs the pending user in. The executor mints a new session id (the
//! pre-login id is never promoted), so a fixated cookie is worthless.

use super::{Stage, StageCx, StageOutcome};
use std::time::Duration;

/// Logs the pending user in.
pub(super) struct UserLoginStage {
    pub(super) session_duration: Option<Duration>,
}

#[async_trait::async_trait]
impl Stage for UserLoginStage {
    async fn challenge(&self, cx: &mut StageCx<'_>) -> StageOutcome {
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
        StageOutcome::Login {
            user: Box::new(fresh),
            duration: self.session_duration,
        }
    }
}
