//! Validation of the stage catalogue beyond the login core (user_write, prompt, email, captcha,
//! consent, redirect, dummy, invitation, authenticators) and of the references between stages,
//! policies and flows. The `mail:`, `ui:` and `rate_limits:` blocks are in `services.rs`.

use super::secrets::{secret, url_ok};
use super::{known, Collector};
use crate::config::model::*;
use crate::config::raw::*;
use std::collections::BTreeMap;

/// Default captcha endpoints (reCAPTCHA, as authentik).
const DEFAULT_CAPTCHA_JS: &str = "https://www.recaptcha.net/recaptcha/api.js";
const DEFAULT_CAPTCHA_API: &str = "https://www.recaptcha.net/recaptcha/api/siteverify";
/// The stages that `flows::stage` does not handle itself.
pub(crate) fn stage(c: &mut Collector<'_>, fi: usize, p: &str, raw: &RawStage) -> StageDef {
    match raw {
        RawStage::UserWrite {
            user_creation_mode,
            create_users_as_inactive,
            create_users_group,
        } => StageDef::UserWrite {
            user_creation_mode: c.choice(
                fi,
                format!("{p}.user_creation_mode"),
                user_creation_mode,
                UserCreationMode::CreateWhenRequired,
                &[
                    ("never_create", UserCreationMode::NeverCreate),
                    ("create_when_required", UserCreationMode::CreateWhenRequired),
                    ("always_create", UserCreationMode::AlwaysCreate),
                ],
            ),
            create_users_as_inactive: create_users_as_inactive.unwrap_or(false),
            create_users_group: create_users_group.clone(),
        },
        RawStage::UserDelete {} => StageDef::UserDelete,
        RawStage::Prompt {
            fields,
            validation_policies,
        } => {
            let mut out: Vec<PromptField> = Vec::new();
            for (i, f) in fields.iter().enumerate() {
                let fp = format!("{p}.fields[{i}]");
                let key_ok = !f.field_key.is_empty()
                    && f.field_key.len() <= 100
                    && f.field_key
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
                if !key_ok {
                    c.err(
                        fi,
                        format!("{fp}.field_key"),
                        format!(
                            "invalid field key {:?} (expected 1-100 of A-Z a-z 0-9 _ . -)",
                            f.field_key
                        ),
                    );
                }
                if f.field_key == "csrf_token" || f.field_key == "component" {
                    c.err(fi, format!("{fp}.field_key"), format!("{:?} is reserved", f.field_key));
                }
                if out.iter().any(|o| o.field_key == f.field_key) {
                    c.err(
                        fi,
                        format!("{fp}.field_key"),
                        format!("field key {:?} is used twice in this stage", f.field_key),
                    );
                }
                let Some(kind) = PromptKind::ALL.iter().find(|(n, _)| *n == f.kind).map(|(_, k)| *k) else {
                    let names: Vec<&str> = PromptKind::ALL.iter().map(|(n, _)| *n).collect();
                    c.err(
                        fi,
                        format!("{fp}.type"),
                        format!(
                            "unknown prompt type {:?} (expected one of: {})",
                            f.kind,
                            names.join(", ")
                        ),
                    );
                    continue;
                };
                let is_choice = matches!(kind, PromptKind::RadioButtonGroup | PromptKind::Dropdown);
                if is_choice && f.choices.is_empty() {
                    c.err(fi, format!("{fp}.choices"), "a choice field needs at least one choice");
                }
                if !is_choice && !f.choices.is_empty() {
                    c.err(
                        fi,
                        format!("{fp}.choices"),
                        "only radio-button-group and dropdown take choices",
                    );
                }
                out.push(PromptField {
                    field_key: f.field_key.clone(),
                    label: f.label.clone().unwrap_or_else(|| f.field_key.clone()),
                    kind,
                    required: match kind {
                        PromptKind::Checkbox
                        | PromptKind::Separator
                        | PromptKind::Hidden
                        | PromptKind::Static
                        | PromptKind::TextReadOnly
                        | PromptKind::TextAreaReadOnly => false,
                        _ => f.required.unwrap_or(true),
                    },
                    placeholder: f.placeholder.clone().unwrap_or_default(),
                    initial_value: f.initial_value.clone().unwrap_or_default(),
                    sub_text: f.sub_text.clone().unwrap_or_default(),
                    order: f.order.unwrap_or(0),
                    choices: f.choices.clone(),
                });
            }
            if out.iter().filter(|f| f.kind == PromptKind::Password).count() > 2 {
                c.err(
                    fi,
                    format!("{p}.fields"),
                    "at most two password fields (a password and its repeat)",
                );
            }
            // Stable: equal orders keep file order.
            out.sort_by_key(|f| f.order);
            StageDef::Prompt {
                fields: out,
                validation_policies: validation_policies.clone(),
            }
        }
        RawStage::Email {
            from_address,
            subject,
            template,
            token_expiry,
            activate_user_on_success,
        } => {
            let from = from_address.clone().unwrap_or_else(|| "flowgate@localhost".into());
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
            StageDef::Email {
                from_address: from,
                subject: subject.clone().unwrap_or_else(|| "flowgate".into()),
                template: c.choice(
                    fi,
                    format!("{p}.template"),
                    template,
                    EmailTemplate::PasswordReset,
                    &[
                        ("account_confirmation", EmailTemplate::AccountConfirmation),
                        ("password_reset", EmailTemplate::PasswordReset),
                    ],
                ),
                token_expiry: expiry,
                activate_user_on_success: activate_user_on_success.unwrap_or(false),
            }
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
            let api = api_url.clone().unwrap_or_else(|| DEFAULT_CAPTCHA_API.into());
            if !url_ok(&api) {
                c.err(
                    fi,
                    format!("{p}.api_url"),
                    format!("invalid URL {api:?} (expected http(s)://...)"),
                );
            }
            let js = js_url.clone().unwrap_or_else(|| DEFAULT_CAPTCHA_JS.into());
            if !url_ok(&js) {
                c.err(
                    fi,
                    format!("{p}.js_url"),
                    format!("invalid URL {js:?} (expected http(s)://...)"),
                );
            }
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
        } => {
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
            StageDef::Consent {
                mode: match m {
                    M::Always => ConsentMode::AlwaysRequire,
                    M::Permanent => ConsentMode::Permanent,
                    M::Expiring => ConsentMode::Expiring(expire),
                },
            }
        }
        RawStage::Redirect {
            mode,
            target_static,
            target_flow,
            keep_context,
        } => {
            let target = match (mode.as_deref().unwrap_or("static"), target_static, target_flow) {
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
                ("static", _, _) => {
                    c.err(
                        fi,
                        format!("{p}.target_static"),
                        "static mode needs target_static (and no target_flow)",
                    );
                    RedirectTarget::Static("/".into())
                }
                ("flow", _, _) => {
                    c.err(
                        fi,
                        format!("{p}.target_flow"),
                        "flow mode needs target_flow (and no target_static)",
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
            };
            StageDef::Redirect {
                target,
                keep_context: keep_context.unwrap_or(true),
            }
        }
        RawStage::Dummy { throw_error } => StageDef::Dummy {
            throw_error: throw_error.unwrap_or(false),
        },
        RawStage::Invitation {
            continue_flow_without_invitation,
        } => StageDef::Invitation {
            continue_flow_without_invitation: continue_flow_without_invitation.unwrap_or(false),
        },
        RawStage::AuthenticatorTotp { digits, friendly_name } => {
            let d = digits.unwrap_or(DEFAULT_TOTP_DIGITS);
            if d != 6 && d != 8 {
                c.err(
                    fi,
                    format!("{p}.digits"),
                    format!("invalid digits {d} (expected 6 or 8)"),
                );
            }
            StageDef::AuthenticatorTotp {
                digits: d,
                friendly_name: friendly_name.clone().unwrap_or_else(|| "TOTP".into()),
            }
        }
        RawStage::AuthenticatorStatic { token_count } => {
            let n = token_count.unwrap_or(DEFAULT_STATIC_TOKEN_COUNT);
            if !(1..=50).contains(&n) {
                c.err(
                    fi,
                    format!("{p}.token_count"),
                    format!("invalid count {n} (expected 1 to 50)"),
                );
            }
            StageDef::AuthenticatorStatic { token_count: n }
        }
        RawStage::AuthenticatorValidate {
            device_classes,
            not_configured_action,
            configuration_stages,
        } => {
            let mut classes = Vec::new();
            for (i, d) in device_classes
                .clone()
                .unwrap_or_else(|| vec!["totp".into(), "static".into()])
                .iter()
                .enumerate()
            {
                match d.as_str() {
                    "totp" => classes.push(DeviceClass::Totp),
                    "static" => classes.push(DeviceClass::Static),
                    "webauthn" | "duo" | "sms" | "email" => c.err(
                        fi,
                        format!("{p}.device_classes[{i}]"),
                        format!("device class {d:?} is not supported by flowgate (supported: totp, static)"),
                    ),
                    _ => c.err(
                        fi,
                        format!("{p}.device_classes[{i}]"),
                        format!("unknown device class {d:?} (expected one of: totp, static)"),
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
                &[
                    ("skip", NotConfiguredAction::Skip),
                    ("deny", NotConfiguredAction::Deny),
                    ("configure", NotConfiguredAction::Configure),
                ],
            );
            if action == NotConfiguredAction::Configure && configuration_stages.is_empty() {
                c.err(
                    fi,
                    format!("{p}.configuration_stages"),
                    "not_configured_action configure needs at least one configuration stage",
                );
            }
            StageDef::AuthenticatorValidate {
                device_classes: classes,
                not_configured_action: action,
                configuration_stages: configuration_stages.clone(),
            }
        }
        // The core stages are validated by `flows::stage`.
        RawStage::Identification { .. }
        | RawStage::Password { .. }
        | RawStage::UserLogin { .. }
        | RawStage::UserLogout {}
        | RawStage::Deny { .. } => StageDef::UserLogout,
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
                    ..
                } => {
                    for (key, v) in [("enrollment_flow", enrollment_flow), ("recovery_flow", recovery_flow)] {
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
                            Some(StageDef::AuthenticatorTotp { .. } | StageDef::AuthenticatorStatic { .. }) => {}
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
