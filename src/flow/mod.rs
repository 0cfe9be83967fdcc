//! Flows: the registry built once from config, the per-session flow state, the planner, the
//! executor and the stages. Transport-neutral: `http` renders what the executor returns as HTML
//! or authentik-compatible JSON.

pub mod directories;
pub mod executor;
pub mod inspect;
pub use crate::config::values::next;
pub mod persist;
pub mod planner;
pub mod policies;
pub mod ratelimit;
pub mod reputation;
pub mod services;
pub mod stages;
pub mod step_up;
mod user_password;

use crate::config::{Config, Designation, Flow, PolicyDef, StageDef};
use crate::identity::User;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Everything flow-related built once from the validated config (nothing on the request path
/// re-reads config).
pub struct FlowRegistry {
    /// Flows by slug.
    pub flows: BTreeMap<String, Flow>,
    /// Stage implementations by name.
    pub stages: BTreeMap<String, Arc<dyn stages::Stage>>,
    /// Policy definitions by name.
    pub policies: BTreeMap<String, PolicyDef>,
    /// Explicitly configured default flow per designation.
    pub defaults: BTreeMap<Designation, String>,
    /// What each stage contributes to authentication (for step-up plans).
    pub factors: BTreeMap<String, step_up::Factor>,
    /// What each flow asks for (for the step-up rule).
    pub flow_factors: BTreeMap<String, step_up::FlowFactors>,
    /// The password check the executor inserts before a credential change (CRED-1).
    pub reauthenticate: Arc<dyn stages::Stage>,
}

impl FlowRegistry {
    /// Builds stages from their validated definitions.
    pub fn from_config(cfg: &Config) -> Self {
        let stages = cfg
            .stages
            .iter()
            .map(|(name, def)| (name.clone(), stages::build(name, def, &cfg.stages)))
            .collect();
        Self {
            flows: cfg.flows.clone(),
            stages,
            policies: cfg.policies.clone(),
            defaults: cfg.default_flows.clone(),
            factors: cfg
                .stages
                .iter()
                .map(|(name, def)| (name.clone(), step_up::factor_of(def)))
                .collect(),
            flow_factors: cfg
                .flows
                .iter()
                .map(|(slug, f)| (slug.clone(), step_up::factors_of(f, &cfg.stages)))
                .collect(),
            reauthenticate: stages::reauthenticate_stage(),
        }
    }

    /// Whether a sign-on recorded as `auth` is good enough for flow `slug` (STEP-1, see
    /// [`step_up`]).
    pub fn satisfies(&self, auth: &crate::session::AuthInfo, slug: &str) -> bool {
        step_up::satisfies(auth, slug, self.flow_factors.get(slug))
    }

    /// "The" flow of a designation for this request (docs/design.md §2.9): a configured default as
    /// is; otherwise the flows of the designation in slug order, the first whose own policies
    /// pass for `input`. `None` when no flow applies.
    pub async fn select(&self, designation: Designation, input: &policies::PolicyInput) -> Option<&Flow> {
        if let Some(f) = self.defaults.get(&designation).and_then(|s| self.flows.get(s)) {
            return Some(f);
        }
        for f in self.flows.values().filter(|f| f.designation == designation) {
            if policies::evaluate(&f.policies, f.policy_engine_mode, &self.policies, input)
                .await
                .passing
            {
                return Some(f);
            }
        }
        None
    }

    /// The definition kinds, for diagnostics.
    pub fn stage_kind(defs: &BTreeMap<String, StageDef>, name: &str) -> &'static str {
        defs.get(name).map(StageDef::kind).unwrap_or("unknown")
    }
}

/// One planned stage: the binding's index in its flow and whether to re-check its policies
/// right before it runs, or a stage inserted at run time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlanEntry {
    /// Index into `Flow::bindings` (meaningless for injected entries).
    pub binding: usize,
    /// Re-evaluate the binding's policies before running (`re_evaluate_policies`).
    pub reevaluate: bool,
    /// A stage inserted at run time instead of the binding's.
    pub inject: Option<Injected>,
}

/// Stages inserted into a running plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Injected {
    /// A configured stage by name (authenticator_validate's `configure`).
    Stage(String),
    /// "Continue to confirm this email address": the first step of a plan resumed from a
    /// mailed link, so that a scanner opening the link does not use it up. Holds the token hash.
    ConfirmToken(String),
    /// The logged-in user's current password, asked before a stage that changes credentials
    /// when the login is not fresh and the plan checked no password (CRED-1).
    Reauthenticate,
}

impl PlanEntry {
    /// A planned binding.
    pub fn binding(binding: usize, reevaluate: bool) -> Self {
        Self {
            binding,
            reevaluate,
            inject: None,
        }
    }

    /// An injected stage.
    pub fn injected(inject: Injected) -> Self {
        Self {
            binding: usize::MAX,
            reevaluate: false,
            inject: Some(inject),
        }
    }
}

/// The user being authenticated or enrolled.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PendingUser {
    /// The stored user; `None` for a pretend user (unknown identifier).
    #[serde(with = "persist::stored_user")]
    pub user: Option<User>,
    /// The identifier as typed.
    pub identifier: String,
}

/// The flow context (docs/design.md §2.10), with the keys the supported stages use.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct FlowContext {
    /// `pending_user`.
    pub pending_user: Option<PendingUser>,
    /// `pending_user_identifier`, when the typed identifier is shown instead of the username.
    pub pending_user_identifier: Option<String>,
    /// `auth_method`.
    pub auth_method: Option<String>,
    /// Methods proved in this plan (`password`, `totp`, `static`), recorded in the session at
    /// login (STEP-1).
    pub auth_methods: std::collections::BTreeSet<String>,
    /// A step-up: the logged-in user re-authenticates for an app's `authentication_flow`; the
    /// pending user is fixed to them.
    pub step_up: bool,
    /// Failed password attempts in this plan (counted here, not in a reputation score).
    pub failed_password_attempts: u32,
    /// `redirect`: overrides `next` at the end (server-set only).
    pub redirect: Option<String>,
    /// Other keys.
    pub extra: Map<String, Value>,
    /// A login through a source started from this session, until its callback (server-side
    /// only, never shown to expressions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_login: Option<crate::identity::sources::PendingLogin>,
}

/// An unfinished flow, kept server-side in the session (never in the cookie), and in the
/// session store sealed with the session id ([`persist`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FlowState {
    /// Flow slug.
    pub flow: String,
    /// Remaining stages.
    pub plan: Vec<PlanEntry>,
    /// Context.
    pub context: FlowContext,
    /// The original query string (holds `next`).
    pub query: String,
    /// App the user is trying to reach, for titles.
    pub app: Option<String>,
}

/// One error message on a challenge field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ErrorDetail {
    /// Text shown.
    pub string: String,
    /// Machine code.
    pub code: String,
}

/// A challenge a stage asks the user to answer.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// Component name (`ak-stage-identification`, ...).
    pub component: &'static str,
    /// Stage-specific fields.
    pub fields: Map<String, Value>,
    /// Errors by field (`non_field_errors` for the rest).
    pub errors: BTreeMap<String, Vec<ErrorDetail>>,
    /// Carries `pending_user` and `pending_user_avatar`.
    pub with_user_info: bool,
}

impl Challenge {
    /// A challenge with no errors.
    pub fn new(component: &'static str, fields: Map<String, Value>, with_user_info: bool) -> Self {
        Self {
            component,
            fields,
            errors: BTreeMap::new(),
            with_user_info,
        }
    }

    /// Adds an error on `field`.
    pub fn with_error(mut self, field: &str, text: &str, code: &str) -> Self {
        self.errors.entry(field.to_string()).or_default().push(ErrorDetail {
            string: text.into(),
            code: code.into(),
        });
        self
    }
}

/// Reads a string field from a challenge response; non-strings count as missing.
pub fn response_str<'a>(r: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    r.get(key).and_then(Value::as_str)
}
