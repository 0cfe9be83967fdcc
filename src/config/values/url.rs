//! `http(s)://host[:port]/path` addresses of outbound services (HIBP, captcha), parsed once at
//! load; the client that calls them is `outbound::http`.

/// A parsed `http(s)://host[:port]/path` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

// === impl HttpUrl ===

impl HttpUrl {
    /// Parses `http(s)://host[:port][/path]` (an IPv6 host in brackets); the path defaults to `/`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("invalid URL {url:?} (expected http:// or https://)"));
        };
        let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let path = match path.chars().next() {
            None => "/".to_string(),
            Some('?') => format!("/{path}"),
            Some(_) => path.to_string(),
        };
        if authority.contains('@') {
            return Err(format!("invalid URL {url:?} (user info is not supported)"));
        }
        let bad_port = || format!("invalid port in {url:?}");
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("invalid URL {url:?} (unclosed '[')"))?;
            let port = match after {
                "" => default_port,
                p => p.strip_prefix(':').and_then(|p| p.parse().ok()).ok_or_else(bad_port)?,
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad_port())?),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() {
            return Err(format!("invalid URL {url:?} (no host)"));
        }
        Ok(Self { tls, host, port, path })
    }

    /// Whether the address is `https`.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Host name or address (an IPv6 address without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Path (and query), starting with `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The `Host` header value: the host, bracketed when IPv6, with the port when not the default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl std::fmt::Display for HttpUrl {
    /// The address written out again: `scheme://host[:port]/path`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.host_header(), self.path)
    }
}

impl std::str::FromStr for HttpUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::HttpUrl;

    #[test]
    fn parses_urls() {
        let u = HttpUrl::parse("https://api.pwnedpasswords.com/range/").unwrap();
        assert_eq!(
            (u.is_tls(), u.host(), u.port(), u.path()),
            (true, "api.pwnedpasswords.com", 443, "/range/")
        );
        assert_eq!(u.host_header(), "api.pwnedpasswords.com");
        let u = HttpUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            (u.is_tls(), u.host(), u.port(), u.path()),
            (false, "127.0.0.1", 8080, "/")
        );
        assert_eq!(u.host_header(), "127.0.0.1:8080");
        let u = HttpUrl::parse("http://[::1]:99/a?b=c#frag").unwrap();
        assert_eq!((u.host(), u.port(), u.path()), ("::1", 99, "/a?b=c"));
        assert_eq!(u.host_header(), "[::1]:99");
        let u = HttpUrl::parse("https://[::1]?x").unwrap();
        assert_eq!((u.host(), u.port(), u.path()), ("::1", 443, "/?x"));
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in [
            "ftp://x/",
            "x",
            "http:///p",
            "http://h:99999/",
            "http://h:x/",
            "http://u@h/",
            "http://[::1/",
            "http://[::1]x/",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            HttpUrl::parse("ftp://x/").unwrap_err(),
            "invalid URL \"ftp://x/\" (expected http:// or https://)"
        );
    }
}
