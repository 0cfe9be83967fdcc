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
mod audit;
mod io;
mod links;
mod sources;
mod state;
mod step_up;
mod subjects;
pub use answers::flow_info;
use answers::{context_json, pending_display, Replan};
pub use io::{ExecInput, ExecKind, ExecOutput, FlowInfo};
pub use sources::{SourceFlowError, SOURCE_CONNECTION};
pub use subjects::{identity_of, subject_of_identity, subject_of_user};

/// Reserved prefix of the cancel URL.
pub const CANCEL_PATH: &str = "/.flowgate/flows/-/cancel/";

/// Runs flows: the registry, the stores and the session settings it runs them with.
#[derive(Clone)]
pub struct Executor {
    /// The flows, stages and policies of the running config.
    pub reg: Arc<FlowRegistry>,
    /// Sessions: the flow slot of each, logins and logouts.
    pub sessions: SessionStore,
    /// The user store stages read and write.
    pub users: UserStore,
    /// Session lifetimes (flow timeout, TTL, idle timeout).
    pub settings: SessionSettings,
    /// Failed and successful attempts by client address and identifier.
    pub reputation: Arc<ReputationStore>,
    /// Mail, tokens, limits and the rest the stages share.
    pub services: Arc<Services>,
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

impl Executor {
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
                ended: None,
            };
        };
        let mut out = ExecOutput {
            kind: ExecKind::StageDone,
            set_session: None,
            clear_cookie: false,
            ended: None,
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
                self.report_finished(flow, st, input);
                return self.done(state);
            };
            let stage_name: &str = match &entry.inject {
                Some(Injected::Stage(name)) => name,
                Some(Injected::Reauthenticate) => "reauthenticate",
                Some(_) => "mailed_link",
                None => &flow.bindings[entry.binding].stage,
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
            let rp_id = input.origin.as_ref().and(input.host.as_deref()).map(|h| {
                match self.settings.cookie_domain.as_deref() {
                    Some(d) if crate::config::host_within(h, d) => d,
                    _ => h,
                }
            });
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
                rp_id,
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
                StageOutcome::Invalid(c) => {
                    self.report_failed(flow, st, input, stage_name, Some(&c));
                    match action {
                        InvalidResponseAction::Retry => return self.challenge(flow, st, c),
                        action => return self.replan(flow, input, session, state, Replan::Restart(action)).await,
                    }
                }
                StageOutcome::Deny(message) => {
                    self.report_failed(flow, st, input, stage_name, None);
                    if action != InvalidResponseAction::Retry {
                        return self.replan(flow, input, session, state, Replan::Restart(action)).await;
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
                    if let Err(message) = self.save_source_connection(&st.context, &user).await {
                        let pending = pending_display(st);
                        *state = None;
                        return self.access_denied(flow, input, pending, message);
                    }
                    let lifetime = duration.unwrap_or(self.settings.ttl);
                    let auth = self.login_auth(flow, &st.context, session, &user, input.host.as_deref());
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
                    self.report_login(flow, st, input, &user.username);
                    self.reputation.record(input.client_ip, &user.username, 1).await;
                    *session = fresh.clone();
                    out.set_session = Some((fresh, duration));
                    out.clear_cookie = false;
                }
                StageOutcome::Logout { other_devices } => {
                    // The whole sign-on ends: this session, the portal's and every session
                    // derived from it on other hosts (docs/decisions/0013).
                    let mut ended = self.sessions.end_sign_on(session).await;
                    if let Some(u) = &session.user {
                        if other_devices {
                            ended.other_devices = self.sessions.end_user_sessions(u.user_id, None).await;
                        }
                        tracing::info!(user = %u.username, sessions = ended.sessions, "logout");
                        self.report_logout(flow, st, input, &u.username);
                        out.ended = Some(ended);
                    }
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
                    self.report_lockout(flow, st, input, stage_name);
                    let pending = pending_display(st);
                    return ExecKind::RateLimited {
                        flow_info: flow_info(flow, &st.query, st.app.as_deref(), pending.as_deref()),
                        retry_after,
                    };
                }
                StageOutcome::SwitchFlow { slug, keep_context } => {
                    let how = Replan::Switch {
                        slug: &slug,
                        keep_context,
                    };
                    return self.replan(flow, input, session, state, how).await;
                }
            }
            st.plan.remove(0);
            if st.plan.is_empty() {
                self.report_finished(flow, st, input);
                return self.done(state);
            }
            if submitted {
                return ExecKind::StageDone;
            }
        }
    }
}
