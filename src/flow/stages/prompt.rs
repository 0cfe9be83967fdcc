//! Prompt stage (docs/design.md §5.7): shows its fields, checks each value against its type,
//! forces read-only, hidden and static values, checks a password pair, runs the validation
//! policies (mode all, `context.prompt_data` = the submitted values) and merges the values
//! into `prompt_data`.

use super::{Stage, StageCx, StageOutcome};
use crate::config::PromptDef;
use crate::config::{BindingTarget, EngineMode, PolicyBinding, PromptField, PromptKind, DEFAULT_POLICY_TIMEOUT};
use crate::flow::policies;
use crate::flow::Challenge;
use crate::identity::{names, User};
use base64::Engine;
use serde_json::{json, Map, Value};

/// Component name.
const COMPONENT: &str = "ak-stage-prompt";
/// Longest text value accepted.
const MAX_TEXT: usize = 4096;
/// Longest file (data URI) value accepted.
const MAX_FILE: usize = 48 * 1024;

/// Asks for values.
pub(super) struct PromptStage {
    fields: Vec<PromptField>,
    validation_policies: Vec<String>,
}

impl PromptStage {
    /// Built from its definition.
    pub(super) fn from_config(c: &PromptDef) -> Self {
        Self {
            fields: c.fields.clone(),
            validation_policies: c.validation_policies.clone(),
        }
    }
}

/// A plausible email address: one `@`, a local part, a dotted domain, no spaces.
pub(crate) fn email_ok(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    s.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
}

fn date_ok(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u32>().ok());
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    y >= 1 && (1..=days).contains(&d)
}

fn date_time_ok(s: &str) -> bool {
    let Some((date, time)) = s.split_once('T').or_else(|| s.split_once(' ')) else {
        return false;
    };
    let parts: Vec<&str> = time.split(':').collect();
    let in_range = |p: &str, max: u32| p.len() == 2 && p.parse::<u32>().is_ok_and(|v| v <= max);
    date_ok(date)
        && (parts.len() == 2 || parts.len() == 3)
        && in_range(parts[0], 23)
        && in_range(parts[1], 59)
        && parts.get(2).is_none_or(|p| in_range(p, 59))
}

fn data_uri_ok(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("data:") else {
        return false;
    };
    let Some((meta, data)) = rest.split_once(',') else {
        return false;
    };
    meta.ends_with(";base64") && base64::engine::general_purpose::STANDARD.decode(data).is_ok()
}

fn as_bool(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.as_str(), "on" | "true" | "1" | "yes"),
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

impl PromptStage {
    fn challenge(&self, prompt_data: &Map<String, Value>, submitted: Option<&Map<String, Value>>) -> Challenge {
        let fields: Vec<Value> = self
            .fields
            .iter()
            .map(|f| {
                // Initial values: prompt_data first, then the configured value. Passwords are
                // never sent back; a rejected form keeps what was typed.
                let initial = match f.kind {
                    PromptKind::Password => Value::String(String::new()),
                    PromptKind::Hidden | PromptKind::Static => Value::String(f.placeholder.clone()),
                    _ => submitted
                        .and_then(|s| s.get(&f.field_key))
                        .or_else(|| prompt_data.get(&f.field_key))
                        .cloned()
                        .unwrap_or_else(|| Value::String(f.initial_value.clone())),
                };
                json!({
                    "field_key": f.field_key, "label": f.label, "type": f.kind, "required": f.required,
                    "placeholder": f.placeholder, "initial_value": initial, "order": f.order,
                    "sub_text": f.sub_text,
                    "choices": if f.choices.is_empty() { Value::Null } else { json!(f.choices) },
                })
            })
            .collect();
        let mut m = Map::new();
        m.insert("fields".into(), Value::Array(fields));
        Challenge::new(COMPONENT, m, false)
    }

    /// Checks one submitted value; `Ok(None)` stores nothing.
    async fn check(&self, f: &PromptField, raw: Option<&Value>, cx: &StageCx<'_>, acting: Option<&User>) -> Checked {
        let text = match raw {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            Some(_) => return Err(("invalid", "Expected a single value.".into())),
        };
        match f.kind {
            PromptKind::Separator => return Ok(None),
            PromptKind::Hidden | PromptKind::Static => return Ok(Some(Value::String(f.placeholder.clone()))),
            PromptKind::TextReadOnly | PromptKind::TextAreaReadOnly => {
                return Ok(Some(Value::String(f.initial_value.clone())))
            }
            PromptKind::Checkbox => return Ok(Some(Value::Bool(as_bool(raw)))),
            _ => {}
        }
        let value = text.unwrap_or_default();
        let blank = value.trim().is_empty();
        if blank {
            return if f.required {
                Err(("required", "This field is required.".into()))
            } else {
                Ok(Some(Value::String(value)))
            };
        }
        let limit = if f.kind == PromptKind::File { MAX_FILE } else { MAX_TEXT };
        if value.len() > limit {
            return Err((
                "max_length",
                format!("Ensure this value has at most {limit} characters."),
            ));
        }
        if f.kind != PromptKind::TextArea && value.chars().any(|c| c.is_control()) {
            return Err(("invalid", "Control characters are not allowed.".into()));
        }
        match f.kind {
            PromptKind::Email if !email_ok(value.trim()) => Err(("invalid", "Enter a valid email address.".into())),
            PromptKind::Email if !is_email_field(f) => Ok(Some(Value::String(value.trim().to_string()))),
            PromptKind::Number => match value.trim().parse::<i64>() {
                Ok(n) => Ok(Some(json!(n))),
                Err(_) => Err(("invalid", "A valid integer is required.".into())),
            },
            PromptKind::RadioButtonGroup | PromptKind::Dropdown => {
                if f.choices.contains(&value) {
                    Ok(Some(Value::String(value)))
                } else {
                    Err(("invalid_choice", format!("\"{value}\" is not a valid choice.")))
                }
            }
            PromptKind::Date if !date_ok(&value) => Err(("invalid", "Enter a date as YYYY-MM-DD.".into())),
            PromptKind::DateTime if !date_time_ok(&value) => {
                Err(("invalid", "Enter a date and time as YYYY-MM-DDTHH:MM.".into()))
            }
            PromptKind::File if !data_uri_ok(&value) => Err(("invalid", "Expected a base64 data URI.".into())),
            PromptKind::AkLocale
                if !(2..=16).contains(&value.len())
                    || !value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
            {
                Err(("invalid", "Unknown locale.".into()))
            }
            _ if is_username_field(f) => Self::check_username(&value, cx, acting).await,
            _ if is_email_field(f) => Self::check_email(value.trim(), cx, acting).await,
            _ => Ok(Some(Value::String(value))),
        }
    }

    /// A username someone chooses (ID-2): stored in NFKC, identifier characters only, not
    /// reserved and not the same as, nor a look-alike of, another user's name. Every refusal
    /// is a field error on this form.
    async fn check_username(value: &str, cx: &StageCx<'_>, acting: Option<&User>) -> Checked {
        let name = match names::normalize_chosen_username(value) {
            Ok(n) => n,
            Err(e) => return Err(("invalid", format!("Enter a valid username: {e}."))),
        };
        let keeps_own =
            acting.is_some_and(|u| names::username_skeleton(&u.username) == names::username_skeleton(&name));
        if !keeps_own && cx.services.reserved_usernames.contains(&name) {
            return Err(("unique", TAKEN.into()));
        }
        match cx.users.username_taken(&name, acting.map(|u| u.id)).await {
            Ok(true) => Err(("unique", TAKEN.into())),
            Ok(false) => Ok(Some(Value::String(name))),
            Err(e) => {
                tracing::error!(error = %e, "username check failed");
                Err((
                    "unavailable",
                    "The username could not be checked. Try again later.".into(),
                ))
            }
        }
    }

    /// The address user_write will store (ID-1): not another user's, in any case.
    async fn check_email(value: &str, cx: &StageCx<'_>, acting: Option<&User>) -> Checked {
        match cx.users.email_taken(value, acting.map(|u| u.id)).await {
            Ok(true) => Err(("unique", "This email address is already in use.".into())),
            Ok(false) => Ok(Some(Value::String(value.to_string()))),
            Err(e) => {
                tracing::error!(error = %e, "email check failed");
                Err((
                    "unavailable",
                    "The email address could not be checked. Try again later.".into(),
                ))
            }
        }
    }
}

/// What one field check gives: the value to store (if any), or an error code and message.
type Checked = Result<Option<Value>, (&'static str, String)>;

/// The message for a taken, reserved or look-alike username (one message, so the form does
/// not tell which list a name is on).
const TAKEN: &str = "Username is already taken.";

/// A field whose value becomes a username: the `username` type, or any text field user_write
/// reads as `username` (imported sign-up flows often use `text`).
fn is_username_field(f: &PromptField) -> bool {
    f.kind == PromptKind::Username || (f.field_key == "username" && f.kind == PromptKind::Text)
}

/// A field whose value user_write stores as the email address.
fn is_email_field(f: &PromptField) -> bool {
    f.field_key == "email" && matches!(f.kind, PromptKind::Email | PromptKind::Text)
}

#[async_trait::async_trait]
impl Stage for PromptStage {
    async fn challenge(&self, cx: &mut StageCx<'_>) -> StageOutcome {
        StageOutcome::Challenge(self.challenge(&cx.prompt_data(), None))
    }

    async fn submit(&self, cx: &mut StageCx<'_>, response: &Map<String, Value>) -> StageOutcome {
        let prompt_data = cx.prompt_data();
        let acting = match cx.acting_user().await {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(error = %e, "user lookup failed");
                return StageOutcome::Deny("The form cannot be checked right now.".into());
            }
        };
        let mut values = Map::new();
        let mut errors: Vec<(String, &'static str, String)> = Vec::new();
        for f in &self.fields {
            match self.check(f, response.get(&f.field_key), cx, acting.as_ref()).await {
                Ok(Some(v)) => {
                    values.insert(f.field_key.clone(), v);
                }
                Ok(None) => {}
                Err((code, msg)) => errors.push((f.field_key.clone(), code, msg)),
            }
        }
        let passwords: Vec<&PromptField> = self.fields.iter().filter(|f| f.kind == PromptKind::Password).collect();
        if let [a, b] = passwords.as_slice() {
            if errors.is_empty() && values.get(&a.field_key) != values.get(&b.field_key) {
                errors.push((b.field_key.clone(), "invalid", "Passwords don't match.".into()));
            }
            // Only the first of the pair is kept as the value.
            values.remove(&b.field_key);
        }
        if errors.is_empty() && !self.validation_policies.is_empty() {
            let bindings: Vec<PolicyBinding> = self
                .validation_policies
                .iter()
                .enumerate()
                .map(|(i, p)| PolicyBinding {
                    target: BindingTarget::Policy(p.clone()),
                    negate: false,
                    enabled: true,
                    order: i as i64,
                    timeout: DEFAULT_POLICY_TIMEOUT,
                    failure_result: false,
                })
                .collect();
            let mut input = cx.policy_input.clone();
            input
                .context
                .insert("prompt_data".into(), Value::Object(values.clone()));
            let r = policies::evaluate(&bindings, EngineMode::All, cx.policies, &input).await;
            if !r.passing {
                let mut c = self.challenge(&prompt_data, Some(response));
                if r.messages.is_empty() {
                    c = c.with_error("non_field_errors", "The values were not accepted.", "invalid");
                }
                for m in &r.messages {
                    c = c.with_error("non_field_errors", m, "invalid");
                }
                return StageOutcome::Invalid(c);
            }
        }
        if !errors.is_empty() {
            let mut c = self.challenge(&prompt_data, Some(response));
            for (field, code, msg) in errors {
                c = c.with_error(&field, &msg, code);
            }
            return StageOutcome::Invalid(c);
        }
        let mut merged = prompt_data;
        merged.extend(values);
        // An invitation's fixed data wins over what the user typed.
        if let Some(Value::Object(fixed)) = cx.context.extra.get("invitation_fixed") {
            for (k, v) in fixed {
                merged.insert(k.clone(), v.clone());
            }
        }
        cx.context.extra.insert("prompt_data".into(), Value::Object(merged));
        StageOutcome::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(email_ok("a@example.com"));
        for bad in [
            "", "a", "a@b", "@b.c", "a@.b", "a@b.", "a b@c.d", "a@b@c.d", "a@b..c", "<a@b.c>",
        ] {
            assert!(!email_ok(bad), "{bad}");
        }
    }

    #[test]
    fn dates() {
        assert!(date_ok("2024-02-29"));
        assert!(!date_ok("2023-02-29"));
        assert!(!date_ok("2023-13-01"));
        assert!(!date_ok("23-1-1"));
        assert!(date_time_ok("2024-02-29T23:59"));
        assert!(date_time_ok("2024-02-29T23:59:59"));
        assert!(!date_time_ok("2024-02-29T24:00"));
        assert!(!date_time_ok("2024-02-29"));
    }

    #[test]
    fn data_uris() {
        assert!(data_uri_ok("data:text/plain;base64,aGk="));
        assert!(!data_uri_ok("data:text/plain,hi"));
        assert!(!data_uri_ok("data:text/plain;base64,***"));
    }
}
