//! Request ids and the request span. Every request gets an id: a fresh 128-bit random one in
//! hex, or the `X-Request-Id` a trusted proxy sent when it is well formed ([`well_formed`]), so
//! one id follows a request through the proxy in front, flowgate and the app. A client that is
//! not a trusted proxy cannot choose the id (it could otherwise make its requests look like
//! someone else's in the logs): its `X-Request-Id` is replaced, and every other spelling of the
//! header (`X_Request_Id`…) is stripped ([`super::headers::StripSet`]).
//!
//! The id is sent to the app as `X-Request-Id` and names the request's span
//! (`request{id, route, app, user}`), which the proxy enters in each of its phases; the flow
//! executor, the stages and the outbound calls (mail, captcha siteverify, HIBP) run inside it, so
//! every log line of a request carries the id. The span holds no session id and no secret: `user`
//! is the username, recorded once the session or the flow knows it.

use crate::http::respond::AuthEndpoint;
use rand::Rng;

/// The header that carries the id, to the app and from a trusted proxy.
pub const HEADER: &str = "x-request-id";

/// Longest id kept from a trusted proxy.
pub const MAX_ID_BYTES: usize = 128;

/// What a request is, as the span's `route` field shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// A request for an app's address.
    App,
    /// The login UI (reserved prefix or logout path).
    Ui,
    /// A forward-auth endpoint.
    ForwardAuth(AuthEndpoint),
}

impl Route {
    fn as_str(self) -> &'static str {
        match self {
            Self::App => "app",
            Self::Ui => "ui",
            Self::ForwardAuth(_) => "forward_auth",
        }
    }
}

/// A fresh id: 128 random bits as 32 lowercase hex digits.
pub fn new_id() -> String {
    format!("{:032x}", rand::thread_rng().gen::<u128>())
}

/// Whether a received id may be kept: 1 to [`MAX_ID_BYTES`] characters, each an ASCII letter,
/// digit, `-`, `_`, `.` or `:` (UUIDs, hex, nginx `$request_id`). Anything else (spaces, quotes,
/// control characters) would be logged verbatim, so it is replaced.
pub fn well_formed(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= MAX_ID_BYTES
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The request's id: a trusted proxy's single, well-formed `X-Request-Id`, else a new one.
pub(super) fn choose(headers: &http::HeaderMap, peer_trusted: bool) -> String {
    if peer_trusted {
        let mut all = headers.get_all(HEADER).iter();
        if let (Some(v), None) = (all.next(), all.next()) {
            if let Some(id) = v.to_str().ok().filter(|s| well_formed(s.as_bytes())) {
                return id.to_string();
            }
        }
    }
    new_id()
}

/// The request's span; `app` and `user` are recorded when known.
pub(super) fn span(id: &str, route: Route) -> tracing::Span {
    tracing::info_span!(
        "request",
        id = %id,
        route = route.as_str(),
        app = tracing::field::Empty,
        user = tracing::field::Empty,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_128_bit_hex() {
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
        assert!(well_formed(a.as_bytes()));
    }

    #[test]
    fn shapes() {
        for ok in ["0af7651916cd43dd8448eb211c80319c", "a", "req-1_2.3:4", &"x".repeat(128)] {
            assert!(well_formed(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "a b", "a\"b", "a\r\nb", "é", "a;b", "a,b", &"x".repeat(129)] {
            assert!(!well_formed(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn only_a_trusted_peer_chooses() {
        let mut h = http::HeaderMap::new();
        h.insert(HEADER, http::HeaderValue::from_static("from-the-edge-1"));
        assert_eq!(choose(&h, true), "from-the-edge-1");
        assert_ne!(choose(&h, false), "from-the-edge-1");
        h.append(HEADER, http::HeaderValue::from_static("second"));
        let twice = choose(&h, true);
        assert!(
            twice != "from-the-edge-1" && twice != "second",
            "two ids: neither is kept"
        );
        let mut h = http::HeaderMap::new();
        h.insert(HEADER, http::HeaderValue::from_static("has space"));
        assert_eq!(choose(&h, true).len(), 32);
    }
}
