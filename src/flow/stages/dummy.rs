//! The dummy stage (docs/design.md §5.12).

use super::{Stage, StageCx, StageOutcome};
use crate::config::DummyDef;
use crate::flow::Challenge;
use serde_json::{json, Map, Value};

/// Shows a page and continues; `throw_error` fails instead.
pub(super) struct DummyStage {
    name: String,
    throw_error: bool,
}

impl DummyStage {
    /// Built from its definition; the page shows the stage's `name`.
    pub(super) fn from_config(name: &str, c: &DummyDef) -> Self {
        Self {
            name: name.to_string(),
            throw_error: c.throw_error,
        }
    }
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
