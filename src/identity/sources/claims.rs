//! Claims (ID token, userinfo, GitHub's profile) to a [`SourceIdentity`] through the source's
//! claim mapping. Values of the wrong type count as missing; lengths are bounded.

use super::SourceIdentity;
use crate::config::ClaimMapping;
use serde_json::{Map, Value};

/// Longest string value taken from a claim.
const MAX_CLAIM_LEN: usize = 512;
/// Most groups taken from a claim.
const MAX_GROUPS: usize = 256;

fn text(claims: &Map<String, Value>, key: &str) -> Option<String> {
    claims
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= MAX_CLAIM_LEN && !s.chars().any(char::is_control))
        .map(str::to_string)
}

/// `email_verified` as providers send it: a boolean, or (some) the string `"true"`.
pub(super) fn verified(claims: &Map<String, Value>) -> bool {
    match claims.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    }
}

/// Maps `claims` for source `source` with subject `subject`.
pub(super) fn map(source: &str, subject: String, claims: &Map<String, Value>, m: &ClaimMapping) -> SourceIdentity {
    let groups = m
        .groups
        .as_deref()
        .and_then(|g| claims.get(g))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter(|s| !s.is_empty() && s.len() <= MAX_CLAIM_LEN && !s.chars().any(char::is_control))
                .take(MAX_GROUPS)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let attributes = m
        .attributes
        .iter()
        .filter_map(|(attr, claim)| claims.get(claim).map(|v| (attr.clone(), v.clone())))
        .collect();
    SourceIdentity {
        source: source.to_string(),
        subject,
        username: m.username.iter().find_map(|k| text(claims, k)),
        email: text(claims, &m.email),
        email_verified: verified(claims),
        name: text(claims, &m.name),
        groups,
        attributes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping() -> ClaimMapping {
        ClaimMapping {
            username: vec!["preferred_username".into(), "nickname".into()],
            email: "email".into(),
            name: "name".into(),
            groups: Some("groups".into()),
            attributes: [("dept".to_string(), "department".to_string())].into_iter().collect(),
        }
    }

    #[test]
    fn claims_map_with_fallbacks_and_bounds() {
        let c = json!({ "nickname": "ann", "email": " ann@x.example ", "email_verified": "true",
                        "groups": ["a", 7, "", "b\u{0}c", "b"], "department": {"id": 3} });
        let who = map("corp", "s1".into(), c.as_object().unwrap(), &mapping());
        assert_eq!(who.username.as_deref(), Some("ann"), "falls back to nickname");
        assert_eq!(who.email.as_deref(), Some("ann@x.example"));
        assert!(who.email_verified);
        assert_eq!(
            who.groups,
            ["a", "b"],
            "non-strings, empty and control characters dropped"
        );
        assert_eq!(who.attributes["dept"], json!({"id": 3}));
        assert_eq!(who.name, None);
    }

    #[test]
    fn email_verified_must_be_true() {
        for v in [json!(false), json!("yes"), json!(1), json!(null)] {
            let c = json!({ "email_verified": v });
            assert!(!verified(c.as_object().unwrap()), "{v}");
        }
        let long = "x".repeat(MAX_CLAIM_LEN + 1);
        let c = json!({ "preferred_username": long });
        assert_eq!(map("s", "1".into(), c.as_object().unwrap(), &mapping()).username, None);
    }
}
