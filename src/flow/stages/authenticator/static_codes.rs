//! The `authenticator_static` stage: recovery-code setup.

use super::super::{Stage, StageCx, StageOutcome};
use super::*;

use crate::flow::Challenge;
use crate::identity::mfa;
use serde_json::{json, Map, Value};

/// Creates recovery codes.
pub(in crate::flow::stages) struct StaticSetupStage {
    pub(in crate::flow::stages) count: usize,
}

impl StaticSetupStage {
    fn codes(&self, cx: &mut StageCx<'_>) -> Vec<String> {
        if let Some(Value::Array(a)) = cx.context.extra.get(STATIC_CODES) {
            return a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect();
        }
        let codes = mfa::generate_static_codes(self.count);
        cx.context.extra.insert(STATIC_CODES.into(), json!(codes));
        codes
    }
}

#[async_trait::async_trait]
impl Stage for StaticSetupStage {
    async fn challenge(&self, cx: &mut StageCx<'_>) -> StageOutcome {
        match user_of(cx).await {
            Ok(Some(_)) => {
                let mut m = Map::new();
                m.insert("codes".into(), json!(self.codes(cx)));
                StageOutcome::Challenge(Challenge::new("ak-stage-authenticator-static", m, true))
            }
            Ok(None) => StageOutcome::Continue,
            Err(o) => o,
        }
    }

    async fn submit(&self, cx: &mut StageCx<'_>, _response: &Map<String, Value>) -> StageOutcome {
        let user = match user_of(cx).await {
            Ok(Some(u)) => u,
            Ok(None) => return StageOutcome::Continue,
            Err(o) => return o,
        };
        let codes = self.codes(cx);
        match cx.users.set_static_codes(user.id, &codes, cx.now_ms).await {
            Ok(()) => {
                tracing::info!(user = %user.username, "recovery codes set");
                cx.context.extra.remove(STATIC_CODES);
                StageOutcome::Continue
            }
            Err(e) => {
                tracing::error!(error = %e, "saving recovery codes failed");
                StageOutcome::Deny("The recovery codes could not be saved. Please try again later.".into())
            }
        }
    }

    fn changes_credentials(&self) -> bool {
        true
    }
}
