//! Identity headers: strip every client-sent spelling, then set the verified ones. The same
//! pass removes the client's rewrite and method-override headers (always) and its client-address
//! and forwarding headers and `X-Request-Id` (from untrusted peers), see [`REWRITE_HEADERS`] and
//! [`FORWARDING_HEADERS`].
//!
//! A header is an identity header if its name, lowercased with `_` and `.` read as `-`, is one
//! that any preset or any configured app uses, or starts with `x-authentik-`. Stripping runs on
//! every forwarded request, authenticated or skip-auth, before anything is set.
//!
//! Values are percent-encoded, never filtered: a control character (CR, LF, NUL…), any byte of
//! a non-ASCII character and `%` itself become `%XX` (uppercase hex of the UTF-8 bytes), so a
//! value is always printable ASCII and decodes back to exactly the stored one. In the groups
//! header each group name additionally has `,`, `|` and every character of the configured
//! separator encoded, so splitting on the separator yields exactly the user's groups. Dropping
//! characters instead would let `ad\nmin` arrive as `admin`. Plain ASCII names without `%`
//! (the common case) are sent unchanged.

use crate::config::{App, HeaderSet};
use crate::session::Identity;
use http::HeaderName;
use std::collections::HashMap;

/// Headers that change which resource or method an app serves (`X-Original-URL: /admin` on
/// IIS and Symfony, `X-HTTP-Method-Override: DELETE`): flowgate authorised the request line, so
/// these never reach an app, from any peer.
pub const REWRITE_HEADERS: &[&str] = &[
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-original-path",
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-envoy-original-path",
    "x-override-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-method",
    "x-forwarded-method",
];

/// Headers that name the client's address, the original host, scheme or port, set by a proxy
/// in front: kept from `trusted_proxies`, removed from anyone else (apps and frameworks read
/// them as the client's address or the public URL). flowgate then sets `X-Forwarded-For`,
/// `-Proto` and `-Host` itself (so an untrusted `X_Forwarded_For` spelling is gone too). `strip_headers:` in the config adds names.
pub const FORWARDING_HEADERS: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "forwarded-for",
    "x-forwarded",
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "akamai-origin-hop",
    "x-originating-ip",
    "x-remote-ip",
    "x-remote-addr",
    "x-proxyuser-ip",
    "x-envoy-external-address",
    "x-azure-clientip",
    "x-forwarded-server",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-ssl",
    "x-forwarded-scheme",
    "x-forwarded-protocol",
    "front-end-https",
    "x-url-scheme",
    "x-host",
    "x-original-host",
];

/// The headers flowgate sets on every forwarded request, as names that allocate nothing.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// See [`X_FORWARDED_FOR`].
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// See [`X_FORWARDED_FOR`].
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// See [`X_FORWARDED_FOR`].
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static(super::request_id::HEADER);

/// When a client header is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strip {
    /// From every peer: identity, rewrite and override headers.
    Always,
    /// From peers outside `trusted_proxies`: client-address and forwarding headers.
    Untrusted,
}

/// The normalised names of client headers to remove before forwarding, each with when.
#[derive(Debug, Clone)]
pub struct StripSet {
    names: HashMap<String, Strip>,
}

/// Lowercase, with `_` and `.` read as `-`.
pub fn normalise_name(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'_' | b'.' => '-',
            b => b.to_ascii_lowercase() as char,
        })
        .collect()
}

impl StripSet {
    /// Every identity name used by a preset or by one of `apps`, the rewrite and forwarding
    /// families, and `extra` names removed from untrusted peers (`strip_headers:`).
    pub fn new(apps: &[App], extra: &[String]) -> Self {
        let mut names = HashMap::new();
        for n in FORWARDING_HEADERS
            .iter()
            .copied()
            .chain(extra.iter().map(String::as_str))
        {
            names.insert(normalise_name(n), Strip::Untrusted);
        }
        // The request id is a trusted proxy's to choose: from anyone else every spelling goes,
        // and the proxy sets its own (`super::request_id`).
        names.insert(normalise_name(super::request_id::HEADER), Strip::Untrusted);
        for n in REWRITE_HEADERS {
            names.insert(normalise_name(n), Strip::Always);
        }
        let presets = crate::config::PRESET_NAMES
            .iter()
            .copied()
            .filter_map(crate::config::preset);
        let sets: Vec<HeaderSet> = presets.chain(apps.iter().map(|a| a.headers.clone())).collect();
        for s in &sets {
            for n in [&s.user, &s.email, &s.groups, &s.name, &s.uid].into_iter().flatten() {
                names.insert(normalise_name(n), Strip::Always);
            }
        }
        for a in apps {
            if let Some(j) = &a.jwt {
                names.insert(normalise_name(&j.header), Strip::Always);
            }
        }
        for extra in [
            "x-flowgate-jwt",
            "remote-user",
            "x-remote-user",
            "x-forwarded-preferred-username",
            "x-auth-request-user",
            "x-auth-request-email",
            "x-auth-request-groups",
        ] {
            names.insert(extra.to_string(), Strip::Always);
        }
        Self { names }
    }

    /// Whether a client header must be removed, for a request from a trusted proxy or not.
    pub fn matches(&self, name: &str, trusted_peer: bool) -> bool {
        // Header names from the parser are lowercase already; only `_` or `.` (or a caller's
        // uppercase) need a normalised copy, so the common case allocates nothing.
        let class = if name.bytes().any(|b| b == b'_' || b == b'.' || b.is_ascii_uppercase()) {
            let n = normalise_name(name);
            if n.starts_with("x-authentik-") {
                return true;
            }
            self.names.get(&n).copied()
        } else {
            if name.starts_with("x-authentik-") {
                return true;
            }
            self.names.get(name).copied()
        };
        match class {
            Some(Strip::Always) => true,
            Some(Strip::Untrusted) => !trusted_peer,
            None => false,
        }
    }
}

/// The identity headers to set for `who` under `set`, as (name, value) pairs. Values are
/// encoded as the module documentation says: printable ASCII, reversible, and the groups
/// header splits into exactly the user's groups.
pub fn identity_headers(set: &HeaderSet, app: &App, who: &Identity) -> Vec<(String, String)> {
    headers_for(set, app, Some(who))
}

/// The same names as [`identity_headers`] with empty user values, for a forward-auth 200 on a
/// skip-auth path: a reverse proxy that copies a header flowgate left out may set something
/// else in its place (Caddy before 2.10 sets the literal `{http.reverse_proxy.header.…}`
/// placeholder, caddy#6610), an empty value it copies as empty. nginx removes empty ones.
pub fn blank_identity_headers(set: &HeaderSet, app: &App) -> Vec<(String, String)> {
    headers_for(set, app, None)
}

fn headers_for(set: &HeaderSet, app: &App, who: Option<&Identity>) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(8);
    let mut push = |name: &Option<String>, value: String| {
        if let Some(n) = name {
            out.push((n.clone(), value));
        }
    };
    let field = |f: fn(&Identity) -> &str| who.map(|w| encode_value(f(w), "")).unwrap_or_default();
    push(&set.user, field(|w| &w.username));
    push(&set.email, field(|w| &w.email));
    if set.groups.is_some() {
        let sep = set.groups_separator.as_str();
        let special = |c: char| c == ',' || c == '|' || sep.contains(c);
        let groups: Vec<String> = who
            .map(|w| w.groups.iter().map(|g| encode_with(g, special)).collect())
            .unwrap_or_default();
        push(&set.groups, groups.join(sep));
    }
    push(&set.name, field(|w| &w.name));
    push(&set.uid, field(|w| &w.uid));
    if set.meta {
        out.push(("X-authentik-meta-app".into(), encode_value(&app.name, "")));
        out.push(("X-authentik-meta-provider".into(), encode_value(&app.name, "")));
        out.push(("X-authentik-meta-outpost".into(), "flowgate".into()));
        out.push((
            "X-authentik-meta-version".into(),
            format!("flowgate/{}", env!("CARGO_PKG_VERSION")),
        ));
    }
    out
}

/// Percent-encodes control characters, non-ASCII bytes, `%` and every character of `also`;
/// everything else (printable ASCII, including space) is kept, so a value with nothing to
/// encode is returned as it is.
pub fn encode_value(v: &str, also: &str) -> String {
    encode_with(v, |c| also.contains(c))
}

/// [`encode_value`] with the extra characters to encode given as a predicate (no allocation
/// per request for the groups header's separators).
fn encode_with(v: &str, also: impl Fn(char) -> bool) -> String {
    let needs = |c: char| c.is_control() || !c.is_ascii() || c == '%' || also(c);
    if !v.chars().any(needs) {
        return v.to_string();
    }
    let mut out = String::with_capacity(v.len() + 8);
    for c in v.chars() {
        if needs(c) {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        let s = StripSet::new(&[], &["X-My-Client".to_string()]);
        for n in [
            "X-Forwarded-User",
            "x_forwarded_user",
            "X.Forwarded.User",
            "x-forwarded_user",
            "X-AUTHENTIK-USERNAME",
            "x_authentik_anything",
            "remote_user",
            "Remote.Email",
            "X-Original-URL",
            "x_rewrite_url",
            "X-HTTP-Method-Override",
        ] {
            assert!(s.matches(n, false) && s.matches(n, true), "{n}");
        }
        for n in [
            "Forwarded",
            "x-real-ip",
            "True-Client-IP",
            "x_real_ip",
            "x-my-client",
            "X.Forwarded.Port",
        ] {
            assert!(s.matches(n, false), "{n}");
            assert!(!s.matches(n, true), "{n} is kept from a trusted proxy");
        }
        for n in ["accept", "authorization", "cookie", "x-forwarded-user-agent"] {
            assert!(!s.matches(n, false), "{n}");
        }
    }

    #[test]
    fn values_are_encoded_reversibly() {
        assert_eq!(encode_value("alice", ""), "alice");
        assert_eq!(encode_value("Alice Example", ""), "Alice Example");
        assert_eq!(encode_value("zoë", ""), "zo%C3%AB");
        assert_eq!(encode_value("ad\r\nmin", ""), "ad%0D%0Amin");
        assert_eq!(encode_value("100%", ""), "100%25");
        assert_eq!(encode_value("a,b|c", ",|"), "a%2Cb%7Cc");
        assert_eq!(encode_value("a,b", ""), "a,b", "only group names encode separators");
        for v in ["zoë", "ad\r\nmin", "100%", "x%2Cy", "\u{7f}\u{0}"] {
            let e = encode_value(v, ",|");
            assert!(e.bytes().all(|b| (0x20..0x7f).contains(&b)), "{e}");
            assert_eq!(percent_encoding::percent_decode_str(&e).decode_utf8().unwrap(), v);
        }
    }
}
