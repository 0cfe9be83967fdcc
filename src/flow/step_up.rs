//! Step-up (STEP-1): whether a session's sign-on is good enough for an app that names its own
//! `authentication_flow`, and what a step-up plan may leave out because the user is known.
//!
//! The rule (docs/decisions/0005-step-up.md): a session satisfies flow `F` when
//! 1. `F` logged this user in during this sign-on (the first login or a step-up), or
//! 2. `F` asks for at least one factor, and the session proved, for every factor stage of `F`,
//!    one of the methods that stage accepts (a `password` stage: `password`; an
//!    `authenticator_validate` stage: one of its device classes, `totp`, `static` or `webauthn`).
//!
//! Factor stages count whatever their binding policies or `not_configured_action` would do
//! for this user: the rule is decided from the flow's shape, not by re-running it, so it can
//! only ask too much (one more step-up round), never too little.
//!
//! Everything else a flow does (captcha, consent, flow policies) is covered by rule 1 only.

use crate::config::{DeviceClass, Flow, NotConfiguredAction, StageDef};
use crate::session::AuthInfo;
use std::collections::{BTreeMap, BTreeSet};

/// What one stage contributes to authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Factor {
    /// Identification, with the name of its embedded password stage.
    Identify(Option<String>),
    /// A password check.
    Password,
    /// A second-factor check accepting these methods.
    SecondFactor(BTreeSet<String>),
    /// Sets up a new authenticator (directly or through `configure`).
    Enrol,
    /// Anything else.
    Other,
}

/// What a flow asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowFactors {
    /// One entry per factor stage: a session must have proved one of these methods.
    pub required: Vec<BTreeSet<String>>,
    /// The flow can set up a new authenticator: a step-up then re-asks the password, so a
    /// stolen session alone cannot enrol one.
    pub enrols: bool,
}

/// The methods a second-factor check of `classes` accepts.
fn methods_of(classes: &[DeviceClass]) -> BTreeSet<String> {
    classes
        .iter()
        .map(|c| match c {
            DeviceClass::Totp => "totp".to_string(),
            DeviceClass::Static => "static".to_string(),
            DeviceClass::Webauthn => "webauthn".to_string(),
        })
        .collect()
}

/// The factor of a stage definition.
pub fn factor_of(def: &StageDef) -> Factor {
    match def {
        StageDef::Identification(d) => Factor::Identify(d.password_stage.clone()),
        StageDef::Password(_) => Factor::Password,
        StageDef::AuthenticatorValidate(d) => {
            if d.not_configured_action == NotConfiguredAction::Configure {
                return Factor::Enrol;
            }
            Factor::SecondFactor(methods_of(&d.device_classes))
        }
        StageDef::AuthenticatorTotp(_) | StageDef::AuthenticatorStatic(_) | StageDef::AuthenticatorWebauthn(_) => {
            Factor::Enrol
        }
        _ => Factor::Other,
    }
}

/// What `flow` asks for, from its stage bindings.
pub fn factors_of(flow: &Flow, defs: &BTreeMap<String, StageDef>) -> FlowFactors {
    let mut out = FlowFactors::default();
    let password = || BTreeSet::from(["password".to_string()]);
    for b in &flow.bindings {
        let Some(def) = defs.get(&b.stage) else {
            continue;
        };
        match factor_of(def) {
            Factor::Identify(Some(_)) | Factor::Password => out.required.push(password()),
            Factor::SecondFactor(m) => out.required.push(m),
            Factor::Enrol => {
                out.enrols = true;
                // A validate stage that configures still checks a code when a device exists.
                if let StageDef::AuthenticatorValidate(d) = def {
                    out.required.push(methods_of(&d.device_classes));
                }
            }
            Factor::Identify(None) | Factor::Other => {}
        }
    }
    out
}

/// Whether a sign-on recorded as `auth` satisfies flow `slug` whose factors are `factors`
/// (`None`: an unknown flow, never satisfied).
pub fn satisfies(auth: &AuthInfo, slug: &str, factors: Option<&FlowFactors>) -> bool {
    if auth.flows.contains(slug) {
        return true;
    }
    match factors {
        Some(f) if !f.required.is_empty() => f
            .required
            .iter()
            .all(|any| any.iter().any(|m| auth.methods.contains(m))),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(flows: &[&str], methods: &[&str]) -> AuthInfo {
        let shape = crate::session::AuthShape {
            flows: flows.iter().map(|s| s.to_string()).collect(),
            methods: methods.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        AuthInfo::new(shape, 0, Default::default())
    }

    fn set(m: &[&str]) -> BTreeSet<String> {
        m.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_rule() {
        let totp = FlowFactors {
            required: vec![set(&["password"]), set(&["totp", "static"])],
            enrols: false,
        };
        assert!(satisfies(&auth(&["mfa"], &[]), "mfa", Some(&totp)), "same flow");
        assert!(!satisfies(&auth(&["plain"], &["password"]), "mfa", Some(&totp)));
        assert!(satisfies(
            &auth(&["plain"], &["password", "static"]),
            "mfa",
            Some(&totp)
        ));
        assert!(satisfies(&auth(&["plain"], &["password", "totp"]), "mfa", Some(&totp)));
        assert!(!satisfies(&auth(&["plain"], &["totp"]), "mfa", Some(&totp)));
        let nothing = FlowFactors::default();
        assert!(
            !satisfies(&auth(&["plain"], &["password", "totp"]), "other", Some(&nothing)),
            "a flow that asks for no factor is satisfied only by itself"
        );
        assert!(!satisfies(&auth(&["plain"], &["password"]), "gone", None));
        // A passkey as second factor counts for a stage that accepts webauthn; a passwordless
        // sign-on (no password proved) does not satisfy a flow that asks for the password.
        let passkey = FlowFactors {
            required: vec![
                set(&["password"]),
                methods_of(&[DeviceClass::Totp, DeviceClass::Webauthn]),
            ],
            enrols: false,
        };
        assert!(satisfies(
            &auth(&["plain"], &["password", "webauthn"]),
            "pk",
            Some(&passkey)
        ));
        assert!(!satisfies(&auth(&["pwl"], &["webauthn"]), "pk", Some(&passkey)));
        assert!(!satisfies(
            &auth(&["plain"], &["password", "static"]),
            "pk",
            Some(&passkey)
        ));
    }
}
