//! The `user_delete` stage (docs/design.md §5.6): deletes the logged-in (or pending, already
//! stored) user, ends all of the user's sessions and logs out.

use super::user_write::store_failure;
use super::{Stage, StageCx, StageOutcome};

/// Deletes the user.
pub(super) struct UserDeleteStage;

#[async_trait::async_trait]
impl Stage for UserDeleteStage {
    async fn challenge(&self, cx: &mut StageCx<'_>) -> StageOutcome {
        let user = match cx.acting_user().await {
            Ok(Some(u)) => u,
            Ok(None) => return StageOutcome::Deny("No Pending User.".into()),
            Err(e) => return store_failure(e),
        };
        match cx.users.delete_user_by_id(user.id).await {
            Ok(_) => {
                tracing::info!(user = %user.username, "user deleted");
                cx.services.sessions.end_user_sessions(user.id, None).await;
                cx.context.pending_user = None;
                StageOutcome::Logout { other_devices: false }
            }
            Err(e) => store_failure(e),
        }
    }

    fn changes_credentials(&self) -> bool {
        true
    }
}
