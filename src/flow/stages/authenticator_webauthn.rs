//! The `authenticator_webauthn` stage: registers a passkey or security key for the logged-in
//! (or pending) user, and lets its owner list, rename and delete their credentials, like
//! authentik's `ak-stage-authenticator-webauthn` (authentik's `registration` options; the
//! device list and the `action` responses are flowgate's additions for managing them).
//!
//! Responses: `response` (the `navigator.credentials.create()` result as JSON, and an optional
//! `name`) registers; `action: rename` with `device` and `name`, `action: delete` with `device`
//! change one of the user's own devices and show the page again; `action: done` ends the stage
//! without registering. The challenge lives in the flow context ([`super::webauthn`]).

use super::authenticator::*;
use super::webauthn::*;
use super::{Stage, StageCx, StageOutcome};
use crate::config::{AuthenticatorWebauthnDef, WebauthnRequirement};
use crate::flow::{response_str, Challenge};
use crate::identity::passkeys::{valid_passkey_name, NewPasskey};
use crate::identity::webauthn::{self, b64, RelyingParty, ALGORITHMS};
use crate::identity::User;
use serde_json::{json, Map, Value};

/// Component name.
const COMPONENT: &str = "ak-stage-authenticator-webauthn";
/// Shown when the host cannot be a relying party.
const NO_RP: &str = "Passkeys can only be used on a configured host name, not on an IP address.";

/// What the stage logs and shows when saving.
const TEXTS: SetupTexts = SetupTexts {
    done: "WebAuthn device added",
    failed: "saving WebAuthn device failed",
    deny: "The passkey could not be saved. Please try again later.",
};

/// Registers and manages WebAuthn credentials.
pub(super) struct WebauthnSetupStage {
    def: AuthenticatorWebauthnDef,
}

impl WebauthnSetupStage {
    /// Built from its definition.
    pub(super) fn from_config(c: &AuthenticatorWebauthnDef) -> Self {
        Self { def: c.clone() }
    }

    /// The page: creation options with a fresh challenge, and the user's devices.
    async fn page(&self, cx: &mut StageCx<'_>, user: &User) -> Result<Challenge, StageOutcome> {
        let Some((rp_id, _)) = relying_party(cx) else {
            return Err(StageOutcome::Deny(NO_RP.into()));
        };
        let devices = cx.users.passkeys(user.id).await.map_err(|e| {
            tracing::error!(error = %e, "passkey lookup failed");
            StageOutcome::Deny("Authenticators are unavailable right now.".into())
        })?;
        let challenge = new_challenge(cx);
        let mut selection = Map::new();
        selection.insert("residentKey".into(), json!(self.def.resident_key_requirement.as_str()));
        selection.insert(
            "requireResidentKey".into(),
            json!(self.def.resident_key_requirement == WebauthnRequirement::Required),
        );
        selection.insert("userVerification".into(), json!(self.def.user_verification.as_str()));
        if let Some(a) = self.def.authenticator_attachment {
            selection.insert("authenticatorAttachment".into(), json!(a.as_str()));
        }
        let display = if user.name.is_empty() {
            &user.username
        } else {
            &user.name
        };
        let registration = json!({
            "rp": {"id": rp_id, "name": cx.services.title},
            "user": {"id": b64(user.uid.as_bytes()), "name": user.username, "displayName": display},
            "challenge": b64(&challenge),
            "pubKeyCredParams": ALGORITHMS.iter().map(|a| json!({"type": "public-key", "alg": a})).collect::<Vec<_>>(),
            "timeout": TIMEOUT_MS,
            "excludeCredentials": devices.iter().map(|d| json!({"type": "public-key", "id": d.credential_id})).collect::<Vec<_>>(),
            "authenticatorSelection": selection,
            "attestation": "none",
        });
        let list: Vec<Value> = devices
            .iter()
            .map(|d| json!({"pk": d.id.to_string(), "name": d.name, "created": d.created_ms, "last_used": d.last_used_ms}))
            .collect();
        let mut m = Map::new();
        m.insert("registration".into(), registration);
        m.insert("devices".into(), Value::Array(list));
        m.insert("default_name".into(), json!(self.next_name(devices.len())));
        Ok(Challenge::new(COMPONENT, m, true))
    }

    /// `friendly_name`, numbered from the second device on.
    fn next_name(&self, existing: usize) -> String {
        if existing == 0 {
            self.def.friendly_name.clone()
        } else {
            format!("{} {}", self.def.friendly_name, existing + 1)
        }
    }

    async fn show(&self, cx: &mut StageCx<'_>, user: &User, error: Option<(&str, &str)>) -> StageOutcome {
        match self.page(cx, user).await {
            Ok(c) => match error {
                Some((field, msg)) => StageOutcome::Invalid(c.with_error(field, msg, "invalid")),
                None => StageOutcome::Challenge(c),
            },
            Err(o) => o,
        }
    }

    /// Rename or delete one of the user's own devices.
    async fn manage(
        &self,
        cx: &mut StageCx<'_>,
        user: &User,
        action: &str,
        response: &Map<String, Value>,
    ) -> StageOutcome {
        let device = response_str(response, "device").and_then(|d| d.trim().parse::<i64>().ok());
        let Some(device) = device else {
            return self.show(cx, user, Some(("non_field_errors", "Unknown device."))).await;
        };
        let done = match action {
            "delete" => cx.users.delete_passkey(user.id, device).await,
            _ => match response_str(response, "name").and_then(valid_passkey_name) {
                Some(name) => cx.users.rename_passkey(user.id, device, &name).await,
                None => {
                    return self
                        .show(cx, user, Some(("name", "A name needs 1 to 64 characters.")))
                        .await
                }
            },
        };
        match done {
            Ok(true) => {
                tracing::info!(user = %user.username, action, "WebAuthn device changed");
                if action == "delete" {
                    cx.audit("mfa_removed", Some(&user.username));
                }
                self.show(cx, user, None).await
            }
            // Not the user's device (or gone): nothing changes.
            Ok(false) => self.show(cx, user, Some(("non_field_errors", "Unknown device."))).await,
            Err(e) => {
                tracing::error!(error = %e, "changing a WebAuthn device failed");
                StageOutcome::Deny("Authenticators are unavailable right now.".into())
            }
        }
    }
}

#[async_trait::async_trait]
impl Stage for WebauthnSetupStage {
    async fn challenge(&self, cx: &mut StageCx<'_>) -> StageOutcome {
        match user_of(cx).await {
            Ok(Some(u)) => self.show(cx, &u, None).await,
            Ok(None) => StageOutcome::Continue,
            Err(o) => o,
        }
    }

    async fn submit(&self, cx: &mut StageCx<'_>, response: &Map<String, Value>) -> StageOutcome {
        let user = match setup_user(cx).await {
            Ok(u) => u,
            Err(o) => return o,
        };
        match response_str(response, "action") {
            Some("done") => {
                cx.context.extra.remove(CHALLENGE);
                return StageOutcome::Continue;
            }
            Some(a @ ("rename" | "delete")) => return self.manage(cx, &user, a, response).await,
            _ => {}
        }
        let Some(credential) = credential_field(response, "response") else {
            return self
                .show(cx, &user, Some(("response", "No passkey was received.")))
                .await;
        };
        let challenge = take_challenge(cx);
        let Some((rp_id, origin)) = relying_party(cx) else {
            return StageOutcome::Deny(NO_RP.into());
        };
        let rp = RelyingParty {
            id: &rp_id,
            origin: &origin,
        };
        let verified = match challenge {
            Some(ch) => webauthn::verify_registration(&rp, &ch, uv_of(self.def.user_verification), credential),
            None => Err(webauthn::WebauthnError::Challenge),
        };
        let cred = match verified {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(user = %user.username, reason = %e, "WebAuthn registration refused");
                return self
                    .show(
                        cx,
                        &user,
                        Some(("response", "The passkey could not be registered. Please try again.")),
                    )
                    .await;
            }
        };
        let existing = cx.users.passkeys(user.id).await.map(|d| d.len()).unwrap_or(0);
        let name = response_str(response, "name")
            .and_then(valid_passkey_name)
            .unwrap_or_else(|| self.next_name(existing));
        let saved = cx
            .users
            .add_passkey(
                user.id,
                &NewPasskey {
                    name: &name,
                    credential_id: &b64(&cred.id),
                    public_key: &cred.public_key,
                    sign_count: cred.sign_count,
                    aaguid: &cred.aaguid,
                },
                cx.now_ms,
            )
            .await;
        if let Err(crate::identity::StoreError::Duplicate { .. }) = &saved {
            return self
                .show(cx, &user, Some(("response", "This passkey is registered already.")))
                .await;
        }
        finish_setup(cx, &user.username, saved, CHALLENGE, &TEXTS)
    }

    fn changes_credentials(&self) -> bool {
        true
    }
}
