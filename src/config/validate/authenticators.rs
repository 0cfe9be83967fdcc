//! Validation of the authenticator stage kinds: `authenticator_totp`, `authenticator_static`,
//! `authenticator_webauthn` and `authenticator_validate`.

use super::Collector;
use crate::config::model::*;

/// `authenticator_totp`.
pub(crate) fn totp(
    c: &mut Collector<'_>,
    fi: usize,
    p: &str,
    digits: Option<u32>,
    friendly_name: &Option<String>,
) -> AuthenticatorTotpDef {
    let d = digits.unwrap_or(DEFAULT_TOTP_DIGITS);
    if d != 6 && d != 8 {
        c.err(
            fi,
            format!("{p}.digits"),
            format!("invalid digits {d} (expected 6 or 8)"),
        );
    }
    AuthenticatorTotpDef {
        digits: d,
        friendly_name: friendly_name
            .clone()
            .unwrap_or_else(|| DEFAULT_TOTP_FRIENDLY_NAME.into()),
    }
}

/// `authenticator_static`.
pub(crate) fn static_codes(
    c: &mut Collector<'_>,
    fi: usize,
    p: &str,
    token_count: Option<u32>,
) -> AuthenticatorStaticDef {
    let n = token_count.unwrap_or(DEFAULT_STATIC_TOKEN_COUNT);
    if !(1..=50).contains(&n) {
        c.err(
            fi,
            format!("{p}.token_count"),
            format!("invalid count {n} (expected 1 to 50)"),
        );
    }
    AuthenticatorStaticDef { token_count: n }
}

/// `authenticator_validate`.
pub(crate) fn validate(
    c: &mut Collector<'_>,
    fi: usize,
    p: &str,
    device_classes: &Option<Vec<String>>,
    not_configured_action: &Option<String>,
    configuration_stages: &[String],
    webauthn_user_verification: &Option<String>,
) -> AuthenticatorValidateDef {
    let mut classes = Vec::new();
    for (i, d) in device_classes
        .clone()
        .unwrap_or_else(|| DEFAULT_DEVICE_CLASSES.iter().map(|c| c.to_string()).collect())
        .iter()
        .enumerate()
    {
        match d.as_str() {
            "totp" => classes.push(DeviceClass::Totp),
            "static" => classes.push(DeviceClass::Static),
            "webauthn" => classes.push(DeviceClass::Webauthn),
            "duo" | "sms" | "email" => c.err(
                fi,
                format!("{p}.device_classes[{i}]"),
                format!("device class {d:?} is not supported by flowgate (supported: totp, static, webauthn)"),
            ),
            _ => c.err(
                fi,
                format!("{p}.device_classes[{i}]"),
                format!("unknown device class {d:?} (expected one of: totp, static, webauthn)"),
            ),
        }
    }
    if classes.is_empty() {
        c.err(fi, format!("{p}.device_classes"), "at least one device class is needed");
    }
    let action = c.choice(
        fi,
        format!("{p}.not_configured_action"),
        not_configured_action,
        NotConfiguredAction::Skip,
        NotConfiguredAction::ALL,
    );
    if action == NotConfiguredAction::Configure && configuration_stages.is_empty() {
        c.err(
            fi,
            format!("{p}.configuration_stages"),
            "not_configured_action configure needs at least one configuration stage",
        );
    }
    let webauthn_user_verification = c.choice(
        fi,
        format!("{p}.webauthn_user_verification"),
        webauthn_user_verification,
        WebauthnRequirement::Preferred,
        WebauthnRequirement::ALL,
    );
    AuthenticatorValidateDef {
        device_classes: classes,
        not_configured_action: action,
        configuration_stages: configuration_stages.to_vec(),
        webauthn_user_verification,
    }
}

/// `authenticator_webauthn`.
pub(crate) fn webauthn(
    c: &mut Collector<'_>,
    fi: usize,
    p: &str,
    user_verification: &Option<String>,
    resident_key_requirement: &Option<String>,
    authenticator_attachment: &Option<String>,
    friendly_name: &Option<String>,
) -> AuthenticatorWebauthnDef {
    let uv = c.choice(
        fi,
        format!("{p}.user_verification"),
        user_verification,
        WebauthnRequirement::Preferred,
        WebauthnRequirement::ALL,
    );
    let rk = c.choice(
        fi,
        format!("{p}.resident_key_requirement"),
        resident_key_requirement,
        WebauthnRequirement::Preferred,
        WebauthnRequirement::ALL,
    );
    let attachment = authenticator_attachment.as_ref().map(|_| {
        c.choice(
            fi,
            format!("{p}.authenticator_attachment"),
            authenticator_attachment,
            AuthenticatorAttachment::Platform,
            AuthenticatorAttachment::ALL,
        )
    });
    let name = friendly_name
        .clone()
        .unwrap_or_else(|| DEFAULT_WEBAUTHN_FRIENDLY_NAME.into());
    if name.trim().is_empty() || name.chars().count() > 60 || name.chars().any(char::is_control) {
        c.err(
            fi,
            format!("{p}.friendly_name"),
            "a device name needs 1 to 60 characters without control characters",
        );
    }
    AuthenticatorWebauthnDef {
        user_verification: uv,
        resident_key_requirement: rk,
        authenticator_attachment: attachment,
        friendly_name: name,
    }
}
