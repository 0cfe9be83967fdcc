//! OpenID Connect checks, done by the `openidconnect` crate (docs/decisions/0016): the
//! discovery document's shape and issuer, the signing algorithms a source accepts (those the
//! provider announces, asymmetric only: never `none`, never an HMAC that a public key could be
//! fed to), and the ID token: signature against the provider's keys, `iss`, `aud` (no other
//! audience), `azp`, `exp`, `iat` and `nonce`, against the injected clock.

use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
use openidconnect::{ClaimsVerificationError, ClientId, IssuerUrl, Nonce, SignatureVerificationError};
use serde_json::{Map, Value};
use std::str::FromStr;

/// How far in the future an `iat` may lie (clock skew between provider and gateway), in ms.
pub(super) const MAX_IAT_SKEW_MS: i64 = 60_000;
/// How old an ID token may be when it is received, in ms: it was just issued for this login.
pub(super) const MAX_IAT_AGE_MS: i64 = 10 * 60_000;

/// Algorithms flowgate verifies ID tokens with: asymmetric only.
const ASYMMETRIC: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
];

/// The parts of a discovery document flowgate uses.
#[derive(Debug, Clone, serde::Deserialize)]
pub(super) struct Discovery {
    pub(super) issuer: String,
    pub(super) authorization_endpoint: String,
    pub(super) token_endpoint: String,
    pub(super) userinfo_endpoint: Option<String>,
    pub(super) jwks_uri: String,
    #[serde(default)]
    pub(super) id_token_signing_alg_values_supported: Vec<String>,
    #[serde(default)]
    pub(super) token_endpoint_auth_methods_supported: Vec<String>,
}

/// The algorithms to accept: those the provider announces that flowgate verifies with.
pub(super) fn allowed_algs(announced: &[String]) -> Vec<CoreJwsSigningAlgorithm> {
    announced
        .iter()
        .filter(|a| ASYMMETRIC.contains(&a.as_str()))
        .filter_map(|a| serde_json::from_value(Value::String(a.clone())).ok())
        .collect()
}

/// Why an ID token was refused.
#[derive(Debug)]
pub(super) enum TokenError {
    /// No key of the set matches the token's `kid`/`alg`: the keys may have rotated.
    UnknownKey,
    /// Anything else, with the reason.
    Invalid(String),
}

/// The payload of a compact JWT as JSON (only after its signature was verified).
fn payload(jwt: &str) -> Option<Map<String, Value>> {
    use base64::Engine;
    let middle = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(middle.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The `alg` of a compact JWT's header, unverified (for the pin check and the log).
fn header_alg(jwt: &str) -> Option<String> {
    use base64::Engine;
    let first = jwt.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("alg").and_then(Value::as_str).map(str::to_string)
}

/// Verifies `jwt` and returns all its claims.
pub(super) fn verify(
    jwt: &str,
    client_id: &str,
    issuer: &str,
    keys: &CoreJsonWebKeySet,
    algs: &[CoreJwsSigningAlgorithm],
    nonce: &str,
    now_ms: u64,
) -> Result<Map<String, Value>, TokenError> {
    let invalid = |s: String| TokenError::Invalid(s);
    // The algorithm is pinned before anything else: `none` and HMACs never get further.
    let alg = header_alg(jwt).unwrap_or_default();
    let pinned = algs.iter().any(|a| {
        serde_json::to_value(a)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            == Some(alg.clone())
    });
    if !pinned {
        return Err(invalid(format!(
            "ID token algorithm {alg:?} is not one the provider announces and flowgate accepts"
        )));
    }
    let token = CoreIdToken::from_str(jwt).map_err(|e| invalid(format!("ID token does not parse: {e}")))?;
    let issuer = IssuerUrl::new(issuer.to_string()).map_err(|e| invalid(format!("issuer: {e}")))?;
    let now_ms = i64::try_from(now_ms).unwrap_or(i64::MAX);
    let now = chrono::DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
    let verifier = CoreIdTokenVerifier::new_public_client(ClientId::new(client_id.to_string()), issuer, keys.clone())
        .set_allowed_algs(algs.to_vec())
        .set_time_fn(move || now)
        .set_issue_time_verifier_fn(move |iat| {
            let iat = iat.timestamp_millis();
            if iat > now_ms + MAX_IAT_SKEW_MS {
                Err(format!("issued in the future (iat {iat} ms)"))
            } else if iat < now_ms - MAX_IAT_AGE_MS {
                Err(format!("issued too long ago (iat {iat} ms)"))
            } else {
                Ok(())
            }
        });
    let claims = match token.claims(&verifier, &Nonce::new(nonce.to_string())) {
        Ok(c) => c,
        Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey)) => {
            return Err(TokenError::UnknownKey)
        }
        Err(e) => return Err(invalid(format!("ID token refused: {e}"))),
    };
    if let Some(azp) = claims.authorized_party() {
        if azp.as_str() != client_id {
            return Err(invalid(format!(
                "ID token refused: azp {:?} is not this client",
                azp.as_str()
            )));
        }
    }
    payload(jwt).ok_or_else(|| invalid("ID token payload is not a JSON object".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_announced_asymmetric_algorithms_are_allowed() {
        let announced: Vec<String> = ["none", "HS256", "RS256", "ES256", "XX999"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let algs: Vec<String> = allowed_algs(&announced)
            .iter()
            .filter_map(|a| serde_json::to_value(a).ok())
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        assert_eq!(algs, ["RS256", "ES256"]);
        assert!(allowed_algs(&["HS256".to_string()]).is_empty());
    }

    #[test]
    fn garbage_tokens_are_refused_without_panicking() {
        let keys: CoreJsonWebKeySet = serde_json::from_str(r#"{"keys":[]}"#).unwrap();
        let algs = allowed_algs(&["RS256".to_string()]);
        for jwt in [
            "",
            ".",
            "..",
            "a.b.c",
            "eyJhbGciOiJSUzI1NiJ9.e30.",
            "eyJhbGciOiJub25lIn0.e30.",
        ] {
            assert!(
                verify(jwt, "c", "https://i.example", &keys, &algs, "n", 0).is_err(),
                "{jwt}"
            );
        }
    }
}
