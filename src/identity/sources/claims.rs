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
