//! The `next` validator: only same-origin relative paths are accepted as redirect targets.
//!
//! Rules (docs/design.md §3): first character `/`; second neither `/` nor `\`; no control characters,
//! whitespace or backslashes; no scheme. The same rules are applied again to the percent-decoded value, so that an
//! encoded `//evil.com` cannot turn into an off-site redirect in a component that decodes it.

/// Longest accepted `next`.
pub const MAX_NEXT_LEN: usize = 2048;

/// Returns `next` if it is a safe same-origin relative path.
pub fn safe_next(next: &str) -> Option<&str> {
    // The raw value goes into a Location header: no whitespace or backslash in it at all.
    if next.len() > MAX_NEXT_LEN || !shape_ok(next) || next.chars().any(|c| c.is_whitespace() || c == '\\') {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(next).decode_utf8().ok()?;
    if !shape_ok(&decoded) {
        return None;
    }
    Some(next)
}

fn shape_ok(s: &str) -> bool {
    let b = s.as_bytes();
    if b.first() != Some(&b'/') {
        return false;
    }
    if matches!(b.get(1), Some(b'/') | Some(b'\\')) {
        return false;
    }
    !s.chars().any(char::is_control)
}

/// Reads `next` from an original query string and validates it.
pub fn next_from_query(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "next")
        .and_then(|(_, v)| safe_next(&v).map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_paths() {
        for ok in ["/", "/app", "/a/b?x=1&y=%2F", "/x#frag", "/%20space"] {
            assert_eq!(safe_next(ok), Some(ok), "{ok}");
        }
    }

    #[test]
    fn rejects_off_site() {
        for bad in [
            "//evil.com",
            "/\\evil.com",
            "https://evil.com",
            "/%2F%2Fevil.com",
            "/%2f/evil.com",
            "/%5Cevil.com",
            "javascript:alert(1)",
            "",
            "evil.com",
            "/\t/evil.com",
            "/%09/evil.com",
            "/\r\nLocation: x",
            "\\\\evil.com",
        ] {
            assert_eq!(safe_next(bad), None, "{bad:?}");
        }
        assert_eq!(safe_next(&format!("/{}", "a".repeat(MAX_NEXT_LEN))), None);
    }

    #[test]
    fn reads_from_query() {
        assert_eq!(next_from_query("next=%2Fapp%3Fa%3D1").as_deref(), Some("/app?a=1"));
        assert_eq!(next_from_query("next=%2F%2Fevil.com"), None);
        assert_eq!(next_from_query("x=1"), None);
    }
}
