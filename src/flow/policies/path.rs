//! The `path` policy: the normalised request path matches a regex (per-app access control).

use super::{verdict, Decision, PolicyInput};
use regex::Regex;

/// The normalised path matches.
pub(super) fn evaluate(re: &Regex, input: &PolicyInput) -> Decision {
    verdict(re.is_match(&input.path), "request path")
}
