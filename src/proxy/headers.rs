//! Identity headers: strip every client-sent spelling, then set the verified ones.
//!
//! A header is an identity header if its name, lowercased with `_` and `.` read as `-`, is one
//! that any preset or any configured app uses, or starts with `x-authentik-`. Stripping runs on
//! every forwarded request, authenticated or skip-auth, before anything is set.

use crate::config::{App, HeaderSet};
use crate::session::Identity;
use std::collections::HashSet;

/// The set of normalised identity header names to strip.
#[derive(Debug, Clone)]
pub struct StripSet {
    names: HashSet<String>,
}

/// Lowercase, with `_` and `.` read as `-`.
pub fn normalise_name(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'_' | b'.' => '-',
            b => b.to_ascii_lowercase() as char,
        })
        .collect()
}

impl StripSet {
    /// Every name used by a preset or by one of `apps`.
    pub fn new(apps: &[App]) -> Self {
        let mut names = HashSet::new();
        let presets = ["default", "authentik", "remote-user"]
            .into_iter()
            .filter_map(crate::config::preset);
        let sets: Vec<HeaderSet> = presets.chain(apps.iter().map(|a| a.headers.clone())).collect();
        for s in &sets {
            for n in [&s.user, &s.email, &s.groups, &s.name, &s.uid].into_iter().flatten() {
                names.insert(normalise_name(n));
            }
        }
        for extra in [
            "remote-user",
            "x-remote-user",
            "x-forwarded-preferred-username",
            "x-auth-request-user",
            "x-auth-request-email",
            "x-auth-request-groups",
        ] {
            names.insert(extra.to_string());
        }
        Self { names }
    }

    /// Whether a client header must be removed.
    pub fn matches(&self, name: &str) -> bool {
        // Header names from the parser are lowercase already; only `_` or `.` (or a caller's
        // uppercase) need a normalised copy, so the common case allocates nothing.
        if name.bytes().any(|b| b == b'_' || b == b'.' || b.is_ascii_uppercase()) {
            let n = normalise_name(name);
            return n.starts_with("x-authentik-") || self.names.contains(&n);
        }
        name.starts_with("x-authentik-") || self.names.contains(name)
    }
}

/// The identity headers to set for `who` under `set`, as (name, value) pairs. Values are
/// sanitised: control characters never reach the upstream.
pub fn identity_headers(set: &HeaderSet, app: &App, who: &Identity) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(8);
    let mut push = |name: &Option<String>, value: String| {
        if let Some(n) = name {
            out.push((n.clone(), clean(&value)));
        }
    };
    push(&set.user, who.username.clone());
    push(&set.email, who.email.clone());
    push(&set.groups, who.groups.join(&set.groups_separator));
    push(&set.name, who.name.clone());
    push(&set.uid, who.uid.clone());
    if set.meta {
        out.push(("X-authentik-meta-app".into(), clean(&app.name)));
        out.push(("X-authentik-meta-provider".into(), clean(&app.name)));
        out.push(("X-authentik-meta-outpost".into(), "flowgate".into()));
        out.push((
            "X-authentik-meta-version".into(),
            format!("flowgate/{}", env!("CARGO_PKG_VERSION")),
        ));
    }
    out
}

fn clean(v: &str) -> String {
    v.chars().filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        let s = StripSet::new(&[]);
        for n in [
            "X-Forwarded-User",
            "x_forwarded_user",
            "X.Forwarded.User",
            "x-forwarded_user",
            "X-AUTHENTIK-USERNAME",
            "x_authentik_anything",
            "remote_user",
            "Remote.Email",
        ] {
            assert!(s.matches(n), "{n}");
        }
        for n in ["accept", "x-forwarded-for", "authorization", "cookie"] {
            assert!(!s.matches(n), "{n}");
        }
    }
}
