//! The mapping between authentik models and flowgate's native config, both ways: which model
//! is which stage or policy type, which attributes carry over as they are, which are durations
//! (authentik's `hours=1;minutes=30` against flowgate's `1h30m`) or references, and which
//! authentik attributes flowgate has no equivalent for (reported, never dropped silently).

use super::timedelta::timedelta_seconds;
use serde_json::Value;

/// How one attribute converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attr {
    /// Same value both ways.
    Same,
    /// authentik timedelta string ↔ flowgate duration.
    Duration,
    /// authentik integer seconds ↔ flowgate duration.
    Seconds,
    /// A reference to a stage (by name).
    StageRef,
    /// A reference to a flow (by slug).
    FlowRef,
    /// A reference to a group (by name).
    GroupRef,
    /// A list of stage references.
    StageRefs,
    /// A list of policy references.
    PolicyRefs,
    /// A list of prompt references, inlined as the prompt stage's `fields`.
    Prompts,
    /// authentik spells the value as a string (`"6"`), flowgate as a number.
    NumberString,
    /// Email template path (`email/password_reset.html`) ↔ name (`password_reset`).
    EmailTemplate,
    /// Authenticator device classes (unsupported classes are reported and left out).
    DeviceClasses,
}

/// One convertible attribute: flowgate key, authentik key, conversion.
pub type AttrMap = (&'static str, &'static str, Attr);

/// An authentik attribute flowgate does not implement, with the value that means "not used".
pub type Ignored = (&'static str, fn(&Value) -> bool);

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
    }
}

fn is_zero_delta(v: &Value) -> bool {
    match v {
        Value::String(s) => timedelta_seconds(s).is_ok_and(|x| x == 0.0),
        other => is_empty(other),
    }
}

fn only_inbuilt(v: &Value) -> bool {
    v.as_array().is_none_or(|a| {
        a.iter().all(|b| {
            matches!(
                b.as_str(),
                Some("authentik.core.auth.InbuiltBackend")
                    | Some("authentik.core.auth.TokenBackend")
                    | Some("authentik.sources.ldap.auth.LDAPBackend")
                    | Some("authentik.sources.kerberos.auth.KerberosBackend")
            )
        })
    })
}

fn is_default_binding(v: &Value) -> bool {
    matches!(v.as_str(), None | Some("no_binding"))
}

fn is_preferred(v: &Value) -> bool {
    matches!(v.as_str(), None | Some("preferred"))
}

fn is_thirty_days(v: &Value) -> bool {
    match v {
        Value::String(s) => timedelta_seconds(s).is_ok_and(|x| x == 0.0 || x == 30.0 * 86_400.0),
        other => is_empty(other),
    }
}

fn is_external(v: &Value) -> bool {
    matches!(v.as_str(), None | Some("external") | Some("internal"))
}

fn is_12(v: &Value) -> bool {
    v.as_i64().is_none_or(|n| n == 12)
}

fn is_default_email_attempts(v: &Value) -> bool {
    v.as_i64().is_none_or(|n| n == 5)
}

/// A stage or policy type with its authentik model and attribute mapping.
pub struct Kind {
    /// flowgate `type:`.
    pub native: &'static str,
    /// authentik model (`app_label.model`, lowercase).
    pub model: &'static str,
    /// Attributes that convert.
    pub attrs: &'static [AttrMap],
    /// authentik attributes flowgate lacks; reported when set to something other than "unused".
    pub ignored: &'static [Ignored],
}

impl std::fmt::Debug for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.model)
    }
}

impl PartialEq for Kind {
    fn eq(&self, other: &Self) -> bool {
        self.model == other.model
    }
}

impl Eq for Kind {}

/// Attributes of every model that carry no behaviour in flowgate and are dropped quietly:
/// names (already the key), the UI flow set, logging switches.
pub const QUIET: &[&str] = &["name", "flow_set", "component", "verbose_name", "meta_model_name", "pk"];

/// Stages.
pub const STAGES: &[Kind] = &[
    Kind {
        native: "identification",
        model: "authentik_stages_identification.identificationstage",
        attrs: &[
            ("user_fields", "user_fields", Attr::Same),
            ("case_insensitive_matching", "case_insensitive_matching", Attr::Same),
            ("pretend_user_exists", "pretend_user_exists", Attr::Same),
            ("show_matched_user", "show_matched_user", Attr::Same),
            ("password_stage", "password_stage", Attr::StageRef),
            ("enrollment_flow", "enrollment_flow", Attr::FlowRef),
            ("recovery_flow", "recovery_flow", Attr::FlowRef),
        ],
        ignored: &[
            ("sources", is_empty),
            ("captcha_stage", is_empty),
            ("webauthn_stage", is_empty),
            ("passwordless_flow", is_empty),
            ("enable_remember_me", is_empty),
            ("show_source_labels", is_empty),
            ("template", is_empty),
        ],
    },
    Kind {
        native: "password",
        model: "authentik_stages_password.passwordstage",
        attrs: &[
            (
                "failed_attempts_before_cancel",
                "failed_attempts_before_cancel",
                Attr::Same,
            ),
            ("allow_show_password", "allow_show_password", Attr::Same),
        ],
        ignored: &[("backends", only_inbuilt), ("configure_flow", is_empty)],
    },
    Kind {
        native: "user_login",
        model: "authentik_stages_user_login.userloginstage",
        attrs: &[
            ("session_duration", "session_duration", Attr::Duration),
            ("remember_me_offset", "remember_me_offset", Attr::Duration),
            ("terminate_other_sessions", "terminate_other_sessions", Attr::Same),
        ],
        ignored: &[
            ("remember_device", is_thirty_days),
            ("network_binding", is_default_binding),
            ("geoip_binding", is_default_binding),
        ],
    },
    Kind {
        native: "user_logout",
        model: "authentik_stages_user_logout.userlogoutstage",
        attrs: &[],
        ignored: &[],
    },
    Kind {
        native: "deny",
        model: "authentik_stages_deny.denystage",
        attrs: &[("deny_message", "deny_message", Attr::Same)],
        ignored: &[],
    },
    Kind {
        native: "user_write",
        model: "authentik_stages_user_write.userwritestage",
        attrs: &[
            ("user_creation_mode", "user_creation_mode", Attr::Same),
            ("create_users_as_inactive", "create_users_as_inactive", Attr::Same),
            ("create_users_group", "create_users_group", Attr::GroupRef),
        ],
        ignored: &[("user_type", is_external), ("user_path_template", is_empty)],
    },
    Kind {
        native: "user_delete",
        model: "authentik_stages_user_delete.userdeletestage",
        attrs: &[],
        ignored: &[],
    },
    Kind {
        native: "prompt",
        model: "authentik_stages_prompt.promptstage",
        attrs: &[
            ("fields", "fields", Attr::Prompts),
            ("validation_policies", "validation_policies", Attr::PolicyRefs),
        ],
        ignored: &[],
    },
    Kind {
        native: "email",
        model: "authentik_stages_email.emailstage",
        attrs: &[
            ("from_address", "from_address", Attr::Same),
            ("subject", "subject", Attr::Same),
            ("template", "template", Attr::EmailTemplate),
            ("token_expiry", "token_expiry", Attr::Duration),
            ("activate_user_on_success", "activate_user_on_success", Attr::Same),
        ],
        ignored: &[
            ("use_global_settings", |_| true),
            ("host", is_empty),
            ("port", |_| true),
            ("username", is_empty),
            ("password", is_empty),
            ("use_tls", is_empty),
            ("use_ssl", is_empty),
            ("timeout", |_| true),
            ("recovery_max_attempts", is_default_email_attempts),
            ("recovery_cache_timeout", |_| true),
        ],
    },
    Kind {
        native: "captcha",
        model: "authentik_stages_captcha.captchastage",
        attrs: &[
            ("public_key", "public_key", Attr::Same),
            ("private_key", "private_key", Attr::Same),
            ("interactive", "interactive", Attr::Same),
            ("score_min_threshold", "score_min_threshold", Attr::Same),
            ("score_max_threshold", "score_max_threshold", Attr::Same),
            ("error_on_invalid_score", "error_on_invalid_score", Attr::Same),
            ("js_url", "js_url", Attr::Same),
            ("api_url", "api_url", Attr::Same),
        ],
        ignored: &[],
    },
    Kind {
        native: "consent",
        model: "authentik_stages_consent.consentstage",
        attrs: &[
            ("mode", "mode", Attr::Same),
            ("consent_expire_in", "consent_expire_in", Attr::Duration),
        ],
        ignored: &[],
    },
    Kind {
        native: "redirect",
        model: "authentik_stages_redirect.redirectstage",
        attrs: &[
            ("mode", "mode", Attr::Same),
            ("target_static", "target_static", Attr::Same),
            ("target_flow", "target_flow", Attr::FlowRef),
            ("keep_context", "keep_context", Attr::Same),
        ],
        ignored: &[],
    },
    Kind {
        native: "dummy",
        model: "authentik_stages_dummy.dummystage",
        attrs: &[("throw_error", "throw_error", Attr::Same)],
        ignored: &[],
    },
    Kind {
        native: "invitation",
        model: "authentik_stages_invitation.invitationstage",
        attrs: &[(
            "continue_flow_without_invitation",
            "continue_flow_without_invitation",
            Attr::Same,
        )],
        ignored: &[],
    },
    Kind {
        native: "authenticator_totp",
        model: "authentik_stages_authenticator_totp.authenticatortotpstage",
        attrs: &[
            ("digits", "digits", Attr::NumberString),
            ("friendly_name", "friendly_name", Attr::Same),
        ],
        ignored: &[("configure_flow", is_empty)],
    },
    Kind {
        native: "authenticator_static",
        model: "authentik_stages_authenticator_static.authenticatorstaticstage",
        attrs: &[("token_count", "token_count", Attr::Same)],
        ignored: &[
            ("configure_flow", is_empty),
            ("token_length", is_12),
            ("friendly_name", is_empty),
        ],
    },
    Kind {
        native: "authenticator_validate",
        model: "authentik_stages_authenticator_validate.authenticatorvalidatestage",
        attrs: &[
            ("device_classes", "device_classes", Attr::DeviceClasses),
            ("not_configured_action", "not_configured_action", Attr::Same),
            ("configuration_stages", "configuration_stages", Attr::StageRefs),
        ],
        ignored: &[
            ("last_auth_threshold", is_zero_delta),
            ("webauthn_user_verification", is_preferred),
            ("webauthn_allowed_device_types", is_empty),
            ("webauthn_hints", is_empty),
        ],
    },
];

/// Policies.
pub const POLICIES: &[Kind] = &[
    Kind {
        native: "expression",
        model: "authentik_policies_expression.expressionpolicy",
        attrs: &[("expression", "expression", Attr::Same)],
        ignored: &[("execution_logging", is_empty)],
    },
    Kind {
        native: "password",
        model: "authentik_policies_password.passwordpolicy",
        attrs: &[
            ("password_field", "password_field", Attr::Same),
            ("check_static_rules", "check_static_rules", Attr::Same),
            ("check_have_i_been_pwned", "check_have_i_been_pwned", Attr::Same),
            ("check_zxcvbn", "check_zxcvbn", Attr::Same),
            ("amount_digits", "amount_digits", Attr::Same),
            ("amount_uppercase", "amount_uppercase", Attr::Same),
            ("amount_lowercase", "amount_lowercase", Attr::Same),
            ("amount_symbols", "amount_symbols", Attr::Same),
            ("length_min", "length_min", Attr::Same),
            ("symbol_charset", "symbol_charset", Attr::Same),
            ("error_message", "error_message", Attr::Same),
            ("hibp_allowed_count", "hibp_allowed_count", Attr::Same),
            ("zxcvbn_score_threshold", "zxcvbn_score_threshold", Attr::Same),
        ],
        ignored: &[("execution_logging", is_empty)],
    },
    Kind {
        native: "reputation",
        model: "authentik_policies_reputation.reputationpolicy",
        attrs: &[
            ("check_ip", "check_ip", Attr::Same),
            ("check_username", "check_username", Attr::Same),
            ("threshold", "threshold", Attr::Same),
        ],
        ignored: &[("execution_logging", is_empty)],
    },
    Kind {
        native: "dummy",
        model: "authentik_policies_dummy.dummypolicy",
        attrs: &[
            ("result", "result", Attr::Same),
            ("wait_min", "wait_min", Attr::Seconds),
            ("wait_max", "wait_max", Attr::Seconds),
        ],
        ignored: &[("execution_logging", is_empty)],
    },
    Kind {
        native: "password_expiry",
        model: "authentik_policies_expiry.passwordexpirypolicy",
        attrs: &[("days", "days", Attr::Same), ("deny_only", "deny_only", Attr::Same)],
        ignored: &[("execution_logging", is_empty)],
    },
    // flowgate's request matchers have no authentik model; these names let them survive an
    // export → import round trip (authentik itself refuses them).
    Kind {
        native: "path",
        model: "flowgate.pathpolicy",
        attrs: &[("regex", "regex", Attr::Same)],
        ignored: &[],
    },
    Kind {
        native: "method",
        model: "flowgate.methodpolicy",
        attrs: &[("methods", "methods", Attr::Same)],
        ignored: &[],
    },
    Kind {
        native: "source_cidr",
        model: "flowgate.sourcecidrpolicy",
        attrs: &[("cidrs", "cidrs", Attr::Same)],
        ignored: &[],
    },
    Kind {
        native: "header",
        model: "flowgate.headerpolicy",
        attrs: &[("name", "header_name", Attr::Same), ("regex", "regex", Attr::Same)],
        ignored: &[],
    },
    Kind {
        native: "time",
        model: "flowgate.timepolicy",
        attrs: &[
            ("weekdays", "weekdays", Attr::Same),
            ("from", "from", Attr::Same),
            ("to", "to", Attr::Same),
        ],
        ignored: &[],
    },
];

/// Models flowgate knows but does not import, with the reason given to the user.
pub const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "authentik_stages_authenticator_webauthn.",
        "WebAuthn authenticators are not implemented",
    ),
    (
        "authentik_stages_authenticator_duo.",
        "Duo authenticators are not implemented",
    ),
    (
        "authentik_stages_authenticator_sms.",
        "SMS authenticators are not implemented",
    ),
    (
        "authentik_stages_authenticator_email.",
        "email authenticators are not implemented",
    ),
    ("authentik_stages_source.", "federation sources are not implemented"),
    ("authentik_stages_mtls.", "mutual TLS stages are not implemented"),
    (
        "authentik_stages_authenticator_endpoint",
        "endpoint stages are not implemented",
    ),
    (
        "authentik_policies_event_matcher.",
        "event matcher policies need authentik's event log",
    ),
    (
        "authentik_policies_geoip.",
        "GeoIP policies need a GeoIP database, which flowgate does not ship",
    ),
    (
        "authentik_policies_unique_password.",
        "unique-password policies need a password history",
    ),
    (
        "authentik_blueprints.metaapplyblueprint",
        "blueprint dependencies: import the other file too",
    ),
    ("authentik_sources_", "federation sources are not implemented"),
    (
        "authentik_providers_",
        "flowgate is itself the proxy; providers do not apply",
    ),
    (
        "authentik_core.application",
        "apps are configured under `apps:` in the main file",
    ),
    ("authentik_core.token", "API tokens are not implemented"),
    ("authentik_brands.", "brands: set `ui.title` and `ui.templates` instead"),
    ("authentik_outposts.", "flowgate is itself the outpost"),
    ("authentik_rbac.", "RBAC roles are not implemented"),
    ("authentik_events.", "events and notifications are not implemented"),
    (
        "authentik_stages_invitation.invitation",
        "invitations are data: create them with `flowgate invitation create`",
    ),
];

/// The stage kind of an authentik model, or of a flowgate stage type.
pub fn stage_by_model(model: &str) -> Option<&'static Kind> {
    STAGES.iter().find(|k| k.model == model)
}

/// The policy kind of an authentik model.
pub fn policy_by_model(model: &str) -> Option<&'static Kind> {
    POLICIES.iter().find(|k| k.model == model)
}

/// The stage kind of a flowgate type.
pub fn stage_by_native(t: &str) -> Option<&'static Kind> {
    STAGES.iter().find(|k| k.native == t)
}

/// The policy kind of a flowgate type.
pub fn policy_by_native(t: &str) -> Option<&'static Kind> {
    POLICIES.iter().find(|k| k.native == t)
}

/// Why a model is not imported, if flowgate knows it is unsupported.
pub fn unsupported_reason(model: &str) -> Option<&'static str> {
    UNSUPPORTED.iter().find(|(p, _)| model.starts_with(p)).map(|(_, r)| *r)
}

/// Email template path ↔ name.
pub fn email_template_name(path: &str) -> String {
    path.trim_start_matches("email/").trim_end_matches(".html").to_string()
}

/// The attributes of an authentik prompt that map one to one onto a native prompt field (import
/// copies them in, export writes them out).
pub(crate) const PROMPT_FIELD_KEYS: &[&str] = &[
    "field_key",
    "label",
    "type",
    "required",
    "placeholder",
    "initial_value",
    "sub_text",
    "order",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_names() {
        assert_eq!(email_template_name("email/password_reset.html"), "password_reset");
    }

    #[test]
    fn every_native_type_has_one_model() {
        for k in STAGES.iter().chain(POLICIES) {
            assert_eq!(STAGES.iter().chain(POLICIES).filter(|o| o.model == k.model).count(), 1);
        }
    }
}
