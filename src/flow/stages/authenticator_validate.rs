//! The `authenticator_validate` stage (docs/design.md §5.14): a second factor (TOTP code,
//! recovery code or WebAuthn assertion) for the pending user, or, in an authentication flow
//! without a pending user and with the `webauthn` class, a passwordless login: the owner of
//! the passkey becomes the pending user with `auth_method` `auth_webauthn_pwl`, as authentik.

use super::authenticator::*;
use super::webauthn::{
    check_assertion, credential_field, new_challenge, passwordless_login, relying_party, request_options, uv_of,
};
use super::{Stage, StageCx, StageOutcome};
use crate::config::{AuthenticatorValidateDef, Designation, StageDef};
use crate::config::{DeviceClass, NotConfiguredAction};
use crate::flow::{response_str, Challenge};
use crate::identity::passkeys::Passkey;
use crate::identity::webauthn::UserVerification;
use crate::identity::User;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Checks a second factor.
pub(super) struct ValidateStage {
    device_classes: Vec<DeviceClass>,
    not_configured_action: NotConfiguredAction,
    /// Setup stages (name, kind) offered by `configure`.
    configuration_stages: Vec<(String, &'static str)>,
    /// `webauthn_user_verification`.
    webauthn_uv: UserVerification,
}

/// Shown when a passwordless login is asked for where passkeys cannot work.
const NO_RP: &str = "Passkeys can only be used on a configured host name, not on an IP address.";

/// A user's devices: code-based entries of `device_challenges`, and passkeys (whose entries
/// carry a challenge made when the page is shown).
struct Devices {
    codes: Vec<Value>,
    passkeys: Vec<Passkey>,
}

impl Devices {
    fn is_empty(&self) -> bool {
        self.codes.is_empty() && self.passkeys.is_empty()
    }
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
            webauthn_uv: uv_of(c.webauthn_user_verification),
        }
    }

    /// The user verification asked for passkeys (identification's autofill uses it too).
    pub(super) fn webauthn_uv(&self) -> UserVerification {
        self.webauthn_uv
    }

    /// Whether this stage accepts passkeys.
    pub(super) fn takes_webauthn(&self) -> bool {
        self.device_classes.contains(&DeviceClass::Webauthn)
    }
}

impl ValidateStage {
    /// The user's usable device classes.
    async fn devices(&self, cx: &StageCx<'_>, user: &User) -> Result<Devices, StageOutcome> {
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
        let passkeys = if self.takes_webauthn() {
            cx.users.passkeys(user.id).await.map_err(fail)?
        } else {
            Vec::new()
        };
        Ok(Devices { codes: out, passkeys })
    }

    /// The `device_challenges`: the code devices, and one entry per passkey sharing one set
    /// of request options with a fresh challenge (none on a host that cannot be an RP).
    fn device_challenges(&self, cx: &mut StageCx<'_>, devices: &Devices) -> Vec<Value> {
        let mut out = devices.codes.clone();
        if !devices.passkeys.is_empty() {
            if let Some((rp_id, _)) = relying_party(cx) {
                let challenge = new_challenge(cx);
                let options = request_options(&challenge, &rp_id, &devices.passkeys, self.webauthn_uv);
                for p in &devices.passkeys {
                    out.push(json!({"device_class": "webauthn", "device_uid": p.id.to_string(), "challenge": options, "last_used": p.last_used_ms}));
                }
            }
        }
        out
    }

    /// Passwordless: an authentication flow without a pending user, passkeys allowed, a host
    /// that can be a relying party.
    fn passwordless(&self, cx: &StageCx<'_>) -> bool {
        cx.designation == Designation::Authentication && self.takes_webauthn() && relying_party(cx).is_some()
    }

    /// A passwordless login asked for on a host that cannot be a relying party (an IP
    /// address, a host not configured): refused rather than skipped.
    fn passwordless_elsewhere(&self, cx: &StageCx<'_>) -> bool {
        cx.designation == Designation::Authentication && self.takes_webauthn() && relying_party(cx).is_none()
    }

    /// The passwordless page: one WebAuthn challenge for any discoverable credential.
    fn passwordless_page(&self, cx: &mut StageCx<'_>) -> Challenge {
        let rp_id = relying_party(cx).map(|r| r.0).unwrap_or_default();
        let challenge = new_challenge(cx);
        let options = request_options(&challenge, &rp_id, &[], self.webauthn_uv);
        Self::page(
            vec![json!({"device_class": "webauthn", "device_uid": "-1", "challenge": options, "last_used": null})],
            &[],
        )
    }

    /// Counts a failure; the sixth cancels the flow.
    async fn failed(&self, cx: &mut StageCx<'_>, username: &str) -> Option<StageOutcome> {
        cx.reputation.record(cx.client_ip, username, -1).await;
        let failures = cx.context.extra.get(FAILURES).and_then(Value::as_u64).unwrap_or(0) + 1;
        cx.context.extra.insert(FAILURES.into(), json!(failures));
        (failures >= MAX_FAILURES).then(|| StageOutcome::Deny("Too many invalid codes.".into()))
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
            Ok(None) if self.passwordless(cx) => return StageOutcome::Challenge(self.passwordless_page(cx)),
            Ok(None) if self.passwordless_elsewhere(cx) => return StageOutcome::Deny(NO_RP.into()),
            Ok(None) => return StageOutcome::Continue,
            Err(o) => return o,
        };
        match self.devices(cx, &user).await {
            Ok(d) if d.is_empty() => self.not_configured(),
            Ok(d) => {
                let list = self.device_challenges(cx, &d);
                if list.is_empty() {
                    // Only passkeys, on a host where they cannot be used.
                    return self.not_configured();
                }
                StageOutcome::Challenge(Self::page(list, &[]))
            }
            Err(o) => o,
        }
    }

    async fn submit(&self, cx: &mut StageCx<'_>, response: &Map<String, Value>) -> StageOutcome {
        let pretend = cx.context.pending_user.as_ref().is_some_and(|p| p.user.is_none());
        let user = match Self::pending(cx).await {
            Ok(Some(u)) => u,
            Ok(None) if !pretend && self.passwordless(cx) => return self.submit_passwordless(cx, response).await,
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
        let mut ok = None;
        let mut message = "Invalid Token. Please ensure the time on your device is accurate and try again.";
        if let Some(credential) = credential_field(response, "webauthn").filter(|_| !devices.passkeys.is_empty()) {
            match check_assertion(cx, credential, self.webauthn_uv, Some(&user)).await {
                Ok(_) => ok = Some("webauthn"),
                Err(m) => message = m,
            }
        } else {
            let code = code_of(response);
            if let Err(o) = check_code_limit(cx, &user.username).await {
                return o;
            }
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
        }
        if let Some(method) = ok {
            cx.context.auth_methods.insert(method.into());
            cx.context.auth_method = Some("auth_mfa".into());
            cx.context.extra.remove(FAILURES);
            return StageOutcome::Continue;
        }
        if let Some(deny) = self.failed(cx, &user.username).await {
            return deny;
        }
        let list = self.device_challenges(cx, &devices);
        let field = if credential_field(response, "webauthn").is_some() {
            "webauthn"
        } else {
            "code"
        };
        StageOutcome::Invalid(Self::page(list, &[]).with_error(field, message, "invalid"))
    }
}

impl ValidateStage {
    /// A passwordless login: the passkey's owner becomes the pending user.
    async fn submit_passwordless(&self, cx: &mut StageCx<'_>, response: &Map<String, Value>) -> StageOutcome {
        let Some(credential) = credential_field(response, "webauthn") else {
            return StageOutcome::Invalid(self.passwordless_page(cx).with_error(
                "webauthn",
                "No passkey was received.",
                "invalid",
            ));
        };
        match check_assertion(cx, credential, self.webauthn_uv, None).await {
            Ok((user, device)) => {
                passwordless_login(cx, user, &device);
                StageOutcome::Continue
            }
            Err(message) => {
                if let Some(deny) = self.failed(cx, "").await {
                    return deny;
                }
                StageOutcome::Invalid(self.passwordless_page(cx).with_error("webauthn", message, "invalid"))
            }
        }
    }
}
