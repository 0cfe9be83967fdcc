//! The `method` policy: the request method is one of a list.

use super::{verdict, Decision, PolicyInput};

/// The method is listed.
pub(super) fn evaluate(methods: &[String], input: &PolicyInput) -> Decision {
    verdict(
        methods.iter().any(|m| m.eq_ignore_ascii_case(&input.method)),
        "request method",
    )
}
