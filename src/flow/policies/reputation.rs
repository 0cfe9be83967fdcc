//! The `reputation` policy: passes when the client IP's or the identifier's reputation score is
//! at or below a threshold (scores come in [`PolicyInput::reputation`]).

use super::{Decision, PolicyInput};

/// Passes when a checked score is at or below `threshold`.
pub(super) fn evaluate(check_ip: bool, check_username: bool, threshold: i64, input: &PolicyInput) -> Decision {
    let (ip, user) = input.reputation;
    let passing = (check_ip && ip <= threshold) || (check_username && user <= threshold);
    Decision {
        passing,
        messages: Vec::new(),
    }
}
