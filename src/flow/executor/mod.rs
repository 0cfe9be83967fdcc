//! The executor: runs a flow for one session, one request at a time (the session's flow slot is
//! locked for the duration), following docs/design.md §2.4: plan when there is none, re-evaluate
//! marked bindings just before their stage, hand GETs and POSTs to the stage, pop the stage on
//! success, cancel on `stage_invalid`, and finish with a redirect to a validated `next`.
//!
//! It returns a transport-neutral [`ExecOutput`]; `http` renders it as HTML or JSON.

use super::next::next_from_query;
use super::planner::{self, NotApplicable, PlanFacts};
use super::policies::{self, PolicyInput, Subject};
use super::reputation::ReputationStore;
use super::services::Services;
use super::stages::{StageCx, StageOutcome};
use super::{Challenge, FlowContext, FlowRegistry, FlowState, Injected, PlanEntry};
use crate::config::{DeniedAction, Designation, Flow, InvalidResponseAction, SessionSettings};
use crate::identity::{User, UserStore};
use crate::session::{Identity, Session, SessionStore};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

mod answers;
mod links;
mod step_up;
pub use answers::flow_info;
use answers::{context_json, pending_display};

/// Reserved prefix of the cancel URL.
pub const CANCEL_PATH: &str = "/.flowgate/flows/-/cancel/";

/// The `flow_info` block of every challenge.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FlowInfo {
    /// Formatted title.
    pub title: String,
    /// Background image URL.
    pub background: String,
    /// Themed backgrounds (none).
    pub background_themed_urls: Option<Value>,
    /// Where "cancel" goes.
    pub cancel_url: String,
    /// Layout.
    pub layout: String,
}

/// What the executor decided.
#[derive(Debug)]
pub enum ExecKind {
    /// Show a challenge.
    Challenge {
        /// Flow info.
        flow_info: FlowInfo,
        /// The challenge.
        challenge: Challenge,
        /// Display name of the pending user.
        pending_user: Option<String>,
    },
    /// A stage finished and more remain: 302 to the executor itself.
    StageDone,
    /// The flow finished: go here.
    Redirect(String),
    /// Access denied: the plan is cancelled.
    AccessDenied {
        /// Flow info.
        flow_info: FlowInfo,
        /// Message.
        message: String,
        /// Display name of the pending user.
        pending_user: Option<String>,
    },
    /// No such flow.
    UnknownFlow,
    /// A store the flow needs cannot be reached: 503 (fail closed).
    Unavailable {
        /// Flow info.
        flow_info: FlowInfo,
    },
    /// Too many attempts: 429 with `Retry-After`.
    RateLimited {
        /// Flow info.
        flow_info: FlowInfo,
        /// How long to wait.
        retry_after: Duration,
    },
}

/// The executor's answer plus the cookie to set or clear.
#[derive(Debug)]
pub struct ExecOutput {
    /// Decision.
    pub kind: ExecKind,
    /// Set the cookie to this session (new or rotated), with a Max-Age if persistent.
    pub set_session: Option<(Arc<Session>, Option<Duration>)>,
    /// Clear the session cookie.
    pub clear_cookie: bool,
}

/// One executor request.
pub struct ExecInput {
    /// Flow slug.
    pub slug: String,
    /// The challenge response for POST.
    pub response: Option<Map<String, Value>>,
    /// The original query string (holds `next`).
    pub query: String,
    /// The caller's session, if it has a valid one.
    pub session: Option<Arc<Session>>,
    /// App being accessed, for titles.
    pub app: Option<String>,
    /// Client address.
    pub client_ip: Option<std::net::IpAddr>,
    /// `scheme://host` of the request when it may appear in links (loopback or an app host).
    pub origin: Option<String>,
}

/// Runs flows.
#[derive(Clone)]
pub struct Executor {
    reg: Arc<FlowRegistry>,
    sessions: SessionStore,
    users: UserStore,
    settings: SessionSettings,
    reputation: Arc<ReputationStore>,
    services: Arc<Services>,
}

/// How long after a login a logged-in user may change credentials without giving the
/// current password again (CRED-1), unless the plan itself checked it.
pub const FRESH_LOGIN: Duration = Duration::from_secs(5 * 60);

/// Shown when a mailed link is opened: confirming uses the link up.
const CONFIRM_COMPONENT: &str = "ak-stage-consent";
/// Message for a link that is gone.
const LINK_GONE: &str = "This link has expired or was already used.";

/// An estimate of the memory a parked plan holds: its context as JSON, its query and plan.
fn state_size(st: &FlowState) -> usize {
    let context = serde_json::to_vec(&context_json(&st.context)).map_or(0, |v| v.len());
    context + st.query.len() + st.plan.len() * std::mem::size_of::<PlanEntry>()
}

/// The policy subject for a stored user.
pub fn subject_of_user(u: &User) -> Subject {
    Subject {
        password_changed_ms: u
            .password_changed_at
            .and_then(|s| u64::try_from(s).ok())
            .map(|s| s * 1000),
        email: u.email.clone(),
        name: u.name.clone(),
        username: u.username.clone(),
        groups: u.groups.clone(),
        is_superuser: u.is_superuser,
        is_authenticated_user: true,
    }
}

/// The policy subject for a session identity.
pub fn subject_of_identity(i: &Identity) -> Subject {
    Subject {
        password_changed_ms: None,
        email: i.email.clone(),
        name: i.name.clone(),
        username: i.username.clone(),
        groups: i.groups.clone(),
        is_superuser: i.is_superuser,
        is_authenticated_user: true,
    }
}

/// The session identity for a stored user.
pub fn identity_of(u: &User) -> Identity {
    Identity {
        user_id: u.id,
        uid: u.uid.clone(),
        username: u.username.clone(),
        // An address nobody confirmed is not the user's as far as the upstream knows (ID-1).
        email: if u.email_verified {
            u.email.clone()
        } else {
            String::new()
        },
        name: u.name.clone(),
        groups: u.groups.clone(),
        is_superuser: u.is_superuser,
    }
}

impl Executor {
    /// An executor over the registry, stores and session settings.
    pub fn new(
        reg: Arc<FlowRegistry>,
        sessions: SessionStore,
        users: UserStore,
        settings: SessionSettings,
        reputation: Arc<ReputationStore>,
        services: Arc<Services>,
    ) -> Self {
        Self {
            reg,
            sessions,
            users,
            settings,
            reputation,
            services,
        }
    }

    /// The shared services.
    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<FlowRegistry> {
        &self.reg
    }

    /// Runs one executor request.
    pub async fn dispatch(&self, input: ExecInput) -> ExecOutput {
        let Some(flow) = self.reg.flows.get(&input.slug) else {
            return ExecOutput {
                kind: ExecKind::UnknownFlow,
                set_session: None,
                clear_cookie: false,
            };
        };
        let mut out = ExecOutput {
            kind: ExecKind::StageDone,
            set_session: None,
            clear_cookie: false,
        };
        let mut session = match input.session.clone() {
            Some(s) => s,
            None => match self
                .open_session(None, Default::default(), self.settings.flow_timeout)
                .await
            {
                Ok(s) => {
                    out.set_session = Some((s.clone(), None));
                    s
                }
                Err(kind) => {
                    out.kind = self.unavailable(flow, &input, kind);
                    return out;
                }
            },
        };
        let (mut state, restarted) = match self.take_state(&session).await {
            Ok(taken) => taken,
            Err(e) => {
                out.kind = self.unavailable(flow, &input, e);
                return out;
            }
        };
        let pending = state
            .as_ref()
            .and_then(|s| s.context.pending_user.as_ref())
            .and_then(|p| p.user.as_ref())
            .map(|u| u.id);
        if state.as_ref().is_some_and(|s| s.flow != flow.slug) {
            state = None;
        }
        let mut kind = match self.restore(flow, &input, state.as_ref(), pending).await {
            Some(Err(message)) => {
                state = None;
                self.access_denied(flow, &input, None, message)
            }
            restored => {
                if let Some(Ok(st)) = restored {
                    state = Some(st);
                }
                self.run(flow, &input, &mut session, &mut state, &mut out).await
            }
        };
        // Park the remaining plan in whichever session is current now. An anonymous session
        // with no unfinished flow is of no use: delete it and clear the cookie.
        match state {
            Some(st) => {
                if session.user.is_none() {
                    self.sessions.set_state_size(&session, state_size(&st));
                }
                self.put_state(&session, Some(st)).await;
            }
            None if session.user.is_none() => {
                self.sessions.end(&session).await;
                out.set_session = None;
                out.clear_cookie = true;
            }
            None => self.put_state(&session, None).await,
        }
        if restarted {
            if let ExecKind::Challenge { challenge, .. } = &mut kind {
                let c = std::mem::replace(challenge, Challenge::new(challenge.component, Map::new(), false));
                *challenge = c.with_error("non_field_errors", super::persist::RESTARTED_MESSAGE, "flow_restarted");
            }
        }
        out.kind = kind;
        out
    }

    /// Takes the session's unfinished flow: from the session store when there is one (any
    /// replica may have run the last step), else from the session's slot. Stored state that
    /// cannot be restored is dropped and reported (`true`): the flow restarts with a message.
    async fn take_state(&self, session: &Session) -> Result<(Option<FlowState>, bool), String> {
        let mut guard = session.flow.lock().await;
        let slot = guard.take();
        drop(guard);
        if !self.sessions.is_durable() {
            return Ok((slot.and_then(|b| b.downcast::<FlowState>().ok()).map(|b| *b), false));
        }
        let tag = crate::session::log_tag(&session.id);
        match self.sessions.load_flow(session).await {
            Ok(None) => Ok((None, false)),
            Ok(Some(bytes)) => match super::persist::decode(&bytes) {
                Ok(st) => Ok((Some(st), false)),
                Err(e) => {
                    tracing::warn!(session = %tag, error = %e, "saved flow state unusable; the flow restarts");
                    Ok((None, true))
                }
            },
            Err(crate::session::FlowLoadError::Unreadable) => {
                tracing::warn!(session = %tag, "saved flow state unreadable; the flow restarts");
                Ok((None, true))
            }
            Err(crate::session::FlowLoadError::Store(e)) => Err(e.to_string()),
        }
    }

    /// Parks the remaining plan: in the session store when there is one, else in the slot.
    async fn put_state(&self, session: &Session, st: Option<FlowState>) {
        if !self.sessions.is_durable() {
            *session.flow.lock().await = st.map(|st| Box::new(st) as Box<dyn std::any::Any + Send>);
            return;
        }
        let bytes = st.as_ref().map(super::persist::encode);
        if let Err(e) = self.sessions.save_flow(session, bytes.as_deref()).await {
            tracing::error!(session = %crate::session::log_tag(&session.id), error = %e, "flow state not saved");
        }
    }

    /// A session written to the store before it is handed out; a store failure refuses it.
    async fn open_session(
        &self,
        user: Option<Arc<Identity>>,
        auth: crate::session::AuthInfo,
        lifetime: Duration,
    ) -> Result<Arc<Session>, String> {
        let idle = if user.is_some() {
            self.settings.idle_timeout
        } else {
            self.settings.flow_timeout
        };
        self.sessions
            .open(user, auth, lifetime, idle)
            .await
            .map_err(|e| e.to_string())
    }

    /// The answer when the session store cannot be used (fail closed).
    fn unavailable(&self, flow: &Flow, input: &ExecInput, error: String) -> ExecKind {
        tracing::debug!(%error, "session store unavailable for a flow request");
        ExecKind::Unavailable {
            flow_info: flow_info(flow, &input.query, input.app.as_deref(), None),
        }
    }

    /// What policies see inside a flow: the user, the client address and the time.
    async fn policy_input(&self, user: Option<Subject>, context: &FlowContext, input: &ExecInput) -> PolicyInput {
        let identifier = context
            .pending_user
            .as_ref()
            .map(|p| {
                p.user
                    .as_ref()
                    .map(|u| u.username.as_str())
                    .unwrap_or(p.identifier.as_str())
            })
            .unwrap_or("");
        PolicyInput {
            user,
            client_ip: input.client_ip,
            now_ms: self.sessions.clock().now_ms(),
            reputation: self.reputation.scores(input.client_ip, identifier).await,
            context: context_json(context),
            in_flow: true,
            users: Some(self.users.clone()),
            ..Default::default()
        }
    }

    /// What policies see while a plan runs: the pending user, else the logged-in one.
    async fn stage_policy_input(&self, st: &FlowState, session: &Session, input: &ExecInput) -> PolicyInput {
        let user = st
            .context
            .pending_user
            .as_ref()
            .and_then(|p| p.user.as_ref())
            .map(subject_of_user)
            .or_else(|| Self::request_subject(session));
        self.policy_input(user, &st.context, input).await
    }

    fn request_subject(session: &Session) -> Option<Subject> {
        session.user.as_deref().map(subject_of_identity)
    }

    async fn make_plan(
        &self,
        flow: &Flow,
        session: &Session,
        context: FlowContext,
        input: &ExecInput,
    ) -> Result<FlowState, NotApplicable> {
        let request_user = Self::request_subject(session);
        let eval_user = context
            .pending_user
            .as_ref()
            .and_then(|p| p.user.as_ref())
            .map(subject_of_user)
            .or_else(|| request_user.clone());
        let facts = PlanFacts {
            request_user,
            input: self.policy_input(eval_user, &context, input).await,
            is_redirected: context.extra.contains_key("is_redirected"),
            step_up: context.step_up,
        };
        let mut plan = planner::plan(&self.reg, flow, &facts).await?;
        if context.step_up {
            plan = self.trim_step_up_plan(flow, session, plan);
        }
        Ok(FlowState {
            flow: flow.slug.clone(),
            plan,
            context,
            query: input.query.clone(),
            app: input.app.clone(),
        })
    }

    async fn run(
        &self,
        flow: &Flow,
        input: &ExecInput,
        session: &mut Arc<Session>,
        state: &mut Option<FlowState>,
        out: &mut ExecOutput,
    ) -> ExecKind {
        if state.is_none() {
            let context = match self.start_context(flow, input, session).await {
                Ok(c) => c,
                Err(kind) => return *kind,
            };
            match self.make_plan(flow, session, context, input).await {
                Ok(s) => *state = Some(s),
                Err(na) => return self.denied(flow, input, session, na),
            }
        }
        let mut response = input.response.clone();
        let submitted = response.is_some();
        loop {
            let Some(st) = state.as_mut() else {
                return ExecKind::Redirect("/".into());
            };
            // Re-evaluate marked bindings right before their stage runs; failing ones are dropped.
            let entry = loop {
                let Some(e) = st.plan.first().cloned() else {
                    break None;
                };
                if !e.reevaluate {
                    break Some(e);
                }
                let b = &flow.bindings[e.binding];
                let pi = self.stage_policy_input(st, session, input).await;
                if policies::evaluate(&b.policies, b.policy_engine_mode, &self.reg.policies, &pi)
                    .await
                    .passing
                {
                    break Some(e);
                }
                st.plan.remove(0);
            };
            let Some(entry) = entry else {
                return self.done(state);
            };
            let (stage, action) = match &entry.inject {
                Some(Injected::ConfirmToken(hash)) => {
                    let hash = hash.clone();
                    match self.confirm_token(flow, st, &hash, response.take()).await {
                        Ok(()) => {
                            st.context.extra.insert("is_restored".into(), Value::String(hash));
                            st.plan.remove(0);
                            if submitted {
                                return ExecKind::StageDone;
                            }
                            continue;
                        }
                        Err(kind) => {
                            if matches!(*kind, ExecKind::AccessDenied { .. }) {
                                *state = None;
                            }
                            return *kind;
                        }
                    }
                }
                Some(Injected::Reauthenticate) => (self.reg.reauthenticate.clone(), InvalidResponseAction::Retry),
                Some(Injected::Stage(name)) => match self.reg.stages.get(name) {
                    Some(s) => (s.clone(), InvalidResponseAction::Retry),
                    None => {
                        tracing::error!(stage = %name, "injected stage missing from registry");
                        *state = None;
                        return self.access_denied(flow, input, None, "Unknown error".into());
                    }
                },
                None => {
                    let binding = &flow.bindings[entry.binding];
                    match self.reg.stages.get(&binding.stage) {
                        Some(s) => (s.clone(), binding.invalid_response_action),
                        None => {
                            tracing::error!(stage = %binding.stage, "stage missing from registry");
                            *state = None;
                            return self.access_denied(flow, input, None, "Unknown error".into());
                        }
                    }
                }
            };
            // A credential change ahead for a logged-in user: the current password first,
            // unless the login is fresh or this plan checked it already (CRED-1).
            if entry.inject != Some(Injected::Reauthenticate)
                && self.plan_changes_credentials(flow, st)
                && self.needs_reauth(st, session)
            {
                st.plan.insert(0, PlanEntry::injected(Injected::Reauthenticate));
                response = None;
                continue;
            }
            let policy_input = self.stage_policy_input(st, session, input).await;
            let mut cx = StageCx {
                context: &mut st.context,
                users: &self.users,
                designation: flow.designation,
                reputation: &self.reputation,
                client_ip: input.client_ip,
                services: &self.services,
                now_ms: self.sessions.clock().now_ms(),
                flow_slug: &flow.slug,
                query: &st.query,
                app: st.app.as_deref(),
                request_user: session.user.as_deref(),
                session_id: &session.id,
                origin: input.origin.as_deref(),
                policies: &self.reg.policies,
                policy_input,
                plan: &st.plan,
            };
            let outcome = match response.take() {
                Some(r) => stage.submit(&mut cx, &r).await,
                None => stage.challenge(&mut cx).await,
            };
            match outcome {
                StageOutcome::Challenge(c) => return self.challenge(flow, st, c),
                StageOutcome::Invalid(c) => match action {
                    InvalidResponseAction::Retry => return self.challenge(flow, st, c),
                    action => return self.restart(flow, input, session, state, action).await,
                },
                StageOutcome::Deny(message) => {
                    if action != InvalidResponseAction::Retry {
                        return self.restart(flow, input, session, state, action).await;
                    }
                    let pending = pending_display(st);
                    *state = None;
                    return self.access_denied(flow, input, pending, message);
                }
                StageOutcome::Continue => {}
                StageOutcome::Login {
                    user,
                    duration,
                    terminate_others,
                } => {
                    let lifetime = duration.unwrap_or(self.settings.ttl);
                    let auth = self.login_auth(flow, &st.context, session, &user);
                    let fresh = match self
                        .open_session(Some(Arc::new(identity_of(&user))), auth, lifetime)
                        .await
                    {
                        Ok(s) => s,
                        Err(e) => {
                            *state = None;
                            return self.unavailable(flow, input, e);
                        }
                    };
                    self.sessions.end(session).await;
                    if terminate_others {
                        let n = self.sessions.end_user_sessions(user.id, Some(&fresh.id)).await;
                        tracing::info!(user = %user.username, ended = n, "other sessions terminated");
                    }
                    tracing::info!(user = %user.username, session = %crate::session::log_tag(&fresh.id), "login");
                    self.reputation.record(input.client_ip, &user.username, 1).await;
                    *session = fresh.clone();
                    out.set_session = Some((fresh, duration));
                    out.clear_cookie = false;
                }
                StageOutcome::Logout => {
                    if let Some(u) = &session.user {
                        tracing::info!(user = %u.username, "logout");
                    }
                    self.sessions.end(session).await;
                    let fresh = match self
                        .open_session(None, Default::default(), self.settings.flow_timeout)
                        .await
                    {
                        Ok(s) => s,
                        Err(e) => {
                            *state = None;
                            out.clear_cookie = true;
                            return self.unavailable(flow, input, e);
                        }
                    };
                    *session = fresh.clone();
                    out.set_session = Some((fresh, None));
                }
                StageOutcome::Redirect(to) => {
                    st.plan.remove(0);
                    if st.plan.is_empty() {
                        *state = None;
                    }
                    return ExecKind::Redirect(to);
                }
                StageOutcome::Inject(name) => {
                    st.plan.remove(0);
                    st.plan.insert(0, PlanEntry::injected(Injected::Stage(name)));
                    if submitted {
                        return ExecKind::StageDone;
                    }
                    continue;
                }
                StageOutcome::Unavailable => {
                    let pending = pending_display(st);
                    return ExecKind::Unavailable {
                        flow_info: flow_info(flow, &st.query, st.app.as_deref(), pending.as_deref()),
                    };
                }
                StageOutcome::RateLimited(retry_after) => {
                    let pending = pending_display(st);
                    return ExecKind::RateLimited {
                        flow_info: flow_info(flow, &st.query, st.app.as_deref(), pending.as_deref()),
                        retry_after,
                    };
                }
                StageOutcome::SwitchFlow { slug, keep_context } => {
                    return self.switch_flow(flow, input, session, state, &slug, keep_context).await;
                }
            }
            st.plan.remove(0);
            if st.plan.is_empty() {
                return self.done(state);
            }
            if submitted {
                return ExecKind::StageDone;
            }
        }
    }
}
