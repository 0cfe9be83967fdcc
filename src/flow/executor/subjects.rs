//! Who the policies and the session see: the policy subject of a stored user or of a session
//! identity, the session identity of a user, and the policy input of a running flow.

use super::*;

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
    /// What policies see inside a flow: the user, the client address and the time.
    pub(super) async fn policy_input(
        &self,
        user: Option<Subject>,
        context: &FlowContext,
        input: &ExecInput,
    ) -> PolicyInput {
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
            is_sso: context.extra.get("is_sso") == Some(&Value::Bool(true)),
            users: Some(self.users.clone()),
            ..Default::default()
        }
    }

    /// What policies see while a plan runs: the pending user, else the logged-in one.
    pub(super) async fn stage_policy_input(&self, st: &FlowState, session: &Session, input: &ExecInput) -> PolicyInput {
        let user = st
            .context
            .pending_user
            .as_ref()
            .and_then(|p| p.user.as_ref())
            .map(subject_of_user)
            .or_else(|| Self::request_subject(session));
        self.policy_input(user, &st.context, input).await
    }

    pub(super) fn request_subject(session: &Session) -> Option<Subject> {
        session.user.as_deref().map(subject_of_identity)
    }
}
