//! The `password_expiry` policy: fails once the user's password is `days` old. As authentik,
//! without `deny_only` an expired password is also made unusable.

use super::{Decision, PolicyError, PolicyInput};

/// Evaluates the policy; making the password unusable may fail (the binding's failure_result).
pub(super) async fn evaluate(days: u32, deny_only: bool, input: &PolicyInput) -> Result<Decision, PolicyError> {
    let d = decide(days, deny_only, input);
    if !d.passing && !deny_only {
        if let (Some(store), Some(u)) = (&input.users, &input.user) {
            store
                .set_password_unusable(&u.username)
                .await
                .map_err(|e| PolicyError(e.to_string()))?;
            tracing::info!(user = %u.username, "expired password made unusable");
        }
    }
    Ok(d)
}

/// Fails once the user's password is `days` old (the message differs with `deny_only`).
fn decide(days: u32, deny_only: bool, input: &PolicyInput) -> Decision {
    let changed = input.user.as_ref().and_then(|u| u.password_changed_ms);
    let Some(changed) = changed else {
        return Decision {
            passing: true,
            messages: Vec::new(),
        };
    };
    let age_days = input.now_ms.saturating_sub(changed) / 86_400_000;
    if age_days < u64::from(days) {
        return Decision {
            passing: true,
            messages: Vec::new(),
        };
    }
    let message = if deny_only {
        "Password has expired.".to_string()
    } else {
        format!(
            "Password expired {} days ago. Please update your password.",
            age_days - u64::from(days)
        )
    };
    Decision {
        passing: false,
        messages: vec![message],
    }
}
