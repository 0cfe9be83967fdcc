//! Checks on a request before any access decision: the request line and header sizes (414,
//! 431), framing a proxy must not guess at (request smuggling, 400), and the client address as
//! policies and limits see it behind trusted proxies.

use crate::http::respond::TooLarge;
use std::net::IpAddr;

/// Longest request target accepted (414 above).
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest sum of header names and values accepted (431 above).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The limit a request line or its headers are over, if any.
pub(super) fn size_problem(h: &pingora::http::RequestHeader) -> Option<TooLarge> {
    if h.uri.path_and_query().map_or(0, |p| p.as_str().len()) > MAX_URI_BYTES {
        return Some(TooLarge::Uri);
    }
    let total: usize = h.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if total > MAX_HEADER_BYTES {
        return Some(TooLarge::Headers);
    }
    None
}

/// Why a request with both `Content-Length` and `Transfer-Encoding` is refused.
pub(super) const BOTH_LENGTHS: &str = "Content-Length and Transfer-Encoding together are refused.";

/// Request framing a proxy must not guess at (request smuggling): `Content-Length` together
/// with `Transfer-Encoding`, several different `Content-Length` values, or a transfer coding
/// other than exactly `chunked`.
pub fn framing_problem(h: &http::HeaderMap) -> Option<&'static str> {
    let te: Vec<_> = h.get_all("transfer-encoding").iter().collect();
    let cl: Vec<_> = h.get_all("content-length").iter().collect();
    if !te.is_empty() && !cl.is_empty() {
        return Some(BOTH_LENGTHS);
    }
    if cl.len() > 1 && cl.windows(2).any(|w| w[0] != w[1]) {
        return Some("Conflicting Content-Length headers are refused.");
    }
    if te.len() > 1 || te.iter().any(|v| !v.as_bytes().eq_ignore_ascii_case(b"chunked")) {
        return Some("Only Transfer-Encoding: chunked is accepted.");
    }
    None
}

/// The request's host in canonical form ([`crate::routing::canonical_host`]): from the URI's
/// authority (HTTP/2 `:authority`, an absolute-form target) or the `Host` header. `Ok(None)`
/// when the request names none (HTTP/1.0); `Err` when a host is malformed, `Host` is repeated,
/// or the two name different hosts: the request is refused, never routed.
pub(super) fn request_host(h: &pingora::http::RequestHeader) -> Result<Option<String>, ()> {
    let mut hosts = h.headers.get_all(http::header::HOST).iter();
    let (header, repeated) = (hosts.next(), hosts.next());
    if repeated.is_some() {
        return Err(());
    }
    let header = header.map(|v| v.to_str().map_err(|_| ())).transpose()?;
    let authority = h.uri.authority().map(|a| a.as_str());
    let canon = |raw: &str| crate::routing::canonical_host(raw).ok_or(());
    match (authority, header) {
        (None, None) => Ok(None),
        (Some(a), None) => canon(a).map(Some),
        (None, Some(v)) => canon(v).map(Some),
        (Some(a), Some(v)) => {
            let (a, v) = (canon(a)?, canon(v)?);
            if a == v {
                Ok(Some(a))
            } else {
                Err(())
            }
        }
    }
}

/// Every `Cookie` line of a request as one (HTTP/2 sends a field per cookie, RFC 9113
/// §8.2.3), so the one-session-cookie rule sees them all. Borrowed when there is one line;
/// lines that are not visible ASCII are left out.
pub(super) fn joined_cookie_header(h: &http::HeaderMap) -> Option<std::borrow::Cow<'_, str>> {
    let mut lines = h.get_all(http::header::COOKIE).iter().filter_map(|v| v.to_str().ok());
    let first = lines.next()?;
    let Some(second) = lines.next() else {
        return Some(std::borrow::Cow::Borrowed(first));
    };
    let mut joined = format!("{first}; {second}");
    for l in lines {
        joined.push_str("; ");
        joined.push_str(l);
    }
    Some(std::borrow::Cow::Owned(joined))
}

/// Whether a raw HTTP/1 request header has a `Content-Length` field. pingora removes
/// `Content-Length` from the parsed header when `Transfer-Encoding` is present (RFC 9112 §6.3
/// lets chunked win), so the refusal of both together (PROTO-1) looks at the bytes received.
pub fn raw_has_content_length(raw: &[u8]) -> bool {
    raw.split(|&b| b == b'\n').skip(1).any(|line| {
        line.iter()
            .position(|&b| b == b':')
            .is_some_and(|colon| line[..colon].eq_ignore_ascii_case(b"content-length"))
    })
}

/// Whether the socket peer is one of the configured `trusted_proxies`.
pub fn is_trusted_peer(peer: IpAddr, trusted: &[ipnet::IpNet]) -> bool {
    trusted.iter().any(|n| n.contains(&peer))
}

/// The body length a request announces in `Content-Length`, when it is a number.
pub fn announced_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

/// Whether a trusted proxy in front says the client's connection is HTTPS: the first value of
/// `X-Forwarded-Proto` (the edge proxy's), when the socket peer is a trusted proxy. A TLS
/// terminating load balancer then gets `Secure` `__Host-` cookies and same-origin checks against
/// `https://`; from any other peer the header means nothing (FWD-5).
pub fn forwarded_https(headers: &http::HeaderMap, peer_trusted: bool) -> bool {
    peer_trusted
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|first| first.trim().eq_ignore_ascii_case("https"))
}

/// The client address: the socket peer, unless the peer is a trusted proxy; then the
/// right-most address of `X-Forwarded-For` that is not itself a trusted proxy. Anything that
/// does not parse stops the walk at the last trusted hop, so a forged or garbled header can
/// never name an address the trusted chain did not add.
pub fn effective_client_ip(peer: Option<IpAddr>, xff: &[&str], trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| is_trusted_peer(*ip, trusted);
    let mut current = peer?;
    if !is_trusted(&current) {
        return Some(current);
    }
    let hops = xff.iter().flat_map(|h| h.split(',')).map(str::trim).collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                current = ip;
                if !is_trusted(&ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::effective_client_ip;
    use std::net::IpAddr;

    #[test]
    fn forwarded_proto_counts_only_from_a_trusted_peer() {
        use super::forwarded_https;
        let h = |v: &str| {
            let mut m = http::HeaderMap::new();
            m.insert("x-forwarded-proto", v.parse().unwrap());
            m
        };
        assert!(forwarded_https(&h("https"), true));
        assert!(forwarded_https(&h(" HTTPS , http"), true));
        assert!(!forwarded_https(&h("https"), false));
        assert!(!forwarded_https(&h("http, https"), true));
        assert!(!forwarded_https(&h("httpsx"), true));
        assert!(!forwarded_https(&http::HeaderMap::new(), true));
    }

    #[test]
    fn ambiguous_framing_is_named() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = http::HeaderMap::new();
            for (k, v) in pairs {
                m.append(*k, http::HeaderValue::from_static(v));
            }
            m
        };
        use super::framing_problem as f;
        assert!(super::raw_has_content_length(
            b"POST / HTTP/1.1\r\nHost: a\r\ncOnTeNt-LeNgTh: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert!(!super::raw_has_content_length(
            b"POST /content-length: HTTP/1.1\r\nX-A: content-length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert!(f(&h(&[("content-length", "5"), ("transfer-encoding", "chunked")])).is_some());
        assert!(f(&h(&[("content-length", "5"), ("content-length", "6")])).is_some());
        assert!(f(&h(&[("transfer-encoding", "xchunked")])).is_some());
        assert!(f(&h(&[
            ("transfer-encoding", "chunked"),
            ("transfer-encoding", "chunked")
        ]))
        .is_some());
        assert!(f(&h(&[("content-length", "5"), ("content-length", "5")])).is_none());
        assert!(f(&h(&[("transfer-encoding", "Chunked")])).is_none());
        assert!(f(&h(&[])).is_none());
    }

    #[test]
    fn client_address_behind_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["127.0.0.1/32".parse().unwrap(), "10.1.0.0/16".parse().unwrap()];
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let cases: [(&str, &[&str], &str); 6] = [
            // Untrusted peer: its own address, whatever it claims.
            ("203.0.113.9", &["1.2.3.4"], "203.0.113.9"),
            // Trusted peer: the right-most untrusted hop.
            ("127.0.0.1", &["1.2.3.4, 198.51.100.7"], "198.51.100.7"),
            ("127.0.0.1", &["1.2.3.4", "198.51.100.7, 10.1.2.3"], "198.51.100.7"),
            // Garbage stops the walk at the last trusted hop.
            ("127.0.0.1", &["garbage"], "127.0.0.1"),
            ("127.0.0.1", &["1.2.3.4, junk, 10.1.0.5"], "10.1.0.5"),
            // No header: the peer.
            ("127.0.0.1", &[], "127.0.0.1"),
        ];
        for (peer, forwarded, want) in cases {
            assert_eq!(
                effective_client_ip(ip(peer), forwarded, &trusted),
                ip(want),
                "{peer} {forwarded:?}"
            );
        }
    }
}
