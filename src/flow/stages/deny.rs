//! Deny stage: cancels the flow with its message (or the context's `deny_message`).

use super::{Stage, StageCx, StageOutcome};

/// Always denies.
pub(super) struct DenyStage {
    pub(super) message: String,
}

#[async_trait::async_trait]
impl Stage for DenyStage {
    async fn challenge(&self, cx: &mut StageCx<'_>) -> StageOutcome {
        let from_context = cx
            .context
            .extra
            .get("deny_message")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty());
        let msg = from_context.map(str::to_string).unwrap_or_else(|| self.message.clone());
        StageOutcome::Deny(if msg.is_empty() { "Access denied".into() } else { msg })
    }
}
