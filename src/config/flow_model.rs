//! The validated flow definitions: flows, their stage bindings and policy bindings, and the
//! choices they are made of (designation, authentication requirement, denied action, engine
//! mode, invalid-response action). Re-exported by `config::model`.

use std::time::Duration;

/// Default `layout` of a flow.
pub const DEFAULT_FLOW_LAYOUT: &str = "stacked";

/// Flow designations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Designation {
    /// Log in.
    Authentication,
    /// Authorise access to an app.
    Authorization,
    /// Log out.
    Invalidation,
    /// Sign up.
    Enrollment,
    /// Delete one's account.
    Unenrollment,
    /// Recover access.
    Recovery,
    /// Configure a stage (password change, TOTP setup).
    StageConfiguration,
}

impl Designation {
    /// All designations with their config spelling.
    pub const ALL: [(&'static str, Designation); 7] = [
        ("authentication", Designation::Authentication),
        ("authorization", Designation::Authorization),
        ("invalidation", Designation::Invalidation),
        ("enrollment", Designation::Enrollment),
        ("unenrollment", Designation::Unenrollment),
        ("recovery", Designation::Recovery),
        ("stage_configuration", Designation::StageConfiguration),
    ];

    /// Parses the config spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, d)| *d)
    }

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, d)| *d == self)
            .map(|(n, _)| *n)
            .unwrap_or("authentication")
    }
}

/// The flow's `authentication` requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRequirement {
    /// Anyone.
    None,
    /// Logged-in users only.
    RequireAuthenticated,
    /// Anonymous users only.
    RequireUnauthenticated,
    /// Superusers only.
    RequireSuperuser,
    /// Only when entered through a redirect.
    RequireRedirect,
}

impl AuthRequirement {
    /// The config spellings, as accepted in the YAML.
    pub const ALL: &'static [(&'static str, AuthRequirement)] = &[
        ("none", AuthRequirement::None),
        ("require_authenticated", AuthRequirement::RequireAuthenticated),
        ("require_unauthenticated", AuthRequirement::RequireUnauthenticated),
        ("require_superuser", AuthRequirement::RequireSuperuser),
        ("require_redirect", AuthRequirement::RequireRedirect),
    ];
}

/// What happens when a flow's policies deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeniedAction {
    /// Redirect to `next` if present, else show the message.
    MessageContinue,
    /// Always show the message.
    Message,
    /// Redirect to `next` or `/`.
    Continue,
}

impl DeniedAction {
    /// The config spellings, as accepted in the YAML.
    pub const ALL: &'static [(&'static str, DeniedAction)] = &[
        ("message_continue", DeniedAction::MessageContinue),
        ("message", DeniedAction::Message),
        ("continue", DeniedAction::Continue),
    ];
}

/// How a set of policy bindings combines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineMode {
    /// Every binding must pass.
    All,
    /// One passing binding suffices.
    Any,
}

impl EngineMode {
    /// The config spellings, as accepted in the YAML.
    pub const ALL: &'static [(&'static str, EngineMode)] = &[("any", EngineMode::Any), ("all", EngineMode::All)];
}

/// What to do with an invalid challenge response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidResponseAction {
    /// Show the same stage again with errors.
    Retry,
    /// Plan the flow again from scratch.
    Restart,
    /// Plan again, keeping the context.
    RestartWithContext,
}

impl InvalidResponseAction {
    /// The config spellings, as accepted in the YAML.
    pub const ALL: &'static [(&'static str, InvalidResponseAction)] = &[
        ("retry", InvalidResponseAction::Retry),
        ("restart", InvalidResponseAction::Restart),
        ("restart_with_context", InvalidResponseAction::RestartWithContext),
    ];
}

/// A flow.
#[derive(Debug, Clone)]
pub struct Flow {
    /// URL slug.
    pub slug: String,
    /// Admin label.
    pub name: String,
    /// Heading, with `%(app)s` and `%(user)s`.
    pub title: String,
    /// What the flow is for.
    pub designation: Designation,
    /// Pre-condition.
    pub authentication: AuthRequirement,
    /// Denial behaviour.
    pub denied_action: DeniedAction,
    /// How flow policies combine.
    pub policy_engine_mode: EngineMode,
    /// UI layout hint.
    pub layout: String,
    /// Flow policies.
    pub policies: Vec<PolicyBinding>,
    /// Stage bindings sorted by (order, stage name).
    pub bindings: Vec<Binding>,
}

/// A stage bound into a flow.
#[derive(Debug, Clone)]
pub struct Binding {
    /// Stage name.
    pub stage: String,
    /// Execution order.
    pub order: i64,
    /// Check policies when planning.
    pub evaluate_on_plan: bool,
    /// Check policies again right before the stage runs.
    pub re_evaluate_policies: bool,
    /// Invalid response handling.
    pub invalid_response_action: InvalidResponseAction,
    /// How the binding's policies combine.
    pub policy_engine_mode: EngineMode,
    /// Policies gating the stage.
    pub policies: Vec<PolicyBinding>,
}

/// What a policy binding points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingTarget {
    /// A named policy.
    Policy(String),
    /// Membership of a group (inherited groups count).
    Group(String),
    /// A specific user.
    User(String),
}

/// A policy binding.
#[derive(Debug, Clone)]
pub struct PolicyBinding {
    /// Target.
    pub target: BindingTarget,
    /// Invert the result.
    pub negate: bool,
    /// Disabled bindings are ignored.
    pub enabled: bool,
    /// Evaluation order.
    pub order: i64,
    /// Hard deadline for the policy.
    pub timeout: Duration,
    /// Result on error or timeout.
    pub failure_result: bool,
}
