//! Validation of the stage catalogue (`stages:`): the dispatch over the stage kinds in
//! [`stage`], each kind's checks and defaults in its arm or in the function it calls (prompt
//! fields in `prompt.rs`, the authenticator kinds in `authenticators.rs`), and the checks of the
//! references stages make to other stages, policies and flows.

use super::secrets::{secret, url_ok};
use super::{known, Collector};
use crate::config::duration::parse_duration;
use crate::config::model::*;
use crate::config::raw::*;
use std::collections::BTreeMap;

/// Default captcha endpoints (reCAPTCHA, as authentik).
const DEFAULT_CAPTCHA_JS: &str = "https://www.recaptcha.net/recaptcha/api.js";
const DEFAULT_CAPTCHA_API: &str = "https://www.recaptcha.net/recaptcha/api/siteverify";
/// The user fields an identification stage may match.
const USER_FIELDS: &[&str] = &["username", "email"];

/// Validates the stage `name`.
pub(crate) fn stage(c: &mut Collector<'_>, fi: usize, name: &str, raw: &RawStage) -> Option<StageDef> {
    let p = format!("stages.{name}");
    c.name(fi, &p, "stage", name);
    let p = p.as_str();
    Some(match raw {
        RawStage::Identification {
            user_fields,
            case_insensitive_matching,
            pretend_user_exists,
            show_matched_user,
            password_stage,
            enrollment_flow,
            recovery_flow,
            sources,
            show_source_labels,
            webauthn_stage,
            passwordless_flow,
        } => {
            for (i, f) in user_fields.iter().enumerate() {
                if !USER_FIELDS.contains(&f.as_str()) {
                    c.err(
                        fi,
                        format!("{p}.user_fields[{i}]"),
                        format!("unknown user field {f:?} (expected one of: {})", USER_FIELDS.join(", ")),
                    );
                }
            }
            if user_fields.is_empty() && sources.is_empty() {
                c.err(
                    fi,
                    format!("{p}.user_fields"),
                    "at least one user field (username, email) or one source is needed",
                );
            }
            StageDef::Identification(IdentificationDef {
                user_fields: user_fields.clone(),
                case_insensitive_matching: case_insensitive_matching.unwrap_or(true),
                pretend_user_exists: pretend_user_exists.unwrap_or(true),
                show_matched_user: show_matched_user.unwrap_or(true),
                password_stage: password_stage.clone(),
                enrollment_flow: enrollment_flow.clone(),
                recovery_flow: recovery_flow.clone(),
                sources: sources.clone(),
                show_source_labels: show_source_labels.unwrap_or(false),
                source_buttons: Vec::new(),
                webauthn_stage: webauthn_stage.clone(),
                passwordless_flow: passwordless_flow.clone(),
            })
        }
        RawStage::Password {
            failed_attempts_before_cancel,
            allow_show_password,
            backends,
        } => {
            let n = failed_attempts_before_cancel.unwrap_or(DEFAULT_FAILED_ATTEMPTS_BEFORE_CANCEL);
            if n == 0 {
                c.err(fi, format!("{p}.failed_attempts_before_cancel"), "must be at least 1");
            }
            StageDef::Password(PasswordDef {
                failed_attempts_before_cancel: n,
                allow_show_password: allow_show_password.unwrap_or(false),
                backends: super::ldap::backends(c, fi, p, backends),
            })
        }
        RawStage::UserLogin {
            session_duration,
            remember_me_offset,
            terminate_other_sessions,
        } => {
            let mut opt = |key: &str, v: &Option<String>| match v.as_deref().map(parse_duration) {
                None => None,
                Some(Ok(d)) if d.is_zero() => None,
                Some(Ok(d)) => Some(d),
                Some(Err(e)) => {
                    c.err(fi, format!("{p}.{key}"), e);
                    None
                }
            };
            StageDef::UserLogin(UserLoginDef {
                session_duration: opt("session_duration", session_duration),
                remember_me_offset: opt("remember_me_offset", remember_me_offset),
                terminate_other_sessions: terminate_other_sessions.unwrap_or(false),
            })
        }
        RawStage::UserLogout {
            terminate_other_sessions,
        } => StageDef::UserLogout {
            terminate_other_sessions: terminate_other_sessions.unwrap_or(false),
        },
        RawStage::Deny { deny_message } => StageDef::Deny(DenyDef {
            deny_message: deny_message.clone().unwrap_or_default(),
        }),
        RawStage::UserWrite {
            user_creation_mode,
            create_users_as_inactive,
            create_users_group,
        } => StageDef::UserWrite(UserWriteDef {
            user_creation_mode: c.choice(
                fi,
                format!("{p}.user_creation_mode"),
                user_creation_mode,
                UserCreationMode::CreateWhenRequired,
                UserCreationMode::ALL,
            ),
            create_users_as_inactive: create_users_as_inactive.unwrap_or(false),
            create_users_group: create_users_group.clone(),
        }),
        RawStage::UserDelete {} => StageDef::UserDelete,
        RawStage::Prompt {
            fields,
            validation_policies,
        } => StageDef::Prompt(PromptDef {
            fields: super::prompt::fields(c, fi, p, fields),
            validation_policies: validation_policies.clone(),
        }),
        RawStage::Email {
            from_address,
            subject,
            template,
            token_expiry,
            activate_user_on_success,
        } => {
            let from = from_address.clone().unwrap_or_else(|| DEFAULT_EMAIL_FROM.into());
            if !from.contains('@') || from.chars().any(char::is_control) {
                c.err(fi, format!("{p}.from_address"), format!("invalid address {from:?}"));
            }
            let expiry = c.duration(
                fi,
                format!("{p}.token_expiry"),
                token_expiry,
                DEFAULT_EMAIL_TOKEN_EXPIRY,
            );
            if expiry.is_zero() {
                c.err(fi, format!("{p}.token_expiry"), "must be greater than zero");
            }
            StageDef::Email(EmailDef {
                from_address: from,
                subject: subject.clone().unwrap_or_else(|| DEFAULT_EMAIL_SUBJECT.into()),
                template: c.choice(
                    fi,
                    format!("{p}.template"),
                    template,
                    EmailTemplate::PasswordReset,
                    EmailTemplate::ALL,
                ),
                token_expiry: expiry,
                activate_user_on_success: activate_user_on_success.unwrap_or(false),
            })
        }
        RawStage::Captcha {
            public_key,
            private_key,
            private_key_env,
            private_key_file,
            interactive,
            score_min_threshold,
            score_max_threshold,
            error_on_invalid_score,
            js_url,
            api_url,
            timeout,
        } => {
            let key = secret(
                c,
                fi,
                p,
                private_key.as_ref(),
                private_key_env.as_ref(),
                private_key_file.as_ref(),
                "private_key",
            );
            if key.is_none() && private_key.is_none() && private_key_env.is_none() && private_key_file.is_none() {
                c.err(
                    fi,
                    p.to_string(),
                    "a captcha stage needs private_key, private_key_env or private_key_file",
                );
            }
            let api = http_url(c, fi, format!("{p}.api_url"), api_url, DEFAULT_CAPTCHA_API);
            let js = http_url(c, fi, format!("{p}.js_url"), js_url, DEFAULT_CAPTCHA_JS);
            StageDef::Captcha(CaptchaSettings {
                public_key: public_key.clone(),
                private_key: key.unwrap_or_default(),
                interactive: interactive.unwrap_or(false),
                score_min_threshold: score_min_threshold.unwrap_or(DEFAULT_CAPTCHA_SCORE_MIN),
                score_max_threshold: score_max_threshold.unwrap_or(DEFAULT_CAPTCHA_SCORE_MAX),
                error_on_invalid_score: error_on_invalid_score.unwrap_or(true),
                js_url: js,
                api_url: api,
                timeout: c.duration(fi, format!("{p}.timeout"), timeout, DEFAULT_CAPTCHA_TIMEOUT),
            })
        }
        RawStage::Consent {
            mode,
            consent_expire_in,
        } => StageDef::Consent(ConsentDef {
            mode: consent_mode(c, fi, p, mode, consent_expire_in),
        }),
        RawStage::Redirect {
            mode,
            target_static,
            target_flow,
            keep_context,
        } => StageDef::Redirect(RedirectDef {
            target: redirect_target(c, fi, p, mode, target_static, target_flow),
            keep_context: keep_context.unwrap_or(true),
        }),
        RawStage::Dummy { throw_error } => StageDef::Dummy(DummyDef {
            throw_error: throw_error.unwrap_or(false),
        }),
        RawStage::Invitation {
            continue_flow_without_invitation,
        } => StageDef::Invitation(InvitationDef {
            continue_flow_without_invitation: continue_flow_without_invitation.unwrap_or(false),
        }),
        RawStage::AuthenticatorTotp { digits, friendly_name } => {
            StageDef::AuthenticatorTotp(super::authenticators::totp(c, fi, p, *digits, friendly_name))
        }
        RawStage::AuthenticatorStatic { token_count } => {
            StageDef::AuthenticatorStatic(super::authenticators::static_codes(c, fi, p, *token_count))
        }
        RawStage::AuthenticatorValidate {
            device_classes,
            not_configured_action,
            configuration_stages,
            webauthn_user_verification,
        } => StageDef::AuthenticatorValidate(super::authenticators::validate(
            c,
            fi,
            p,
            device_classes,
            not_configured_action,
            configuration_stages,
            webauthn_user_verification,
        )),
        RawStage::AuthenticatorWebauthn {
            user_verification,
            resident_key_requirement,
            authenticator_attachment,
            friendly_name,
        } => StageDef::AuthenticatorWebauthn(super::authenticators::webauthn(
            c,
            fi,
            p,
            user_verification,
            resident_key_requirement,
            authenticator_attachment,
            friendly_name,
        )),
    })
}

/// An `http(s)` URL setting with its default; a bad one is recorded at `path`.
fn http_url(c: &mut Collector<'_>, fi: usize, path: String, v: &Option<String>, default: &str) -> String {
    let url = v.clone().unwrap_or_else(|| default.into());
    if !url_ok(&url) {
        c.err(fi, path, format!("invalid URL {url:?} (expected http(s)://...)"));
    }
    url
}

/// `consent.mode` with `consent.consent_expire_in`.
fn consent_mode(
    c: &mut Collector<'_>,
    fi: usize,
    p: &str,
    mode: &Option<String>,
    consent_expire_in: &Option<String>,
) -> ConsentMode {
    #[derive(Clone, Copy)]
    enum M {
        Always,
        Permanent,
        Expiring,
    }
    let m = c.choice(
        fi,
        format!("{p}.mode"),
        mode,
        M::Expiring,
        &[
            ("always_require", M::Always),
            ("permanent", M::Permanent),
            ("expiring", M::Expiring),
        ],
    );
    let expire = c.duration(
        fi,
        format!("{p}.consent_expire_in"),
        consent_expire_in,
        DEFAULT_CONSENT_EXPIRE_IN,
    );
    match m {
        M::Always => ConsentMode::AlwaysRequire,
        M::Permanent => ConsentMode::Permanent,
        M::Expiring => ConsentMode::Expiring(expire),
    }
}

/// `redirect.mode` with `target_static` or `target_flow`.
fn redirect_target(
    c: &mut Collector<'_>,
    fi: usize,
    p: &str,
    mode: &Option<String>,
    target_static: &Option<String>,
    target_flow: &Option<String>,
) -> RedirectTarget {
    match (
        mode.as_deref().unwrap_or(DEFAULT_REDIRECT_MODE),
        target_static,
        target_flow,
    ) {
        ("static", Some(t), None) => {
            let ok = crate::config::values::next::safe_next(t).is_some() || url_ok(t);
            if !ok {
                c.err(
                    fi,
                    format!("{p}.target_static"),
                    format!("invalid target {t:?} (expected a path starting with / or an http(s) URL)"),
                );
            }
            RedirectTarget::Static(t.clone())
        }
        ("flow", None, Some(f)) => RedirectTarget::Flow(f.clone()),
        (m @ ("static" | "flow"), _, _) => {
            let (key, other) = if m == "static" {
                ("target_static", "target_flow")
            } else {
                ("target_flow", "target_static")
            };
            c.err(
                fi,
                format!("{p}.{key}"),
                format!("{m} mode needs {key} (and no {other})"),
            );
            RedirectTarget::Static("/".into())
        }
        (other, _, _) => {
            c.err(
                fi,
                format!("{p}.mode"),
                format!("unknown value {other:?} (expected one of: static, flow)"),
            );
            RedirectTarget::Static("/".into())
        }
    }
}

/// Checks references between stages (an identification stage's embedded password stage).
pub(crate) fn check_stage_refs(c: &mut Collector<'_>, files: &[RawFile], stages: &BTreeMap<String, StageDef>) {
    for (fi, f) in files.iter().enumerate() {
        for (name, raw) in &f.stages {
            if let RawStage::Identification {
                password_stage: Some(ps),
                ..
            } = raw
            {
                match stages.get(ps) {
                    Some(StageDef::Password(_)) => {}
                    Some(other) => c.err(
                        fi,
                        format!("stages.{name}.password_stage"),
                        format!("stage {ps:?} is a {} stage, not a password stage", other.kind()),
                    ),
                    None => c.err(
                        fi,
                        format!("stages.{name}.password_stage"),
                        format!("unknown stage {ps:?} (known: {})", known(stages.keys())),
                    ),
                }
            }
        }
    }
}

/// Checks the references the catalogue stages make: policies, flows, stages, groups exist;
/// an email stage has a `mail:` block.
pub(crate) fn check_refs(
    c: &mut Collector<'_>,
    files: &[RawFile],
    stages: &BTreeMap<String, StageDef>,
    policies: &BTreeMap<String, PolicyDef>,
    flow_slugs: &[String],
    has_mail: bool,
) {
    for (fi, f) in files.iter().enumerate() {
        for (name, raw) in &f.stages {
            let p = format!("stages.{name}");
            match raw {
                RawStage::Prompt {
                    validation_policies, ..
                } => {
                    for (i, pol) in validation_policies.iter().enumerate() {
                        if !policies.contains_key(pol) {
                            c.err(
                                fi,
                                format!("{p}.validation_policies[{i}]"),
                                format!("unknown policy {pol:?} (known: {})", known(policies.keys())),
                            );
                        }
                    }
                }
                RawStage::Email { .. } if !has_mail => c.err(
                    fi,
                    p.clone(),
                    "an email stage needs a `mail:` block in the main file (transport smtp or file)",
                ),
                RawStage::Redirect {
                    target_flow: Some(t), ..
                } if !flow_slugs.contains(t) => c.err(
                    fi,
                    format!("{p}.target_flow"),
                    format!("unknown flow {t:?} (known: {})", known(flow_slugs.iter())),
                ),
                RawStage::Identification {
                    enrollment_flow,
                    recovery_flow,
                    webauthn_stage,
                    passwordless_flow,
                    ..
                } => {
                    if let Some(w) = webauthn_stage {
                        match stages.get(w) {
                            Some(StageDef::AuthenticatorValidate(v))
                                if v.device_classes.contains(&DeviceClass::Webauthn) => {}
                            Some(other) => c.err(
                                fi,
                                format!("{p}.webauthn_stage"),
                                format!(
                                    "stage {w:?} is a {} stage, not an authenticator_validate stage with the webauthn device class",
                                    other.kind()
                                ),
                            ),
                            None => c.err(
                                fi,
                                format!("{p}.webauthn_stage"),
                                format!("unknown stage {w:?} (known: {})", known(stages.keys())),
                            ),
                        }
                    }
                    for (key, v) in [
                        ("enrollment_flow", enrollment_flow),
                        ("recovery_flow", recovery_flow),
                        ("passwordless_flow", passwordless_flow),
                    ] {
                        if let Some(t) = v.as_ref().filter(|t| !flow_slugs.contains(t)) {
                            c.err(
                                fi,
                                format!("{p}.{key}"),
                                format!("unknown flow {t:?} (known: {})", known(flow_slugs.iter())),
                            );
                        }
                    }
                }
                RawStage::AuthenticatorValidate {
                    configuration_stages, ..
                } => {
                    for (i, s) in configuration_stages.iter().enumerate() {
                        match stages.get(s) {
                            Some(
                                StageDef::AuthenticatorTotp(_)
                                | StageDef::AuthenticatorStatic(_)
                                | StageDef::AuthenticatorWebauthn(_),
                            ) => {}
                            Some(other) => c.err(
                                fi,
                                format!("{p}.configuration_stages[{i}]"),
                                format!(
                                    "stage {s:?} is a {} stage, not an authenticator setup stage",
                                    other.kind()
                                ),
                            ),
                            None => c.err(
                                fi,
                                format!("{p}.configuration_stages[{i}]"),
                                format!("unknown stage {s:?} (known: {})", known(stages.keys())),
                            ),
                        }
                    }
                }
                _ => {}
            }
        }
    }
}
