//! The `authenticator_static` stage: recovery-code setup.

use super::authenticator::*;
use super::{Stage, StageCx, StageOutcome};
use crate::config::AuthenticatorStaticDef;

use crate::flow::Challenge;
use crate::identity::mfa;
use serde_json::{json, Map, Value};

/// What the stage logs and shows when saving.
const TEXTS: SetupTexts = SetupTexts {
    done: "recovery codes set",
    failed: "saving recovery codes failed",
    deny: "The recovery codes could not be saved. Please try again later.",
};

/// Creates recovery codes.
pub(super) struct StaticSetupStage {
    token_count: usize,
}

impl StaticSetupStage {
    /// Built from its definition.
    pub(super) fn from_config(c: &AuthenticatorStaticDef) -> Self {
        Self {
            token_count: c.token_count as usize,
        }
    }
}

impl StaticSetupStage {
    fn codes(&self, cx: &mut StageCx<'_>) -> Vec<String> {
        if let Some(Value::Array(a)) = cx.context.extra.get(STATIC_CODES) {
            return a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect();
        }
        let codes = mfa::generate_static_codes(self.token_count);
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
        let user = match setup_user(cx).await {
            Ok(u) => u,
            Err(o) => return o,
        };
        let codes = self.codes(cx);
        let saved = cx.users.set_static_codes(user.id, &codes, cx.now_ms).await;
        finish_setup(cx, &user.username, saved, STATIC_CODES, &TEXTS)
    }

    fn changes_credentials(&self) -> bool {
        true
    }
}
