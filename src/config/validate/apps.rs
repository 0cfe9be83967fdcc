//! Validation of `apps[]`: names, hosts, prefixes, upstreams (resolved at load), identity
//! header sets, skip-auth regexes, access policies and timeouts.

use super::{known, Collector};
use crate::config::model::*;
use crate::config::raw::*;
use std::collections::BTreeMap;
use std::net::ToSocketAddrs;

pub(crate) fn app(
    c: &mut Collector<'_>,
    i: usize,
    raw: &RawApp,
    flows: &BTreeMap<String, Flow>,
    defaults: &BTreeMap<Designation, String>,
    policies: &BTreeMap<String, PolicyDef>,
) -> Option<App> {
    let p = format!("apps[{i}]");
    if raw.name.is_empty()
        || raw.name.len() > 64
        || !raw
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        c.err(
            0,
            format!("{p}.name"),
            format!("invalid app name {:?} (expected 1-64 of A-Z a-z 0-9 - _)", raw.name),
        );
    }
    let mut hosts = Vec::new();
    for (h, host) in raw.hosts.iter().enumerate() {
        // Hosts are matched in canonical form (routing::canonical_host): no trailing dot.
        let lower = host.to_ascii_lowercase();
        let lower = lower.strip_suffix('.').unwrap_or(&lower).to_string();
        let ok = !lower.is_empty()
            && lower.len() <= 253
            && lower
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if ok {
            hosts.push(lower);
        } else {
            c.err(
                0,
                format!("{p}.hosts[{h}]"),
                format!("invalid host {host:?} (expected a DNS name without port, e.g. wiki.example.test)"),
            );
        }
    }
    let path_prefix = raw
        .path_prefix
        .clone()
        .unwrap_or_else(|| DEFAULT_PATH_PREFIX.to_string());
    if !path_prefix.starts_with('/')
        || path_prefix.contains(['?', '#', '%', ';', '\\'])
        || path_prefix.starts_with(RESERVED_PREFIX)
    {
        c.err(
            0,
            format!("{p}.path_prefix"),
            format!("invalid path prefix {path_prefix:?} (expected a plain absolute path outside {RESERVED_PREFIX})"),
        );
    }
    let upstream = upstream(c, &format!("{p}.upstream"), &raw.upstream);
    let headers = super::headers::headers(c, &format!("{p}.headers"), raw.headers.as_ref());
    let mut skip_auth = Vec::new();
    for (k, re) in raw.skip_auth.iter().enumerate() {
        if let Some(r) = super::policies::regex(c, 0, format!("{p}.skip_auth[{k}]"), re) {
            skip_auth.push(r);
        }
    }
    let pols = super::flows::policy_bindings(c, 0, &format!("{p}.policies"), &raw.policies, policies);
    let policy_engine_mode = c.choice(
        0,
        format!("{p}.policy_engine_mode"),
        &raw.policy_engine_mode,
        EngineMode::Any,
        EngineMode::ALL,
    );
    let authentication_flow = match &raw.authentication_flow {
        Some(slug) => {
            match flows.get(slug) {
                Some(f) if f.designation == Designation::Authentication => {}
                Some(f) => c.err(
                    0,
                    format!("{p}.authentication_flow"),
                    format!(
                        "flow {slug:?} has designation {}, not authentication",
                        f.designation.as_str()
                    ),
                ),
                None => c.err(
                    0,
                    format!("{p}.authentication_flow"),
                    format!("unknown flow {slug:?} (known: {})", known(flows.keys())),
                ),
            }
            Some(slug.clone())
        }
        None => {
            if !flows.values().any(|f| f.designation == Designation::Authentication) {
                c.err(0, format!("{p}.authentication_flow"), "no flow with designation authentication is configured (include flows/default-authentication.yaml or name one here)");
            }
            defaults.get(&Designation::Authentication).cloned()
        }
    };
    let connect_timeout = c.duration(
        0,
        format!("{p}.connect_timeout"),
        &raw.connect_timeout,
        DEFAULT_CONNECT_TIMEOUT,
    );
    let read_timeout = c.duration(0, format!("{p}.read_timeout"), &raw.read_timeout, DEFAULT_READ_TIMEOUT);
    let jwt = match (&raw.jwt, &headers) {
        (Some(j), Some(h)) => super::jwt::jwt(c, &format!("{p}.jwt"), j, h).map(std::sync::Arc::new),
        _ => None,
    };
    let api_clients = super::jwt::api_clients(c, &p, raw);
    Some(App {
        name: raw.name.clone(),
        hosts,
        path_prefix,
        upstream: upstream?,
        headers: headers?,
        skip_auth,
        policies: pols,
        policy_engine_mode,
        authentication_flow,
        requires_flow: raw.authentication_flow.clone(),
        connect_timeout,
        read_timeout,
        max_body_bytes: raw.max_body_bytes,
        api_clients,
        jwt,
    })
}

fn upstream(c: &mut Collector<'_>, path: &str, url: &str) -> Option<Upstream> {
    let bad = |c: &mut Collector<'_>, why: &str| {
        c.err(
            0,
            path,
            format!("invalid upstream {url:?}: {why} (expected http://HOST:PORT or https://HOST:PORT)"),
        );
        None
    };
    let (tls, rest, default_port) = if let Some(r) = url.strip_prefix("http://") {
        (false, r, 80)
    } else if let Some(r) = url.strip_prefix("https://") {
        (true, r, 443)
    } else {
        return bad(c, "unsupported scheme");
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
        return bad(c, "only scheme, host and port are allowed");
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => match p.parse::<u16>() {
            Ok(p) => (h.trim_start_matches('[').trim_end_matches(']').to_string(), p),
            Err(_) => return bad(c, "bad port"),
        },
        _ => (
            authority.trim_start_matches('[').trim_end_matches(']').to_string(),
            default_port,
        ),
    };
    let addr = match (host.as_str(), port).to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(a)) => a,
        _ => return bad(c, "host does not resolve"),
    };
    Some(Upstream {
        url: url.to_string(),
        addr,
        tls,
        host,
    })
}
