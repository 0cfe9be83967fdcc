//! Validation of an app's identity header set (`apps[].headers`): a preset name or a map of
//! custom header names. The presets themselves are in `config/presets.rs`.

use super::Collector;
use crate::config::model::{HeaderSet, DEFAULT_GROUPS_SEPARATOR};
use crate::config::presets::{preset, PRESET_NAMES};
use crate::config::raw::RawHeaders;

/// Header names an identity header may never take.
pub(super) const RESERVED_HEADERS: &[&str] = &[
    "host",
    "cookie",
    "set-cookie",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-authorization",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
];

pub(crate) fn headers(c: &mut Collector<'_>, p: &str, raw: Option<&RawHeaders>) -> Option<HeaderSet> {
    match raw {
        None => Some(preset("default")?),
        Some(RawHeaders::Preset(name)) => match preset(name) {
            Some(h) => Some(h),
            None => {
                c.err(0, p, format!("unknown header preset {name:?} (expected one of: {}, or a map with user, email, groups, name, uid)", PRESET_NAMES.join(", ")));
                None
            }
        },
        Some(RawHeaders::Custom(m)) => {
            let mut check = |field: &str, v: &Option<String>| -> Option<String> {
                let v = v.as_ref()?;
                let lower = v.to_ascii_lowercase();
                if http::HeaderName::from_bytes(v.as_bytes()).is_err() || RESERVED_HEADERS.contains(&lower.as_str()) {
                    c.err(0, format!("{p}.{field}"), format!("invalid identity header name {v:?} (expected a valid HTTP header name that is not hop-by-hop, Host, Cookie or X-Forwarded-For/-Proto/-Host)"));
                    return None;
                }
                Some(v.clone())
            };
            let set = HeaderSet {
                preset: "custom".into(),
                user: check("user", &m.user),
                email: check("email", &m.email),
                groups: check("groups", &m.groups),
                name: check("name", &m.name),
                uid: check("uid", &m.uid),
                groups_separator: m
                    .groups_separator
                    .clone()
                    .unwrap_or_else(|| DEFAULT_GROUPS_SEPARATOR.into()),
                meta: false,
            };
            if set.groups_separator.is_empty() || set.groups_separator.chars().any(|ch| ch.is_control()) {
                c.err(
                    0,
                    format!("{p}.groups_separator"),
                    "must be a non-empty string without control characters",
                );
            }
            if m.user.is_none() {
                c.err(
                    0,
                    format!("{p}.user"),
                    "a custom header set needs at least the user header",
                );
            }
            Some(set)
        }
    }
}
