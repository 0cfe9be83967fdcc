//! Validation of the policy catalogue (`policies:`): the dispatch over the policy kinds in
//! [`policy`], each kind's checks and defaults in its arm.

use super::Collector;
use crate::config::duration::parse_duration;
use crate::config::model::{
    PolicyDef, DEFAULT_PASSWORD_FIELD, DEFAULT_REPUTATION_THRESHOLD, DEFAULT_ZXCVBN_SCORE_THRESHOLD,
};
use crate::config::raw::RawPolicy;

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
/// Largest compiled regex accepted in a policy, in bytes.
pub const MAX_POLICY_REGEX_BYTES: usize = 1 << 20;

/// Compiles a bounded regex, recording a one-line error at `path`.
pub(crate) fn regex(c: &mut Collector<'_>, fi: usize, path: String, re: &str) -> Option<regex::Regex> {
    regex_with(c, fi, path, re, false)
}

fn regex_with(
    c: &mut Collector<'_>,
    fi: usize,
    path: String,
    re: &str,
    case_insensitive: bool,
) -> Option<regex::Regex> {
    match regex::RegexBuilder::new(re)
        .size_limit(MAX_POLICY_REGEX_BYTES)
        .case_insensitive(case_insensitive)
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            let text = e.to_string();
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim_start_matches("error: ");
            c.err(fi, path, format!("invalid regular expression: {last}"));
            None
        }
    }
}

/// `HH:MM` (00:00 to 24:00) as minutes after midnight.
fn clock_time(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 || h == 24 && m == 0).then_some(h * 60 + m)
}

/// Validates the policy `name`; `None` when it cannot be built.
pub(crate) fn policy(c: &mut Collector<'_>, fi: usize, name: &str, raw: &RawPolicy) -> Option<PolicyDef> {
    let p = format!("policies.{name}");
    c.name(fi, &p, "policy", name);
    let p = p.as_str();
    match raw {
        RawPolicy::Dummy {
            result,
            wait_min,
            wait_max,
        } => {
            let min = wait_min.as_deref().map(parse_duration).transpose();
            let max = wait_max.as_deref().map(parse_duration).transpose();
            match (min, max) {
                (Ok(a), Ok(b)) => {
                    let a = a.unwrap_or_default();
                    let b = b.unwrap_or(a);
                    if b < a {
                        c.err(fi, format!("{p}.wait_max"), "must not be less than wait_min");
                    }
                    Some(PolicyDef::Dummy {
                        result: result.unwrap_or(false),
                        wait: a.max(b),
                    })
                }
                (Err(e), _) => {
                    c.err(fi, format!("{p}.wait_min"), e);
                    None
                }
                (_, Err(e)) => {
                    c.err(fi, format!("{p}.wait_max"), e);
                    None
                }
            }
        }
        RawPolicy::Password {
            password_field,
            check_static_rules,
            check_have_i_been_pwned,
            check_zxcvbn,
            amount_digits,
            amount_uppercase,
            amount_lowercase,
            amount_symbols,
            length_min,
            symbol_charset,
            error_message,
            hibp_allowed_count,
            hibp_url,
            hibp_timeout,
            zxcvbn_score_threshold,
        } => {
            let hibp = if check_have_i_been_pwned.unwrap_or(false) {
                let url = hibp_url.as_deref().unwrap_or(crate::config::values::hibp::DEFAULT_URL);
                match crate::config::values::hibp::RangeUrl::parse(url) {
                    Ok(u) => Some(u),
                    Err(e) => {
                        c.err(fi, format!("{p}.hibp_url"), e);
                        None
                    }
                }
            } else {
                None
            };
            let hibp_timeout = c.duration(
                fi,
                format!("{p}.hibp_timeout"),
                hibp_timeout,
                crate::config::values::hibp::DEFAULT_TIMEOUT,
            );
            let threshold = zxcvbn_score_threshold.unwrap_or(DEFAULT_ZXCVBN_SCORE_THRESHOLD);
            if threshold > 4 {
                c.err(
                    fi,
                    format!("{p}.zxcvbn_score_threshold"),
                    format!("{threshold} is out of range (0 to 4; the score must be above it)"),
                );
            }
            Some(PolicyDef::Password {
                rules: crate::config::values::password_rules::PasswordRules {
                    password_field: password_field.clone().unwrap_or_else(|| DEFAULT_PASSWORD_FIELD.into()),
                    check_static_rules: check_static_rules.unwrap_or(true),
                    check_zxcvbn: check_zxcvbn.unwrap_or(false),
                    amount_digits: amount_digits.unwrap_or(0),
                    amount_uppercase: amount_uppercase.unwrap_or(0),
                    amount_lowercase: amount_lowercase.unwrap_or(0),
                    amount_symbols: amount_symbols.unwrap_or(0),
                    length_min: length_min.unwrap_or(0),
                    symbol_charset: symbol_charset
                        .clone()
                        .unwrap_or_else(|| crate::config::values::password_rules::DEFAULT_SYMBOLS.into()),
                    error_message: error_message.clone().unwrap_or_default(),
                    zxcvbn_score_threshold: threshold,
                    hibp,
                    hibp_allowed_count: hibp_allowed_count.unwrap_or(0),
                    hibp_timeout,
                },
            })
        }
        RawPolicy::PasswordExpiry { days, deny_only } => {
            if *days == 0 {
                c.err(fi, format!("{p}.days"), "must be at least 1");
            }
            Some(PolicyDef::PasswordExpiry {
                days: *days,
                deny_only: deny_only.unwrap_or(false),
            })
        }
        RawPolicy::Expression { expression } => match crate::expression::compile(expression) {
            Ok(expression) => Some(PolicyDef::Expression { expression }),
            Err(e) => {
                c.err(fi, format!("{p}.expression"), e);
                None
            }
        },
        RawPolicy::Reputation {
            check_ip,
            check_username,
            threshold,
        } => {
            let (check_ip, check_username) = (check_ip.unwrap_or(true), check_username.unwrap_or(true));
            if !check_ip && !check_username {
                c.err(
                    fi,
                    p.to_string(),
                    "check_ip and check_username are both false: the policy could never pass",
                );
            }
            Some(PolicyDef::Reputation {
                check_ip,
                check_username,
                threshold: threshold.unwrap_or(DEFAULT_REPUTATION_THRESHOLD),
            })
        }
        // Case-insensitive, like app prefixes: a deny rule on `^/admin` must also catch `/ADMIN`,
        // which case-insensitive apps (IIS) serve as `/admin` (docs/decisions/0004-one-path-rule.md).
        RawPolicy::Path { regex: re } => Some(PolicyDef::Path {
            regex: regex_with(c, fi, format!("{p}.regex"), re, true)?,
        }),
        RawPolicy::Method { methods } => {
            if methods.is_empty() {
                c.err(
                    fi,
                    format!("{p}.methods"),
                    "at least one method is needed (e.g. GET, POST)",
                );
            }
            let mut out = Vec::new();
            for (i, m) in methods.iter().enumerate() {
                let up = m.to_ascii_uppercase();
                if up.is_empty() || !up.bytes().all(|b| b.is_ascii_uppercase()) {
                    c.err(
                        fi,
                        format!("{p}.methods[{i}]"),
                        format!("invalid method {m:?} (expected e.g. GET, POST, DELETE)"),
                    );
                }
                out.push(up);
            }
            Some(PolicyDef::Method { methods: out })
        }
        RawPolicy::SourceCidr { cidrs } => {
            let mut out = Vec::new();
            for (i, s) in cidrs.iter().enumerate() {
                match s
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                {
                    Ok(n) => out.push(n),
                    Err(_) => c.err(
                        fi,
                        format!("{p}.cidrs[{i}]"),
                        format!("invalid address or CIDR {s:?} (expected e.g. 10.0.0.0/8 or 127.0.0.1)"),
                    ),
                }
            }
            if cidrs.is_empty() {
                c.err(fi, format!("{p}.cidrs"), "at least one network is needed");
            }
            Some(PolicyDef::SourceCidr { cidrs: out })
        }
        RawPolicy::Header { name, regex: re } => {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                c.err(fi, format!("{p}.name"), format!("invalid header name {name:?}"));
            }
            let re = match re {
                Some(r) => Some(regex(c, fi, format!("{p}.regex"), r)?),
                None => None,
            };
            Some(PolicyDef::Header {
                name: name.to_ascii_lowercase(),
                regex: re,
            })
        }
        RawPolicy::Time { weekdays, from, to } => {
            let mut days = Vec::new();
            for (i, d) in weekdays.iter().enumerate() {
                match WEEKDAYS.iter().position(|w| w.eq_ignore_ascii_case(d)) {
                    Some(n) => days.push(n as u8),
                    None => c.err(
                        fi,
                        format!("{p}.weekdays[{i}]"),
                        format!("unknown weekday {d:?} (expected one of: {})", WEEKDAYS.join(", ")),
                    ),
                }
            }
            if weekdays.is_empty() {
                days = (0..7).collect();
            }
            let mut bound = |key: &str, v: &Option<String>, default: u32| match v {
                None => default,
                Some(s) => clock_time(s).unwrap_or_else(|| {
                    c.err(
                        fi,
                        format!("{p}.{key}"),
                        format!("invalid time {s:?} (expected HH:MM in UTC, 00:00 to 24:00)"),
                    );
                    default
                }),
            };
            Some(PolicyDef::Time {
                weekdays: days,
                from: bound("from", from, 0),
                to: bound("to", to, 24 * 60),
            })
        }
    }
}
