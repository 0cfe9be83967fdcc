//! Path normalisation for routing and skip-auth matching.
//!
//! The path is percent-decoded once, dot segments are resolved and repeated slashes collapsed.
//! A path whose meaning depends on who decodes it (an encoded `/`, `\` or `.`, a backslash, a
//! dot segment or `//`) is marked *ambiguous*: it is still routed, but never matches a
//! skip-auth rule, so an upstream that decodes differently cannot be tricked into serving a
//! protected page without authentication.

/// A normalised path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath {
    /// Decoded, dot segments resolved, slashes collapsed; always starts with `/`.
    pub path: String,
    /// The raw path could be read differently by another component.
    pub ambiguous: bool,
}

/// Normalises a raw request path (no query). `None` for paths that are refused outright:
/// not starting with `/`, control characters or NUL (raw or encoded), or invalid UTF-8.
pub fn normalise(raw: &str) -> Option<NormalPath> {
    if !raw.starts_with('/') {
        return None;
    }
    let lower = raw.to_ascii_lowercase();
    let mut ambiguous =
        ["%2f", "%5c", "%2e", "%25"].iter().any(|e| lower.contains(e)) || raw.contains('\\') || raw.contains("//");
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8().ok()?;
    if decoded.chars().any(char::is_control) {
        return None;
    }
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" => {}
            "." => ambiguous = true,
            ".." => {
                ambiguous = true;
                out.pop();
            }
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
    }

    #[test]
    fn traversal_and_encodings_are_ambiguous() {
        for raw in [
            "/static/../admin",
            "/static/%2e%2e/admin",
            "/static%2F..%2Fadmin",
            "/static/..\\admin",
            "//static/x",
            "/static/./x",
            "/static/%252e%252e/admin",
        ] {
            let n = normalise(raw).unwrap();
            assert!(n.ambiguous, "{raw}");
        }
        assert_eq!(normalise("/static/../admin").unwrap().path, "/admin");
    }

    #[test]
    fn refused() {
        for raw in ["", "x", "/a%00b", "/a%0d%0ab", "/%ff"] {
            assert!(normalise(raw).is_none(), "{raw}");
        }
    }
}
