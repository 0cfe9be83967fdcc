//! Redirect (docs/design.md §5.13) and dummy (§5.12) stages.

use super::{Stage, StageCx, StageOutcome};
use crate::config::RedirectTarget;
use crate::flow::Challenge;
use serde_json::{json, Map, Value};

/// Sends the user to a URL or into another flow.
pub(super) struct RedirectStage {
    pub(super) target: RedirectTarget,
    pub(super) keep_context: bool,
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

/// Shows a page and continues; `throw_error` fails instead.
pub(super) struct DummyStage {
    pub(super) name: String,
    pub(super) throw_error: bool,
}

#[async_trait::async_trait]
impl Stage for DummyStage {
    async fn challenge(&self, _cx: &mut StageCx<'_>) -> StageOutcome {
        if self.throw_error {
            return StageOutcome::Deny(format!("Stage {} failed (throw_error is set).", self.name));
        }
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        StageOutcome::Challenge(Challenge::new("ak-stage-dummy", m, false))
    }

    async fn submit(&self, cx: &mut StageCx<'_>, _response: &Map<String, Value>) -> StageOutcome {
        if self.throw_error {
            return self.challenge(cx).await;
        }
        StageOutcome::Continue
    }
}
