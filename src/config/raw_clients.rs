//! Serde mirror of the YAML keys for API clients and signed identity (`apps[].jwt`), and for
//! directory sources (`sources: { NAME: { type: ldap } }`), documented in docs/configuration.md.
#![allow(missing_docs)]

use schemars::JsonSchema;
use serde::Deserialize;

/// `apps[].jwt`: the signed identity header.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawJwt {
    /// Header carrying the token (default `X-Flowgate-Jwt`; `X-authentik-jwt` with the authentik preset).
    pub header: Option<String>,
    /// `iss` claim (default `flowgate`).
    pub issuer: Option<String>,
    /// Token lifetime, at most 5m (default 5m).
    pub ttl: Option<String>,
    /// PKCS#8 PEM file of the signing key (P-256 for ES256, Ed25519 for EdDSA).
    pub key_file: Option<String>,
    /// Environment variable holding the signing key's PEM.
    pub key_env: Option<String>,
    /// The key signing before a rotation: still published in the JWKS, no longer used.
    pub previous_key_file: Option<String>,
    pub previous_key_env: Option<String>,
    /// The key that will sign after a rotation: published in the JWKS ahead of use.
    pub next_key_file: Option<String>,
    pub next_key_env: Option<String>,
}
