//! What stages reach beyond the flow context: the session store, mail (transport, templates,
//! link base), the mailed-link tokens and the brand title. Built once at start.

use super::FlowState;
use crate::outbound::mail::Mailer;
use crate::session::SessionStore;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Built-in mail templates (`email/<name>.txt` and `.html`), overridable from the templates
/// directory.
const MAIL_TEMPLATES: &[(&str, &str)] = &[
    (
        "email/account_confirmation.txt",
        include_str!("../../templates/email/account_confirmation.txt"),
    ),
    (
        "email/account_confirmation.html",
        include_str!("../../templates/email/account_confirmation.html"),
    ),
    (
        "email/password_reset.txt",
        include_str!("../../templates/email/password_reset.txt"),
    ),
    (
        "email/password_reset.html",
        include_str!("../../templates/email/password_reset.html"),
    ),
];

/// Mail templates.
pub struct MailTemplates {
    env: minijinja::Environment<'static>,
}

impl MailTemplates {
    /// The built-in templates, each replaced by `<dir>/<name>` when that file exists.
    pub fn load(dir: Option<&Path>) -> Result<Self, String> {
        let mut env = minijinja::Environment::new();
        for (name, builtin) in MAIL_TEMPLATES {
            let src = match dir.map(|d| d.join(name)).filter(|p| p.is_file()) {
                Some(p) => crate::input_limits::read_capped_string(&p, crate::input_limits::MAX_TEMPLATE_BYTES)
                    .map_err(|e| format!("{}: {e}", p.display()))?,
                None => (*builtin).to_string(),
            };
            env.add_template_owned(name.to_string(), src)
                .map_err(|e| format!("template {name}: {e}"))?;
        }
        Ok(Self { env })
    }

    /// Renders `<stem>.txt` and `<stem>.html`.
    pub fn render(&self, stem: &str, ctx: minijinja::Value) -> Result<(String, String), String> {
        let one = |ext: &str| {
            self.env
                .get_template(&format!("email/{stem}.{ext}"))
                .and_then(|t| t.render(&ctx))
                .map_err(|e| format!("mail template {stem}.{ext}: {e}"))
        };
        Ok((one("txt")?, one("html")?))
    }
}

/// Context key set on a plan resumed from a mailed link in another browser than the one that
/// asked for it: the plan runs (the address is confirmed, a new password is set) but never
/// logs that browser in (LINK-1).
pub const LINK_OPENED_ELSEWHERE: &str = "link_opened_elsewhere";

/// A plan parked behind a mailed link.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct FlowToken {
    /// Flow slug the link resumes.
    pub flow: String,
    /// The plan as it was when the mail was sent (the email stage first).
    pub state: FlowState,
    /// The user the link was sent for (`None` before the user exists, in enrollment).
    pub user_id: Option<i64>,
    /// Address the link was sent to.
    pub address: String,
    /// SHA-256 of the session id of the browser that asked for the link: only that browser
    /// is logged in by it (LINK-1). `None` when no session was known.
    pub browser: Option<String>,
    /// Expiry (Unix ms).
    pub expires_ms: u64,
}

/// Mailed-link tokens, kept under the SHA-256 of the token, so the token itself is never
/// stored: in the session store (sealed with the token, so the store cannot read the plan;
/// a restart or another replica finds them), or in memory when the session store is
/// memory-only. Single use (taking one removes it atomically); expired by the injected clock.
#[derive(Clone)]
pub struct FlowTokens {
    cache: moka::sync::Cache<String, Arc<FlowToken>>,
    store: Option<SessionStore>,
}

/// Hex SHA-256 of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Version of a stored [`FlowToken`]; a link of another version reads as gone.
const TOKEN_VERSION: u32 = 1;

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredToken {
    v: u32,
    token: FlowToken,
}

impl FlowTokens {
    /// A memory-only store bounded to `max` tokens, none kept longer than `max_age`.
    pub fn new(max: u64, max_age: Duration) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(max)
                .time_to_live(max_age)
                .build(),
            store: None,
        }
    }

    /// Tokens kept in `sessions`' store when it has one (else in memory as [`FlowTokens::new`]).
    pub fn with_store(max: u64, max_age: Duration, sessions: SessionStore) -> Self {
        let mut t = Self::new(max, max_age);
        if sessions.is_durable() {
            t.store = Some(sessions);
        }
        t
    }

    /// Stores `t` and returns the new token (256 bits, URL-safe); `Err` when the store failed.
    pub async fn issue(&self, t: FlowToken) -> Result<String, crate::session::BackendError> {
        let token = crate::session::new_id();
        match &self.store {
            Some(s) => {
                let expires = t.expires_ms;
                let bytes = serde_json::to_vec(&StoredToken {
                    v: TOKEN_VERSION,
                    token: t,
                })
                .map_err(|e| crate::session::BackendError(e.to_string()))?;
                s.put_token(&token, &bytes, expires).await?;
            }
            None => self.cache.insert(token_hash(&token), Arc::new(t)),
        }
        Ok(token)
    }

    /// Looks a token up by the raw token without using it.
    pub async fn peek(&self, token: &str, now_ms: u64) -> Option<Arc<FlowToken>> {
        let t = match &self.store {
            Some(s) => {
                let (bytes, _) = match s.get_token(token).await {
                    Ok(found) => found?,
                    Err(e) => {
                        tracing::error!(error = %e, "mailed link not readable from the session store");
                        return None;
                    }
                };
                let stored: StoredToken = serde_json::from_slice(&bytes).ok()?;
                if stored.v != TOKEN_VERSION {
                    return None;
                }
                Arc::new(stored.token)
            }
            None => self.cache.get(&token_hash(token))?,
        };
        if now_ms >= t.expires_ms {
            self.revoke(&token_hash(token)).await;
            return None;
        }
        Some(t)
    }

    /// Whether a token (by its hash) is still usable.
    pub async fn alive(&self, hash: &str, now_ms: u64) -> bool {
        match &self.store {
            Some(s) => s.token_alive(hash, now_ms).await.unwrap_or(false),
            None => self.cache.get(hash).is_some_and(|t| now_ms < t.expires_ms),
        }
    }

    /// Ends a token without using it (the plan it belongs to was cancelled).
    pub async fn revoke(&self, hash: &str) {
        match &self.store {
            Some(s) => {
                if let Err(e) = s.take_token(hash, 0).await {
                    tracing::error!(error = %e, "mailed link not deleted from the session store");
                }
            }
            None => self.cache.invalidate(hash),
        }
    }

    /// Uses a token up: true once, for an unexpired token.
    pub async fn consume(&self, hash: &str, now_ms: u64) -> bool {
        match &self.store {
            Some(s) => s.take_token(hash, now_ms).await.unwrap_or(false),
            None => self.cache.remove(hash).is_some_and(|t| now_ms < t.expires_ms),
        }
    }
}

/// Everything stages may use besides the flow context and the user store.
pub struct Services {
    /// Sessions (for terminating a user's sessions).
    pub sessions: SessionStore,
    /// Mail transport, when configured.
    pub mailer: Option<Mailer>,
    /// Where mail is handed over: it is sent off the request path.
    pub mail_queue: crate::outbound::mail_queue::MailQueue,
    /// Base of links in mail; `None`: the request's own origin when it is trusted.
    pub public_url: Option<String>,
    /// Mail templates.
    pub mail_templates: MailTemplates,
    /// Mailed-link tokens.
    pub tokens: FlowTokens,
    /// Brand title (TOTP issuer, mail).
    pub title: String,
    /// Brute-force limits on password and code checks.
    pub limits: Arc<super::ratelimit::RateLimits>,
    /// Usernames nobody may choose (`identity.reserved_usernames`).
    pub reserved_usernames: crate::identity::names::ReservedNames,
    /// Metrics and audit events.
    pub telemetry: crate::telemetry::Telemetry,
    /// The OAuth sources' clients by key (`sources:`), built once per config.
    pub sources: Arc<std::collections::BTreeMap<String, Arc<crate::identity::sources::OAuthClient>>>,
    /// Directory sources the password checks may use (`sources:` of `type: ldap`).
    pub directories: Arc<super::directories::Directories>,
}
