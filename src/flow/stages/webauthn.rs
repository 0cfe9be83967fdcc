//! What the WebAuthn users among the stages share (`authenticator_webauthn.rs` registers,
//! `authenticator_validate.rs` checks a second factor or a passwordless login,
//! `identification.rs` offers passkey autofill): the relying party of the request, the
//! challenge kept in the flow context, the request options, and the whole assertion check.
//!
//! The challenge is 32 bytes from the OS CSPRNG kept only server-side, in the flow context of
//! the pre-authentication session (so bound to it), replaced on every page and removed by the
//! first response that tries it, whatever the outcome (single use).

use super::StageCx;
use crate::config::WebauthnRequirement;
use crate::identity::passkeys::Passkey;
use crate::identity::webauthn::{self, b64, RelyingParty, UserVerification};
use crate::identity::User;
use rand::RngCore;
use serde_json::{json, Value};

/// Context key of the outstanding challenge (authentik's key).
pub(super) const CHALLENGE: &str = "goauthentik.io/stages/authenticator_webauthn/challenge";
/// How long the browser may take (ms), as WebAuthn `timeout`.
pub(super) const TIMEOUT_MS: u64 = 300_000;

/// The relying party of this request: `(rp id, origin)`. `None` when the host is not a
/// configured one or is an IP address (WebAuthn needs a domain).
pub(super) fn relying_party(cx: &StageCx<'_>) -> Option<(String, String)> {
    let rp_id = cx.rp_id?;
    let origin = cx.origin?;
    if rp_id.is_empty() || rp_id.parse::<std::net::IpAddr>().is_ok() || rp_id.starts_with('[') {
        return None;
    }
    // A default port is not part of the origin the browser reports.
    let origin = origin
        .strip_suffix(":80")
        .filter(|_| origin.starts_with("http://"))
        .or_else(|| origin.strip_suffix(":443").filter(|_| origin.starts_with("https://")))
        .unwrap_or(origin);
    Some((rp_id.to_string(), origin.to_ascii_lowercase()))
}

/// The user verification of a requirement.
pub(super) fn uv_of(r: WebauthnRequirement) -> UserVerification {
    match r {
        WebauthnRequirement::Required => UserVerification::Required,
        WebauthnRequirement::Preferred => UserVerification::Preferred,
        WebauthnRequirement::Discouraged => UserVerification::Discouraged,
    }
}

/// A fresh challenge, replacing any outstanding one.
pub(super) fn new_challenge(cx: &mut StageCx<'_>) -> Vec<u8> {
    let mut c = vec![0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut c);
    cx.context.extra.insert(CHALLENGE.into(), json!(b64(&c)));
    c
}

/// Removes and returns the outstanding challenge (single use).
pub(super) fn take_challenge(cx: &mut StageCx<'_>) -> Option<Vec<u8>> {
    cx.context
        .extra
        .remove(CHALLENGE)
        .and_then(|v| v.as_str().and_then(webauthn::unb64))
}

/// `PublicKeyCredentialRequestOptions` as JSON (authentik's shape), allowing `allow` (empty:
/// any discoverable credential of this RP).
pub(super) fn request_options(challenge: &[u8], rp_id: &str, allow: &[Passkey], uv: UserVerification) -> Value {
    let allow: Vec<Value> = allow
        .iter()
        .map(|p| json!({"type": "public-key", "id": p.credential_id}))
        .collect();
    json!({
        "challenge": b64(challenge),
        "timeout": TIMEOUT_MS,
        "rpId": rp_id,
        "allowCredentials": allow,
        "userVerification": uv.as_str(),
    })
}

/// Why an assertion was refused; the text is what the user sees.
pub(super) const REFUSED: &str = "The passkey could not be verified. Please try again.";

/// Checks an assertion (`credential`, as the browser sent it) against the outstanding
/// challenge. `owner`: the user being logged in, whose credential it must be; `None` for a
/// passwordless login, where the credential's owner becomes the user. On success the
/// counter is stored and the owner (active) and device are returned; every failure is logged
/// with its reason and answered with [`REFUSED`].
pub(super) async fn check_assertion(
    cx: &mut StageCx<'_>,
    credential: &Value,
    uv: UserVerification,
    owner: Option<&User>,
) -> Result<(User, Passkey), &'static str> {
    let challenge = take_challenge(cx);
    let refuse = |why: &dyn std::fmt::Display| {
        tracing::warn!(reason = %why, "webauthn assertion refused");
        REFUSED
    };
    let Some(challenge) = challenge else {
        return Err(refuse(&"no outstanding challenge"));
    };
    let Some((rp_id, origin)) = relying_party(cx) else {
        return Err(refuse(&"host is not a relying party"));
    };
    let assertion = webauthn::parse_assertion(credential).map_err(|e| refuse(&e))?;
    let cred_id = b64(&assertion.credential_id);
    let device = match cx.users.passkey_by_credential(&cred_id).await {
        Ok(Some(d)) => d,
        Ok(None) => return Err(refuse(&"unknown credential")),
        Err(e) => return Err(refuse(&e)),
    };
    if let Some(u) = owner {
        if u.id != device.user_id {
            return Err(refuse(&"credential belongs to another user"));
        }
    }
    let user = match cx.users.get_by_id(device.user_id).await {
        Ok(Some(u)) if u.is_active => u,
        Ok(_) => return Err(refuse(&"owner missing or inactive")),
        Err(e) => return Err(refuse(&e)),
    };
    if let Some(handle) = &assertion.user_handle {
        if handle.as_slice() != user.uid.as_bytes() {
            return Err(refuse(&"user handle does not name the owner"));
        }
    }
    let rp = RelyingParty {
        id: &rp_id,
        origin: &origin,
    };
    let verified = webauthn::verify_assertion(&rp, &challenge, uv, &assertion, &device.public_key, device.sign_count)
        .map_err(|e| refuse(&e))?;
    match cx
        .users
        .use_passkey(user.id, device.id, device.sign_count, verified.sign_count, cx.now_ms)
        .await
    {
        Ok(true) => Ok((user, device)),
        Ok(false) => Err(refuse(&"credential changed or removed meanwhile")),
        Err(e) => Err(refuse(&e)),
    }
}

/// The response field holding a credential: a JSON object (JSON executor) or a string of one
/// (the HTML form), non-empty.
pub(super) fn credential_field<'a>(response: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    match response.get(key)? {
        Value::String(s) if s.trim().is_empty() => None,
        v @ (Value::String(_) | Value::Object(_)) => Some(v),
        _ => None,
    }
}

/// Makes the owner of a verified passkey the pending user of a passwordless login
/// (`auth_method` `auth_webauthn_pwl`, the device in `auth_method_args`).
pub(super) fn passwordless_login(cx: &mut StageCx<'_>, user: User, device: &Passkey) {
    tracing::info!(user = %user.username, "passwordless WebAuthn login");
    cx.context.extra.remove(super::authenticator::FAILURES);
    cx.context.auth_methods.insert("webauthn".into());
    cx.context.auth_method = Some("auth_webauthn_pwl".into());
    cx.context.extra.insert(
        "auth_method_args".into(),
        json!({"device": {"pk": device.id, "name": device.name}, "device_type": "webauthn"}),
    );
    cx.context.pending_user = Some(crate::flow::PendingUser {
        identifier: user.username.clone(),
        user: Some(user),
    });
}
