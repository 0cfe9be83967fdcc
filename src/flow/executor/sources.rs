//! The executor's part in a login through a source (`identity::sources`): parking a started
//! login in the pre-authentication session, taking it out again exactly once at the callback,
//! starting the source's authentication or enrollment flow with the context authentik gives
//! it (`pending_user` or `prompt_data`, `is_sso`, `source`, the connection to store), and at
//! `user_login` storing the link between the provider's subject and the user.

use super::*;
use crate::flow::PendingUser;
use crate::identity::sources::{PendingLogin, SourceIdentity};

/// Context key of the connection to store at login (authentik's `PLAN_CONTEXT_SOURCES_CONNECTION`).
pub const SOURCE_CONNECTION: &str = "goauthentik.io/sources/connection";

/// A login's answer when the flow cannot be started.
#[derive(Debug)]
pub enum SourceFlowError {
    /// The session store failed (503).
    Unavailable,
    /// The flow does not apply (its policies or authentication requirement), with the message.
    Denied(String),
}

impl Executor {
    /// Parks `pending` in `session` (a new anonymous session when there is none, returned with
    /// `true`). Its flow state, if any, stays as it is.
    pub async fn park_source_login(
        &self,
        session: Option<Arc<Session>>,
        pending: PendingLogin,
        query: &str,
    ) -> Result<(Arc<Session>, bool), SourceFlowError> {
        let (session, fresh) = match session {
            Some(s) => (s, false),
            None => match self
                .open_session(None, Default::default(), self.settings.flow_timeout)
                .await
            {
                Ok(s) => (s, true),
                Err(_) => return Err(SourceFlowError::Unavailable),
            },
        };
        let (state, _) = self
            .take_state(&session)
            .await
            .map_err(|_| SourceFlowError::Unavailable)?;
        let mut st = state.unwrap_or_else(|| FlowState {
            flow: String::new(),
            plan: Vec::new(),
            context: FlowContext::default(),
            query: query.to_string(),
            app: None,
        });
        st.context.source_login = Some(pending);
        if session.user.is_none() {
            self.sessions.set_state_size(&session, state_size(&st));
        }
        self.put_state(&session, Some(st)).await;
        Ok((session, fresh))
    }

    /// Takes the started login out of `session` (single use: a second callback finds none),
    /// with the query its flow runs with.
    pub async fn take_source_login(
        &self,
        session: &Session,
    ) -> Result<Option<(PendingLogin, String)>, SourceFlowError> {
        let (state, _) = self
            .take_state(session)
            .await
            .map_err(|_| SourceFlowError::Unavailable)?;
        let Some(mut st) = state else { return Ok(None) };
        let pending = st.context.source_login.take();
        let query = st.query.clone();
        let keep = !st.flow.is_empty();
        self.put_state(session, keep.then_some(st)).await;
        Ok(pending.map(|p| (p, query)))
    }

    /// Plans flow `slug` for `session` with `context` and parks it; the browser is then sent to
    /// `/.flowgate/flow/<slug>/?<query>`.
    pub async fn start_source_flow(
        &self,
        session: &Arc<Session>,
        slug: &str,
        context: FlowContext,
        query: &str,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<(), SourceFlowError> {
        let Some(flow) = self.reg.flows.get(slug) else {
            tracing::error!(flow = %slug, "source flow is missing");
            return Err(SourceFlowError::Denied("The next step is not available.".into()));
        };
        let input = ExecInput {
            slug: slug.to_string(),
            response: None,
            query: query.to_string(),
            session: Some(session.clone()),
            app: None,
            client_ip,
            origin: None,
            host: None,
        };
        match self.make_plan(flow, session, context, &input).await {
            Ok(st) => {
                self.put_state(session, Some(st)).await;
                Ok(())
            }
            Err(na) => {
                let message = match self.denied(flow, &input, session, na) {
                    ExecKind::AccessDenied { message, .. } => message,
                    _ => "You are not allowed to continue.".into(),
                };
                Err(SourceFlowError::Denied(message))
            }
        }
    }

    /// At `user_login`: stores the connection the plan carries (the provider's subject ↔ this
    /// user), marks the provider-verified address verified, and adds the provider's groups. A
    /// subject linked to another user refuses the login.
    pub(super) async fn save_source_connection(&self, context: &FlowContext, user: &User) -> Result<(), String> {
        let Some(conn) = context.extra.get(SOURCE_CONNECTION) else {
            return Ok(());
        };
        let Ok(who) = serde_json::from_value::<SourceIdentity>(conn.clone()) else {
            return Err("The login through the identity provider could not be completed.".into());
        };
        let now = self.sessions.clock().now_ms();
        if let Err(e) = self.users.link_source(&who.source, &who.subject, user.id, now).await {
            tracing::warn!(source = %who.source, user = %user.username, error = %e, "source connection not stored; login refused");
            return Err("This identity provider account is linked to another user.".into());
        }
        let verified_same = who.email_verified
            && who.email.as_deref().is_some_and(|e| {
                crate::identity::names::email_key(e) == crate::identity::names::email_key(&user.email)
            });
        if (verified_same && !user.email_verified) || !who.groups.is_empty() {
            let up = crate::identity::UserUpdate {
                email_verified: verified_same.then_some(true),
                add_groups: who.groups.clone(),
                ..Default::default()
            };
            if let Err(e) = self.users.update_user(user.id, up).await {
                tracing::warn!(source = %who.source, user = %user.username, error = %e, "source claims not applied");
            }
        }
        tracing::info!(source = %who.source, user = %user.username, "source connection stored");
        Ok(())
    }
}

impl Executor {
    /// After a verified callback: decides what `who` does at source `def`
    /// (`identity::sources::decide`), builds the flow context and parks the source's
    /// authentication or enrollment flow. Returns the address of that flow.
    pub async fn continue_source_login(
        &self,
        session: &Arc<Session>,
        def: &crate::config::OAuthSourceDef,
        who: SourceIdentity,
        query: &str,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<String, SourceFlowError> {
        use crate::identity::sources::{decide, SourceAction};
        let action = match decide(&self.users, def, &who).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(source = %def.slug, error = %e, "user store failed during a source login");
                return Err(SourceFlowError::Unavailable);
            }
        };
        let mut context = FlowContext::default();
        context.extra.insert("is_sso".into(), Value::Bool(true));
        context.extra.insert(
            "source".into(),
            serde_json::json!({ "slug": def.slug, "name": def.name }),
        );
        let refuse = |message: &str, reason: &str| {
            tracing::warn!(source = %def.slug, reason, "source login refused");
            Err(SourceFlowError::Denied(message.into()))
        };
        let slug = match action {
            SourceAction::Deny { message, reason } => return refuse(message, &reason),
            SourceAction::Authenticate(u) | SourceAction::Link(u) => {
                if !u.is_active {
                    return refuse("User is not active.", "the linked user is deactivated");
                }
                let Some(flow) = &def.authentication_flow else {
                    return refuse(
                        "Logging in through this identity provider is not configured.",
                        "source has no authentication_flow",
                    );
                };
                tracing::info!(source = %def.slug, user = %u.username, "source login: known user");
                context.pending_user = Some(PendingUser {
                    identifier: u.username.clone(),
                    user: Some(u),
                });
                flow.clone()
            }
            SourceAction::Enroll => {
                let Some(flow) = &def.enrollment_flow else {
                    return refuse(
                        "There is no account for you here, and signing up through this identity provider is not allowed.",
                        "no linked user and the source has no enrollment_flow",
                    );
                };
                let mut data = Map::new();
                // A username that is taken (or not given) is left out: the enrollment flow's
                // prompt asks for one (authentik's default-source-enrollment does).
                if let Some(u) = &who.username {
                    let taken = self
                        .users
                        .find_user(u, &[crate::identity::LookupField::Username], true)
                        .await
                        .map_err(|_| SourceFlowError::Unavailable)?
                        .is_some();
                    if !taken && crate::identity::names::normalize_username(u).is_ok() {
                        data.insert("username".into(), Value::String(u.clone()));
                    }
                }
                if let Some(e) = &who.email {
                    data.insert("email".into(), Value::String(e.clone()));
                }
                if let Some(n) = &who.name {
                    data.insert("name".into(), Value::String(n.clone()));
                }
                if !who.attributes.is_empty() {
                    data.insert("attributes".into(), Value::Object(who.attributes.clone()));
                }
                context.extra.insert("prompt_data".into(), Value::Object(data));
                tracing::info!(source = %def.slug, "source login: enrollment");
                flow.clone()
            }
        };
        context.extra.insert(
            SOURCE_CONNECTION.into(),
            serde_json::to_value(&who).unwrap_or(Value::Null),
        );
        self.start_source_flow(session, &slug, context, query, client_ip)
            .await?;
        let q = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        Ok(format!("{}flow/{slug}/{q}", crate::config::RESERVED_PREFIX))
    }
}
