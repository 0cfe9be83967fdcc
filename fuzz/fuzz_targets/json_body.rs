//! Challenge-response bodies as the flow executor receives them: `parse_json` (API) and
//! `parse_form` (HTML UI), with their documented bounds asserted.
#![no_main]

use flowgate::http::forms::{parse_form, parse_json, MAX_FIELDS};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = parse_json(data) {
        assert!(m.len() <= MAX_FIELDS, "parse_json returned {} fields", m.len());
        // Only JSON objects are accepted.
        assert!(matches!(serde_json::from_slice::<Value>(data), Ok(Value::Object(_))));
    }
    if let Ok(m) = parse_form(data) {
        assert!(std::str::from_utf8(data).is_ok(), "parse_form accepted non-UTF-8");
        assert!(m.len() <= MAX_FIELDS, "parse_form returned {} fields", m.len());
        for (k, v) in &m {
            let Value::String(v) = v else {
                panic!("form value is not a string: {v:?}");
            };
            assert!(!k.contains('\u{FFFD}') && !v.contains('\u{FFFD}'), "U+FFFD let through");
        }
    }
});
