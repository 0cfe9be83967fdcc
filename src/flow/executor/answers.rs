//! What the executor answers besides running a stage: the confirmation step of a mailed link,
//! denials (with `denied_action` and a validated `next`), restarts and flow switches, the final
//! redirect, and the `flow_info` every page carries.

use super::*;

/// How [`Executor::replan`] starts a plan over.
#[derive(Clone, Copy)]
pub(super) enum Replan<'a> {
    /// The same flow again, as its binding's `invalid_response_action` says.
    Restart(InvalidResponseAction),
    /// Another flow (redirect stage, flow mode), with this context or an empty one.
    Switch {
        /// The target flow's slug.
        slug: &'a str,
        /// Whether the target plan gets this plan's context.
        keep_context: bool,
    },
}

impl Executor {
    /// The confirmation step of a resumed link: GET shows it; POST uses the token up.
    pub(super) async fn confirm_token(
        &self,
        flow: &Flow,
        st: &FlowState,
        hash: &str,
        response: Option<Map<String, Value>>,
    ) -> Result<(), Box<ExecKind>> {
        let now = self.sessions.clock().now_ms();
        if response.is_none() {
            if !self.services.tokens.alive(hash, now).await {
                return Err(Box::new(self.access_denied_st(flow, st, LINK_GONE.into())));
            }
            let mut m = Map::new();
            m.insert(
                "header_text".into(),
                Value::String("Continue to confirm this email address.".into()),
            );
            m.insert("permissions".into(), Value::Array(Vec::new()));
            m.insert("additional_permissions".into(), Value::Array(Vec::new()));
            m.insert("token".into(), Value::String(String::new()));
            return Err(Box::new(self.challenge(
                flow,
                st,
                Challenge::new(CONFIRM_COMPONENT, m, true),
            )));
        }
        if self.services.tokens.consume(hash, now).await {
            Ok(())
        } else {
            Err(Box::new(self.access_denied_st(flow, st, LINK_GONE.into())))
        }
    }

    pub(super) fn access_denied_st(&self, flow: &Flow, st: &FlowState, message: String) -> ExecKind {
        let pending_user = pending_display(st);
        ExecKind::AccessDenied {
            flow_info: flow_info(flow, &st.query, st.app.as_deref(), pending_user.as_deref()),
            message,
            pending_user,
        }
    }

    /// Plans again and parks the new plan, keeping the old plan's query (it may hold a token the
    /// browser's URL no longer shows). [`Replan::Restart`]: the same flow, with its context or a
    /// fresh one, then on to the first stage. [`Replan::Switch`] (redirect stage, flow mode): the
    /// target flow, with this context or an empty one marked `is_redirected`, and the browser sent
    /// there.
    pub(super) async fn replan(
        &self,
        flow: &Flow,
        input: &ExecInput,
        session: &Arc<Session>,
        state: &mut Option<FlowState>,
        how: Replan<'_>,
    ) -> ExecKind {
        let target = match how {
            Replan::Restart(_) => flow,
            Replan::Switch { slug, .. } => match self.reg.flows.get(slug) {
                Some(target) => target,
                None => {
                    tracing::error!(flow = %slug, "redirect target flow is missing");
                    *state = None;
                    return self.access_denied(flow, input, None, "The next step is not available.".into());
                }
            },
        };
        let query = state.as_ref().map(|s| s.query.clone());
        let context = match how {
            Replan::Restart(action) => match (action, state.take()) {
                (InvalidResponseAction::RestartWithContext, Some(s)) => s.context,
                _ => match self.start_context(flow, input, session).await {
                    Ok(c) => c,
                    Err(kind) => return *kind,
                },
            },
            Replan::Switch { keep_context, .. } => {
                let mut context = match (keep_context, state.take()) {
                    (true, Some(s)) => s.context,
                    _ => FlowContext::default(),
                };
                context
                    .extra
                    .insert("is_redirected".into(), Value::String(flow.slug.clone()));
                context
            }
        };
        match self.make_plan(target, session, context, input).await {
            Ok(mut s) => {
                if let Some(q) = query {
                    s.query = q;
                }
                *state = Some(s);
                match how {
                    Replan::Restart(_) => ExecKind::StageDone,
                    Replan::Switch { slug, .. } => {
                        let q = if input.query.is_empty() {
                            String::new()
                        } else {
                            format!("?{}", input.query)
                        };
                        ExecKind::Redirect(format!("{}flow/{slug}/{q}", crate::config::RESERVED_PREFIX))
                    }
                }
            }
            Err(na) => self.denied(target, input, session, na),
        }
    }

    pub(super) fn done(&self, state: &mut Option<FlowState>) -> ExecKind {
        let st = state.take();
        let to = st
            .as_ref()
            .and_then(|s| s.context.redirect.clone().or_else(|| next_from_query(&s.query)))
            .unwrap_or_else(|| "/".to_string());
        ExecKind::Redirect(to)
    }

    pub(super) fn denied(&self, flow: &Flow, input: &ExecInput, session: &Session, na: NotApplicable) -> ExecKind {
        let next = next_from_query(&input.query);
        let message = if na.messages.is_empty() {
            "Flow does not apply to current user.".to_string()
        } else {
            na.messages.join("\n")
        };
        if flow.designation == Designation::Authentication && session.user.is_some() {
            // Already logged in well enough: on to `next`. A step-up that does not apply ends
            // here instead of sending the browser back to the app, which would send it here again.
            if !self.needs_step_up(flow, session) {
                return ExecKind::Redirect(next.unwrap_or_else(|| "/".into()));
            }
            return self.access_denied(flow, input, None, message);
        }
        match (flow.denied_action, next) {
            (DeniedAction::MessageContinue, Some(n)) => ExecKind::Redirect(n),
            (DeniedAction::Continue, n) => ExecKind::Redirect(n.unwrap_or_else(|| "/".into())),
            _ => self.access_denied(flow, input, None, message),
        }
    }

    pub(super) fn access_denied(
        &self,
        flow: &Flow,
        input: &ExecInput,
        pending_user: Option<String>,
        message: String,
    ) -> ExecKind {
        let flow_info = flow_info(flow, &input.query, input.app.as_deref(), pending_user.as_deref());
        ExecKind::AccessDenied {
            flow_info,
            message,
            pending_user,
        }
    }

    pub(super) fn challenge(&self, flow: &Flow, st: &FlowState, challenge: Challenge) -> ExecKind {
        let pending_user = pending_display(st);
        let flow_info = flow_info(flow, &st.query, st.app.as_deref(), pending_user.as_deref());
        ExecKind::Challenge {
            flow_info,
            challenge,
            pending_user,
        }
    }
}

/// The flow context as expressions see it (docs/design.md §2.10: the keys the supported stages use).
pub(super) fn context_json(c: &FlowContext) -> serde_json::Map<String, Value> {
    let mut m = c.extra.clone();
    if let Some(p) = &c.pending_user {
        let u = match &p.user {
            Some(u) => {
                serde_json::json!({ "pk": u.id, "username": u.username, "email": u.email, "name": u.name, "is_active": u.is_active })
            }
            None => serde_json::json!({ "pk": null, "username": p.identifier, "email": p.identifier, "name": "" }),
        };
        m.insert("pending_user".into(), u);
    }
    if let Some(i) = &c.pending_user_identifier {
        m.insert("pending_user_identifier".into(), Value::String(i.clone()));
    }
    if let Some(a) = &c.auth_method {
        m.insert("auth_method".into(), Value::String(a.clone()));
    }
    m
}

/// Who the pages say is signing in: what the user typed, never the stored username it
/// matched (ENUM-5). "Signing in as demo" after typing `DEMO` or `demo@example.test` would
/// tell anyone which identifiers are accounts, since an unknown one can only be echoed.
/// `show_matched_user` is accepted for authentik compatibility and changes nothing here.
pub(super) fn pending_display(st: &FlowState) -> Option<String> {
    if let Some(id) = &st.context.pending_user_identifier {
        return Some(id.clone());
    }
    st.context.pending_user.as_ref().map(|p| p.identifier.clone())
}

/// Builds `flow_info`: the title with `%(app)s` and `%(user)s` substituted (the raw title when
/// a value is missing, as authentik does when formatting fails) and the cancel URL.
pub fn flow_info(flow: &Flow, query: &str, app: Option<&str>, user: Option<&str>) -> FlowInfo {
    let mut title = flow.title.clone();
    let needs_app = title.contains("%(app)s");
    let needs_user = title.contains("%(user)s");
    if (!needs_app || app.is_some()) && (!needs_user || user.is_some()) {
        title = title
            .replace("%(app)s", app.unwrap_or(""))
            .replace("%(user)s", user.unwrap_or(""));
    }
    let cancel_url = match next_from_query(query) {
        Some(n) => format!(
            "{CANCEL_PATH}?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("next", &n)
                .finish()
        ),
        None => CANCEL_PATH.to_string(),
    };
    FlowInfo {
        title,
        background: String::new(),
        background_themed_urls: None,
        cancel_url,
        layout: flow.layout.clone(),
    }
}
