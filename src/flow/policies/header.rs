//! The `header` policy: a request header is present, optionally with a value matching a regex.

use super::{verdict, Decision, PolicyInput};
use regex::Regex;

/// The header is present and, if a regex is given, one of its values matches.
pub(super) fn evaluate(name: &str, re: Option<&Regex>, input: &PolicyInput) -> Decision {
    let mut values = input.headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
    let ok = match re {
        None => values.next().is_some(),
        Some(r) => values.any(|v| r.is_match(v)),
    };
    verdict(ok, &format!("header {name}"))
}
