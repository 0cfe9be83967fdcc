//! Deny stage: cancels the flow with its message (or the context's `deny_message`).

use super::{Stage, StageCx, StageOutcome};
use crate::config::DenyDef;

/// Always denies.
pub(super) struct DenyStage {
    deny_message: String,
}

impl DenyStage {
    /// Built from its definition.
    pub(super) fn from_config(c: &DenyDef) -> Self {
        Self {
            deny_message: c.deny_message.clone(),
        }
    }
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
        let msg = from_context
            .map(str::to_string)
            .unwrap_or_else(|| self.deny_message.clone());
        StageOutcome::Deny(if msg.is_empty() { "Access denied".into() } else { msg })
    }
}
