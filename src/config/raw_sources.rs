//! Serde mirror of `sources:` entries of `type: oauth` (authentik's source model), field for
//! field; the `RawSource` enum with every kind is in `raw_clients.rs`. Validated by
//! `validate/sources.rs` into [`crate::config::SourceDef`].
#![allow(missing_docs)]

use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `type: oauth` (authentik's `authentik_sources_oauth.oauthsource`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOAuthSource {
    /// Shown on the login button (default: the source's key).
    pub name: Option<String>,
    /// `false` hides the button and refuses logins through the source.
    pub enabled: Option<bool>,
    /// `openidconnect`, `github`, `google`, `entraid` (`azuread`), `gitlab`.
    pub provider_type: String,
    /// Discovery document (`…/.well-known/openid-configuration`).
    pub oidc_well_known_url: Option<String>,
    /// Overrides for the endpoints (GitHub Enterprise, providers without discovery).
    pub authorization_url: Option<String>,
    pub access_token_url: Option<String>,
    pub profile_url: Option<String>,
    /// The client id registered at the provider.
    pub consumer_key: String,
    pub consumer_secret: Option<String>,
    pub consumer_secret_env: Option<String>,
    pub consumer_secret_file: Option<String>,
    /// Scopes on top of the provider's defaults.
    #[serde(default)]
    pub additional_scopes: Vec<String>,
    /// `identifier`, `email_link`, `email_deny`, `username_link`, `username_deny`.
    pub user_matching_mode: Option<String>,
    pub authentication_flow: Option<String>,
    pub enrollment_flow: Option<String>,
    /// authentik's pre-authentication flow; only a flow without stages is supported.
    pub pre_authentication_flow: Option<String>,
    /// Button icon.
    pub icon_url: Option<String>,
    /// Which claims fill the user's fields.
    pub claims: Option<RawClaimMapping>,
    /// Deadline of each call to the provider.
    pub timeout: Option<String>,
}

/// `claims:`: claim names per user field.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawClaimMapping {
    pub username: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub groups: Option<String>,
    /// `attribute name: claim name`.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}
