//! User logout stage: ends the current session server-side. No challenge.

use super::{Stage, StageCx, StageOutcome};

/// Logs out.
pub(super) struct UserLogoutStage;

#[async_trait::async_trait]
impl Stage for UserLogoutStage {
    async fn challenge(&self, _cx: &mut StageCx<'_>) -> StageOutcome {
        StageOutcome::Logout
    }
}
