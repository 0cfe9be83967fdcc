//! Identity headers: strip every client-sent spelling, then set the verified ones.
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
use std::collections::HashSet;

/// The set of normalised identity header names to strip.
#[derive(Debug, Clone)]
pub struct StripSet {
    names: HashSet<String>,
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
    /// Every name used by a preset or by one of `apps`.
    pub fn new(apps: &[App]) -> Self {
        let mut names = HashSet::new();
        let presets = ["default", "authentik", "remote-user"]
            .into_iter()
            .filter_map(crate::config::preset);
        let sets: Vec<HeaderSet> = presets.chain(apps.iter().map(|a| a.headers.clone())).collect();
        for s in &sets {
            for n in [&s.user, &s.email, &s.groups, &s.name, &s.uid].into_iter().flatten() {
                names.insert(normalise_name(n));
            }
        }
        for extra in [
            "remote-user",
            "x-remote-user",
            "x-forwarded-preferred-username",
            "x-auth-request-user",
            "x-auth-request-email",
            "x-auth-request-groups",
        ] {
            names.insert(extra.to_string());
        }
        Self { names }
    }

    /// Whether a client header must be removed.
    pub fn matches(&self, name: &str) -> bool {
        // Header names from the parser are lowercase already; only `_` or `.` (or a caller's
        // uppercase) need a normalised copy, so the common case allocates nothing.
        if name.bytes().any(|b| b == b'_' || b == b'.' || b.is_ascii_uppercase()) {
            let n = normalise_name(name);
            return n.starts_with("x-authentik-") || self.names.contains(&n);
        }
        name.starts_with("x-authentik-") || self.names.contains(name)
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
        let s = StripSet::new(&[]);
        for n in [
            "X-Forwarded-User",
            "x_forwarded_user",
            "X.Forwarded.User",
            "x-forwarded_user",
            "X-AUTHENTIK-USERNAME",
            "x_authentik_anything",
            "remote_user",
            "Remote.Email",
        ] {
            assert!(s.matches(n), "{n}");
        }
        for n in ["accept", "x-forwarded-for", "authorization", "cookie"] {
            assert!(!s.matches(n), "{n}");
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
