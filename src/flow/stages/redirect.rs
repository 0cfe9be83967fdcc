//! The redirect stage (docs/design.md §5.13).

use super::{Stage, StageCx, StageOutcome};
use crate::config::RedirectDef;
use crate::config::RedirectTarget;
use serde_json::Value;

/// Sends the user to a URL or into another flow.
pub(super) struct RedirectStage {
    target: RedirectTarget,
    keep_context: bool,
}

impl RedirectStage {
    /// Built from its definition.
    pub(super) fn from_config(c: &RedirectDef) -> Self {
        Self {
            target: c.target.clone(),
            keep_context: c.keep_context,
        }
    }
}

#[async_trait::async_trait]
impl Stage for RedirectStage {
    async fn challenge(&self, cx: &mut StageCx<'_>) -> StageOutcome {
        // A context override wins: `ak-flow://<slug>` names a flow, anything else a URL. Only
        // policies and stages write the context, never the client.
        let over = cx
            .context
            .extra
            .get("redirect_stage_target")
            .and_then(Value::as_str)
            .map(str::to_string);
        let target = match over {
            Some(t) => match t.strip_prefix("ak-flow://") {
                Some(slug) => RedirectTarget::Flow(slug.to_string()),
                None => RedirectTarget::Static(t),
            },
            None => self.target.clone(),
        };
        match target {
            RedirectTarget::Static(url) => StageOutcome::Redirect(url),
            RedirectTarget::Flow(slug) => StageOutcome::SwitchFlow {
                slug,
                keep_context: self.keep_context,
            },
        }
    }
}
