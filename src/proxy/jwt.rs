//! Signed identity (`apps[].jwt`): the token set in the app's JWT header on every
//! authenticated request, and the JWKS answered at `/.flowgate/jwks.json`.
//!
//! Claims: `iss` (`jwt.issuer`), `aud` (the app's name), `sub` (the username), `uid`,
//! `preferred_username`, `email`, `name`, `groups`, `iat` and `exp` (`iat` + `jwt.ttl`, at most
//! 5 minutes), on the injected clock. Signing costs tens of microseconds, so a token is reused
//! for the same app, key and claims while more than half its lifetime is left; the cache key
//! holds every claim but the times, so a changed group or email gets a new token at once.

use crate::config::values::jwt::{jwks, JwtSettings};
use crate::config::App;
use crate::session::Identity;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Most tokens cached.
const MAX_CACHED: u64 = 100_000;

/// Signed tokens, cached.
pub struct Tokens {
    cache: moka::sync::Cache<String, (Arc<str>, u64)>,
}

impl Default for Tokens {
    fn default() -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(MAX_CACHED)
                .time_to_live(Duration::from_secs(300))
                .build(),
        }
    }
}

// === impl Tokens ===

impl Tokens {
    /// The token for `who` at `app` (which has `jwt` settings `s`) at `now_ms`; `None` when
    /// signing failed (logged; the request then goes without the header, and the app that
    /// requires it refuses).
    pub fn token(&self, s: &JwtSettings, app: &App, who: &Identity, now_ms: u64) -> Option<Arc<str>> {
        let now = now_ms / 1000;
        let claims = json!({
            "iss": s.issuer,
            "aud": app.name,
            "sub": who.username,
            "uid": who.uid,
            "preferred_username": who.username,
            "email": who.email,
            "name": who.name,
            "groups": who.groups,
        });
        let key = format!("{}\0{}", s.key.kid, claims);
        let ttl = s.ttl.as_secs();
        if let Some((t, exp)) = self.cache.get(&key) {
            if exp > now + ttl / 2 {
                return Some(t);
            }
        }
        let mut claims = claims;
        let exp = now + ttl;
        if let Some(m) = claims.as_object_mut() {
            m.insert("iat".into(), json!(now));
            m.insert("exp".into(), json!(exp));
        }
        match s.key.sign(&claims) {
            Ok(t) => {
                let t: Arc<str> = t.into();
                self.cache.insert(key, (t.clone(), exp));
                Some(t)
            }
            Err(e) => {
                tracing::error!(error = %e, app = %app.name, "could not sign the identity JWT");
                None
            }
        }
    }
}

/// The JWKS body for every app's keys (signing, previous and next), each key once.
pub fn jwks_body(apps: &[App]) -> bytes::Bytes {
    bytes::Bytes::from(jwks(apps.iter().filter_map(|a| a.jwt.as_deref())).to_string())
}
