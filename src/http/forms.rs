//! Decoding challenge responses: urlencoded forms from the HTML UI and JSON objects from the
//! API, both into one map. Bounded and strict: non-UTF-8, duplicate fields, too many fields or
//! a JSON body that is not an object are errors.

use serde_json::{Map, Value};

/// Most fields a form may carry.
pub const MAX_FIELDS: usize = 64;

/// Why a body was rejected.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Not UTF-8 or not decodable.
    Malformed(&'static str),
    /// Wrong content type.
    UnsupportedType,
}

/// Decodes an `application/x-www-form-urlencoded` body.
pub fn parse_form(body: &[u8]) -> Result<Map<String, Value>, BodyError> {
    if std::str::from_utf8(body).is_err() {
        return Err(BodyError::Malformed("form is not valid UTF-8"));
    }
    let mut out = Map::new();
    for (k, v) in form_urlencoded::parse(body) {
        // form_urlencoded replaces invalid percent-decoded UTF-8 with U+FFFD; refuse it.
        if k.contains('\u{FFFD}') || v.contains('\u{FFFD}') {
            return Err(BodyError::Malformed("form field is not valid UTF-8"));
        }
        if out.contains_key(k.as_ref()) {
            return Err(BodyError::Malformed("duplicate form field"));
        }
        if out.len() >= MAX_FIELDS {
            return Err(BodyError::Malformed("too many form fields"));
        }
        out.insert(k.into_owned(), Value::String(v.into_owned()));
    }
    Ok(out)
}

/// Decodes a JSON object body.
pub fn parse_json(body: &[u8]) -> Result<Map<String, Value>, BodyError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) if m.len() <= MAX_FIELDS => Ok(m),
        Ok(Value::Object(_)) => Err(BodyError::Malformed("too many fields")),
        Ok(_) => Err(BodyError::Malformed("body must be a JSON object")),
        Err(_) => Err(BodyError::Malformed("body is not valid JSON")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let m = parse_form(b"uid_field=alice&password=a%26b").unwrap();
        assert_eq!(m["password"], "a&b");
        assert!(parse_form(b"a=1&a=2").is_err());
        assert!(parse_form(b"a=%FF").is_err());
        assert!(parse_form(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn json() {
        assert!(parse_json(br#"{"uid_field":"a"}"#).is_ok());
        assert!(parse_json(b"[1]").is_err());
        assert!(parse_json(b"{").is_err());
    }
}
