//! What a login through a source does (authentik's `SourceFlowManager`, with the safe choices
//! of docs/security.md): a subject already linked logs its user in; otherwise
//! `user_matching_mode` decides between enrolling a new user, linking an existing one, or
//! refusing. Email links need the provider's `email_verified` and never happen for Entra ID
//! (its email claim is not verified: the "nOAuth" takeover).

use super::SourceIdentity;
use crate::config::{OAuthSourceDef, ProviderType, UserMatchingMode};
use crate::identity::store::{LookupField, StoreError, User, UserStore};

/// What to do with a verified source identity.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceAction {
    /// A linked user: run the source's authentication flow for them.
    Authenticate(User),
    /// An existing user matched by `user_matching_mode`: link, then authenticate.
    Link(User),
    /// No user yet: run the source's enrollment flow.
    Enroll,
    /// Refused: the message is shown, the reason logged.
    Deny {
        /// Shown to the user.
        message: &'static str,
        /// Logged.
        reason: String,
    },
}

fn deny(message: &'static str, reason: impl Into<String>) -> SourceAction {
    SourceAction::Deny {
        message,
        reason: reason.into(),
    }
}

/// Decides for `who` at source `def`.
pub async fn decide(users: &UserStore, def: &OAuthSourceDef, who: &SourceIdentity) -> Result<SourceAction, StoreError> {
    if let Some(u) = users.source_user(&def.slug, &who.subject).await? {
        return Ok(SourceAction::Authenticate(u));
    }
    let email = who.email.as_deref().filter(|e| !e.is_empty());
    let by_email = match email {
        Some(e) => users.find_user(e, &[LookupField::Email], true).await?,
        None => None,
    };
    let username = who.username.as_deref().filter(|u| !u.is_empty());
    let by_username = match username {
        Some(u) => users.find_user(u, &[LookupField::Username], true).await?,
        None => None,
    };
    Ok(match def.user_matching_mode {
        UserMatchingMode::Identifier => SourceAction::Enroll,
        UserMatchingMode::EmailLink | UserMatchingMode::EmailDeny if email.is_none() => deny(
            "The identity provider did not return an email address.",
            "no email claim under an email matching mode",
        ),
        UserMatchingMode::EmailLink => match by_email {
            None => SourceAction::Enroll,
            Some(_) if def.provider == ProviderType::EntraId => deny(
                "A user with this email address already exists.",
                "entraid: never linked by email (nOAuth)",
            ),
            Some(_) if !who.email_verified => deny(
                "A user with this email address already exists.",
                "email not verified by the provider: not linked",
            ),
            Some(u) => SourceAction::Link(u),
        },
        UserMatchingMode::EmailDeny => match by_email {
            None => SourceAction::Enroll,
            Some(_) => deny(
                "A user with this email address already exists.",
                "email_deny: the email is taken",
            ),
        },
        UserMatchingMode::UsernameLink => match by_username {
            None => SourceAction::Enroll,
            Some(u) => SourceAction::Link(u),
        },
        UserMatchingMode::UsernameDeny => match by_username {
            None => SourceAction::Enroll,
            Some(_) => deny(
                "A user with this username already exists.",
                "username_deny: the username is taken",
            ),
        },
    })
}
