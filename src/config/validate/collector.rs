//! The error collector validation writes into: each semantic error with its field path, located
//! to a line and column in its source. A leaf: it knows sources and errors, not the model.

use crate::config::duration::parse_duration;
use crate::config::error::ConfigError;
use crate::config::locate;
use crate::config::Source;

/// Errors are collected here while validating.
pub(crate) struct Collector<'a> {
    pub(crate) sources: &'a [Source],
    pub(crate) errors: Vec<ConfigError>,
}

impl<'a> Collector<'a> {
    /// Records a semantic error at `path` in source `file`.
    pub(crate) fn err(&mut self, file: usize, path: impl Into<String>, message: impl Into<String>) {
        let path = path.into();
        let (name, line, column) = match self.sources.get(file) {
            Some(src) => {
                let pos = locate::locate(&src.text, &locate::parse_path(&path));
                let (l, c) = pos.map(|p| (p.line, p.column)).unwrap_or((1, 1));
                (src.name.clone(), l, c)
            }
            None => ("<config>".to_string(), 0, 0),
        };
        self.errors.push(ConfigError {
            file: name,
            line,
            column,
            path,
            message: message.into(),
        });
    }

    /// Checks a stage or policy name (`what`): free text as in authentik (names are keys, never
    /// in URLs), 1-150 characters without control characters or surrounding spaces.
    pub(crate) fn name(&mut self, file: usize, path: &str, what: &str, name: &str) {
        let ok = !name.is_empty()
            && name.chars().count() <= 150
            && !name.chars().any(char::is_control)
            && name.trim() == name;
        if !ok {
            self.err(
                file,
                path,
                format!("invalid {what} name {name:?} (1-150 characters, no control characters or surrounding spaces)"),
            );
        }
    }

    pub(crate) fn duration(
        &mut self,
        file: usize,
        path: String,
        v: &Option<String>,
        default: std::time::Duration,
    ) -> std::time::Duration {
        match v {
            None => default,
            Some(s) => match parse_duration(s) {
                Ok(d) => d,
                Err(e) => {
                    self.err(file, path, e);
                    default
                }
            },
        }
    }

    pub(crate) fn choice<T: Copy>(
        &mut self,
        file: usize,
        path: String,
        v: &Option<String>,
        default: T,
        allowed: &[(&str, T)],
    ) -> T {
        let Some(s) = v else { return default };
        match allowed.iter().find(|(n, _)| n == s) {
            Some((_, t)) => *t,
            None => {
                let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
                self.err(
                    file,
                    path,
                    format!("unknown value {s:?} (expected one of: {})", names.join(", ")),
                );
                default
            }
        }
    }
}

/// The names in `names` for an error message, `none` when there are none.
pub(crate) fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(|s| s.as_str()).collect();
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}
