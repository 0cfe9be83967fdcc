//! The `user_write` stage (docs/design.md §5.5).
//!
//! user_write creates or updates the pending user (default: the logged-in user) from
//! `prompt_data`: `username`, `email`, `name`, `password`, `attributes` (an object, merged)
//! and `attributes.<key>` / `attributes_<key>`; everything else is discarded. New users join
//! `create_users_group` and the context's `groups`. One transaction per write. Creating a user
//! first takes one sign-up from `rate_limits.signup_per_ip` (FLOOD-1). The store refuses
//! another user's address and look-alikes of another user's name; reserved names are refused
//! here. The written address is verified only when the plan came back through a mailed link
//! sent to it (ID-1).
//!
//! A password written for an existing user ends the user's other sessions (CRED-2): after a
//! change the browser that made it stays logged in; after a reset (no logged-in user, as in
//! recovery) every session of the user ends, and the flow's own user_login starts a new one.
//!

use super::{Stage, StageCx, StageOutcome};
use crate::config::{UserCreationMode, UserWriteDef};
use crate::flow::ratelimit::Limited;
use crate::flow::PendingUser;
use crate::identity::{names, NewUser, StoreError, UserUpdate};
use serde_json::{Map, Value};

/// Creates or updates a user.
pub(super) struct UserWriteStage {
    user_creation_mode: UserCreationMode,
    create_users_as_inactive: bool,
    create_users_group: Option<String>,
}

impl UserWriteStage {
    pub(super) fn from_config(c: &UserWriteDef) -> Self {
        Self {
            user_creation_mode: c.user_creation_mode,
            create_users_as_inactive: c.create_users_as_inactive,
            create_users_group: c.create_users_group.clone(),
        }
    }
}

/// The user fields found in `prompt_data`.
#[derive(Default)]
struct Fields {
    username: Option<String>,
    email: Option<String>,
    name: Option<String>,
    password: Option<String>,
    attributes: Map<String, Value>,
}

fn fields_of(data: &Map<String, Value>) -> Result<Fields, String> {
    let mut f = Fields::default();
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    for (k, v) in data {
        match k.as_str() {
            "username" => f.username = text(v),
            "email" => f.email = text(v),
            "name" => f.name = text(v),
            "password" => f.password = text(v),
            "attributes" => match v {
                Value::Object(m) => f.attributes.extend(m.clone()),
                _ => return Err("attributes must be an object".into()),
            },
            _ => {
                if let Some(path) = k.strip_prefix("attributes.").or_else(|| k.strip_prefix("attributes_")) {
                    set_nested(&mut f.attributes, path, v.clone());
                }
            }
        }
    }
    Ok(f)
}

/// Sets `a.b.c` in a nested object, creating (or replacing non-object) levels.
fn set_nested(root: &mut Map<String, Value>, path: &str, v: Value) {
    let mut parts = path.split('.').filter(|p| !p.is_empty()).peekable();
    let mut cur = root;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            cur.insert(p.to_string(), v);
            return;
        }
        let slot = cur.entry(p.to_string()).or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(next) = slot else { return };
        cur = next;
    }
}

/// The address a followed mail link proved, if this plan came back through one.
fn verified_address(cx: &StageCx<'_>) -> Option<String> {
    if !cx.context.extra.contains_key("is_restored") {
        return None;
    }
    cx.context
        .extra
        .get(super::email::VERIFIED_ADDRESS)
        .and_then(Value::as_str)
        .map(names::email_key)
}

/// Only reached when a form did not check the value (a race between two sign-ups, or a
/// field the prompt stage does not know as a username or email): the form shows the rest.
pub(super) fn store_failure(e: StoreError) -> StageOutcome {
    match e {
        StoreError::Duplicate { what, .. } => StageOutcome::Deny(format!(
            "Failed to update user: the {} is already in use.",
            if what == "email" { "email address" } else { "username" }
        )),
        StoreError::Invalid(m) => StageOutcome::Deny(format!("Failed to update user: {m}")),
        other => {
            tracing::error!(error = %other, "user write failed");
            StageOutcome::Deny("Failed to update user. Please try again later.".into())
        }
    }
}

#[async_trait::async_trait]
impl Stage for UserWriteStage {
    async fn challenge(&self, cx: &mut StageCx<'_>) -> StageOutcome {
        let Some(data) = cx.context.extra.get("prompt_data").and_then(Value::as_object).cloned() else {
            return StageOutcome::Deny("No Pending data.".into());
        };
        let fields = match fields_of(&data) {
            Ok(f) => f,
            Err(e) => return StageOutcome::Deny(format!("Failed to update user: {e}")),
        };
        let existing = if self.user_creation_mode == UserCreationMode::AlwaysCreate {
            None
        } else {
            match cx.acting_user().await {
                Ok(u) => u,
                Err(e) => return store_failure(e),
            }
        };
        let groups: Vec<String> = cx
            .context
            .extra
            .get("groups")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|g| g.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let changes_password = fields.password.is_some();
        if let Some(name) = &fields.username {
            let own = existing
                .as_ref()
                .is_some_and(|u| names::username_skeleton(&u.username) == names::username_skeleton(name));
            if !own && cx.services.reserved_usernames.contains(name) {
                return StageOutcome::Deny("Failed to update user: the username is already in use.".into());
            }
        }
        let verified = verified_address(cx);
        let email_verified = fields
            .email
            .as_deref()
            .is_some_and(|e| verified.as_deref() == Some(names::email_key(e).as_str()));
        let written = match existing {
            Some(u) => {
                if fields.username.as_deref().is_some_and(|n| n.trim().is_empty()) {
                    return StageOutcome::Deny("Failed to update user: a username is required.".into());
                }
                cx.users
                    .update_user(
                        u.id,
                        UserUpdate {
                            username: fields.username,
                            email: fields.email,
                            email_verified: email_verified.then_some(true),
                            name: fields.name,
                            password: fields.password,
                            attributes: fields.attributes,
                            add_groups: groups,
                            is_active: None,
                        },
                    )
                    .await
            }
            None if self.user_creation_mode == UserCreationMode::NeverCreate => {
                return StageOutcome::Deny("No user found and can't create new user.".into());
            }
            None => {
                let Some(username) = fields.username.filter(|u| !u.trim().is_empty()) else {
                    return StageOutcome::Deny("Failed to update user: a username is required.".into());
                };
                // FLOOD-1: sign-ups per client address.
                match cx.services.limits.check_signup(cx.client_ip).await {
                    Ok(()) => {}
                    Err(Limited::Wait(wait)) => {
                        tracing::warn!(wait_s = wait.as_secs(), "sign-up rate-limited");
                        cx.services.telemetry.metrics.rate_limited("signup");
                        return StageOutcome::RateLimited(wait);
                    }
                    Err(Limited::Unavailable) => return StageOutcome::Unavailable,
                }
                let mut all_groups = groups;
                all_groups.extend(self.create_users_group.iter().cloned());
                cx.users
                    .create_user(NewUser {
                        username,
                        email: fields.email.unwrap_or_default(),
                        email_verified,
                        name: fields.name.unwrap_or_default(),
                        password: fields.password,
                        groups: all_groups,
                        attributes: fields.attributes,
                        is_active: !self.create_users_as_inactive,
                        is_superuser: false,
                    })
                    .await
            }
        };
        match written {
            Ok(user) => {
                tracing::info!(user = %user.username, "user written");
                cx.services.sessions.user_changed(user.id).await;
                if changes_password && self.user_creation_mode != UserCreationMode::AlwaysCreate {
                    end_other_sessions(cx, user.id, &user.username).await;
                    cx.audit("password_changed", Some(&user.username));
                }
                cx.context.pending_user = Some(PendingUser {
                    identifier: user.username.clone(),
                    user: Some(user),
                });
                StageOutcome::Continue
            }
            Err(e) => store_failure(e),
        }
    }

    fn changes_credentials(&self) -> bool {
        self.user_creation_mode != UserCreationMode::AlwaysCreate
    }
}

/// Ends every session of `user_id` but the caller's own when the caller is that user.
async fn end_other_sessions(cx: &StageCx<'_>, user_id: i64, username: &str) {
    let keep = cx
        .request_user
        .filter(|me| me.user_id == user_id)
        .map(|_| cx.session_id);
    let ended = cx.services.sessions.end_user_sessions(user_id, keep).await;
    tracing::info!(user = %username, ended, kept_current = keep.is_some(), "password written: other sessions ended");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prompt_data_maps_to_user_fields() {
        let data = json!({
            "username": "dora", "email": "d@example.com", "password": "pw", "component": "x",
            "attributes": {"a": 1}, "attributes.b.c": "deep", "attributes_d": true, "other": "dropped"
        });
        let f = fields_of(data.as_object().unwrap()).unwrap();
        assert_eq!(f.username.as_deref(), Some("dora"));
        assert_eq!(f.password.as_deref(), Some("pw"));
        assert_eq!(
            Value::Object(f.attributes),
            json!({"a": 1, "b": {"c": "deep"}, "d": true})
        );
    }

    #[test]
    fn non_object_attributes_are_refused() {
        let data = json!({"attributes": "nope"});
        assert!(fields_of(data.as_object().unwrap()).is_err());
    }
}
