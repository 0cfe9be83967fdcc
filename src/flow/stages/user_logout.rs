//! User logout stage: ends the current sign-on server-side (this session, the portal's and
//! every session derived from it on other hosts, docs/decisions/0013); with
//! `terminate_other_sessions`, every other session of the user too. No challenge.

use super::{Stage, StageCx, StageOutcome};

/// Logs out.
pub(super) struct UserLogoutStage {
    /// `terminate_other_sessions`: end the user's sessions on other devices too.
    pub(super) other_devices: bool,
}

#[async_trait::async_trait]
impl Stage for UserLogoutStage {
    async fn challenge(&self, _cx: &mut StageCx<'_>) -> StageOutcome {
        StageOutcome::Logout {
            other_devices: self.other_devices,
        }
    }
}
