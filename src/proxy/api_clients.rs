//! API clients of apps with `basic_auth: true`: `Authorization: Basic` with an app password
//! (or the user's own password where `basic_auth_user_passwords` allows it) and
//! `Authorization: Bearer` with an app password.
//!
//! - A credential is checked only after the login rate limits (`rate_limits.password_*`, per
//!   client address and per username or token handle) let it through; a failure lowers the
//!   reputation and is an audit `login_failed` event, as for a login form.
//! - A positive check is cached for [`POSITIVE_CACHE_LIFE`] under an HMAC of the app and the
//!   whole `Authorization` value with a key drawn at start, so the cache holds no credential
//!   nor anything a guess could be checked against offline. Revoking an app password empties
//!   the cache ([`ApiAuth::forget_all`], called by the admin API).
//! - The user is resolved on every request through the session store's user cache, which the
//!   invalidation channel empties when the user changes: a disabled or deleted user is
//!   refused at once. A positive check holds the identity it was made with and counts only
//!   while the user cache still holds that same identity: a password change, a revocation
//!   (which announces the owner as changed) or any other change of the user on any replica
//!   drops it, so the credential is checked again.
//! - An app password of a user mirrored from a directory counts only while the directory
//!   confirms the user, asked at every uncached check (down: 503, never a pass).
//! - Anything wrong answers 401 with `WWW-Authenticate` (never the login redirect); a
//!   malformed header is the same 401.

use super::ProxyState;
use crate::config::{ApiClients, App};
use crate::flow::directories::{self, Standing};
use crate::flow::ratelimit::{Guess, Limited};
use crate::identity::app_passwords::parse_token;
use crate::session::Identity;
use crate::telemetry::AuditEvent;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long a positive check is reused without asking the database again.
pub const POSITIVE_CACHE_LIFE: Duration = Duration::from_secs(30);
/// Longest `Authorization` value considered.
const MAX_AUTHORIZATION_BYTES: usize = 4096;
/// Most positive checks cached.
const MAX_CACHED: u64 = 100_000;

/// How an API client proved who it is (`auth_method` for app policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    /// An app password (authentik's `app_password`).
    AppPassword,
    /// The user's own password.
    Password,
}

impl Method {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::AppPassword => "app_password",
            Self::Password => "password",
        }
    }
}

#[derive(Clone)]
struct Cached {
    user_id: i64,
    until_ms: u64,
    method: Method,
    /// The identity the check was made with (compared by pointer: a reloaded user is a new
    /// one).
    who: Option<Arc<Identity>>,
}

/// The outcome of an API client's credentials.
pub(crate) enum ApiOutcome {
    /// The user, current, and how they proved it.
    Ok(Arc<Identity>, Method),
    /// No, or wrong, credentials; disabled or deleted user.
    Unauthorized,
    /// Too many attempts: wait this long.
    Limited(Duration),
    /// The user database or the shared limits cannot be reached (fail closed).
    Unavailable,
}

/// A parsed `Authorization` header.
enum Credential {
    Basic { user: String, secret: String },
    Bearer(String),
}

/// The API-client checks with their cache; one per process, kept across reloads.
pub struct ApiAuth {
    key: [u8; 32],
    cache: moka::sync::Cache<[u8; 32], Cached>,
}

impl Default for ApiAuth {
    fn default() -> Self {
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self {
            key,
            cache: moka::sync::Cache::builder()
                .max_capacity(MAX_CACHED)
                .time_to_live(POSITIVE_CACHE_LIFE)
                .build(),
        }
    }
}

/// Whether the request carries an `Authorization` header.
pub(crate) fn has_credentials(headers: &http::HeaderMap) -> bool {
    headers.contains_key(http::header::AUTHORIZATION)
}

fn credential(headers: &http::HeaderMap) -> Option<Credential> {
    use base64::Engine;
    let mut all = headers.get_all(http::header::AUTHORIZATION).iter();
    let v = all.next()?;
    if all.next().is_some() || v.len() > MAX_AUTHORIZATION_BYTES {
        return None;
    }
    let v = v.to_str().ok()?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD.decode(rest).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (user, secret) = text.split_once(':')?;
        if user.is_empty() || secret.is_empty() || text.chars().any(char::is_control) {
            return None;
        }
        return Some(Credential::Basic {
            user: user.to_string(),
            secret: secret.to_string(),
        });
    }
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Some(Credential::Bearer(rest.to_string()));
    }
    None
}

/// Whether user `user_id` may use an app password: a user mirrored from a directory only
/// while the directory confirms the entry (gone or disabled: no; unreachable: an error, so
/// the request is refused as unavailable, never let through).
async fn directory_allows(state: &ProxyState, user_id: i64) -> Result<bool, String> {
    let ex = &state.ui.executor;
    let Some(u) = ex.users.get_by_id(user_id).await.map_err(|e| e.to_string())? else {
        return Ok(false);
    };
    match directories::confirm(&ex.services.directories, &ex.services.sessions, &u).await {
        Standing::Active => Ok(true),
        Standing::Refused | Standing::Gone => Ok(false),
        Standing::Down(e) => Err(e.to_string()),
    }
}

// === impl ApiAuth ===

impl ApiAuth {
    /// Forgets every positive check (after an app password was revoked).
    pub fn forget_all(&self) {
        self.cache.invalidate_all();
    }

    fn cache_key(&self, app: &str, headers: &http::HeaderMap) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        m.update(app.as_bytes());
        m.update(&[0]);
        for v in headers.get_all(http::header::AUTHORIZATION) {
            m.update(v.as_bytes());
            m.update(&[0]);
        }
        m.finalize().into_bytes().into()
    }

    /// Checks the request's credentials for `app` (see the module doc).
    pub(crate) async fn check(
        &self,
        state: &ProxyState,
        app: &App,
        opts: ApiClients,
        headers: &http::HeaderMap,
        client_ip: Option<IpAddr>,
    ) -> ApiOutcome {
        let now = state.sessions.clock().now_ms();
        let key = self.cache_key(&app.name, headers);
        // A remembered check of the user's own password counts only while the app (as
        // configured now: the cache outlives reloads) still takes user passwords.
        let passwords_ok = opts.user_passwords && app.requires_flow.is_none();
        if let Some(c) = self
            .cache
            .get(&key)
            .filter(|c| c.until_ms > now && (c.method != Method::Password || passwords_ok))
        {
            match state.sessions.identity_of_user(c.user_id).await {
                Ok(Some(who)) if c.who.as_ref().is_some_and(|w| Arc::ptr_eq(w, &who)) => {
                    return ApiOutcome::Ok(who, c.method);
                }
                // The user changed (password, groups, flags, app passwords) since the check,
                // or is gone: check the credential again.
                Ok(_) => self.cache.invalidate(&key),
                Err(e) => {
                    tracing::warn!(error = %e, "user store unreadable for an API client");
                    return ApiOutcome::Unavailable;
                }
            }
        }
        // A user change (a revoked app password, a new password, a disabled user) while the
        // credential is checked must not leave the old verdict remembered for its 30 s.
        let epoch = state.sessions.users_epoch();
        let (mut c, method) = match self.verify(state, app, opts, headers, client_ip, now).await {
            Ok(v) => v,
            Err(o) => return o,
        };
        match state.sessions.identity_of_user(c.user_id).await {
            Ok(Some(who)) => {
                c.who = Some(who.clone());
                if state.sessions.users_epoch() == epoch {
                    self.cache.insert(key, c);
                }
                ApiOutcome::Ok(who, method)
            }
            Ok(None) => ApiOutcome::Unauthorized,
            Err(e) => {
                tracing::warn!(error = %e, "user store unreadable for an API client");
                ApiOutcome::Unavailable
            }
        }
    }

    async fn verify(
        &self,
        state: &ProxyState,
        app: &App,
        opts: ApiClients,
        headers: &http::HeaderMap,
        client_ip: Option<IpAddr>,
        now: u64,
    ) -> Result<(Cached, Method), ApiOutcome> {
        let Some(cred) = credential(headers) else {
            tracing::debug!(app = %app.name, "malformed or unsupported Authorization header");
            return Err(ApiOutcome::Unauthorized);
        };
        let ex = &state.ui.executor;
        // The limits' key: the username, or a bearer token's public handle.
        let who = match &cred {
            Credential::Basic { user, .. } => user.clone(),
            Credential::Bearer(t) => match parse_token(t) {
                Some((k, _)) => format!("token:{k}"),
                None => "token:malformed".into(),
            },
        };
        match ex.services.limits.check(Guess::Password, client_ip, &who).await {
            Ok(()) => {}
            Err(Limited::Wait(w)) => {
                tracing::warn!(user = %who, wait_s = w.as_secs(), "API client attempts rate-limited");
                ex.services.telemetry.metrics.rate_limited("password");
                return Err(ApiOutcome::Limited(w));
            }
            Err(Limited::Unavailable) => return Err(ApiOutcome::Unavailable),
        }
        let result = match &cred {
            Credential::Bearer(token) => ex
                .users
                .check_app_password(token, &app.name, now)
                .await
                .map(|c| c.map(|c| (c.user_id, c.expires_ms, Method::AppPassword)))
                .map_err(|e| e.to_string()),
            Credential::Basic { user, secret } => self.basic(state, app, opts, user, secret, now).await,
        };
        // An app password never asked the user's directory: it must confirm the user first
        // (a user's own password was checked there already).
        let result = match result {
            Ok(Some((id, expires, Method::AppPassword))) => directory_allows(state, id)
                .await
                .map(|ok| ok.then_some((id, expires, Method::AppPassword))),
            r => r,
        };
        match result {
            Ok(Some((user_id, expires_ms, method))) => {
                let mut until_ms = now + POSITIVE_CACHE_LIFE.as_millis() as u64;
                if let Some(e) = expires_ms {
                    until_ms = until_ms.min(u64::try_from(e).unwrap_or(0));
                }
                Ok((
                    Cached {
                        user_id,
                        until_ms,
                        method,
                        who: None,
                    },
                    method,
                ))
            }
            Ok(None) => {
                ex.reputation.record(client_ip, &who, -1).await;
                ex.services.telemetry.audit.emit(AuditEvent {
                    event: "login_failed",
                    user: Some(&who),
                    client: client_ip,
                    app: Some(&app.name),
                    result: "failure",
                    reason: Some("invalid_api_credentials"),
                    ..Default::default()
                });
                Err(ApiOutcome::Unauthorized)
            }
            Err(e) => {
                tracing::error!(error = %e, "checking an API client's credentials failed");
                Err(ApiOutcome::Unavailable)
            }
        }
    }

    /// `Basic user:secret`: an app password of that user, else (where allowed) the user's
    /// password, checked like the password stage checks it (directory users against their
    /// directory).
    async fn basic(
        &self,
        state: &ProxyState,
        app: &App,
        opts: ApiClients,
        user: &str,
        secret: &str,
        now: u64,
    ) -> Result<Option<(i64, Option<i64>, Method)>, String> {
        let users = &state.ui.executor.users;
        if parse_token(secret).is_some() {
            let Some(c) = users
                .check_app_password(secret, &app.name, now)
                .await
                .map_err(|e| e.to_string())?
            else {
                return Ok(None);
            };
            let owner = users.get_by_id(c.user_id).await.map_err(|e| e.to_string())?;
            let same =
                owner.is_some_and(|u| u.username == user || u.email.eq_ignore_ascii_case(user) && !u.email.is_empty());
            return Ok(same.then_some((c.user_id, c.expires_ms, Method::AppPassword)));
        }
        // A user's own password never opens an app that asks for its own (stronger) flow.
        if !opts.user_passwords || app.requires_flow.is_some() {
            users.hasher().verify_dummy(secret.to_string()).await;
            return Ok(None);
        }
        let Some(u) = users.get_by_username(user).await.map_err(|e| e.to_string())? else {
            users.hasher().verify_dummy(secret.to_string()).await;
            return Ok(None);
        };
        let ok = state.ui.executor.check_user_password(&u, secret).await?;
        Ok(ok.then_some((u.id, None, Method::Password)))
    }
}
