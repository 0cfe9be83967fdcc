//! The dummy policy: a fixed result after an optional wait. For testing flows and timeouts.

use super::{Decision, PolicyError, PolicyInput};
use std::time::Duration;

/// Waits, then returns the configured result.
pub(super) async fn evaluate(result: bool, wait: Duration, _input: &PolicyInput) -> Result<Decision, PolicyError> {
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    Ok(Decision {
        passing: result,
        messages: vec![format!("dummy policy result: {result}")],
    })
}
