//! External identity sources (authentik's source model): who a provider says the user is
//! ([`SourceIdentity`]), the stored link between a provider's subject and a user
//! (`connections.rs`), what a first login does under `user_matching_mode` (`matching.rs`), and
//! the OAuth 2 / OpenID Connect client (`oauth.rs`, the protocol checks in `oidc.rs`, GitHub's
//! profile API in `github.rs`). No HTTP server types, no sessions, no flows: the callback route
//! (`http::source`) and the executor turn a [`SourceAction`] into a flow.

mod claims;
mod connections;
mod github;
mod matching;
pub mod oauth;
mod oidc;

pub use connections::SourceConnection;
pub(crate) use connections::SCHEMA as CONNECTIONS_SCHEMA;
pub use matching::{decide, SourceAction};
pub use oauth::{OAuthClient, OAuthFailure, PendingLogin};
use serde_json::{Map, Value};

/// What a provider asserted about the user after every check passed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SourceIdentity {
    /// The source's key.
    pub source: String,
    /// The provider's stable subject (`sub`; GitHub's numeric user id).
    pub subject: String,
    /// Username from the mapped claim, if any.
    pub username: Option<String>,
    /// Email from the mapped claim, if any.
    pub email: Option<String>,
    /// Whether the provider asserted the email is verified (`email_verified: true`, GitHub's
    /// verified primary address).
    pub email_verified: bool,
    /// Display name.
    pub name: Option<String>,
    /// Groups from the mapped claim.
    pub groups: Vec<String>,
    /// Attributes from the mapped claims.
    pub attributes: Map<String, Value>,
}

/// The clients of the OAuth sources of a config, by key.
pub fn clients(
    defs: &std::collections::BTreeMap<String, crate::config::SourceDef>,
) -> std::collections::BTreeMap<String, std::sync::Arc<OAuthClient>> {
    defs.iter()
        .map(|(k, d)| match d {
            crate::config::SourceDef::OAuth(o) => (k.clone(), std::sync::Arc::new(OAuthClient::new(o.clone()))),
        })
        .collect()
}
