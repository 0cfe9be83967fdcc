//! The mapping between authentik models and flowgate's native config, both ways: which model
//! is which stage or policy type, which attributes carry over as they are, which are durations
//! (authentik's `hours=1;minutes=30` against flowgate's `1h30m`) or references, and which
//! authentik attributes flowgate has no equivalent for (reported, never dropped silently).

use serde_json::Value;

mod policies;
mod stages;
mod unused;
pub use policies::POLICIES;
pub use stages::STAGES;

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
    /// A list of source references (identification's `sources`), by slug.
    SourceRefs,
}

/// One convertible attribute: flowgate key, authentik key, conversion.
pub type AttrMap = (&'static str, &'static str, Attr);

/// An attribute whose key is the same in flowgate and authentik.
const fn attr(key: &'static str, how: Attr) -> AttrMap {
    (key, key, how)
}

/// An authentik attribute flowgate does not implement, with the value that means "not used".
pub type Ignored = (&'static str, fn(&Value) -> bool);

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

/// Models flowgate knows but does not import, with the reason given to the user.
pub const UNSUPPORTED: &[(&str, &str)] = &[
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
    (
        "authentik_sources_oauth.",
        "only OAuth sources themselves (authentik_sources_oauth.oauthsource) are imported; connections are made at login, and property mappings are the source's `claims:`",
    ),
    (
        "authentik_sources_",
        "only OAuth sources are imported (configure LDAP sources natively as `type: ldap`)",
    ),
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

/// authentik's OAuth source model, imported as `sources: {<slug>: {type: oauth, …}}`.
pub const OAUTH_SOURCE_MODEL: &str = "authentik_sources_oauth.oauthsource";

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

/// The attributes of a flow that carry over as they are, besides its slug (import and export).
pub(crate) const FLOW_KEYS: &[&str] = &[
    "name",
    "title",
    "designation",
    "authentication",
    "denied_action",
    "policy_engine_mode",
    "layout",
];

/// The attributes of a stage binding that carry over as they are, besides its flow, stage and
/// order.
pub(crate) const BINDING_KEYS: &[&str] = &[
    "evaluate_on_plan",
    "re_evaluate_policies",
    "invalid_response_action",
    "policy_engine_mode",
];

/// The attributes of a policy binding that carry over as they are, besides its target, what it
/// binds, its order and timeout.
pub(crate) const POLICY_BINDING_KEYS: &[&str] = &["negate", "enabled", "failure_result"];

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
