//! Expression policies: authentik's Python-style expressions run in a Starlark sandbox
//! (`starlark` crate). No file, network or clock access exists in the sandbox; a statement
//! budget and a heap budget stop expressions that loop or allocate without bound, and the
//! policy then yields its `failure_result`.
//!
//! Variables (docs/design.md §4.2): `request` (`.user`, `.context`, `.http_request`), `context`
//! (the flow context; mutable), `flow_plan` (`.context`, inside flows), `ak_is_sso_flow`,
//! `ak_client_ip`, `ak_message(text)`, `ak_is_group_member(user, name=…)`, `ak_user_by(username=
//! or email=)` (reads the user store from the blocking pool; `None` where no store is given), `regex_match(value, regex)`,
//! `regex_replace(value, regex, replacement)`, `list_flatten(value)` and `http_request`. Changes
//! an expression makes to the context are not written back to the flow.

use super::{Decision, PolicyError, PolicyInput};
pub use crate::expression::{compile, Expression, MAX_HEAP_BYTES, MAX_STATEMENTS};
use crate::expression::{Input, UserKey, UserLookup};
use std::sync::Arc;

/// `ak_user_by` answered from the user store, read synchronously on a blocking-pool thread.
struct StoreLookup {
    store: crate::identity::UserStore,
    handle: tokio::runtime::Handle,
}

impl UserLookup for StoreLookup {
    fn find(&self, key: UserKey, value: &str) -> Result<Option<serde_json::Value>, String> {
        let fields: &[crate::identity::LookupField] = match key {
            UserKey::Username => &[crate::identity::LookupField::Username],
            UserKey::Email => &[crate::identity::LookupField::Email],
        };
        let found = self
            .handle
            .block_on(self.store.find_user(value, fields, false))
            .map_err(|e| e.to_string())?;
        Ok(found.map(|u| {
            serde_json::json!({
                "pk": u.id, "username": u.username, "email": u.email, "name": u.name,
                "is_superuser": u.is_superuser, "groups": u.groups, "attributes": u.attributes,
                "has_usable_password": u.password_hash.is_some(),
            })
        }))
    }
}

impl Expression {
    /// Runs the expression; one that looks users up runs on the blocking pool, where the
    /// database may be read synchronously.
    pub async fn evaluate_async(&self, input: &PolicyInput) -> Result<Decision, PolicyError> {
        match (&input.users, self.uses_users()) {
            (Some(store), true) => {
                let me = self.clone();
                let input = input.clone();
                let users: Arc<dyn UserLookup> = Arc::new(StoreLookup {
                    store: store.clone(),
                    handle: tokio::runtime::Handle::current(),
                });
                tokio::task::spawn_blocking(move || Expression::with_users(users, || me.evaluate(&input)))
                    .await
                    .map_err(|_| PolicyError("expression task failed".into()))?
            }
            _ => self.evaluate(input),
        }
    }

    /// Runs the expression for `input` on this thread (`ak_user_by` finds nobody here).
    pub fn evaluate(&self, input: &PolicyInput) -> Result<Decision, PolicyError> {
        let user = input.user.as_ref().filter(|u| u.is_authenticated_user).map(|u| {
            serde_json::json!({
                "pk": u.username, "username": u.username, "email": u.email, "name": u.name,
                "is_superuser": u.is_superuser, "groups": u.groups, "attributes": {},
            })
        });
        let result = self.run(&Input {
            user,
            context: &input.context,
            is_sso: input.is_sso,
            client_ip: input.client_ip,
            in_flow: input.in_flow,
        });
        match result {
            Ok((passing, messages)) => Ok(Decision { passing, messages }),
            Err(e) => Err(PolicyError(e.lines().next().unwrap_or("expression failed").to_string())),
        }
    }
}

#[cfg(test)]
mod tests;
