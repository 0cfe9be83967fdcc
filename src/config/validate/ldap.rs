//! `sources:` of `type: ldap` and the password stage's `backends`: the server URI and how it is
//! secured (LDAPS, StartTLS, or plain only to a loopback address), the CA file (read and
//! parsed here), the service account's password (env or file), the filters' shape, and that
//! every backend names `local` or a directory source.

use super::{known, secrets, Collector};
use crate::config::ldap_model::*;
use crate::config::raw::{RawFile, RawStage};
use crate::config::raw_clients::{RawLdapSource, RawSource};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Most bytes of a CA file.
const MAX_CA_BYTES: u64 = 1024 * 1024;

fn slug_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A filter must be one parenthesised LDAP filter with balanced parentheses.
fn filter_ok(f: &str) -> bool {
    let mut depth = 0i32;
    for (i, ch) in f.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 || (depth == 0 && i != f.len() - 1) {
                    return false;
                }
            }
            c if c.is_control() => return false,
            _ => {}
        }
    }
    f.starts_with('(') && depth == 0
}

fn attr_ok(a: &str) -> bool {
    !a.is_empty() && a.len() <= 64 && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b';')
}

/// Validates every file's `sources:` of `type: ldap` (keys unique across files).
pub(crate) fn sources(c: &mut Collector<'_>, files: &[RawFile]) -> BTreeMap<String, Arc<LdapSourceDef>> {
    let mut out = BTreeMap::new();
    for (fi, f) in files.iter().enumerate() {
        for (slug, raw) in &f.sources {
            // OAuth sources (and a key shared with one) are `validate/sources.rs`'s.
            if matches!(raw, RawSource::Oauth(_)) {
                continue;
            }
            let p = format!("sources.{slug}");
            if out.contains_key(slug) {
                c.err(fi, p, format!("source {slug:?} is defined twice"));
                continue;
            }
            if !slug_ok(slug) {
                c.err(
                    fi,
                    p.clone(),
                    format!("invalid source key {slug:?} (1-64 characters: a-z, 0-9, '-', '_')"),
                );
            }
            let def = match raw {
                RawSource::Ldap(l) => ldap(c, fi, &p, slug, l),
                RawSource::Oauth(_) => continue,
            };
            if let Some(d) = def {
                out.insert(slug.clone(), Arc::new(d));
            }
        }
    }
    out
}

fn joined(extra: &Option<String>, base: &str) -> String {
    match extra.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        Some(e) => format!("{e},{base}"),
        None => base.to_string(),
    }
}

fn ldap(c: &mut Collector<'_>, fi: usize, p: &str, slug: &str, r: &RawLdapSource) -> Option<LdapSourceDef> {
    let start_tls = r.start_tls.unwrap_or(false);
    let uri = r.server_uri.trim();
    let host = uri
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'))
        .unwrap_or("");
    let host_only = host.rsplit_once(':').map_or(host, |(h, _)| h).trim_matches(['[', ']']);
    let loopback = host_only == "localhost" || host_only.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let tls = if uri.starts_with("ldaps://") {
        if start_tls {
            c.err(
                fi,
                format!("{p}.start_tls"),
                "an ldaps:// connection is TLS already; StartTLS is for ldap://",
            );
        }
        Some(LdapTls::Ldaps)
    } else if uri.starts_with("ldap://") {
        if start_tls {
            Some(LdapTls::StartTls)
        } else if loopback {
            Some(LdapTls::PlainLoopback)
        } else {
            c.err(
                fi,
                format!("{p}.server_uri"),
                format!("{uri:?} would send passwords in the clear: use ldaps:// or start_tls: true (plain ldap:// only to a loopback address)"),
            );
            None
        }
    } else {
        c.err(
            fi,
            format!("{p}.server_uri"),
            format!("invalid server URI {uri:?} (expected ldaps://HOST[:PORT] or ldap://HOST[:PORT])"),
        );
        None
    };
    if host.is_empty() || host.contains(['/', '?', '@', ' ']) {
        c.err(
            fi,
            format!("{p}.server_uri"),
            format!("invalid server URI {uri:?} (expected a host and optional port, no path)"),
        );
    }
    let ca_pem = match &r.ca_file {
        None => None,
        Some(f) => {
            let base = c.sources.get(fi).map(|s| s.base_dir.clone()).unwrap_or_default();
            let full = base.join(f);
            match crate::input_limits::read_capped_string(&full, MAX_CA_BYTES) {
                Ok(pem) => {
                    let certs = rustls_pemfile::certs(&mut pem.as_bytes()).filter(|c| c.is_ok()).count();
                    if certs == 0 {
                        c.err(
                            fi,
                            format!("{p}.ca_file"),
                            format!("{} holds no PEM certificate", full.display()),
                        );
                    }
                    Some(pem)
                }
                Err(e) => {
                    c.err(
                        fi,
                        format!("{p}.ca_file"),
                        format!("cannot read {}: {e}", full.display()),
                    );
                    None
                }
            }
        }
    };
    let bind_password = secrets::secret(
        c,
        fi,
        p,
        r.bind_password.as_ref(),
        r.bind_password_env.as_ref(),
        r.bind_password_file.as_ref(),
        "bind_password",
    );
    if r.bind_password.is_none() && r.bind_password_env.is_none() && r.bind_password_file.is_none() {
        c.err(
            fi,
            format!("{p}.bind_password_env"),
            "the service account needs a password: set bind_password_env or bind_password_file",
        );
    }
    if r.bind_cn.trim().is_empty() {
        c.err(fi, format!("{p}.bind_cn"), "the service account's DN is required");
    }
    if r.base_dn.trim().is_empty() {
        c.err(fi, format!("{p}.base_dn"), "the search base is required");
    }
    let mut filter = |key: &str, v: &Option<String>, default: &str| -> String {
        let f = v.clone().unwrap_or_else(|| default.to_string());
        if !filter_ok(&f) {
            c.err(
                fi,
                format!("{p}.{key}"),
                format!("invalid LDAP filter {f:?} (expected one parenthesised filter such as {default})"),
            );
        }
        f
    };
    let user_object_filter = filter("user_object_filter", &r.user_object_filter, DEFAULT_USER_OBJECT_FILTER);
    let group_object_filter = filter(
        "group_object_filter",
        &r.group_object_filter,
        DEFAULT_GROUP_OBJECT_FILTER,
    );
    let mut attr = |key: &str, v: &Option<String>, default: &str| -> String {
        let a = v.clone().unwrap_or_else(|| default.to_string());
        if !attr_ok(&a) {
            c.err(fi, format!("{p}.{key}"), format!("invalid attribute name {a:?}"));
        }
        a
    };
    let group_membership_field = attr(
        "group_membership_field",
        &r.group_membership_field,
        DEFAULT_GROUP_MEMBERSHIP_FIELD,
    );
    let username_attribute = attr("username_attribute", &r.username_attribute, DEFAULT_USERNAME_ATTRIBUTE);
    let email_attribute = attr("email_attribute", &r.email_attribute, DEFAULT_EMAIL_ATTRIBUTE);
    let name_attribute = attr("name_attribute", &r.name_attribute, DEFAULT_NAME_ATTRIBUTE);
    let group_name_attribute = attr(
        "group_name_attribute",
        &r.group_name_attribute,
        DEFAULT_GROUP_NAME_ATTRIBUTE,
    );
    let timeout = c.duration(fi, format!("{p}.timeout"), &r.timeout, DEFAULT_LDAP_TIMEOUT);
    if timeout.is_zero() {
        c.err(fi, format!("{p}.timeout"), "must be longer than 0s");
    }
    Some(LdapSourceDef {
        slug: slug.to_string(),
        name: r.name.clone().unwrap_or_else(|| slug.to_string()),
        enabled: r.enabled.unwrap_or(true),
        server_uri: uri.to_string(),
        tls: tls?,
        ca_pem,
        bind_cn: r.bind_cn.trim().to_string(),
        bind_password: bind_password?.into(),
        user_base: joined(&r.additional_user_dn, r.base_dn.trim()),
        group_base: joined(&r.additional_group_dn, r.base_dn.trim()),
        user_object_filter,
        group_object_filter,
        group_membership_field,
        lookup_groups_from_user: r.lookup_groups_from_user.unwrap_or(false),
        username_attribute,
        email_attribute,
        name_attribute,
        group_name_attribute,
        timeout,
    })
}

/// A password stage's `backends` (names checked later by [`check_backend_refs`]).
pub(crate) fn backends(c: &mut Collector<'_>, fi: usize, p: &str, raw: &[String]) -> Vec<PasswordBackend> {
    if raw.is_empty() {
        return vec![PasswordBackend::Local];
    }
    let mut out = Vec::new();
    for (i, b) in raw.iter().enumerate() {
        let be = if b == LOCAL_BACKEND {
            PasswordBackend::Local
        } else {
            PasswordBackend::Ldap(b.clone())
        };
        if out.contains(&be) {
            c.err(
                fi,
                format!("{p}.backends[{i}]"),
                format!("backend {b:?} is listed twice"),
            );
        }
        out.push(be);
    }
    out
}

/// Every password stage's backends name `local` or a `type: ldap` source.
pub(crate) fn check_backend_refs(
    c: &mut Collector<'_>,
    files: &[RawFile],
    dirs: &BTreeMap<String, Arc<LdapSourceDef>>,
) {
    for (fi, f) in files.iter().enumerate() {
        for (name, raw) in &f.stages {
            let RawStage::Password { backends, .. } = raw else {
                continue;
            };
            for (i, b) in backends.iter().enumerate() {
                if b != LOCAL_BACKEND && !dirs.contains_key(b) {
                    c.err(
                        fi,
                        format!("stages.{name}.backends[{i}]"),
                        format!(
                            "unknown password backend {b:?} (expected local or a source of type ldap; known sources: {})",
                            known(dirs.keys())
                        ),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::filter_ok;

    #[test]
    fn filters() {
        for ok in [
            "(objectClass=person)",
            "(&(objectClass=person)(!(employeeType=disabled)))",
        ] {
            assert!(filter_ok(ok), "{ok}");
        }
        for bad in ["objectClass=person", "(a=b))(", "(a=b)(c=d)", "((a=b)", "", "(a=\nb)"] {
            assert!(!filter_ok(bad), "{bad}");
        }
    }
}
