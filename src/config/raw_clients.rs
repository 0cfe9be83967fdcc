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

/// A `sources:` entry, tagged by `type:` (`ldap` here; `oauth` sources are their own kind).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RawSource {
    /// A directory (OpenLDAP, Active Directory): passwords checked by a bind.
    Ldap(RawLdapSource),
    /// OAuth 2 / OpenID Connect login through an upstream provider (`raw_sources.rs`).
    Oauth(super::raw_sources::RawOAuthSource),
}

/// `type: ldap` (authentik's `authentik_sources_ldap.ldapsource` field names where it has them).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLdapSource {
    /// Display name (default: the source's key).
    pub name: Option<String>,
    /// `false` turns the source off (its users cannot log in through it).
    pub enabled: Option<bool>,
    /// `ldaps://host[:port]` or `ldap://host[:port]` with `start_tls: true`.
    pub server_uri: String,
    /// Upgrade an `ldap://` connection with StartTLS.
    pub start_tls: Option<bool>,
    /// PEM file of the CA certificate(s) the server's certificate must chain to (default: the
    /// public web PKI roots).
    pub ca_file: Option<String>,
    /// DN of the service account that searches.
    pub bind_cn: String,
    pub bind_password: Option<String>,
    pub bind_password_env: Option<String>,
    pub bind_password_file: Option<String>,
    /// Search base.
    pub base_dn: String,
    /// Prepended to `base_dn` for user searches (`ou=people`).
    pub additional_user_dn: Option<String>,
    /// Prepended to `base_dn` for group searches (`ou=groups`).
    pub additional_group_dn: Option<String>,
    /// Which entries are users (default `(objectClass=person)`).
    pub user_object_filter: Option<String>,
    /// Which entries are groups (default `(objectClass=groupOfNames)`).
    pub group_object_filter: Option<String>,
    /// Attribute of a group naming its members by DN (default `member`).
    pub group_membership_field: Option<String>,
    /// Read the groups from the user's `memberOf` instead of searching groups.
    pub lookup_groups_from_user: Option<bool>,
    /// Attribute holding the login name (default `uid`; `sAMAccountName` on Active Directory).
    pub username_attribute: Option<String>,
    /// Attribute holding the email (default `mail`).
    pub email_attribute: Option<String>,
    /// Attribute holding the display name (default `cn`).
    pub name_attribute: Option<String>,
    /// Attribute of a group holding its name (default `cn`).
    pub group_name_attribute: Option<String>,
    /// Deadline of each directory operation (default 5s).
    pub timeout: Option<String>,
}
