//! The validated `sources:` (external identity): what `identity::sources` runs. Defaults are
//! named constants; provider presets fill in endpoints, scopes and claim names
//! (authentik's defaults, see docs/configuration.md).

use super::values::secret::Secret;
use super::values::url::HttpUrl;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Default `timeout` of a source: each call to the provider (discovery, keys, token,
/// userinfo) must finish within 10 s.
pub const DEFAULT_SOURCE_TIMEOUT: Duration = Duration::from_secs(10);
/// Scopes every OpenID Connect source asks for.
pub const OIDC_SCOPES: &[&str] = &["openid", "email", "profile"];
/// Scopes the GitHub preset asks for (profile and the email list).
pub const GITHUB_SCOPES: &[&str] = &["read:user", "user:email"];
/// GitHub's endpoints.
pub const GITHUB_AUTHORIZATION_URL: &str = "https://github.com/login/oauth/authorize";
/// GitHub's token endpoint.
pub const GITHUB_ACCESS_TOKEN_URL: &str = "https://github.com/login/oauth/access_token";
/// GitHub's user API (its email list is this URL plus `/emails`).
pub const GITHUB_PROFILE_URL: &str = "https://api.github.com/user";
/// Google's discovery document.
pub const GOOGLE_WELL_KNOWN_URL: &str = "https://accounts.google.com/.well-known/openid-configuration";
/// gitlab.com's discovery document.
pub const GITLAB_WELL_KNOWN_URL: &str = "https://gitlab.com/.well-known/openid-configuration";

/// A source, by kind.
#[derive(Debug, Clone)]
pub enum SourceDef {
    /// OAuth 2 / OpenID Connect.
    OAuth(Arc<OAuthSourceDef>),
}

impl SourceDef {
    /// The kind, as written after `type:`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::OAuth(_) => "oauth",
        }
    }
}

/// `provider_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderType {
    /// Any OpenID Connect provider, from its discovery document.
    OpenIdConnect,
    /// GitHub (OAuth 2 with its user and emails API, no ID token).
    GitHub,
    /// Google (OpenID Connect).
    Google,
    /// Microsoft Entra ID (OpenID Connect; `azuread` in older exports). Never linked by email.
    EntraId,
    /// GitLab (OpenID Connect).
    GitLab,
}

impl ProviderType {
    /// Accepted spellings.
    pub const NAMES: &'static [(&'static str, ProviderType)] = &[
        ("openidconnect", Self::OpenIdConnect),
        ("github", Self::GitHub),
        ("google", Self::Google),
        ("entraid", Self::EntraId),
        ("azuread", Self::EntraId),
        ("gitlab", Self::GitLab),
    ];

    /// Whether logins go through OpenID Connect (an ID token) rather than a profile API.
    pub fn is_oidc(self) -> bool {
        self != Self::GitHub
    }

    /// The name written in config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenIdConnect => "openidconnect",
            Self::GitHub => "github",
            Self::Google => "google",
            Self::EntraId => "entraid",
            Self::GitLab => "gitlab",
        }
    }
}

/// `user_matching_mode`: what a first login through the source does when no user is linked
/// to the provider's subject yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserMatchingMode {
    /// Always enroll a new user.
    Identifier,
    /// Link to the user with the same (provider-verified) email.
    EmailLink,
    /// Refuse when a user with the same email exists.
    EmailDeny,
    /// Link to the user with the same username.
    UsernameLink,
    /// Refuse when a user with the same username exists.
    UsernameDeny,
}

impl UserMatchingMode {
    /// Accepted values.
    pub const NAMES: &'static [(&'static str, UserMatchingMode)] = &[
        ("identifier", Self::Identifier),
        ("email_link", Self::EmailLink),
        ("email_deny", Self::EmailDeny),
        ("username_link", Self::UsernameLink),
        ("username_deny", Self::UsernameDeny),
    ];
}

/// Default `user_matching_mode` (authentik's).
pub const DEFAULT_USER_MATCHING_MODE: UserMatchingMode = UserMatchingMode::Identifier;

/// Which claims fill which user fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimMapping {
    /// Claims tried in order for the username.
    pub username: Vec<String>,
    /// Claim holding the email.
    pub email: String,
    /// Claim holding the display name.
    pub name: String,
    /// Claim holding a list of group names, if any.
    pub groups: Option<String>,
    /// `attribute: claim`, copied into the user's attributes.
    pub attributes: BTreeMap<String, String>,
}

/// A validated OAuth / OpenID Connect source.
#[derive(Debug, Clone)]
pub struct OAuthSourceDef {
    /// Its key under `sources:` (in URLs: `/.flowgate/source/oauth/callback/<slug>/`).
    pub slug: String,
    /// Shown on the button.
    pub name: String,
    /// Logins allowed and the button shown.
    pub enabled: bool,
    /// The provider preset.
    pub provider: ProviderType,
    /// Discovery document (OpenID Connect kinds).
    pub well_known: Option<HttpUrl>,
    /// Authorization endpoint override (GitHub: the preset's).
    pub authorization_url: Option<HttpUrl>,
    /// Token endpoint override.
    pub access_token_url: Option<HttpUrl>,
    /// Userinfo / profile endpoint override.
    pub profile_url: Option<HttpUrl>,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: Secret,
    /// Every scope asked for (the preset's, then `additional_scopes`).
    pub scopes: Vec<String>,
    /// First-login behaviour.
    pub user_matching_mode: UserMatchingMode,
    /// Flow run for a user already known (linked or matched).
    pub authentication_flow: Option<String>,
    /// Flow run to create a new user.
    pub enrollment_flow: Option<String>,
    /// Button icon.
    pub icon_url: Option<String>,
    /// Claim names.
    pub claims: ClaimMapping,
    /// Deadline of each provider call.
    pub timeout: Duration,
}
