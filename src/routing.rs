//! App routing: the canonical Host (exact, port ignored), then the longest path prefix (ASCII
//! case-insensitive: IIS and other case-insensitive apps read `/INTERNAL/x` as `/internal/x`, so
//! it must reach the app bound to `/internal` and its policies). Built once from config; pure
//! lookups.
//!
//! Hosts are canonicalised before routing ([`canonical_host`]): a host that some server would
//! read differently (`admin.test.` vs `admin.test`, `admin.test:abc`, `0x7f.1`) must not miss a
//! host-bound app and fall through to a catch-all with the same upstream.

use crate::config::App;
use std::sync::Arc;

/// Finds the app for a request.
#[derive(Debug, Clone)]
pub struct Router {
    apps: Vec<Arc<App>>,
}

impl Router {
    /// Whether some app serves every host (an app without `hosts`).
    pub fn serves_any_host(&self) -> bool {
        self.apps.iter().any(|a| a.hosts.is_empty())
    }

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

    /// The app for a canonical `host` (from [`canonical_host`]; may carry a port) and a
    /// canonical `path`.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<&Arc<App>> {
        let host = host.map(strip_port);
        let by_host = |a: &&Arc<App>| a.hosts.is_empty() || host.is_some_and(|h| a.hosts.iter().any(|x| x == h));
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

/// The canonical form of a `Host` header, `:authority` or absolute-form authority:
/// lowercase, one trailing dot removed, the port (if any) a number in 1-65535 without leading
/// zeros, the host a DNS name (labels of letters, digits, `-` and `_`, 1-63 bytes each, 253 in
/// all), a dotted-quad IPv4 address or a bracketed IPv6 address. `None` for anything else
/// (the caller answers 400): an empty host, userinfo, a non-numeric or out-of-range port,
/// percent-encoding, two trailing dots, an all-numeric name that is not a dotted quad (`127.1`,
/// `0x7f.0.0.1`: resolvers read those as addresses, differently).
pub fn canonical_host(raw: &str) -> Option<String> {
    // Most requests name their host canonically already: one copy, no parsing.
    if already_canonical(raw) {
        return Some(raw.to_owned());
    }
    canonicalise(raw)
}

/// Whether [`canonicalise`] would return `raw` unchanged, judged without allocating: a
/// lowercase DNS name or a dotted quad without leading zeros, and a port without them.
/// Anything else (uppercase, IPv6, a trailing dot, an odd number) takes the full path.
fn already_canonical(raw: &str) -> bool {
    if raw.is_empty() || raw.len() > 253 + 6 {
        return false;
    }
    let (h, port) = match raw.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (raw, None),
    };
    let plain_number = |d: &str, most: usize| {
        !d.is_empty() && d.len() <= most && d.bytes().all(|b| b.is_ascii_digit()) && (d == "0" || !d.starts_with('0'))
    };
    if let Some(p) = port {
        if !plain_number(p, 5) || p == "0" || p.parse::<u16>().is_err() {
            return false;
        }
    }
    if h.is_empty() || h.len() > 253 {
        return false;
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    };
    if !h.split('.').all(label_ok) {
        return false;
    }
    let last = h.rsplit('.').next().unwrap_or(h);
    if last.bytes().all(|b| b.is_ascii_digit()) {
        let quad: Vec<&str> = h.split('.').collect();
        return quad.len() == 4 && quad.iter().all(|o| plain_number(o, 3) && o.parse::<u8>().is_ok());
    }
    // `0x…` as the last label is a number to resolvers: the full path judges it.
    !last.starts_with("0x")
}

/// [`canonical_host`] in full.
fn canonicalise(raw: &str) -> Option<String> {
    if raw.is_empty() || raw.len() > 260 {
        return None;
    }
    let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        let ip: std::net::Ipv6Addr = inner.parse().ok()?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{ip}]"), port)
    } else {
        let (h, port) = match raw.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (raw, None),
        };
        (canonical_name(h)?, port)
    };
    match port {
        None => Some(host),
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: u16 = p.parse().ok()?;
            if n == 0 {
                return None;
            }
            Some(format!("{host}:{n}"))
        }
    }
}

fn canonical_name(h: &str) -> Option<String> {
    let h = h.strip_suffix('.').unwrap_or(h);
    if h.is_empty() || h.len() > 253 {
        return None;
    }
    let labels_ok = h.split('.').all(|l| {
        !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if !labels_ok {
        return None;
    }
    let last = h.rsplit('.').next().unwrap_or(h);
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || (last.len() > 2 && last[..2].eq_ignore_ascii_case("0x") && last[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    if numeric {
        // Only the dotted quad: `127.1`, `2130706433` and `0x7f.1` mean an address to a resolver.
        let ip: std::net::Ipv4Addr = h.parse().ok()?;
        return Some(ip.to_string());
    }
    Some(h.to_ascii_lowercase())
}

/// `host[:port]` without the port (and an IPv6 literal without its brackets).
pub(crate) fn strip_port(h: &str) -> &str {
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
    let p = prefix.trim_end_matches('/').as_bytes();
    let path = path.as_bytes();
    path.len() >= p.len() && path[..p.len()].eq_ignore_ascii_case(p) && (path.len() == p.len() || path[p.len()] == b'/')
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
        assert!(prefix_matches("/internal", "/INTERNAL/x"));
        assert!(prefix_matches("/Internal/", "/internal"));
        assert!(!prefix_matches("/internal", "/INTERNALS"));
        assert_eq!(strip_port("Example.test:8080"), "Example.test");
        assert_eq!(strip_port("[::1]:80"), "::1");
    }

    #[test]
    fn hosts_are_canonical_or_refused() {
        for (raw, canonical) in [
            ("admin.test", "admin.test"),
            ("Admin.Test.", "admin.test"),
            ("admin.test.:8080", "admin.test:8080"),
            ("admin.test:08080", "admin.test:8080"),
            ("127.0.0.1:80", "127.0.0.1:80"),
            ("[::1]:8443", "[::1]:8443"),
            ("[0:0::1]", "[::1]"),
            ("my_svc", "my_svc"),
            ("localhost", "localhost"),
        ] {
            assert_eq!(canonical_host(raw).as_deref(), Some(canonical), "{raw}");
        }
        for raw in [
            "",
            "admin.test:abc",
            "admin.test:",
            "admin.test:0",
            "admin.test:65536",
            "admin.test:80:80",
            "admin.test..",
            ".admin.test",
            "a..b",
            "user@admin.test",
            "admin%2etest",
            "admin.test/x",
            "admin test",
            "127.1",
            "0x7f.0.0.1",
            "2130706433",
            "1.2.3.256",
            "[::1",
            "[::1]x",
            "[fe80::1%25eth0]",
            "::1",
            "ädmin.test",
        ] {
            assert_eq!(canonical_host(raw), None, "{raw}");
        }
    }

    #[test]
    fn the_shortcut_agrees_with_the_full_path() {
        let long = format!("{}.test", "a".repeat(63));
        for raw in [
            "admin.test",
            "admin.test:8080",
            "admin.test:08080",
            "admin.test:0",
            "admin.test:65535",
            "admin.test:65536",
            "admin.test:99999",
            "Admin.test",
            "admin.test.",
            "127.0.0.1",
            "127.0.0.1:80",
            "127.0.0.01",
            "0.0.0.0",
            "255.255.255.255",
            "256.0.0.1",
            "1.2.3",
            "1.2.3.4.5",
            "127.1",
            "2130706433",
            "a.0x",
            "a.0x7f",
            "0x7f.0.0.1",
            "123.example",
            "my_svc",
            "a-.b",
            "[::1]:80",
            "a..b",
            ".a",
            "",
            ":80",
            "a:",
            long.as_str(),
        ] {
            assert_eq!(canonical_host(raw), canonicalise(raw), "{raw:?}");
            if already_canonical(raw) {
                assert_eq!(canonicalise(raw).as_deref(), Some(raw), "{raw:?}");
            }
        }
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
