//! Mailed links: resuming the plan parked behind a link, the checks that keep a link from
//! signing the wrong browser in (LINK-1), the password check before a credential change
//! (CRED-1), and cancelling, which ends the plan's links (LINK-2).
//!
//! A link resumes only where its flow's `authentication` requirement holds for the browser
//! that opens it, where no other user is logged in or pending, and logs in only the browser
//! that asked for it (the SHA-256 of that browser's session id is stored with the token). In
//! any other browser the plan still runs (the address is confirmed, a new password is set)
//! but its user_login stage logs nobody in.

use super::*;
use crate::flow::planner::requirement_holds;
use crate::flow::services::{token_hash, LINK_OPENED_ELSEWHERE};
use crate::flow::stages::MAILED_TOKENS;

impl Executor {
    /// Restores the plan parked behind a mailed link (`flow_token` in the query), with a
    /// confirmation step in front. `Err` carries the page for a link that is gone, that
    /// belongs to someone else than the session's user or its `pending` user (the stored user
    /// pending in any unfinished flow of the session), or whose flow's `authentication`
    /// requirement does not hold here.
    pub(super) async fn restore(
        &self,
        flow: &Flow,
        input: &ExecInput,
        current: Option<&FlowState>,
        pending: Option<i64>,
    ) -> Option<Result<FlowState, String>> {
        if input.response.is_some() {
            return None;
        }
        let raw = form_urlencoded::parse(input.query.as_bytes())
            .find(|(k, _)| k == "flow_token")
            .map(|(_, v)| v.into_owned())?;
        let hash = token_hash(&raw);
        // Already resumed in this session (the link was opened twice).
        if current.is_some_and(|c| {
            c.context.extra.get("is_restored").and_then(Value::as_str) == Some(hash.as_str())
                || c.plan.first().and_then(|e| e.inject.as_ref()) == Some(&Injected::ConfirmToken(hash.clone()))
        }) {
            return None;
        }
        let now = self.sessions.clock().now_ms();
        let Some(t) = self
            .services
            .tokens
            .peek(&raw, now)
            .await
            .filter(|t| t.flow == flow.slug)
        else {
            return Some(Err(LINK_GONE.into()));
        };
        // A link never resumes inside another user's session, nor in a browser where another
        // user is pending in a flow (CVE-2023-26481, FLOW-4). A sign-up link has no user yet:
        // any logged-in or pending user is "another" one (login CSRF, LINK-1).
        let me = input.session.as_ref().and_then(|s| s.user.as_ref());
        if me.is_some_and(|u| Some(u.user_id) != t.user_id) {
            return Some(Err("This link belongs to another account. Log out first.".into()));
        }
        if pending.is_some_and(|id| Some(id) != t.user_id) {
            return Some(Err(
                "This link belongs to another account. Cancel the other sign-in first.".into(),
            ));
        }
        let mut st = t.state.clone();
        let request_user = me.map(|u| subject_of_identity(u));
        let redirected = st.context.extra.contains_key("is_redirected");
        if !requirement_holds(flow.authentication, request_user.as_ref(), redirected) {
            return Some(Err(if me.is_some() {
                "This link cannot be used while you are signed in. Log out first.".into()
            } else {
                "This link cannot be used without signing in first.".into()
            }));
        }
        let here = input.session.as_ref().map(|s| token_hash(&s.id));
        if t.browser.is_none() || t.browser != here {
            st.context.extra.insert(LINK_OPENED_ELSEWHERE.into(), Value::Bool(true));
        }
        st.plan.insert(0, PlanEntry::injected(Injected::ConfirmToken(hash)));
        Some(Ok(st))
    }

    /// Deletes the session's unfinished plan (the cancel endpoint) and ends every mailed link
    /// of that plan: the one it was resumed from and the ones it sent.
    pub async fn cancel(&self, session: &Session) {
        let Ok((Some(st), _)) = self.take_state(session).await else {
            return;
        };
        self.put_state(session, None).await;
        let mut hashes: Vec<String> = st
            .plan
            .iter()
            .filter_map(|e| match &e.inject {
                Some(Injected::ConfirmToken(h)) => Some(h.clone()),
                _ => None,
            })
            .collect();
        if let Some(h) = st.context.extra.get("is_restored").and_then(Value::as_str) {
            hashes.push(h.to_string());
        }
        if let Some(Value::Array(a)) = st.context.extra.get(MAILED_TOKENS) {
            hashes.extend(a.iter().filter_map(Value::as_str).map(str::to_string));
        }
        for h in &hashes {
            self.services.tokens.revoke(h).await;
        }
        if !hashes.is_empty() {
            tracing::info!(links = hashes.len(), "flow cancelled: its mailed links are ended");
        }
    }

    /// Whether a stage left in the plan changes credentials (asked before the first of the
    /// plan's forms, not after the user typed a new password into one).
    pub(super) fn plan_changes_credentials(&self, flow: &Flow, st: &FlowState) -> bool {
        st.plan.iter().any(|e| {
            let name = match &e.inject {
                None => flow.bindings.get(e.binding).map(|b| &b.stage),
                Some(Injected::Stage(n)) => Some(n),
                Some(_) => None,
            };
            name.and_then(|n| self.reg.stages.get(n))
                .is_some_and(|s| s.changes_credentials())
        })
    }

    /// Whether a stage that changes credentials must first ask for the current password: the
    /// flow acts on the logged-in user, the plan checked no password or code, and the login
    /// is older than [`FRESH_LOGIN`].
    pub(super) fn needs_reauth(&self, st: &FlowState, session: &Session) -> bool {
        let Some(me) = session.user.as_deref() else {
            return false;
        };
        let acts_on_other = st
            .context
            .pending_user
            .as_ref()
            .and_then(|p| p.user.as_ref())
            .is_some_and(|u| u.id != me.user_id);
        if acts_on_other || st.context.auth_method.is_some() {
            return false;
        }
        let age = self.sessions.clock().now_ms().saturating_sub(session.created_ms);
        age >= FRESH_LOGIN.as_millis() as u64
    }
}
