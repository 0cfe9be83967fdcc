//! Flow state in the session store (docs/decisions/0010): versioned JSON, `{"v": N, "state": …}`, sealed
//! by the session store with the session id. A record of another version or that does not
//! parse is refused ([`decode`]); the executor then restarts the flow with a message.

use super::FlowState;

/// Version of the stored flow state. Bump it when [`FlowState`] changes shape in a way old
/// records cannot be read as; old records then restart their flow with a message.
pub const FLOW_STATE_VERSION: u32 = 1;

/// Shown above the first challenge of a flow restarted because its saved state was unusable.
pub const RESTARTED_MESSAGE: &str = "Your sign-in could not be resumed, so it started again.";

#[derive(serde::Serialize)]
struct Out<'a> {
    v: u32,
    state: &'a FlowState,
}

#[derive(serde::Deserialize)]
struct In {
    v: u32,
    state: serde_json::Value,
}

/// Why stored flow state was refused.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Written by another version.
    #[error("flow state version {0} (this build reads {FLOW_STATE_VERSION})")]
    Version(u32),
    /// Does not parse.
    #[error("flow state does not parse: {0}")]
    Malformed(String),
}

/// The stored form of `st`.
pub fn encode(st: &FlowState) -> Vec<u8> {
    serde_json::to_vec(&Out {
        v: FLOW_STATE_VERSION,
        state: st,
    })
    .unwrap_or_default()
}

/// Reads stored flow state back.
pub fn decode(bytes: &[u8]) -> Result<FlowState, DecodeError> {
    let i: In = serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if i.v != FLOW_STATE_VERSION {
        return Err(DecodeError::Version(i.v));
    }
    serde_json::from_value(i.state).map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// `PendingUser::user` in full, password hash included (the record is sealed): the user as
/// the stage that found them saw them, so a flow resumes on another replica exactly as it
/// would have here.
pub mod stored_user {
    use crate::identity::User;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::{Map, Value};

    #[derive(Serialize, Deserialize)]
    struct Stored {
        id: i64,
        uid: String,
        username: String,
        email: String,
        name: String,
        email_verified: bool,
        is_active: bool,
        is_superuser: bool,
        groups: Vec<String>,
        attributes: Map<String, Value>,
        password_hash: Option<String>,
        password_changed_at: Option<i64>,
    }

    /// Serialises.
    pub fn serialize<S: Serializer>(u: &Option<User>, s: S) -> Result<S::Ok, S::Error> {
        u.as_ref()
            .map(|u| Stored {
                id: u.id,
                uid: u.uid.clone(),
                username: u.username.clone(),
                email: u.email.clone(),
                name: u.name.clone(),
                email_verified: u.email_verified,
                is_active: u.is_active,
                is_superuser: u.is_superuser,
                groups: u.groups.clone(),
                attributes: u.attributes.clone(),
                password_hash: u.password_hash.clone(),
                password_changed_at: u.password_changed_at,
            })
            .serialize(s)
    }

    /// Deserialises.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<User>, D::Error> {
        Ok(Option::<Stored>::deserialize(d)?.map(|u| User {
            id: u.id,
            uid: u.uid,
            username: u.username,
            email: u.email,
            name: u.name,
            email_verified: u.email_verified,
            is_active: u.is_active,
            is_superuser: u.is_superuser,
            groups: u.groups,
            attributes: u.attributes,
            password_hash: u.password_hash,
            password_changed_at: u.password_changed_at,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::{FlowContext, Injected, PlanEntry};

    #[test]
    fn round_trip_and_refusals() {
        let mut ctx = FlowContext::default();
        ctx.extra.insert("k".into(), serde_json::json!([1, "x"]));
        ctx.auth_methods.insert("password".into());
        let st = FlowState {
            flow: "login".into(),
            plan: vec![
                PlanEntry::binding(2, true),
                PlanEntry::injected(Injected::ConfirmToken("h".into())),
            ],
            context: ctx,
            query: "next=%2F".into(),
            app: Some("app".into()),
        };
        let back = decode(&encode(&st)).unwrap();
        assert_eq!(back.plan, st.plan);
        assert_eq!(back.context.extra, st.context.extra);
        assert_eq!(back.query, st.query);
        assert!(matches!(
            decode(br#"{"v":999,"state":{}}"#),
            Err(DecodeError::Version(999))
        ));
        assert!(matches!(decode(b"not json"), Err(DecodeError::Malformed(_))));
        assert!(matches!(
            decode(br#"{"v":1,"state":{"flow":3}}"#),
            Err(DecodeError::Malformed(_))
        ));
    }
}
