//! Invitation stage (docs/design.md §5.16): requires a valid invitation. The token comes from the
//! original query (`itoken` or `token`), else from `prompt_data.token`. The invitation must
//! exist, be unexpired and belong to this flow (or to none); its `fixed_data` is merged over
//! `prompt_data` (fixed data wins); a single-use invitation is deleted as it is taken.

use super::{Stage, StageCx, StageOutcome};
use crate::config::InvitationDef;
use serde_json::{json, Value};

/// Requires an invitation.
pub(super) struct InvitationStage {
    continue_flow_without_invitation: bool,
}

impl InvitationStage {
    /// Built from its definition.
    pub(super) fn from_config(c: &InvitationDef) -> Self {
        Self {
            continue_flow_without_invitation: c.continue_flow_without_invitation,
        }
    }
}

/// Deep merge: objects merge key by key, anything else in `over` replaces.
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

#[async_trait::async_trait]
impl Stage for InvitationStage {
    async fn challenge(&self, cx: &mut StageCx<'_>) -> StageOutcome {
        let from_query = form_urlencoded::parse(cx.query.as_bytes())
            .find(|(k, _)| k == "itoken" || k == "token")
            .map(|(_, v)| v.into_owned());
        let token = from_query.or_else(|| {
            cx.prompt_data()
                .get("token")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        let found = match token.filter(|t| !t.is_empty() && t.len() <= 256) {
            Some(t) => match cx.users.take_invitation(&t, cx.flow_slug, cx.now_ms).await {
                Ok(i) => i,
                Err(e) => {
                    tracing::error!(error = %e, "invitation lookup failed");
                    return StageOutcome::Deny("Invitations cannot be checked right now.".into());
                }
            },
            None => None,
        };
        let Some(inv) = found else {
            return if self.continue_flow_without_invitation {
                StageOutcome::Continue
            } else {
                StageOutcome::Deny("Invalid invite/invite not found".into())
            };
        };
        tracing::info!(invitation = %inv.name, "invitation used");
        let mut data = Value::Object(cx.prompt_data());
        merge(&mut data, &Value::Object(inv.fixed_data.clone()));
        cx.context.extra.insert("prompt_data".into(), data);
        cx.context
            .extra
            .insert("invitation_fixed".into(), Value::Object(inv.fixed_data.clone()));
        cx.context.extra.insert("invitation_in_effect".into(), json!(true));
        cx.context.extra.insert("invitation".into(), json!(inv.name));
        StageOutcome::Continue
    }
}
