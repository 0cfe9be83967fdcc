//! Consent stage (docs/design.md §5.10): asks the user to agree before continuing. With an app in
//! context and mode `permanent` or `expiring`, a stored, unexpired agreement skips the prompt.
//! The response must carry the token the challenge gave (constant-time comparison), so a
//! forged POST cannot agree on the user's behalf.

use super::{Stage, StageCx, StageOutcome};
use crate::config::ConsentDef;
use crate::config::ConsentMode;
use crate::flow::{response_str, Challenge};
use serde_json::{json, Map, Value};
use subtle::ConstantTimeEq;

/// Component name.
const COMPONENT: &str = "ak-stage-consent";
/// Context key holding the expected token.
const TOKEN: &str = "consent_token";

/// Asks for agreement.
pub(super) struct ConsentStage {
    mode: ConsentMode,
    name: String,
}

impl ConsentStage {
    /// Built from its definition; agreements are recorded under the stage's `name`.
    pub(super) fn from_config(name: &str, c: &ConsentDef) -> Self {
        Self {
            mode: c.mode,
            name: name.to_string(),
        }
    }
}

impl ConsentStage {
    fn subject(&self, app: &str) -> String {
        format!("{}:{app}", self.name)
    }

    fn page(&self, cx: &mut StageCx<'_>) -> Challenge {
        let token = match cx.context.extra.get(TOKEN).and_then(Value::as_str) {
            Some(t) => t.to_string(),
            None => {
                let t = crate::session::new_id();
                cx.context.extra.insert(TOKEN.into(), json!(t));
                t
            }
        };
        let header = match cx.app {
            Some(app) => format!("{app} would like to use your account."),
            None => "Please confirm to continue.".to_string(),
        };
        let mut m = Map::new();
        m.insert("header_text".into(), json!(header));
        m.insert("permissions".into(), json!([]));
        m.insert("additional_permissions".into(), json!([]));
        m.insert("token".into(), json!(token));
        Challenge::new(COMPONENT, m, true)
    }
}

#[async_trait::async_trait]
impl Stage for ConsentStage {
    async fn challenge(&self, cx: &mut StageCx<'_>) -> StageOutcome {
        if let (Some(app), false) = (cx.app, self.mode == ConsentMode::AlwaysRequire) {
            if let Ok(Some(u)) = cx.acting_user().await {
                match cx.users.has_consent(u.id, &self.subject(app), cx.now_ms).await {
                    Ok(true) => return StageOutcome::Continue,
                    Ok(false) => {}
                    Err(e) => tracing::error!(error = %e, "consent lookup failed"),
                }
            }
        }
        StageOutcome::Challenge(self.page(cx))
    }

    async fn submit(&self, cx: &mut StageCx<'_>, response: &Map<String, Value>) -> StageOutcome {
        let expected = cx
            .context
            .extra
            .get(TOKEN)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let given = response_str(response, "token").unwrap_or("");
        let ok = !expected.is_empty()
            && given.len() == expected.len()
            && bool::from(given.as_bytes().ct_eq(expected.as_bytes()));
        if !ok {
            let page = self.page(cx);
            return StageOutcome::Invalid(page.with_error(
                "token",
                "Invalid consent token, re-showing prompt",
                "invalid",
            ));
        }
        cx.context.extra.remove(TOKEN);
        let expires = match self.mode {
            ConsentMode::AlwaysRequire => return StageOutcome::Continue,
            ConsentMode::Permanent => None,
            ConsentMode::Expiring(d) => Some(cx.now_ms.saturating_add(d.as_millis() as u64) as i64),
        };
        if let (Some(app), Ok(Some(u))) = (cx.app, cx.acting_user().await) {
            if let Err(e) = cx.users.save_consent(u.id, &self.subject(app), expires).await {
                tracing::error!(error = %e, "saving consent failed");
                return StageOutcome::Deny("Your consent could not be saved. Please try again later.".into());
            }
        }
        StageOutcome::Continue
    }
}
