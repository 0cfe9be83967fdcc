//! Helpers the stage and service validators share: secrets read from the environment or a file,
//! and the shape of a configured `http(s)` URL.

use super::Collector;

/// Longest value a secret file may hold.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Reads a secret from an environment variable or a file (trailing newline removed).
pub(crate) fn secret(
    c: &mut Collector<'_>,
    fi: usize,
    p: &str,
    inline: Option<&String>,
    env: Option<&String>,
    file: Option<&String>,
    key: &str,
) -> Option<String> {
    let given = [inline.is_some(), env.is_some(), file.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        c.err(
            fi,
            format!("{p}.{key}"),
            format!("set only one of {key}, {key}_env, {key}_file"),
        );
        return None;
    }
    if let Some(v) = inline {
        return Some(v.clone());
    }
    if let Some(var) = env {
        return match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some(v),
            _ => {
                c.err(
                    fi,
                    format!("{p}.{key}_env"),
                    format!("environment variable {var:?} is not set or empty"),
                );
                None
            }
        };
    }
    let path = file?;
    let base = c.sources.get(fi).map(|s| s.base_dir.clone()).unwrap_or_default();
    let full = base.join(path);
    let read = crate::input_limits::read_capped_string(&full, MAX_SECRET_BYTES);
    match read {
        Ok(v) if !v.trim_end_matches(['\r', '\n']).is_empty() => Some(v.trim_end_matches(['\r', '\n']).to_string()),
        Ok(_) => {
            c.err(fi, format!("{p}.{key}_file"), format!("{} is empty", full.display()));
            None
        }
        Err(e) => {
            c.err(
                fi,
                format!("{p}.{key}_file"),
                format!("cannot read {}: {e}", full.display()),
            );
            None
        }
    }
}

pub(crate) fn url_ok(u: &str) -> bool {
    (u.starts_with("https://") || u.starts_with("http://")) && u.len() > 8 && !u.chars().any(char::is_whitespace)
}
