//! The `authenticator_validate` stage (docs/design.md §5.14).

use super::authenticator::*;
use super::{Stage, StageCx, StageOutcome};
use crate::config::{AuthenticatorValidateDef, StageDef};
use crate::config::{DeviceClass, NotConfiguredAction};
use crate::flow::{response_str, Challenge};
use crate::identity::User;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Checks a second factor.
pub(super) struct ValidateStage {
    device_classes: Vec<DeviceClass>,
    not_configured_action: NotConfiguredAction,
    /// Setup stages (name, kind) offered by `configure`.
    configuration_stages: Vec<(String, &'static str)>,
}

impl ValidateStage {
    /// Built from its definition; the kinds of the configuration stages come from `all`.
    pub(super) fn from_config(c: &AuthenticatorValidateDef, all: &BTreeMap<String, StageDef>) -> Self {
        Self {
            device_classes: c.device_classes.clone(),
            not_configured_action: c.not_configured_action,
            configuration_stages: c
                .configuration_stages
                .iter()
                .map(|s| (s.clone(), all.get(s).map(StageDef::kind).unwrap_or("unknown")))
                .collect(),
        }
    }
}

impl ValidateStage {
    /// The user's usable device classes.
    async fn devices(&self, cx: &StageCx<'_>, user: &User) -> Result<Vec<Value>, StageOutcome> {
        let fail = |e: crate::identity::StoreError| {
            tracing::error!(error = %e, "device lookup failed");
            StageOutcome::Deny("Authenticators are unavailable right now.".into())
        };
        let mut out = Vec::new();
        if self.device_classes.contains(&DeviceClass::Totp) {
            for d in cx.users.totp_devices(user.id).await.map_err(fail)? {
                out.push(json!({"device_class": "totp", "device_uid": d.id.to_string(), "challenge": {}, "last_used": d.last_used_ms}));
            }
        }
        if self.device_classes.contains(&DeviceClass::Static)
            && cx.users.static_code_count(user.id).await.map_err(fail)? > 0
        {
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
        match self.not_configured_action {
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
            if self.not_configured_action == NotConfiguredAction::Configure {
                if let Some(sel) = response_str(response, "selected_stage") {
                    if let Some((name, _)) = self.configuration_stages.iter().find(|(n, _)| n == sel) {
                        return StageOutcome::Inject(name.clone());
                    }
                }
            }
            return self.not_configured();
        }
        let code = code_of(response);
        if let Err(o) = check_code_limit(cx, &user.username).await {
            return o;
        }
        let mut ok = None;
        if !code.is_empty() && code.len() <= 64 {
            if self.device_classes.contains(&DeviceClass::Totp) {
                match cx.users.verify_totp(user.id, &code, cx.now_ms).await {
                    Ok(Some(_)) => ok = Some("totp"),
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, "TOTP check failed"),
                }
            }
            if ok.is_none() && self.device_classes.contains(&DeviceClass::Static) {
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
        cx.reputation.record(cx.client_ip, &user.username, -1).await;
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
