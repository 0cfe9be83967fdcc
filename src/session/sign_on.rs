//! Sign-on codes of the portal handshake (docs/decisions/0013): the portal issues one when it
//! sends a browser back to an app host, and the app host redeems it, server-side, for a
//! session of its own.
//!
//! A code is 256 bits from the OS CSPRNG. It is kept in the session store as a mailed link is
//! ([`SessionStore::put_token`]): under its SHA-256, sealed with a key derived from the code
//! itself, so a copy of the store yields no usable code and no readable record, and every
//! replica sharing the store can redeem it. Redeeming deletes it first (only one caller, on
//! any replica, gets it), then checks its life, the host it was issued for and the browser
//! binding; each failure is the same refusal, and a refused code is gone too.

use super::backend::{key_of, BackendError};
use super::store::{AuthInfo, Identity, SessionStore};
use super::Millis;
use std::time::Duration;

/// How long a code lives (docs/decisions/0013: at most 60 s). The browser follows the redirect at once.
pub const CODE_LIFE: Duration = Duration::from_secs(30);

/// Version of [`CodeRecord`]'s JSON form.
const CODE_VERSION: u32 = 1;

/// What a code stands for.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CodeRecord {
    /// [`CODE_VERSION`].
    pub v: u32,
    /// The app host (canonical, without port) the code may be redeemed on.
    pub host: String,
    /// Where the browser goes on that host afterwards (a same-origin path, checked).
    pub next: String,
    /// The browser binding: base64url SHA-256 of the nonce in the app host's binding cookie.
    pub bind: String,
    /// The store key of the portal session the code was issued from.
    pub root: String,
    /// Its absolute expiry: a derived session never outlives it.
    pub root_expires_ms: Millis,
    /// The user, as the portal session holds it.
    pub user: Identity,
    /// How the user signed on (with the sign-on id).
    pub auth: AuthInfo,
    /// When the code stops being accepted.
    pub expires_ms: Millis,
}

/// Why a code was not redeemed.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    /// Unknown, used, expired, for another host, or another browser: one answer for all.
    #[error("sign-on code refused: {0}")]
    Refused(&'static str),
    /// The store could not be reached (fail closed).
    #[error("{0}")]
    Store(#[from] BackendError),
}

/// Stores `rec` and returns its new code. A memory-only store cannot hold codes (an error).
pub async fn issue(store: &SessionStore, rec: &CodeRecord) -> Result<String, BackendError> {
    let code = super::new_id();
    let plain = serde_json::to_vec(rec).map_err(|e| BackendError(e.to_string()))?;
    if store.put_token(&code, &plain, rec.expires_ms).await? {
        Ok(code)
    } else {
        Err(BackendError("sign-on codes need a session store".into()))
    }
}

/// Redeems `code` on `host` (canonical, without port) for the browser whose binding cookie
/// holds `nonce`: the code is used up whatever the outcome.
pub async fn redeem(store: &SessionStore, code: &str, host: &str, nonce: &str) -> Result<CodeRecord, CodeError> {
    if !super::is_well_formed_id(code) {
        return Err(CodeError::Refused("malformed"));
    }
    let Some((plain, _)) = store.get_token(code).await? else {
        return Err(CodeError::Refused("unknown or used"));
    };
    let now = store.clock().now_ms();
    // Single use across replicas: only the caller whose delete removed it goes on.
    if !store.take_token(&key_of(code), now).await? {
        return Err(CodeError::Refused("used or expired"));
    }
    let rec: CodeRecord = serde_json::from_slice(&plain)
        .ok()
        .filter(|r: &CodeRecord| r.v == CODE_VERSION)
        .ok_or(CodeError::Refused("unreadable"))?;
    if now >= rec.expires_ms {
        return Err(CodeError::Refused("expired"));
    }
    if rec.host != host {
        return Err(CodeError::Refused("issued for another host"));
    }
    use subtle::ConstantTimeEq;
    let bind = binding_of(nonce);
    if !super::is_well_formed_id(nonce) || !bool::from(bind.as_bytes().ct_eq(rec.bind.as_bytes())) {
        return Err(CodeError::Refused("issued to another browser"));
    }
    Ok(rec)
}

/// The binding the portal records for a browser: base64url SHA-256 of its nonce, so that the
/// portal, its logs and the store never see the nonce itself.
pub fn binding_of(nonce: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"flowgate sign-on binding\0");
    h.update(nonce.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.finalize())
}

/// A record valid for [`CODE_LIFE`] from `now_ms`.
#[allow(clippy::too_many_arguments)] // the record's fields, named at the one call site
pub fn record(
    host: String,
    next: String,
    bind: String,
    root: String,
    root_expires_ms: Millis,
    user: Identity,
    auth: AuthInfo,
    now_ms: Millis,
) -> CodeRecord {
    CodeRecord {
        v: CODE_VERSION,
        host,
        next,
        bind,
        root,
        root_expires_ms,
        user,
        auth,
        expires_ms: now_ms.saturating_add(CODE_LIFE.as_millis() as u64),
    }
}
