//! Validation of a prompt stage's `fields`: keys, types, choices and defaults.

use super::Collector;
use crate::config::model::{PromptField, PromptKind};
use crate::config::raw::RawPromptField;

/// The validated fields of the prompt stage at `p`, in display order.
pub(crate) fn fields(c: &mut Collector<'_>, fi: usize, p: &str, fields: &[RawPromptField]) -> Vec<PromptField> {
    let mut out: Vec<PromptField> = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        let fp = format!("{p}.fields[{i}]");
        let key_ok = !f.field_key.is_empty()
            && f.field_key.len() <= 100
            && f.field_key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
        if !key_ok {
            c.err(
                fi,
                format!("{fp}.field_key"),
                format!(
                    "invalid field key {:?} (expected 1-100 of A-Z a-z 0-9 _ . -)",
                    f.field_key
                ),
            );
        }
        if f.field_key == "csrf_token" || f.field_key == "component" {
            c.err(fi, format!("{fp}.field_key"), format!("{:?} is reserved", f.field_key));
        }
        if out.iter().any(|o| o.field_key == f.field_key) {
            c.err(
                fi,
                format!("{fp}.field_key"),
                format!("field key {:?} is used twice in this stage", f.field_key),
            );
        }
        let Some(kind) = PromptKind::ALL.iter().find(|(n, _)| *n == f.kind).map(|(_, k)| *k) else {
            let names: Vec<&str> = PromptKind::ALL.iter().map(|(n, _)| *n).collect();
            c.err(
                fi,
                format!("{fp}.type"),
                format!(
                    "unknown prompt type {:?} (expected one of: {})",
                    f.kind,
                    names.join(", ")
                ),
            );
            continue;
        };
        let is_choice = matches!(kind, PromptKind::RadioButtonGroup | PromptKind::Dropdown);
        if is_choice && f.choices.is_empty() {
            c.err(fi, format!("{fp}.choices"), "a choice field needs at least one choice");
        }
        if !is_choice && !f.choices.is_empty() {
            c.err(
                fi,
                format!("{fp}.choices"),
                "only radio-button-group and dropdown take choices",
            );
        }
        out.push(PromptField {
            field_key: f.field_key.clone(),
            label: f.label.clone().unwrap_or_else(|| f.field_key.clone()),
            kind,
            required: match kind {
                PromptKind::Checkbox
                | PromptKind::Separator
                | PromptKind::Hidden
                | PromptKind::Static
                | PromptKind::TextReadOnly
                | PromptKind::TextAreaReadOnly => false,
                _ => f.required.unwrap_or(true),
            },
            placeholder: f.placeholder.clone().unwrap_or_default(),
            initial_value: f.initial_value.clone().unwrap_or_default(),
            sub_text: f.sub_text.clone().unwrap_or_default(),
            order: f.order.unwrap_or(0),
            choices: f.choices.clone(),
        });
    }
    if out.iter().filter(|f| f.kind == PromptKind::Password).count() > 2 {
        c.err(
            fi,
            format!("{p}.fields"),
            "at most two password fields (a password and its repeat)",
        );
    }
    // Stable: equal orders keep file order.
    out.sort_by_key(|f| f.order);
    out
}
