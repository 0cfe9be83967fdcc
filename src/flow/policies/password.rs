//! The password policy (docs/design.md §4.3): static rules (length, character classes), then a zxcvbn
//! Have I Been Pwned range check (through `hibp`), then a zxcvbn strength score, stopping at
//! the first failure. The password is read from `prompt_data[password_field]`, else from the
//! context key itself.

use super::{Decision, PolicyInput};
pub use crate::config::values::password_rules::{PasswordRules, DEFAULT_SYMBOLS};

fn password_from(input: &PolicyInput, field: &str) -> Option<String> {
    let from_prompt = input
        .context
        .get("prompt_data")
        .and_then(|p| p.get(field))
        .and_then(|v| v.as_str());
    from_prompt
        .or_else(|| input.context.get(field).and_then(|v| v.as_str()))
        .map(str::to_string)
}

/// Evaluates the rules; an unreachable range API is an error (the binding's failure_result).
pub(super) async fn evaluate(r: &PasswordRules, input: &PolicyInput) -> Result<Decision, super::PolicyError> {
    let d = evaluate_local(r, input, true);
    if !d.passing {
        return Ok(d);
    }
    if let (Some(url), Some(pw)) = (&r.hibp, password_from(input, &r.password_field)) {
        let n = super::hibp::count(url, &pw, r.hibp_timeout)
            .await
            .map_err(super::PolicyError)?;
        if n > r.hibp_allowed_count {
            return Ok(Decision {
                passing: false,
                messages: vec![format!("Password exists on {n} online lists.")],
            });
        }
    }
    Ok(evaluate_local(r, input, false))
}

/// Static rules (`static_only`) or zxcvbn.
fn evaluate_local(r: &PasswordRules, input: &PolicyInput, static_only: bool) -> Decision {
    let fail = |m: String| Decision {
        passing: false,
        messages: vec![m],
    };
    let Some(pw) = password_from(input, &r.password_field) else {
        return fail("Password not set in context".into());
    };
    if static_only && r.check_static_rules {
        let count = |f: &dyn Fn(char) -> bool| pw.chars().filter(|c| f(*c)).count();
        let ok = pw.chars().count() >= r.length_min
            && count(&|c| c.is_ascii_digit()) >= r.amount_digits
            && count(&|c| c.is_uppercase()) >= r.amount_uppercase
            && count(&|c| c.is_lowercase()) >= r.amount_lowercase
            && count(&|c| r.symbol_charset.contains(c)) >= r.amount_symbols;
        if !ok {
            return fail(r.error_message.clone());
        }
    }
    if !static_only && r.check_zxcvbn {
        let scored: String = pw.chars().take(72).collect();
        let mut inputs: Vec<&str> = Vec::new();
        if let Some(u) = &input.user {
            inputs.extend([u.username.as_str(), u.name.as_str(), u.email.as_str()]);
        }
        let est = zxcvbn::zxcvbn(&scored, &inputs);
        let score = u8::from(est.score());
        if score <= r.zxcvbn_score_threshold {
            let mut messages = vec!["Password is too weak.".to_string()];
            if let Some(fb) = est.feedback() {
                if let Some(w) = fb.warning() {
                    messages.push(w.to_string());
                }
                messages.extend(fb.suggestions().iter().map(|s| s.to_string()));
            }
            return Decision {
                passing: false,
                messages,
            };
        }
    }
    Decision {
        passing: true,
        messages: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules() -> PasswordRules {
        PasswordRules {
            password_field: "password".into(),
            check_static_rules: true,
            check_zxcvbn: false,
            amount_digits: 1,
            amount_uppercase: 1,
            amount_lowercase: 1,
            amount_symbols: 1,
            length_min: 8,
            symbol_charset: DEFAULT_SYMBOLS.into(),
            error_message: "Too simple.".into(),
            zxcvbn_score_threshold: 2,
            hibp: None,
            hibp_allowed_count: 0,
            hibp_timeout: std::time::Duration::from_secs(1),
        }
    }

    fn check(r: &PasswordRules, i: &PolicyInput) -> Decision {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(evaluate(r, i)).unwrap()
    }

    fn with(pw: &str) -> PolicyInput {
        PolicyInput {
            context: json!({"prompt_data": {"password": pw}}).as_object().cloned().unwrap(),
            ..Default::default()
        }
    }

    #[test]
    fn static_rules() {
        assert!(check(&rules(), &with("Abcdef1!")).passing);
        for bad in ["Abcde1!", "abcdefg1!", "ABCDEFG1!", "Abcdefgh!", "Abcdefgh1"] {
            let d = check(&rules(), &with(bad));
            assert_eq!(
                d,
                Decision {
                    passing: false,
                    messages: vec!["Too simple.".into()]
                },
                "{bad}"
            );
        }
        let d = check(&rules(), &PolicyInput::default());
        assert_eq!(d.messages, vec!["Password not set in context".to_string()]);
        let top = PolicyInput {
            context: json!({"password": "Abcdef1!"}).as_object().cloned().unwrap(),
            ..Default::default()
        };
        assert!(check(&rules(), &top).passing, "falls back to the context key");
    }

    #[test]
    fn zxcvbn_scores() {
        let mut r = rules();
        r.check_static_rules = false;
        r.check_zxcvbn = true;
        let d = check(&r, &with("password1"));
        assert!(!d.passing);
        assert_eq!(d.messages[0], "Password is too weak.");
        assert!(check(&r, &with("correct horse battery staple 1987!")).passing);
    }
}
