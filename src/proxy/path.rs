//! The one path rule for routing, skip-auth, app and path policies and forward auth
//! (`docs/decisions/0004-one-path-rule.md`).
//!
//! Servers disagree on what some paths mean: Tomcat, Jetty and Spring cut `;params` from every
//! segment before resolving dot segments (`/public/..;/private` is `/private` to them and
//! `/public/..;/private` to a regex), IIS reads `\` as `/`, some servers decode `%2F` into a
//! separator and some decode twice. A gateway that reads such a path one way while the app reads
//! it another grants or skips checks on the wrong resource. So a path is **refused (400)** when
//! its meaning depends on the reader:
//!
//! - a backslash, raw or encoded (`\`, `%5C`), an encoded `/` (`%2F`) or `;` (`%3B`);
//! - a dot segment (`.` or `..`) in any reading: raw, percent-decoded (`%2e%2e`), or exposed by
//!   cutting `;params` (`..;`, `.;x`); browsers and HTTP libraries resolve dot segments before
//!   sending, so only a hand-made request carries one;
//! - a second layer of encoding of any of these or of a control character (`%252e`, `%255c`);
//! - control characters or NUL (raw or encoded) and invalid UTF-8 (overlong forms included).
//!
//! Every other path has one **canonical form**: percent-decoded once, `;params` cut from every
//! segment (the servlet reading, which is the only one that differs from the plain one once dot
//! segments are gone), repeated slashes collapsed. Routing, skip-auth, app and path policies
//! and the forward-auth endpoints all see that form. A path that needed `;` cut or `//`
//! collapsed, or that holds `%25`, is *ambiguous*: it is routed and authorised on its canonical
//! form but never matches a skip-auth rule. The raw path is what the upstream receives.

/// A canonical path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath {
    /// Decoded, `;params` cut, slashes collapsed; always starts with `/`.
    pub path: String,
    /// The raw path needed `;params` cut or slashes collapsed, or holds an encoded `%`: routed
    /// on the canonical form, never a skip-auth match.
    pub ambiguous: bool,
}

/// Encodings whose decoded byte would be read as structure by some server.
const REFUSED_ENCODINGS: [&str; 3] = ["%2f", "%5c", "%3b"];

/// Canonicalises a raw request path (no query). `None` for a path that is refused (see the
/// module doc); the caller answers 400.
pub fn normalise(raw: &str) -> Option<NormalPath> {
    if !raw.starts_with('/') || raw.contains('\\') {
        return None;
    }
    // Only a path with an escape needs the lowercase copy (the common path has none).
    let mut encoded_percent = false;
    if raw.contains('%') {
        let lower = raw.to_ascii_lowercase();
        if REFUSED_ENCODINGS.iter().any(|e| lower.contains(e)) {
            return None;
        }
        encoded_percent = lower.contains("%25");
    }
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8().ok()?;
    if decoded.chars().any(char::is_control) || decoded.contains('\\') {
        return None;
    }
    if decoded.contains('%') && double_encoded_structure(&decoded) {
        return None;
    }
    let mut ambiguous = raw.contains("//") || encoded_percent;
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        let name = match seg.split_once(';') {
            Some((name, _)) => {
                ambiguous = true;
                name
            }
            None => seg,
        };
        match name {
            "" => {}
            "." | ".." => return None,
            s => out.push(s),
        }
    }
    let mut path = String::with_capacity(decoded.len());
    for s in &out {
        path.push('/');
        path.push_str(s);
    }
    if path.is_empty() || (decoded.ends_with('/') && !out.is_empty()) {
        path.push('/');
    }
    Some(NormalPath { path, ambiguous })
}

/// Whether decoding `once` a second time would produce a separator, a dot, a `;` or a control
/// character (a server that decodes twice would read a different path).
fn double_encoded_structure(once: &str) -> bool {
    let twice = percent_encoding::percent_decode_str(once).decode_utf8_lossy();
    let count = |s: &str| {
        s.chars()
            .filter(|c| matches!(c, '/' | '\\' | '.' | ';') || c.is_control())
            .count()
    };
    count(&twice) != count(once)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_are_not_ambiguous() {
        let n = normalise("/static/app.css").unwrap();
        assert_eq!(n.path, "/static/app.css");
        assert!(!n.ambiguous);
        assert_eq!(normalise("/").unwrap().path, "/");
        assert_eq!(normalise("/a/").unwrap().path, "/a/");
        assert_eq!(normalise("/%73tatic/x").unwrap().path, "/static/x");
        assert_eq!(normalise("/files/100%25").unwrap().path, "/files/100%");
        assert_eq!(normalise("/a.b/c..d/.e").unwrap().path, "/a.b/c..d/.e");
    }

    #[test]
    fn params_and_slashes_are_cut_and_ambiguous() {
        for (raw, canonical) in [
            ("/internal;x/y", "/internal/y"),
            ("/app/page;jsessionid=ABC", "/app/page"),
            ("//internal/x", "/internal/x"),
            ("/a//b/", "/a/b/"),
            ("/;x/internal", "/internal"),
        ] {
            let n = normalise(raw).unwrap();
            assert_eq!(n.path, canonical, "{raw}");
            assert!(n.ambiguous, "{raw}");
        }
    }

    #[test]
    fn confusing_paths_are_refused() {
        for raw in [
            "",
            "x",
            "/a%00b",
            "/a%0d%0ab",
            "/%ff",
            "/public/%c0%ae%c0%ae/admin",
            "/static/../admin",
            "/static/./x",
            "/admin/.",
            "/static/%2e%2e/admin",
            "/static/%2E%2E/admin",
            "/static/.%2e/admin",
            "/static%2F..%2Fadmin",
            "/static/..\\admin",
            "/x/..%5cinternal/x",
            "/x/..%5Cinternal/x",
            "/public/..;/private",
            "/x/..;/internal/x",
            "/x/..;foo/internal",
            "/x/.;/internal",
            "/public;/../private",
            "/a%3bb",
            "/static/%252e%252e/admin",
            "/static/%252fadmin",
            "/static/%255cadmin",
            "/static/%2500",
        ] {
            assert!(normalise(raw).is_none(), "{raw}");
        }
    }
}
