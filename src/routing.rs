//! App routing: Host (exact, lowercase, port ignored), then the longest path prefix. Built once
//! from config; pure lookups.

use crate::config::App;
use std::sync::Arc;

/// Finds the app for a request.
#[derive(Debug, Clone)]
pub struct Router {
    apps: Vec<Arc<App>>,
}

impl Router {
    /// Builds the router; apps are tried most specific first.
    pub fn new(apps: &[App]) -> Self {
        let mut apps: Vec<Arc<App>> = apps.iter().cloned().map(Arc::new).collect();
        // Apps with hosts before catch-alls, then longer prefixes first.
        apps.sort_by(|a, b| {
            b.hosts
                .is_empty()
                .cmp(&a.hosts.is_empty())
                .reverse()
                .then(b.path_prefix.len().cmp(&a.path_prefix.len()))
        });
        Self { apps }
    }

    /// The app for `host` (may carry a port) and a normalised `path`.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<&Arc<App>> {
        let host = host.map(strip_port).map(|h| h.to_ascii_lowercase());
        let by_host =
            |a: &&Arc<App>| a.hosts.is_empty() || host.as_deref().is_some_and(|h| a.hosts.iter().any(|x| x == h));
        self.apps
            .iter()
            .filter(by_host)
            .find(|a| prefix_matches(&a.path_prefix, path))
    }
}

/// Whether a Host header may be used to build links mailed to users: an app's configured
/// host, or a loopback name or address. Anything else could be an attacker's own server.
pub fn trusted_link_host(router: &Router, host: &str) -> bool {
    let bare = strip_port(host).to_ascii_lowercase();
    let well_formed = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !well_formed {
        return false;
    }
    if bare == "localhost" || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
        return true;
    }
    router.apps.iter().any(|a| a.hosts.contains(&bare))
}

fn strip_port(h: &str) -> &str {
    if h.starts_with('[') {
        return h.split_once(']').map(|(a, _)| &a[1..]).unwrap_or(h);
    }
    match h.rsplit_once(':') {
        Some((a, p)) if p.bytes().all(|b| b.is_ascii_digit()) => a,
        _ => h,
    }
}

/// `/app` matches `/app`, `/app/` and `/app/x` but not `/apple`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    let p = prefix.trim_end_matches('/');
    path == p || path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert!(prefix_matches("/", "/x"));
        assert!(prefix_matches("/app", "/app"));
        assert!(prefix_matches("/app/", "/app/x"));
        assert!(!prefix_matches("/app", "/apple"));
        assert_eq!(strip_port("Example.test:8080"), "Example.test");
        assert_eq!(strip_port("[::1]:80"), "::1");
    }

    #[test]
    fn link_hosts() {
        let r = Router::new(&[]);
        assert!(trusted_link_host(&r, "127.0.0.1:8080"));
        assert!(trusted_link_host(&r, "localhost"));
        assert!(trusted_link_host(&r, "[::1]:80"));
        assert!(!trusted_link_host(&r, "evil.example"));
        assert!(!trusted_link_host(&r, "127.0.0.1.evil.example"));
        assert!(!trusted_link_host(&r, "127.0.0.1/x"));
    }
}
