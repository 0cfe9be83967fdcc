//! Captcha stage (docs/design.md §5.9): shows the provider's widget and checks its token through
//! the siteverify endpoint. The widget needs the provider's script; flowgate's own page needs
//! none: the widget fills its response field inside the form, which is read under any of the
//! names reCAPTCHA, hCaptcha and Turnstile use.

use super::{Stage, StageCx, StageOutcome};
use crate::config::CaptchaSettings;
use crate::flow::{response_str, Challenge};
use crate::outbound::captcha::CaptchaVerifier;
use serde_json::{json, Map, Value};

/// Component name.
const COMPONENT: &str = "ak-stage-captcha";
/// Response field names, ours first.
const TOKEN_FIELDS: &[&str] = &[
    "token",
    "g-recaptcha-response",
    "h-captcha-response",
    "cf-turnstile-response",
];

/// Checks a captcha.
pub(super) struct CaptchaStage {
    public_key: String,
    js_url: String,
    interactive: bool,
    verifier: CaptchaVerifier,
}

impl CaptchaStage {
    pub(super) fn from_config(c: &CaptchaSettings) -> Self {
        Self {
            public_key: c.public_key.clone(),
            js_url: c.js_url.clone(),
            interactive: c.interactive,
            verifier: CaptchaVerifier {
                api_url: c.api_url.clone(),
                private_key: c.private_key.clone(),
                timeout: c.timeout,
                score_min: c.score_min_threshold,
                score_max: c.score_max_threshold,
                error_on_invalid_score: c.error_on_invalid_score,
            },
        }
    }

    fn page(&self) -> Challenge {
        let mut m = Map::new();
        m.insert("site_key".into(), json!(self.public_key));
        m.insert("js_url".into(), json!(self.js_url));
        m.insert("interactive".into(), json!(self.interactive));
        Challenge::new(COMPONENT, m, true)
    }
}

#[async_trait::async_trait]
impl Stage for CaptchaStage {
    async fn challenge(&self, _cx: &mut StageCx<'_>) -> StageOutcome {
        StageOutcome::Challenge(self.page())
    }

    async fn submit(&self, cx: &mut StageCx<'_>, response: &Map<String, Value>) -> StageOutcome {
        let token = TOKEN_FIELDS
            .iter()
            .find_map(|f| response_str(response, f).filter(|t| !t.is_empty()))
            .unwrap_or("");
        if token.len() > 8192 {
            return StageOutcome::Invalid(self.page().with_error("token", "Invalid captcha response", "invalid"));
        }
        match self.verifier.verify(token, cx.client_ip).await {
            Ok(answer) => {
                cx.context
                    .extra
                    .insert("captcha".into(), json!({ "response": answer, "stage": COMPONENT }));
                StageOutcome::Continue
            }
            Err(msg) => {
                cx.reputation.record(cx.client_ip, "", -1).await;
                StageOutcome::Invalid(self.page().with_error("token", &msg, "invalid"))
            }
        }
    }
}
