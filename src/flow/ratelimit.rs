//! Brute-force limits on password and code checks, and flood limits on mail and sign-ups
//! (FLOOD-1): GCRA (generic cell rate algorithm) per client IP and per username or recipient
//! address, on the injected clock.
//!
//! A limit `N/period` lets N attempts through at once and then one every `period / N`. Each key
//! keeps one number, its theoretical arrival time (TAT); an attempt at `t` is refused while
//! `TAT - t` exceeds the burst allowance, and the refusal says how long to wait. Keys live in a
//! bounded moka cache and are forgotten after a period without attempts, so an attacker who
//! exhausts a username's limit locks the real user out for at most one period.
//!
//! With `session.store: redis` the TATs live in Redis instead ([`RedisCounters`]), shared by
//! every replica, each check one atomic script; when Redis cannot be reached the attempt is
//! refused ([`Limited::Unavailable`]), never let through unlimited.

pub use crate::config::values::ratelimit::{
    Limit, RateLimitSettings, DEFAULT_MAIL_PER_ADDRESS, DEFAULT_MAIL_PER_IP, DEFAULT_SIGNUP_PER_IP,
};
use crate::session::counters::RedisCounters;
use crate::session::SharedClock;
use std::net::IpAddr;
use std::time::Duration;

/// Most keys tracked per limiter.
const MAX_KEYS: u64 = 1_000_000;

/// Why an attempt is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// Too many attempts: wait this long.
    Wait(Duration),
    /// The shared store holding the counters cannot be reached (fail closed).
    Unavailable,
}

/// Where a limiter keeps its TATs.
enum Tats {
    /// In this process.
    Local(moka::sync::Cache<String, u64>),
    /// In Redis, under the limiter's name.
    Shared(RedisCounters, &'static str),
}

/// One GCRA limiter over string keys.
pub struct Gcra {
    tat: Tats,
    interval_ms: u64,
    tolerance_ms: u64,
    period_ms: u64,
    clock: SharedClock,
}

impl Gcra {
    /// A limiter for `limit` on `clock`, in this process.
    pub fn new(limit: Limit, clock: SharedClock) -> Self {
        Self::build(limit, clock, None)
    }

    /// A limiter for `limit` on `clock`, in `shared` under `name` when given.
    fn build(limit: Limit, clock: SharedClock, shared: Option<(RedisCounters, &'static str)>) -> Self {
        let period_ms = (limit.per.as_millis() as u64).max(1);
        let interval_ms = (period_ms / u64::from(limit.count)).max(1);
        let tat = match shared {
            Some((c, name)) => Tats::Shared(c, name),
            None => Tats::Local(
                moka::sync::Cache::builder()
                    .max_capacity(MAX_KEYS)
                    .time_to_idle(limit.per + Duration::from_secs(1))
                    .build(),
            ),
        };
        Self {
            tat,
            interval_ms,
            tolerance_ms: interval_ms * u64::from(limit.count - 1),
            period_ms,
            clock,
        }
    }

    /// Takes one attempt for `key`, or says how long to wait (or that the shared store is down).
    pub async fn check(&self, key: &str) -> Result<(), Limited> {
        let now = self.clock.now_ms();
        let cache = match &self.tat {
            Tats::Local(c) => c,
            Tats::Shared(c, name) => {
                return match c
                    .gcra(name, key, now, self.interval_ms, self.tolerance_ms, self.period_ms)
                    .await
                {
                    Ok(None) => Ok(()),
                    Ok(Some(wait)) => Err(Limited::Wait(wait)),
                    Err(_) => Err(Limited::Unavailable),
                };
            }
        };
        let mut wait = None;
        cache.entry(key.to_string()).and_compute_with(|current| {
            let tat = current.map(|e| e.into_value()).unwrap_or(now).max(now);
            if tat - now > self.tolerance_ms {
                wait = Some(Duration::from_millis(tat - now - self.tolerance_ms));
                moka::ops::compute::Op::Nop
            } else {
                moka::ops::compute::Op::Put(tat + self.interval_ms)
            }
        });
        match wait {
            Some(w) => Err(Limited::Wait(w)),
            None => Ok(()),
        }
    }
}

/// What is being guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guess {
    /// A password.
    Password,
    /// A TOTP or recovery code.
    Code,
}

/// The limiters.
pub struct RateLimits {
    password_ip: Option<Gcra>,
    password_user: Option<Gcra>,
    code_ip: Option<Gcra>,
    code_user: Option<Gcra>,
    mail_address: Option<Gcra>,
    mail_ip: Option<Gcra>,
    signup_ip: Option<Gcra>,
}

/// Takes one attempt from both limiters (when set and keyed); an unreachable store wins, then
/// the longer wait.
async fn both(a: Option<(&Gcra, &str)>, b: Option<(&Gcra, &str)>) -> Result<(), Limited> {
    let a = match a {
        Some((l, k)) => l.check(k).await,
        None => Ok(()),
    };
    let b = match b {
        Some((l, k)) => l.check(k).await,
        None => Ok(()),
    };
    match (a, b) {
        (Err(Limited::Unavailable), _) | (_, Err(Limited::Unavailable)) => Err(Limited::Unavailable),
        (Err(Limited::Wait(x)), Err(Limited::Wait(y))) => Err(Limited::Wait(x.max(y))),
        (Err(x), _) | (_, Err(x)) => Err(x),
        _ => Ok(()),
    }
}

impl RateLimits {
    /// Limiters for `s` on `clock`, in this process.
    pub fn new(s: &RateLimitSettings, clock: &SharedClock) -> Self {
        Self::with_store(s, clock, None)
    }

    /// Limiters for `s` on `clock`, in `shared` (Redis, every replica) when given.
    pub fn with_store(s: &RateLimitSettings, clock: &SharedClock, shared: Option<&RedisCounters>) -> Self {
        let make = |l: Option<Limit>, name: &'static str| {
            l.map(|l| Gcra::build(l, clock.clone(), shared.map(|c| (c.clone(), name))))
        };
        Self {
            password_ip: make(s.password_per_ip, "password_ip"),
            password_user: make(s.password_per_username, "password_user"),
            code_ip: make(s.code_per_ip, "code_ip"),
            code_user: make(s.code_per_username, "code_user"),
            mail_address: make(s.mail_per_address, "mail_address"),
            mail_ip: make(s.mail_per_ip, "mail_ip"),
            signup_ip: make(s.signup_per_ip, "signup_ip"),
        }
    }

    /// Takes one mail for the recipient `address` (lowercased) and the client, or says how long
    /// to wait. Callers check before they know whether the address belongs to anyone, so the
    /// answer never depends on it.
    pub async fn check_mail(&self, ip: Option<IpAddr>, address: &str) -> Result<(), Limited> {
        let ip = ip.map(|i| i.to_string());
        let address = address.trim().to_lowercase();
        both(
            self.mail_ip.as_ref().zip(ip.as_deref()),
            self.mail_address
                .as_ref()
                .filter(|_| !address.is_empty())
                .map(|l| (l, address.as_str())),
        )
        .await
    }

    /// Takes one user creation by enrollment for the client, or says how long to wait.
    pub async fn check_signup(&self, ip: Option<IpAddr>) -> Result<(), Limited> {
        let ip = ip.map(|i| i.to_string());
        both(self.signup_ip.as_ref().zip(ip.as_deref()), None).await
    }

    /// Takes one `guess` attempt for the client and the username (lowercased), or says how long
    /// to wait. Both limits are checked; the longer wait wins.
    pub async fn check(&self, guess: Guess, ip: Option<IpAddr>, username: &str) -> Result<(), Limited> {
        let (by_ip, by_user) = match guess {
            Guess::Password => (&self.password_ip, &self.password_user),
            Guess::Code => (&self.code_ip, &self.code_user),
        };
        let ip = ip.map(|i| i.to_string());
        let username = username.to_lowercase();
        both(
            by_ip.as_ref().zip(ip.as_deref()),
            by_user
                .as_ref()
                .filter(|_| !username.is_empty())
                .map(|l| (l, username.as_str())),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::clock::ManualClock;
    use std::sync::Arc;

    #[tokio::test]
    async fn bursts_then_refills_at_the_rate() {
        let clock = ManualClock::new(1_000_000);
        let g = Gcra::new(Limit::parse("3/1m").unwrap(), Arc::new(clock.clone()));
        for _ in 0..3 {
            assert!(g.check("k").await.is_ok());
        }
        let wait = g.check("k").await.unwrap_err();
        assert_eq!(wait, Limited::Wait(Duration::from_secs(20)));
        assert!(g.check("other").await.is_ok(), "keys are independent");
        clock.advance(Duration::from_secs(19));
        assert!(g.check("k").await.is_err());
        clock.advance(Duration::from_secs(1));
        assert!(g.check("k").await.is_ok());
        assert!(g.check("k").await.is_err());
        // After a whole period the full burst is back.
        clock.advance(Duration::from_secs(60));
        for _ in 0..3 {
            assert!(g.check("k").await.is_ok());
        }
    }

    #[test]
    fn limits_parse() {
        assert_eq!(
            Limit::parse("10/1m").unwrap(),
            Limit {
                count: 10,
                per: Duration::from_secs(60)
            }
        );
        for bad in ["", "10", "0/1m", "10/0s", "x/1m", "10/soon"] {
            assert!(Limit::parse(bad).is_err(), "{bad}");
        }
    }
}
