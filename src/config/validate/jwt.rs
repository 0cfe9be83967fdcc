//! Validation of an app's API-client and signed-identity keys (`apps[].basic_auth`,
//! `basic_auth_user_passwords`, `apps[].jwt`): the header name, the lifetime (at most 5
//! minutes) and the keys, which must parse as PKCS#8 P-256 or Ed25519 here so that a bad key
//! stops `flowgate check` rather than the first request.

use super::secrets::secret;
use super::Collector;
use crate::config::model::{ApiClients, HeaderSet};
use crate::config::raw::RawApp;
use crate::config::raw_clients::RawJwt;
use crate::config::values::jwt::*;

pub(crate) fn api_clients(c: &mut Collector<'_>, p: &str, raw: &RawApp) -> Option<ApiClients> {
    let on = raw.basic_auth.unwrap_or(false);
    let user_passwords = raw.basic_auth_user_passwords.unwrap_or(false);
    if user_passwords && !on {
        c.err(
            0,
            format!("{p}.basic_auth_user_passwords"),
            "needs basic_auth: true (user passwords are one kind of API client credential)",
        );
    }
    on.then_some(ApiClients { user_passwords })
}

fn key(c: &mut Collector<'_>, p: &str, env: Option<&String>, file: Option<&String>, name: &str) -> Option<JwtKey> {
    let pem = secret(c, 0, p, None, env, file, name)?;
    match JwtKey::from_pem(&pem) {
        Ok(k) => Some(k),
        Err(e) => {
            let which = if file.is_some() { "file" } else { "env" };
            c.err(0, format!("{p}.{name}_{which}"), e);
            None
        }
    }
}

pub(crate) fn jwt(c: &mut Collector<'_>, p: &str, raw: &RawJwt, headers: &HeaderSet) -> Option<JwtSettings> {
    let header = match &raw.header {
        Some(h) => {
            let lower = h.to_ascii_lowercase();
            if http::HeaderName::from_bytes(h.as_bytes()).is_err()
                || super::headers::RESERVED_HEADERS.contains(&lower.as_str())
                || lower == "authorization"
            {
                c.err(
                    0,
                    format!("{p}.header"),
                    format!("invalid header name {h:?} (expected a valid HTTP header name that is not hop-by-hop, Host, Cookie, Authorization or X-Forwarded-*)"),
                );
            }
            h.clone()
        }
        None if headers.preset == "authentik" => AUTHENTIK_JWT_HEADER.to_string(),
        None => DEFAULT_JWT_HEADER.to_string(),
    };
    let ttl = c.duration(0, format!("{p}.ttl"), &raw.ttl, MAX_JWT_TTL);
    if ttl > MAX_JWT_TTL || ttl < MIN_JWT_TTL {
        c.err(0, format!("{p}.ttl"), "must be between 10s and 5m");
    }
    let issuer = raw.issuer.clone().unwrap_or_else(|| DEFAULT_JWT_ISSUER.to_string());
    if issuer.is_empty() || issuer.chars().any(char::is_control) {
        c.err(
            0,
            format!("{p}.issuer"),
            "must be a non-empty string without control characters",
        );
    }
    if raw.key_file.is_none() && raw.key_env.is_none() {
        c.err(
            0,
            format!("{p}.key_file"),
            "a signing key is required: set key_file or key_env",
        );
        return None;
    }
    let signing = key(c, p, raw.key_env.as_ref(), raw.key_file.as_ref(), "key");
    let mut published = Vec::new();
    for (env, file, name) in [
        (&raw.previous_key_env, &raw.previous_key_file, "previous_key"),
        (&raw.next_key_env, &raw.next_key_file, "next_key"),
    ] {
        if env.is_some() || file.is_some() {
            published.extend(key(c, p, env.as_ref(), file.as_ref(), name));
        }
    }
    Some(JwtSettings {
        header,
        issuer,
        ttl,
        key: signing?,
        published,
    })
}
