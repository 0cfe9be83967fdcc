//! The `next` redirect validator. Besides "no panic", asserts what src/flow/next.rs promises
//! for every accepted value (raw and percent-decoded): it starts with `/`, the second character
//! is neither `/` nor `\`, it holds no control character, it is at most MAX_NEXT_LEN bytes, and
//! the raw value (it goes into a `Location` header) holds no whitespace and no backslash at all;
//! and the security property behind those rules: resolved by a WHATWG URL parser against the
//! gateway's origin, the raw and the decoded value both stay on that origin (no scheme, no
//! authority). `next_from_query` must return only values `safe_next` accepts.
#![no_main]

use flowgate::flow::next::{next_from_query, safe_next, MAX_NEXT_LEN};
use libfuzzer_sys::fuzz_target;

fn shape(s: &str) {
    let b = s.as_bytes();
    assert_eq!(b.first(), Some(&b'/'), "does not start with '/': {s:?}");
    assert!(!matches!(b.get(1), Some(b'/') | Some(b'\\')), "scheme-relative: {s:?}");
    assert!(!s.chars().any(char::is_control), "control character: {s:?}");
    assert!(!s.starts_with("//") && !s.starts_with("/\\"));
}

fn same_origin(s: &str) {
    let base = url::Url::parse("https://gate.example/app/page").unwrap();
    if let Ok(u) = base.join(s) {
        assert_eq!(u.scheme(), "https", "scheme changed: {s:?} -> {u}");
        assert_eq!(u.host_str(), Some("gate.example"), "host changed: {s:?} -> {u}");
        assert_eq!(u.port(), None, "port changed: {s:?} -> {u}");
        assert!(
            u.username().is_empty() && u.password().is_none(),
            "userinfo: {s:?} -> {u}"
        );
    }
}

fn accepted(input: &str, out: &str) {
    assert!(out.len() <= MAX_NEXT_LEN);
    shape(out);
    assert!(
        !out.chars().any(|c| c.is_whitespace() || c == '\\'),
        "whitespace or backslash: {out:?}"
    );
    same_origin(out);
    let decoded = percent_encoding::percent_decode_str(out)
        .decode_utf8()
        .expect("accepted value does not percent-decode to UTF-8");
    shape(&decoded);
    same_origin(&decoded);
    let _ = input;
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(out) = safe_next(text) {
        assert_eq!(out, text, "safe_next must return its input unchanged");
        accepted(text, out);
    }
    if let Some(out) = next_from_query(text) {
        assert_eq!(
            safe_next(&out),
            Some(out.as_str()),
            "next_from_query returned an unsafe value"
        );
        accepted(text, &out);
    }
});
