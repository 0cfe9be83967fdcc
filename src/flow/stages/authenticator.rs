//! Authenticator stages: TOTP setup (docs/design.md §5.15), recovery-code setup (the static
//! sibling) and validation (§5.14) for the device classes `totp` and `static`.
//!
//! Setup secrets and codes live in the flow context (server-side) until the user confirms
//! them; only then are they stored. Validation accepts a TOTP code within ±1 step and never
//! the same step twice, or an unused recovery code; five wrong codes cancel the flow.

use super::{Stage, StageCx, StageOutcome};
use crate::config::{DeviceClass, NotConfiguredAction};
use crate::flow::ratelimit::Guess;
use crate::flow::{response_str, Challenge};
use crate::identity::mfa;
use crate::identity::User;
use serde_json::{json, Map, Value};

/// Context key of a TOTP secret being set up (hex).
const TOTP_SECRET: &str = "totp_setup_secret";
/// Context key of recovery codes being set up.
const STATIC_CODES: &str = "static_setup_codes";
/// Context key counting wrong codes in this plan.
const FAILURES: &str = "mfa_failures";
/// Wrong codes before the flow is cancelled.
const MAX_FAILURES: u64 = 5;

/// The logged-in or pending stored user, or why there is none.
async fn user_of(cx: &StageCx<'_>) -> Result<Option<User>, StageOutcome> {
    cx.acting_user().await.map_err(|e| {
        tracing::error!(error = %e, "user store failed");
        StageOutcome::Deny("Authenticators are unavailable right now.".into())
    })
}

fn code_of(response: &Map<String, Value>) -> String {
    match response.get("code") {
        Some(Value::Number(n)) => n.to_string(),
        _ => response_str(response, "code").unwrap_or("").trim().to_string(),
    }
}

/// Sets up a TOTP app.
pub(super) struct TotpSetupStage {
    pub(super) digits: u32,
    pub(super) friendly_name: String,
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
        let user = match user_of(cx).await {
            Ok(Some(u)) => u,
            Ok(None) => return StageOutcome::Continue,
            Err(o) => return o,
        };
        let secret = Self::secret(cx);
        let code = code_of(response);
        if let Err(wait) = cx.services.limits.check(Guess::Code, cx.client_ip, &user.username) {
            return StageOutcome::RateLimited(wait);
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
        match cx
            .users
            .add_totp_device(user.id, &name, &secret, self.digits, cx.now_ms, Some(step))
            .await
        {
            Ok(_) => {
                tracing::info!(user = %user.username, "TOTP device added");
                cx.context.extra.remove(TOTP_SECRET);
                StageOutcome::Continue
            }
            Err(e) => {
                tracing::error!(error = %e, "saving TOTP device failed");
                StageOutcome::Deny("The authenticator could not be saved. Please try again later.".into())
            }
        }
    }

    fn changes_credentials(&self) -> bool {
        true
    }
}

/// Creates recovery codes.
pub(super) struct StaticSetupStage {
    pub(super) count: usize,
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

/// Checks a second factor.
pub(super) struct ValidateStage {
    pub(super) classes: Vec<DeviceClass>,
    pub(super) not_configured: NotConfiguredAction,
    /// Setup stages (name, kind) offered by `configure`.
    pub(super) configuration_stages: Vec<(String, &'static str)>,
}

impl ValidateStage {
    /// The user's usable device classes.
    async fn devices(&self, cx: &StageCx<'_>, user: &User) -> Result<Vec<Value>, StageOutcome> {
        let fail = |e: crate::identity::StoreError| {
            tracing::error!(error = %e, "device lookup failed");
            StageOutcome::Deny("Authenticators are unavailable right now.".into())
        };
        let mut out = Vec::new();
        if self.classes.contains(&DeviceClass::Totp) {
            for d in cx.users.totp_devices(user.id).await.map_err(fail)? {
                out.push(json!({"device_class": "totp", "device_uid": d.id.to_string(), "challenge": {}, "last_used": d.last_used_ms}));
            }
        }
        if self.classes.contains(&DeviceClass::Static) && cx.users.static_code_count(user.id).await.map_err(fail)? > 0 {
            out.push(json!({"device_class": "static", "device_uid": "static", "challenge": {}, "last_used": null}));
        }
        Ok(out)
    }

    fn page(devices: Vec<Value>, stages: &[(String, &'static str)]) -> Challenge {
        let mut m = Map::new();
        m.insert("device_challenges".into(), Value::Array(devices));
        let stages: Vec<Value> = stages
            .iter()
            .map(|(n, k)| json!({"pk": n, "name": n, "verbose_name": k, "meta_model_name": k}))
            .collect();
        m.insert("configuration_stages".into(), Value::Array(stages));
        Challenge::new("ak-stage-authenticator-validate", m, true)
    }

    /// The pending stored user; `None` skips (no pending user, as outside authentication).
    async fn pending(cx: &StageCx<'_>) -> Result<Option<User>, StageOutcome> {
        match cx.context.pending_user.as_ref() {
            Some(p) => match &p.user {
                Some(u) => cx.users.get_by_id(u.id).await.map_err(|e| {
                    tracing::error!(error = %e, "user store failed");
                    StageOutcome::Deny("Authenticators are unavailable right now.".into())
                }),
                // A pretend user has no devices.
                None => Ok(None),
            },
            None => user_of(cx).await,
        }
    }

    fn not_configured(&self) -> StageOutcome {
        match self.not_configured {
            NotConfiguredAction::Skip => StageOutcome::Continue,
            NotConfiguredAction::Deny => StageOutcome::Deny("No (allowed) MFA authenticator configured.".into()),
            NotConfiguredAction::Configure => match self.configuration_stages.as_slice() {
                [(one, _)] => StageOutcome::Inject(one.clone()),
                several => StageOutcome::Challenge(Self::page(Vec::new(), several)),
            },
        }
    }
}

#[async_trait::async_trait]
impl Stage for ValidateStage {
    async fn challenge(&self, cx: &mut StageCx<'_>) -> StageOutcome {
        let pretend = cx.context.pending_user.as_ref().is_some_and(|p| p.user.is_none());
        let user = match Self::pending(cx).await {
            Ok(Some(u)) => u,
            Ok(None) if pretend => return self.not_configured(),
            Ok(None) => return StageOutcome::Continue,
            Err(o) => return o,
        };
        match self.devices(cx, &user).await {
            Ok(d) if d.is_empty() => self.not_configured(),
            Ok(d) => StageOutcome::Challenge(Self::page(d, &[])),
            Err(o) => o,
        }
    }

    async fn submit(&self, cx: &mut StageCx<'_>, response: &Map<String, Value>) -> StageOutcome {
        let user = match Self::pending(cx).await {
            Ok(Some(u)) => u,
            Ok(None) => return self.challenge(cx).await,
            Err(o) => return o,
        };
        let devices = match self.devices(cx, &user).await {
            Ok(d) => d,
            Err(o) => return o,
        };
        if devices.is_empty() {
            if self.not_configured == NotConfiguredAction::Configure {
                if let Some(sel) = response_str(response, "selected_stage") {
                    if let Some((name, _)) = self.configuration_stages.iter().find(|(n, _)| n == sel) {
                        return StageOutcome::Inject(name.clone());
                    }
                }
            }
            return self.not_configured();
        }
        let code = code_of(response);
        if let Err(wait) = cx.services.limits.check(Guess::Code, cx.client_ip, &user.username) {
            tracing::warn!(user = %user.username, wait_s = wait.as_secs(), "code attempts rate-limited");
            return StageOutcome::RateLimited(wait);
        }
        let mut ok = None;
        if !code.is_empty() && code.len() <= 64 {
            if self.classes.contains(&DeviceClass::Totp) {
                match cx.users.verify_totp(user.id, &code, cx.now_ms).await {
                    Ok(Some(_)) => ok = Some("totp"),
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, "TOTP check failed"),
                }
            }
            if ok.is_none() && self.classes.contains(&DeviceClass::Static) {
                match cx.users.use_static_code(user.id, &code, cx.now_ms).await {
                    Ok(true) => ok = Some("static"),
                    Ok(false) => {}
                    Err(e) => tracing::error!(error = %e, "recovery code check failed"),
                }
            }
        }
        if let Some(method) = ok {
            cx.context.auth_methods.insert(method.into());
            cx.context.auth_method = Some("auth_mfa".into());
            cx.context.extra.remove(FAILURES);
            return StageOutcome::Continue;
        }
        cx.reputation.record(cx.client_ip, &user.username, -1);
        let failures = cx.context.extra.get(FAILURES).and_then(Value::as_u64).unwrap_or(0) + 1;
        cx.context.extra.insert(FAILURES.into(), json!(failures));
        if failures >= MAX_FAILURES {
            return StageOutcome::Deny("Too many invalid codes.".into());
        }
        StageOutcome::Invalid(Self::page(devices, &[]).with_error(
            "code",
            "Invalid Token. Please ensure the time on your device is accurate and try again.",
            "invalid",
        ))
    }
}
