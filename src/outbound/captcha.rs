//! Captcha token verification against a siteverify endpoint, with authentik's semantics
//! (docs/design.md §5.9). reCAPTCHA, hCaptcha and Turnstile all take the same form post
//! (`secret`, `response`, `remoteip`) and answer JSON with `success`, `error-codes` and, for
//! score-based captchas, `score`.
//!
//! Messages returned as errors are shown to the user as they are; details (status, error codes)
//! go to debug logs. The private key is never logged.

use crate::outbound::http::{self, HttpUrl};
use serde_json::Value;
use std::net::IpAddr;
use std::time::Duration;

/// Default siteverify endpoint (authentik's default).
pub const DEFAULT_API_URL: &str = "https://www.recaptcha.net/recaptcha/api/siteverify";
/// Default deadline for one verification.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default lowest accepted score.
pub const DEFAULT_SCORE_MIN: f64 = 0.5;
/// Default highest accepted score.
pub const DEFAULT_SCORE_MAX: f64 = 1.0;
/// Largest siteverify answer read, in bytes.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The message when the endpoint could not be asked or answered nonsense.
pub const FAILED_TO_VALIDATE: &str = "Failed to validate token";
/// The message when the token was refused.
pub const INVALID_RESPONSE: &str = "Invalid captcha response";
/// The message when the token was refused for a reason a new attempt may fix.
pub const INVALID_RESPONSE_RETRY: &str = "Invalid captcha response. Retrying may solve this issue.";

/// Error codes after which a new attempt (a fresh token) may succeed.
const RETRIABLE_ERROR_CODES: [&str; 5] = [
    "missing-input-response",
    "invalid-input-response",
    "timeout-or-duplicate",
    "expired-input-response",
    "already-seen-response",
];

/// A siteverify endpoint (reCAPTCHA, hCaptcha and Turnstile all take the same form post).
#[derive(Clone)]
pub struct CaptchaVerifier {
    /// `http(s)://` address of the siteverify endpoint.
    pub api_url: String,
    /// The secret key, sent as `secret`.
    pub private_key: String,
    /// Deadline for the whole exchange.
    pub timeout: Duration,
    /// Lowest accepted `score`; -1 disables the bound.
    pub score_min: f64,
    /// Highest accepted `score`; -1 disables the bound.
    pub score_max: f64,
    /// Whether `success: false` and an out-of-range score fail verification (when false, any
    /// well-formed answer passes and the caller may inspect it).
    pub error_on_invalid_score: bool,
}

// === impl CaptchaVerifier ===

impl CaptchaVerifier {
    /// Posts `token` (and `remote_ip` when known) to the endpoint and judges the answer; returns
    /// the answer's JSON, or the message to show the user. An empty token fails without a call.
    pub async fn verify(&self, token: &str, remote_ip: Option<IpAddr>) -> Result<Value, String> {
        if token.is_empty() {
            // What the endpoint would answer (missing-input-response), without asking it.
            return Err(INVALID_RESPONSE_RETRY.into());
        }
        let url = HttpUrl::parse(&self.api_url).map_err(|error| {
            tracing::warn!(%error, "captcha api_url is invalid");
            FAILED_TO_VALIDATE.to_string()
        })?;
        let ip = remote_ip.map(|ip| ip.to_string());
        let mut form = vec![("secret", self.private_key.as_str()), ("response", token)];
        if let Some(ip) = &ip {
            form.push(("remoteip", ip.as_str()));
        }
        let answer = match http::post_form(&url, &form, self.timeout, MAX_ANSWER_BYTES).await {
            Ok((status, body)) if (200..300).contains(&status) => serde_json::from_slice::<Value>(&body)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| "answer is not a JSON object".to_string()),
            Ok((status, _)) => Err(format!("siteverify answered {status}")),
            Err(e) => Err(e),
        };
        let answer = answer.map_err(|error| {
            tracing::debug!(%error, "captcha verification failed");
            FAILED_TO_VALIDATE.to_string()
        })?;
        if self.error_on_invalid_score {
            self.judge(&answer)?;
        }
        Ok(answer)
    }

    /// authentik's checks on a well-formed answer.
    fn judge(&self, answer: &Value) -> Result<(), String> {
        if answer.get("success") != Some(&Value::Bool(true)) {
            let codes: Vec<&str> = match answer.get("error-codes") {
                Some(Value::Array(codes)) => codes.iter().map(|c| c.as_str().unwrap_or("")).collect(),
                _ => vec!["unknown-error"],
            };
            tracing::debug!(error_codes = ?codes, "captcha token refused");
            return Err(if codes.iter().all(|c| RETRIABLE_ERROR_CODES.contains(c)) {
                INVALID_RESPONSE_RETRY.into()
            } else {
                INVALID_RESPONSE.into()
            });
        }
        let score = match answer.get("score") {
            None | Some(Value::Null) => return Ok(()),
            Some(Value::Number(n)) => n.as_f64(),
            Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
            Some(_) => None,
        };
        let Some(score) = score.filter(|s| s.is_finite()) else {
            tracing::debug!("captcha answer has a non-numeric score");
            return Err(FAILED_TO_VALIDATE.into());
        };
        let too_high = self.score_max != -1.0 && score > self.score_max;
        let too_low = self.score_min != -1.0 && score < self.score_min;
        if too_high || too_low {
            tracing::debug!(score, "captcha score out of range");
            return Err(INVALID_RESPONSE.into());
        }
        Ok(())
    }
}

impl std::fmt::Debug for CaptchaVerifier {
    /// Like a derived `Debug`, without the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptchaVerifier")
            .field("api_url", &self.api_url)
            .field("private_key", &"***")
            .field("timeout", &self.timeout)
            .field("score_min", &self.score_min)
            .field("score_max", &self.score_max)
            .field("error_on_invalid_score", &self.error_on_invalid_score)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn verifier(min: f64, max: f64) -> CaptchaVerifier {
        CaptchaVerifier {
            api_url: "http://127.0.0.1:9/".into(),
            private_key: "secret-key".into(),
            timeout: Duration::from_secs(1),
            score_min: min,
            score_max: max,
            error_on_invalid_score: true,
        }
    }

    #[test]
    fn judges_answers_like_authentik() {
        let v = verifier(0.5, 1.0);
        assert_eq!(v.judge(&json!({"success": true})), Ok(()));
        assert_eq!(v.judge(&json!({"success": true, "score": 0.9})), Ok(()));
        assert_eq!(v.judge(&json!({"success": true, "score": "0.7"})), Ok(()));
        assert_eq!(
            v.judge(&json!({"success": true, "score": 0.1})),
            Err(INVALID_RESPONSE.into())
        );
        assert_eq!(
            v.judge(&json!({"success": true, "score": "x"})),
            Err(FAILED_TO_VALIDATE.into())
        );
        assert_eq!(v.judge(&json!({"success": false})), Err(INVALID_RESPONSE.into()));
        assert_eq!(
            v.judge(&json!({"success": false, "error-codes": ["timeout-or-duplicate", "invalid-input-response"]})),
            Err(INVALID_RESPONSE_RETRY.into())
        );
        assert_eq!(
            v.judge(&json!({"success": false, "error-codes": ["timeout-or-duplicate", "invalid-input-secret"]})),
            Err(INVALID_RESPONSE.into())
        );
        // -1 disables a bound.
        assert_eq!(
            verifier(-1.0, 1.0).judge(&json!({"success": true, "score": 0.0})),
            Ok(())
        );
        assert_eq!(
            verifier(0.5, -1.0).judge(&json!({"success": true, "score": 7.0})),
            Ok(())
        );
        assert_eq!(
            verifier(0.5, -1.0).judge(&json!({"success": true, "score": 0.2})),
            Err(INVALID_RESPONSE.into())
        );
        assert!(!format!("{v:?}").contains("secret-key"));
    }
}
