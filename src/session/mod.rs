//! Sessions: ids from the OS CSPRNG, the cookie codec and its attributes, and the moka-backed
//! store with absolute and idle expiry read from an injected [`Clock`], in front of a durable
//! or shared [`Backend`] (docs/decisions/0010: `session.store: local | redis`).
//!
//! The hot path (cookie → session → identity) reads an `Arc<Session>` whose identity never
//! changes after creation; logging in creates a new session (new id) instead of mutating one,
//! so no lock a login holds is ever taken by the proxy path. Unfinished flow state lives in
//! the session behind its own mutex, used only by the flow executor. Anonymous sessions (flows
//! started before login) are kept in their own bounded cache, apart from logged-in ones.

pub mod backend;
pub mod clock;
pub mod counters;
pub mod local;
pub mod metered;
mod names;
pub mod redis;
pub mod revoke;
pub mod sign_on;
mod store;

pub use backend::{Backend, BackendError, Event};
pub use clock::{Clock, ManualClock, Millis, SharedClock, SystemClock};
pub use names::NameSet;
pub use store::{
    new_sign_on, AuthInfo, AuthShape, Ended, FlowLoadError, FlowSlot, Identity, Session, SessionId, SessionStore,
    SignOn, UserSource, DEFAULT_MAX_PENDING, NEAR_CACHE_LIFE, PENDING_WEIGHT_UNIT,
};

use base64::Engine;
use rand::RngCore;

/// Length of a session id in bytes (256 bits).
pub const SESSION_ID_BYTES: usize = 32;
/// Length of the base64url (unpadded) text form of a session id.
pub const SESSION_ID_CHARS: usize = 43;

/// A fresh 256-bit id from the OS CSPRNG, base64url without padding.
pub fn new_id() -> String {
    let mut b = [0u8; SESSION_ID_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Whether a cookie value has the exact shape of a session id; anything else is rejected
/// before it reaches the store.
pub fn is_well_formed_id(v: &str) -> bool {
    v.len() == SESSION_ID_CHARS && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A short, non-reversible tag of a session id for logs (never log the id itself).
pub fn log_tag(id: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(id.as_bytes());
    hex::encode(&h[..4])
}

/// The cookie name for a request: `__Host-` prefixed on HTTPS.
pub fn cookie_name(base: &str, https: bool) -> String {
    cookie_name_for(base, https, false)
}

/// The cookie name for a request: on HTTPS `__Host-` prefixed, or `__Secure-` when a cookie
/// domain is configured (`__Host-` forbids `Domain=`).
pub fn cookie_name_for(base: &str, https: bool, cookie_domain: bool) -> String {
    match (https, cookie_domain) {
        (false, _) => base.to_string(),
        (true, false) => format!("__Host-{base}"),
        (true, true) => format!("__Secure-{base}"),
    }
}

/// What the sign-on handshake's browser-binding cookie adds to the session cookie's base name
/// (`flowgate_session_sso`); it is one of the gateway's own cookies ([`is_own_cookie_name`]).
pub const SSO_COOKIE_SUFFIX: &str = "_sso";

/// Finds the session id in a `Cookie` header. Only well-formed ids are returned; if the cookie
/// appears more than once, the request is treated as having none (ambiguous input is denied).
pub fn session_id_from_cookie_header<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    let mut found = None;
    for part in header.split(';') {
        let part = part.trim();
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        if k.trim() == name {
            if found.is_some() {
                return None;
            }
            found = Some(v.trim().trim_matches('"'));
        }
    }
    found.filter(|v| is_well_formed_id(v))
}

/// Whether `name` is one of the gateway's own cookie names for `base`: the plain name, or it
/// with the `__Host-` or `__Secure-` prefix, compared ASCII case-insensitively (browsers match
/// the prefixes without regard to case). Both schemes' names count on every listener: the
/// other scheme's cookie is a valid session too.
pub fn is_own_cookie_name(base: &str, name: &str) -> bool {
    let name = name.trim();
    let strip = |prefix: &str| {
        name.get(..prefix.len())
            .filter(|p| p.eq_ignore_ascii_case(prefix))
            .map(|_| &name[prefix.len()..])
    };
    let bare = strip("__Host-").or_else(|| strip("__Secure-")).unwrap_or(name);
    if bare.eq_ignore_ascii_case(base) {
        return true;
    }
    // The sign-on binding cookie (`<base>_sso`) is the gateway's too.
    bare.len() == base.len() + SSO_COOKIE_SUFFIX.len()
        && bare.get(..base.len()).is_some_and(|b| b.eq_ignore_ascii_case(base))
        && bare
            .get(base.len()..)
            .is_some_and(|s| s.eq_ignore_ascii_case(SSO_COOKIE_SUFFIX))
}

/// Removes every one of the gateway's session cookies ([`is_own_cookie_name`]) from a `Cookie`
/// header so that upstream apps never see one. Returns `None` when nothing is left.
pub fn strip_cookie(header: &str, base: &str) -> Option<String> {
    let kept: Vec<&str> = header
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .filter(|p| !is_own_cookie_name(base, p.split_once('=').map_or(p, |(k, _)| k)))
        .collect();
    if kept.is_empty() {
        None
    } else {
        Some(kept.join("; "))
    }
}

/// A `Set-Cookie` value for a session: HttpOnly, SameSite=Lax, Path=/, Secure on HTTPS.
/// `max_age` of `None` makes a browser-session cookie.
pub fn set_cookie(name: &str, id: &str, https: bool, max_age: Option<std::time::Duration>) -> String {
    set_cookie_in(name, id, https, max_age, None)
}

/// [`set_cookie`] with `Domain=<domain>` when given (`session.cookie_domain`).
pub fn set_cookie_in(
    name: &str,
    id: &str,
    https: bool,
    max_age: Option<std::time::Duration>,
    domain: Option<&str>,
) -> String {
    let mut c = cookie::Cookie::build((name.to_string(), id.to_string()))
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .path("/")
        .secure(https);
    if let Some(d) = domain {
        c = c.domain(d.to_string());
    }
    if let Some(age) = max_age {
        c = c.max_age(cookie::time::Duration::seconds(
            age.as_secs().min(i64::MAX as u64) as i64
        ));
    }
    c.build().to_string()
}

/// A `Set-Cookie` value that deletes the session cookie.
pub fn clear_cookie(name: &str, https: bool) -> String {
    clear_cookie_in(name, https, None)
}

/// [`clear_cookie`] for the cookie set with `Domain=<domain>` when given.
pub fn clear_cookie_in(name: &str, https: bool, domain: Option<&str>) -> String {
    let mut c = cookie::Cookie::build((name.to_string(), String::new()))
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .path("/")
        .secure(https)
        .max_age(cookie::time::Duration::ZERO);
    if let Some(d) = domain {
        c = c.domain(d.to_string());
    }
    c.build().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_well_formed() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        assert!(is_well_formed_id(&a));
        assert_eq!(a.len(), SESSION_ID_CHARS);
    }

    #[test]
    fn cookie_parsing_rejects_forgery_shapes() {
        let id = new_id();
        let h = format!("a=1; flowgate_session={id}; b=2");
        assert_eq!(session_id_from_cookie_header(&h, "flowgate_session"), Some(id.as_str()));
        assert_eq!(
            session_id_from_cookie_header("flowgate_session=short", "flowgate_session"),
            None
        );
        let dup = format!("flowgate_session={id}; flowgate_session={}", new_id());
        assert_eq!(session_id_from_cookie_header(&dup, "flowgate_session"), None);
        let bad = format!("flowgate_session={}%00", &id[..41]);
        assert_eq!(session_id_from_cookie_header(&bad, "flowgate_session"), None);
    }

    #[test]
    fn strip_cookie_keeps_others() {
        assert_eq!(strip_cookie("a=1; fg=x; b=2", "fg").as_deref(), Some("a=1; b=2"));
        assert_eq!(strip_cookie("fg=x", "fg"), None);
        assert_eq!(
            strip_cookie("__Host-fg=x; a=1; __host-FG=y; __Secure-fg=z; fg; xfg=1", "fg").as_deref(),
            Some("a=1; xfg=1")
        );
        assert!(is_own_cookie_name("fg", "__HOST-fg"));
        assert!(is_own_cookie_name("fg", "fg_sso") && is_own_cookie_name("fg", "__Secure-FG_SSO"));
        assert!(!is_own_cookie_name("fg", "fg_ss") && !is_own_cookie_name("fg", "fgx_sso"));
        assert!(!is_own_cookie_name("fg", "__Host-fgx"));
    }

    #[test]
    fn cookie_attributes() {
        let c = set_cookie("__Host-fg", "abc", true, None);
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Path=/") && c.contains("Secure"),
            "{c}"
        );
        let c = set_cookie("fg", "abc", false, Some(std::time::Duration::from_secs(60)));
        assert!(!c.contains("Secure") && c.contains("Max-Age=60"), "{c}");
        let c = set_cookie_in("__Secure-fg", "abc", true, None, Some("example.com"));
        assert!(c.contains("Domain=example.com") && c.contains("Secure"), "{c}");
        assert_eq!(cookie_name_for("fg", true, true), "__Secure-fg");
        assert_eq!(cookie_name_for("fg", true, false), "__Host-fg");
        assert_eq!(cookie_name_for("fg", false, true), "fg");
        assert!(clear_cookie_in("fg", false, Some("example.com")).contains("Domain=example.com"));
    }
}
