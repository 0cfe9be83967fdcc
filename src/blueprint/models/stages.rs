//! The stage kinds: each flowgate stage type with its authentik model and attribute mapping.

use super::unused::*;
use super::{attr, Attr, Kind};

/// Stages.
pub const STAGES: &[Kind] = &[
    Kind {
        native: "identification",
        model: "authentik_stages_identification.identificationstage",
        attrs: &[
            attr("user_fields", Attr::Same),
            attr("case_insensitive_matching", Attr::Same),
            attr("pretend_user_exists", Attr::Same),
            attr("show_matched_user", Attr::Same),
            attr("password_stage", Attr::StageRef),
            attr("enrollment_flow", Attr::FlowRef),
            attr("recovery_flow", Attr::FlowRef),
            attr("sources", Attr::SourceRefs),
            attr("show_source_labels", Attr::Same),
            attr("webauthn_stage", Attr::StageRef),
            attr("passwordless_flow", Attr::FlowRef),
        ],
        ignored: &[
            ("captcha_stage", is_empty),
            ("enable_remember_me", is_empty),
            ("template", is_empty),
        ],
    },
    Kind {
        native: "password",
        model: "authentik_stages_password.passwordstage",
        attrs: &[
            attr("failed_attempts_before_cancel", Attr::Same),
            attr("allow_show_password", Attr::Same),
        ],
        ignored: &[("backends", only_inbuilt), ("configure_flow", is_empty)],
    },
    Kind {
        native: "user_login",
        model: "authentik_stages_user_login.userloginstage",
        attrs: &[
            attr("session_duration", Attr::Duration),
            attr("remember_me_offset", Attr::Duration),
            attr("terminate_other_sessions", Attr::Same),
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
        attrs: &[attr("deny_message", Attr::Same)],
        ignored: &[],
    },
    Kind {
        native: "user_write",
        model: "authentik_stages_user_write.userwritestage",
        attrs: &[
            attr("user_creation_mode", Attr::Same),
            attr("create_users_as_inactive", Attr::Same),
            attr("create_users_group", Attr::GroupRef),
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
            attr("fields", Attr::Prompts),
            attr("validation_policies", Attr::PolicyRefs),
        ],
        ignored: &[],
    },
    Kind {
        native: "email",
        model: "authentik_stages_email.emailstage",
        attrs: &[
            attr("from_address", Attr::Same),
            attr("subject", Attr::Same),
            attr("template", Attr::EmailTemplate),
            attr("token_expiry", Attr::Duration),
            attr("activate_user_on_success", Attr::Same),
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
            attr("public_key", Attr::Same),
            attr("private_key", Attr::Same),
            attr("interactive", Attr::Same),
            attr("score_min_threshold", Attr::Same),
            attr("score_max_threshold", Attr::Same),
            attr("error_on_invalid_score", Attr::Same),
            attr("js_url", Attr::Same),
            attr("api_url", Attr::Same),
        ],
        ignored: &[],
    },
    Kind {
        native: "consent",
        model: "authentik_stages_consent.consentstage",
        attrs: &[attr("mode", Attr::Same), attr("consent_expire_in", Attr::Duration)],
        ignored: &[],
    },
    Kind {
        native: "redirect",
        model: "authentik_stages_redirect.redirectstage",
        attrs: &[
            attr("mode", Attr::Same),
            attr("target_static", Attr::Same),
            attr("target_flow", Attr::FlowRef),
            attr("keep_context", Attr::Same),
        ],
        ignored: &[],
    },
    Kind {
        native: "dummy",
        model: "authentik_stages_dummy.dummystage",
        attrs: &[attr("throw_error", Attr::Same)],
        ignored: &[],
    },
    Kind {
        native: "invitation",
        model: "authentik_stages_invitation.invitationstage",
        attrs: &[attr("continue_flow_without_invitation", Attr::Same)],
        ignored: &[],
    },
    Kind {
        native: "authenticator_totp",
        model: "authentik_stages_authenticator_totp.authenticatortotpstage",
        attrs: &[attr("digits", Attr::NumberString), attr("friendly_name", Attr::Same)],
        ignored: &[("configure_flow", is_empty)],
    },
    Kind {
        native: "authenticator_static",
        model: "authentik_stages_authenticator_static.authenticatorstaticstage",
        attrs: &[attr("token_count", Attr::Same)],
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
            attr("device_classes", Attr::DeviceClasses),
            attr("not_configured_action", Attr::Same),
            attr("configuration_stages", Attr::StageRefs),
            attr("webauthn_user_verification", Attr::Same),
        ],
        ignored: &[
            ("last_auth_threshold", is_zero_delta),
            ("webauthn_allowed_device_types", is_empty),
            ("webauthn_hints", is_empty),
        ],
    },
    Kind {
        native: "authenticator_webauthn",
        model: "authentik_stages_authenticator_webauthn.authenticatorwebauthnstage",
        attrs: &[
            attr("user_verification", Attr::Same),
            attr("resident_key_requirement", Attr::Same),
            attr("authenticator_attachment", Attr::Same),
            attr("friendly_name", Attr::Same),
        ],
        ignored: &[
            ("configure_flow", is_empty),
            ("device_type_restrictions", is_empty),
            ("hints", is_empty),
            ("max_attempts", is_zero),
        ],
    },
];
