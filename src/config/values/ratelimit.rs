//! Rate-limit settings (`rate_limits:`): the `N/duration` value type, the configured limits and
//! their defaults. The limiters that enforce them live in `flow::ratelimit`.

use std::time::Duration;

/// `N` attempts per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Attempts allowed in one burst.
    pub count: u32,
    /// The period in which `count` attempts refill.
    pub per: Duration,
}

impl Limit {
    /// Parses `N/duration`, e.g. `10/1m`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let err = || format!("invalid rate {s:?} (expected attempts/duration, e.g. 10/1m)");
        let (n, d) = s.split_once('/').ok_or_else(err)?;
        let count: u32 = n.trim().parse().map_err(|_| err())?;
        let per = crate::config::duration::parse_duration(d.trim()).map_err(|_| err())?;
        if count == 0 || per.is_zero() {
            return Err(format!("invalid rate {s:?} (attempts and duration must be above zero)"));
        }
        Ok(Self { count, per })
    }
}

/// Configured limits (`rate_limits:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Password checks per client IP.
    pub password_per_ip: Option<Limit>,
    /// Password checks per username.
    pub password_per_username: Option<Limit>,
    /// Code checks per client IP.
    pub code_per_ip: Option<Limit>,
    /// Code checks per username.
    pub code_per_username: Option<Limit>,
    /// Mails (flow links) per recipient address.
    pub mail_per_address: Option<Limit>,
    /// Mails (flow links) per client IP.
    pub mail_per_ip: Option<Limit>,
    /// Users created by enrollment per client IP.
    pub signup_per_ip: Option<Limit>,
}

/// Default `rate_limits.mail_per_address`: 5 per hour.
pub const DEFAULT_MAIL_PER_ADDRESS: Limit = Limit {
    count: 5,
    per: Duration::from_secs(3600),
};
/// Default `rate_limits.mail_per_ip`: 20 per hour.
pub const DEFAULT_MAIL_PER_IP: Limit = Limit {
    count: 20,
    per: Duration::from_secs(3600),
};
/// Default `rate_limits.signup_per_ip`: 20 per hour.
pub const DEFAULT_SIGNUP_PER_IP: Limit = Limit {
    count: 20,
    per: Duration::from_secs(3600),
};

impl Default for RateLimitSettings {
    fn default() -> Self {
        let m = Duration::from_secs(60);
        Self {
            password_per_ip: Some(Limit { count: 30, per: m }),
            password_per_username: Some(Limit { count: 10, per: m }),
            code_per_ip: Some(Limit { count: 30, per: m }),
            code_per_username: Some(Limit { count: 10, per: m }),
            mail_per_address: Some(DEFAULT_MAIL_PER_ADDRESS),
            mail_per_ip: Some(DEFAULT_MAIL_PER_IP),
            signup_per_ip: Some(DEFAULT_SIGNUP_PER_IP),
        }
    }
}
