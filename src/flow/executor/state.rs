//! Where an unfinished flow is parked between steps: the session store when it is durable
//! (any replica may run the next step), else the session's own slot; and the sessions a flow
//! opens, written to the store before they are handed out.

use super::*;

impl Executor {
    /// Takes the session's unfinished flow: from the session store when there is one (any
    /// replica may have run the last step), else from the session's slot. Stored state that
    /// cannot be restored is dropped and reported (`true`): the flow restarts with a message.
    pub(super) async fn take_state(&self, session: &Session) -> Result<(Option<FlowState>, bool), String> {
        let mut guard = session.flow().lock_owned().await;
        let slot = guard.take();
        drop(guard);
        if !self.sessions.is_durable() {
            return Ok((slot.and_then(|b| b.downcast::<FlowState>().ok()).map(|b| *b), false));
        }
        let tag = crate::session::log_tag(&session.id);
        match self.sessions.load_flow(session).await {
            Ok(None) => Ok((None, false)),
            Ok(Some(bytes)) => match crate::flow::persist::decode(&bytes) {
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
    pub(super) async fn put_state(&self, session: &Session, st: Option<FlowState>) {
        if !self.sessions.is_durable() {
            *session.flow().lock_owned().await = st.map(|st| Box::new(st) as Box<dyn std::any::Any + Send>);
            return;
        }
        let bytes = st.as_ref().map(crate::flow::persist::encode);
        if let Err(e) = self.sessions.save_flow(session, bytes.as_deref()).await {
            tracing::error!(session = %crate::session::log_tag(&session.id), error = %e, "flow state not saved");
        }
    }

    /// A session written to the store before it is handed out; a store failure refuses it.
    pub(super) async fn open_session(
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
    pub(super) fn unavailable(&self, flow: &Flow, input: &ExecInput, error: String) -> ExecKind {
        tracing::debug!(%error, "session store unavailable for a flow request");
        ExecKind::Unavailable {
            flow_info: flow_info(flow, &input.query, input.app.as_deref(), None),
        }
    }
}
