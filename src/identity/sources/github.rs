//! GitHub's profile API (GitHub is OAuth 2 without an ID token): the user (`GET /user`) and
//! their addresses (`GET /user/emails`), of which the primary one counts, verified only when
//! GitHub says so. The subject is the numeric user id, which survives a rename.

use super::oauth::{OAuthFailure, LOGIN_REFUSED, PROVIDER_UNAVAILABLE};
use crate::config::values::url::HttpUrl;
use crate::outbound::http;
use serde_json::{Map, Value};
use std::time::Duration;

/// Largest answer read.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

async fn get(url: &HttpUrl, bearer: &str, timeout: Duration, what: &str) -> Result<Value, OAuthFailure> {
    let headers = [("authorization", bearer), ("accept", "application/vnd.github+json")];
    let (status, body) = http::call(url, &headers, None, timeout, MAX_ANSWER_BYTES)
        .await
        .map_err(|e| OAuthFailure {
            message: PROVIDER_UNAVAILABLE,
            reason: format!("{what}: {e}"),
        })?;
    if status != 200 {
        return Err(OAuthFailure {
            message: PROVIDER_UNAVAILABLE,
            reason: format!("{what}: status {status}"),
        });
    }
    serde_json::from_slice(&body).map_err(|e| OAuthFailure {
        message: PROVIDER_UNAVAILABLE,
        reason: format!("{what}: not JSON: {e}"),
    })
}

/// The subject and claims (`login`, `name`, `email`, `email_verified`) of the token's user.
pub(super) async fn claims(
    profile: &HttpUrl,
    access_token: &str,
    timeout: Duration,
) -> Result<(String, Map<String, Value>), OAuthFailure> {
    let bearer = format!("Bearer {access_token}");
    let Value::Object(mut user) = get(profile, &bearer, timeout, "github user").await? else {
        return Err(OAuthFailure {
            message: LOGIN_REFUSED,
            reason: "github user is not an object".into(),
        });
    };
    let subject = match user.get("id") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            return Err(OAuthFailure {
                message: LOGIN_REFUSED,
                reason: "github user without id".into(),
            })
        }
    };
    let emails_url =
        HttpUrl::parse(&format!("{}/emails", profile.to_string().trim_end_matches('/'))).map_err(|e| OAuthFailure {
            message: PROVIDER_UNAVAILABLE,
            reason: e,
        })?;
    // The profile's own `email` is the public one, which GitHub does not vouch for.
    user.remove("email");
    user.remove("email_verified");
    if let Value::Array(list) = get(&emails_url, &bearer, timeout, "github emails").await? {
        let primary = list
            .iter()
            .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true));
        if let Some(p) = primary {
            if let Some(addr) = p.get("email").and_then(Value::as_str) {
                user.insert("email".into(), Value::String(addr.to_string()));
                let verified = p.get("verified").and_then(Value::as_bool) == Some(true);
                user.insert("email_verified".into(), Value::Bool(verified));
            }
        }
    }
    user.insert("sub".into(), Value::String(subject.clone()));
    Ok((subject, user))
}
