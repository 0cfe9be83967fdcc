//! Validation of single sign-on across hosts (docs/decisions/0013): `session.cookie_domain`
//! and `portal.host`, checked against the apps' hosts.
//!
//! A cookie domain must be a registrable name that is a parent of the apps that use it, never a
//! public suffix (`com`, `co.uk`, `github.io`: browsers refuse such cookies, and the session
//! would be offered to every site under it); the public suffix list comes from the `psl` crate.
//! With a cookie domain, an app host outside it can only sign in through the portal, so such a
//! host without `portal` is an error; the portal itself must lie inside the cookie domain, or a
//! login on an app under the domain would not be seen by the portal (two sign-ons, two logouts).

use super::Collector;
use crate::config::model::*;
use crate::config::raw::*;
use psl::Psl;
use std::collections::BTreeSet;

/// A DNS name in canonical form (lowercase, no trailing dot), or why it is not one.
fn dns_name(raw: &str) -> Result<String, &'static str> {
    let h = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    if h.starts_with('.') {
        return Err("write the domain without a leading dot");
    }
    if h.is_empty() || h.len() > 253 {
        return Err("not a DNS name");
    }
    let labels_ok = h.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if !labels_ok {
        return Err("not a DNS name (labels of letters, digits and -)");
    }
    if h.rsplit('.')
        .next()
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("an IP address cannot be a cookie domain or portal");
    }
    Ok(h)
}

/// `session.cookie_domain`: a registrable DNS name, not a public suffix.
pub(super) fn cookie_domain(c: &mut Collector<'_>, raw: &str) -> Option<String> {
    let d = match dns_name(raw) {
        Ok(d) => d,
        Err(why) => {
            c.err(
                0,
                "session.cookie_domain",
                format!("invalid cookie domain {raw:?}: {why}"),
            );
            return None;
        }
    };
    // `domain` is the registrable part (one label above the public suffix); a name that has
    // none is a public suffix itself (`com`, `co.uk`) or a bare top-level name (`test`).
    if !d.contains('.') || psl::List.domain(d.as_bytes()).is_none() {
        c.err(
            0,
            "session.cookie_domain",
            format!(
                "{d:?} is a public suffix: browsers refuse a cookie for it, and it would share the session \
                 with every site under it (expected a domain you own, e.g. example.com)"
            ),
        );
        return None;
    }
    Some(d)
}

/// Checks the cookie domain and the portal against the apps; returns the portal settings.
pub(super) fn check(
    c: &mut Collector<'_>,
    main: &RawFile,
    session: &SessionSettings,
    apps: &[App],
) -> Option<PortalSettings> {
    let domain = session.cookie_domain.as_deref();
    let portal = main.portal.as_ref().and_then(|p| portal_host(c, &p.host));
    if domain.is_none() && main.portal.is_none() {
        return None;
    }
    let all_hosts: Vec<&String> = apps.iter().flat_map(|a| a.hosts.iter()).collect();
    for (i, a) in apps.iter().enumerate() {
        if a.hosts.is_empty() {
            c.err(
                0,
                format!("apps[{i}].hosts"),
                format!(
                    "app {:?} answers on any host, which cannot take part in single sign-on \
                     (session.cookie_domain, portal): list its hosts",
                    a.name
                ),
            );
        }
    }
    if let Some(d) = domain {
        if !all_hosts.is_empty() && !all_hosts.iter().any(|h| host_within(h, d)) {
            c.err(
                0,
                "session.cookie_domain",
                format!(
                    "{d:?} is not a parent of any app's host (hosts: {}); a cookie for it would reach none of them",
                    all_hosts.iter().map(|h| h.as_str()).collect::<Vec<_>>().join(", ")
                ),
            );
        }
        if main.portal.is_none() {
            for (i, a) in apps.iter().enumerate() {
                for (j, h) in a.hosts.iter().enumerate() {
                    if !host_within(h, d) {
                        c.err(
                            0,
                            format!("apps[{i}].hosts[{j}]"),
                            format!(
                                "host {h:?} is outside session.cookie_domain {d:?}, so the session cookie never \
                                 reaches it: set portal.host (a host under {d}) for apps on other domains, or \
                                 move the app under {d}"
                            ),
                        );
                    }
                }
            }
        }
        if let Some((host, _)) = &portal {
            if !host_within(host, d) {
                c.err(
                    0,
                    "portal.host",
                    format!(
                        "the portal {host:?} is outside session.cookie_domain {d:?}: a login on an app under {d} \
                         would not be seen by the portal (expected a host under {d}, e.g. auth.{d})"
                    ),
                );
            }
        }
    }
    let (host, port) = portal?;
    let app_hosts: BTreeSet<String> = all_hosts
        .into_iter()
        .filter(|h| **h != host && !domain.is_some_and(|d| host_within(h, d)))
        .cloned()
        .collect();
    Some(PortalSettings { host, port, app_hosts })
}

/// `portal.host`: a DNS name, optionally with `:port`.
fn portal_host(c: &mut Collector<'_>, raw: &str) -> Option<(String, Option<u16>)> {
    let (name, port) = match raw.rsplit_once(':') {
        Some((n, p)) => match p.parse::<u16>() {
            Ok(port) if port > 0 && !p.starts_with('0') => (n, Some(port)),
            _ => {
                c.err(
                    0,
                    "portal.host",
                    format!("invalid port in {raw:?} (expected host or host:port)"),
                );
                return None;
            }
        },
        None => (raw, None),
    };
    match dns_name(name) {
        Ok(h) => Some((h, port)),
        Err(why) => {
            c.err(0, "portal.host", format!("invalid portal host {raw:?}: {why}"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(dns_name("Example.COM.").as_deref(), Ok("example.com"));
        for bad in [".example.com", "", "a..b", "-a.b", "1.2.3.4", "a_b.c", "a b.c"] {
            assert!(dns_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn public_suffixes_have_no_registrable_domain() {
        for suffix in ["com", "co.uk", "github.io", "test"] {
            assert!(psl::List.domain(suffix.as_bytes()).is_none(), "{suffix}");
        }
        for ok in ["example.com", "example.co.uk", "example.test"] {
            assert!(psl::List.domain(ok.as_bytes()).is_some(), "{ok}");
        }
    }
}
