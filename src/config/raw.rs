//! Serde mirror of the YAML files, field for field. Nothing here is validated beyond its type:
//! `validate/` turns these into the model the rest of flowgate sees. Fields mirror the YAML
//! keys one to one and are documented in `docs/configuration.md`.
#![allow(missing_docs)]

use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// `config/flowgate.yaml`, or any included file (includes may only hold flows, stages and policies).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub listen: Option<RawListen>,
    pub data_dir: Option<String>,
    pub session: Option<RawSession>,
    pub identity: Option<RawIdentity>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    #[serde(default)]
    pub strip_headers: Vec<String>,
    pub logout: Option<RawLogout>,
    pub default_flows: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub apps: Vec<RawApp>,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub blueprints: Vec<String>,
    #[serde(default)]
    pub flows: Vec<RawFlow>,
    #[serde(default)]
    pub stages: BTreeMap<String, RawStage>,
    #[serde(default)]
    pub policies: BTreeMap<String, RawPolicy>,
    pub limits: Option<RawLimits>,
    pub mail: Option<RawMail>,
    pub ui: Option<RawUi>,
    pub rate_limits: Option<RawRateLimits>,
    pub portal: Option<RawPortal>,
    pub admin: Option<RawAdmin>,
    pub events: Option<RawEvents>,
    /// `sources:` (external identity; `type: ldap` in `raw_clients.rs`, `type: oauth` in
    /// `raw_sources.rs`).
    #[serde(default)]
    pub sources: BTreeMap<String, super::raw_clients::RawSource>,
}

/// `admin:`: the admin listener (metrics, health, admin API; docs/configuration.md).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Address of the admin listener (`IP:PORT`); never a public listener's address.
    pub listen: String,
    /// Environment variable holding the admin API's bearer token.
    pub token_env: Option<String>,
    /// File holding the admin API's bearer token.
    pub token_file: Option<String>,
}

/// `events:`: audit events (they also go to the log).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEvents {
    /// JSON-lines file the events are appended to.
    pub file: Option<String>,
    /// Size in bytes at which the file is rotated.
    pub max_bytes: Option<u64>,
    /// Rotated files kept (`events.jsonl.1` …).
    pub keep: Option<u32>,
}

/// `rate_limits:`: `N/duration` or `off` for each.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimits {
    pub password_per_ip: Option<String>,
    pub password_per_username: Option<String>,
    pub code_per_ip: Option<String>,
    pub code_per_username: Option<String>,
    pub mail_per_address: Option<String>,
    pub mail_per_ip: Option<String>,
    pub signup_per_ip: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawListen {
    pub http: Option<String>,
    pub https: Option<RawHttps>,
    /// Connection worker threads (default: one per CPU).
    pub workers: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHttps {
    pub addr: String,
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    pub cookie: Option<String>,
    pub ttl: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_sessions: Option<u64>,
    pub max_pending_flows: Option<u64>,
    pub flow_timeout: Option<String>,
    pub store: Option<String>,
    pub redis: Option<RawRedis>,
    pub cookie_domain: Option<String>,
}

/// `portal:` (single sign-on for apps outside `session.cookie_domain`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPortal {
    pub host: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub url_file: Option<String>,
    pub key_prefix: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    pub database: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    pub seed: Option<String>,
    pub argon2: Option<RawArgon2>,
    pub reserved_usernames: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawArgon2 {
    pub memory_kib: Option<u32>,
    pub iterations: Option<u32>,
    pub parallelism: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLogout {
    pub path: Option<String>,
    pub flow: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_form_bytes: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_body_bytes: Option<u64>,
    pub header_timeout: Option<String>,
    pub keepalive_timeout: Option<String>,
    pub shutdown_timeout: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApp {
    pub name: String,
    #[serde(default)]
    pub hosts: Vec<String>,
    pub path_prefix: Option<String>,
    pub upstream: String,
    pub headers: Option<RawHeaders>,
    #[serde(default)]
    pub skip_auth: Vec<String>,
    #[serde(default)]
    pub policies: Vec<RawPolicyBinding>,
    pub policy_engine_mode: Option<String>,
    pub authentication_flow: Option<String>,
    pub connect_timeout: Option<String>,
    pub read_timeout: Option<String>,
    pub max_body_bytes: Option<u64>,
    /// API clients (`Authorization: Basic` or `Bearer`) with app passwords.
    pub basic_auth: Option<bool>,
    /// With `basic_auth`, the user's own password is accepted too.
    pub basic_auth_user_passwords: Option<bool>,
    /// Signed identity (a JWT in a header) on every authenticated request.
    pub jwt: Option<super::raw_clients::RawJwt>,
}

/// `headers:` is either a preset name or a map of custom header names.
#[derive(Debug)]
pub enum RawHeaders {
    Preset(String),
    Custom(RawCustomHeaders),
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCustomHeaders {
    pub user: Option<String>,
    pub email: Option<String>,
    pub groups: Option<String>,
    pub name: Option<String>,
    pub uid: Option<String>,
    pub groups_separator: Option<String>,
}

impl JsonSchema for RawHeaders {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RawHeaders".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let custom = generator.subschema_for::<RawCustomHeaders>();
        let presets: Vec<&str> = super::presets::PRESET_NAMES.to_vec();
        schemars::json_schema!({
            "description": "A preset name or a map of custom header names.",
            "anyOf": [ { "type": "string", "enum": presets }, custom ]
        })
    }
}

impl<'de> Deserialize<'de> for RawHeaders {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawHeaders;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(
                    f,
                    "a preset name ({}) or a map of custom header names",
                    super::presets::PRESET_NAMES.join(", ")
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawHeaders, E> {
                Ok(RawHeaders::Preset(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawHeaders, A::Error> {
                RawCustomHeaders::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawHeaders::Custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFlow {
    pub slug: String,
    pub name: Option<String>,
    pub title: Option<String>,
    pub designation: String,
    pub authentication: Option<String>,
    pub denied_action: Option<String>,
    pub policy_engine_mode: Option<String>,
    pub layout: Option<String>,
    #[serde(default)]
    pub policies: Vec<RawPolicyBinding>,
    #[serde(default)]
    pub bindings: Vec<RawBinding>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBinding {
    pub stage: String,
    pub order: i64,
    pub evaluate_on_plan: Option<bool>,
    pub re_evaluate_policies: Option<bool>,
    pub invalid_response_action: Option<String>,
    pub policy_engine_mode: Option<String>,
    #[serde(default)]
    pub policies: Vec<RawPolicyBinding>,
}

/// A policy binding: exactly one of `policy`, `group` or `user`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPolicyBinding {
    pub policy: Option<String>,
    pub group: Option<String>,
    pub user: Option<String>,
    pub negate: Option<bool>,
    pub enabled: Option<bool>,
    pub order: Option<i64>,
    pub timeout: Option<String>,
    pub failure_result: Option<bool>,
}

/// A stage definition, tagged by `type:`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawStage {
    Identification {
        #[serde(default)]
        user_fields: Vec<String>,
        case_insensitive_matching: Option<bool>,
        pretend_user_exists: Option<bool>,
        show_matched_user: Option<bool>,
        password_stage: Option<String>,
        enrollment_flow: Option<String>,
        recovery_flow: Option<String>,
        /// Sources shown as login buttons.
        #[serde(default)]
        sources: Vec<String>,
        show_source_labels: Option<bool>,
        webauthn_stage: Option<String>,
        passwordless_flow: Option<String>,
    },
    Password {
        failed_attempts_before_cancel: Option<u32>,
        allow_show_password: Option<bool>,
        /// Where passwords are checked, in order: `local` and `type: ldap` source keys.
        #[serde(default)]
        backends: Vec<String>,
    },
    UserLogin {
        session_duration: Option<String>,
        remember_me_offset: Option<String>,
        terminate_other_sessions: Option<bool>,
    },
    UserLogout {
        terminate_other_sessions: Option<bool>,
    },
    Deny {
        deny_message: Option<String>,
    },
    UserWrite {
        user_creation_mode: Option<String>,
        create_users_as_inactive: Option<bool>,
        create_users_group: Option<String>,
    },
    UserDelete {},
    Prompt {
        #[serde(default)]
        fields: Vec<RawPromptField>,
        #[serde(default)]
        validation_policies: Vec<String>,
    },
    Email {
        from_address: Option<String>,
        subject: Option<String>,
        template: Option<String>,
        token_expiry: Option<String>,
        activate_user_on_success: Option<bool>,
    },
    Captcha {
        public_key: String,
        private_key: Option<String>,
        private_key_env: Option<String>,
        private_key_file: Option<String>,
        interactive: Option<bool>,
        score_min_threshold: Option<f64>,
        score_max_threshold: Option<f64>,
        error_on_invalid_score: Option<bool>,
        js_url: Option<String>,
        api_url: Option<String>,
        timeout: Option<String>,
    },
    Consent {
        mode: Option<String>,
        consent_expire_in: Option<String>,
    },
    Redirect {
        mode: Option<String>,
        target_static: Option<String>,
        target_flow: Option<String>,
        keep_context: Option<bool>,
    },
    Dummy {
        throw_error: Option<bool>,
    },
    Invitation {
        continue_flow_without_invitation: Option<bool>,
    },
    AuthenticatorTotp {
        digits: Option<u32>,
        friendly_name: Option<String>,
    },
    AuthenticatorStatic {
        token_count: Option<u32>,
    },
    AuthenticatorValidate {
        device_classes: Option<Vec<String>>,
        not_configured_action: Option<String>,
        #[serde(default)]
        configuration_stages: Vec<String>,
        webauthn_user_verification: Option<String>,
    },
    AuthenticatorWebauthn {
        user_verification: Option<String>,
        resident_key_requirement: Option<String>,
        authenticator_attachment: Option<String>,
        friendly_name: Option<String>,
    },
}

/// One field of a prompt stage.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPromptField {
    pub field_key: String,
    pub label: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub required: Option<bool>,
    pub placeholder: Option<String>,
    pub initial_value: Option<String>,
    pub sub_text: Option<String>,
    pub order: Option<i64>,
    #[serde(default)]
    pub choices: Vec<String>,
}

/// `mail:`: how the email stage sends.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMail {
    pub transport: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub security: Option<String>,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    pub timeout: Option<String>,
    pub ca_file: Option<String>,
    pub dir: Option<String>,
    pub public_url: Option<String>,
}

/// `ui:`: page look.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawUi {
    pub title: Option<String>,
    pub templates: Option<String>,
}

/// A policy definition, tagged by `type:`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RawPolicy {
    Dummy {
        result: Option<bool>,
        wait_min: Option<String>,
        wait_max: Option<String>,
    },
    Path {
        regex: String,
    },
    Method {
        methods: Vec<String>,
    },
    SourceCidr {
        cidrs: Vec<String>,
    },
    Header {
        name: String,
        regex: Option<String>,
    },
    Expression {
        expression: String,
    },
    Password {
        password_field: Option<String>,
        check_static_rules: Option<bool>,
        check_have_i_been_pwned: Option<bool>,
        check_zxcvbn: Option<bool>,
        amount_digits: Option<usize>,
        amount_uppercase: Option<usize>,
        amount_lowercase: Option<usize>,
        amount_symbols: Option<usize>,
        length_min: Option<usize>,
        symbol_charset: Option<String>,
        error_message: Option<String>,
        hibp_allowed_count: Option<u64>,
        hibp_url: Option<String>,
        hibp_timeout: Option<String>,
        zxcvbn_score_threshold: Option<u8>,
    },
    PasswordExpiry {
        days: u32,
        deny_only: Option<bool>,
    },
    Reputation {
        check_ip: Option<bool>,
        check_username: Option<bool>,
        threshold: Option<i64>,
    },
    Time {
        #[serde(default)]
        weekdays: Vec<String>,
        from: Option<String>,
        to: Option<String>,
    },
}
