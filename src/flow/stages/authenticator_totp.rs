//! The `authenticator_totp` stage: TOTP setup (docs/design.md §5.15).

use super::authenticator::*;
use super::{Stage, StageCx, StageOutcome};
use crate::config::AuthenticatorTotpDef;
use crate::flow::Challenge;
use crate::identity::mfa;
use crate::identity::User;
use serde_json::{json, Map, Value};

/// What the stage logs and shows when saving.
const TEXTS: SetupTexts = SetupTexts {
    done: "TOTP device added",
    failed: "saving TOTP device failed",
    deny: "The authenticator could not be saved. Please try again later.",
};

/// Sets up a TOTP app.
pub(super) struct TotpSetupStage {
    digits: u32,
    friendly_name: String,
}

impl TotpSetupStage {
    /// Built from its definition.
    pub(super) fn from_config(c: &AuthenticatorTotpDef) -> Self {
        Self {
            digits: c.digits,
            friendly_name: c.friendly_name.clone(),
        }
    }
}

impl TotpSetupStage {
    fn secret(cx: &mut StageCx<'_>) -> Vec<u8> {
        if let Some(s) = cx
            .context
            .extra
            .get(TOTP_SECRET)
            .and_then(Value::as_str)
            .and_then(|h| hex::decode(h).ok())
        {
            return s;
        }
        let s = mfa::new_totp_secret();
        cx.context.extra.insert(TOTP_SECRET.into(), json!(hex::encode(&s)));
        s
    }

    fn page(&self, cx: &mut StageCx<'_>, user: &User) -> Result<Challenge, StageOutcome> {
        let secret = Self::secret(cx);
        let account = if user.email.is_empty() {
            &user.username
        } else {
            &user.email
        };
        let uri = mfa::otpauth_uri(&cx.services.title, account, &secret, self.digits);
        let svg = mfa::qr_svg(&uri).map_err(|e| {
            tracing::error!(error = %e, "QR code failed");
            StageOutcome::Deny("The QR code could not be drawn.".into())
        })?;
        let mut m = Map::new();
        m.insert("config_url".into(), json!(uri));
        m.insert("qr_svg".into(), json!(svg));
        m.insert("secret".into(), json!(mfa::secret_base32(&secret)));
        m.insert("digits".into(), json!(self.digits));
        Ok(Challenge::new("ak-stage-authenticator-totp", m, true))
    }
}

#[async_trait::async_trait]
impl Stage for TotpSetupStage {
    async fn challenge(&self, cx: &mut StageCx<'_>) -> StageOutcome {
        match user_of(cx).await {
            Ok(Some(u)) => match self.page(cx, &u) {
                Ok(c) => StageOutcome::Challenge(c),
                Err(o) => o,
            },
            Ok(None) => StageOutcome::Continue,
            Err(o) => o,
        }
    }

    async fn submit(&self, cx: &mut StageCx<'_>, response: &Map<String, Value>) -> StageOutcome {
        let user = match setup_user(cx).await {
            Ok(u) => u,
            Err(o) => return o,
        };
        let secret = Self::secret(cx);
        let code = code_of(response);
        if let Err(o) = check_code_limit(cx, &user.username).await {
            return o;
        }
        let Some(step) = mfa::match_totp(&secret, self.digits, &code, cx.now_ms) else {
            return match self.page(cx, &user) {
                Ok(c) => StageOutcome::Invalid(c.with_error("code", "Code does not match", "invalid")),
                Err(o) => o,
            };
        };
        let existing = cx.users.totp_devices(user.id).await.map(|d| d.len()).unwrap_or(0);
        let name = if existing == 0 {
            self.friendly_name.clone()
        } else {
            format!("{} {}", self.friendly_name, existing + 1)
        };
        let saved = cx
            .users
            .add_totp_device(user.id, &name, &secret, self.digits, cx.now_ms, Some(step))
            .await;
        finish_setup(cx, &user.username, saved, TOTP_SECRET, &TEXTS)
    }

    fn changes_credentials(&self) -> bool {
        true
    }
}
