//! Validated policy definitions (`policies:`): one variant per policy kind with its settings and
//! defaults. Built only by `validate/policies.rs`; re-exported from
//! [`super::model`].

use ipnet::IpNet;
use regex::Regex;
use std::time::Duration;

/// Default `password.zxcvbn_score_threshold`: the zxcvbn score (0 to 4) must be above this.
pub const DEFAULT_ZXCVBN_SCORE_THRESHOLD: u8 = 2;
/// Default `reputation.threshold`: the score at or below which the policy fails.
pub const DEFAULT_REPUTATION_THRESHOLD: i64 = -5;

/// Default `password_field` of a password policy.
pub const DEFAULT_PASSWORD_FIELD: &str = "password";
/// Default policy timeout: 30 seconds, as authentik.
pub const DEFAULT_POLICY_TIMEOUT: Duration = Duration::from_secs(30);

/// A validated policy definition.
#[derive(Debug, Clone)]
pub enum PolicyDef {
    /// Fixed result after an optional wait (testing).
    Dummy {
        /// Result.
        result: bool,
        /// Wait before answering.
        wait: Duration,
    },
    /// The normalised request path matches a regex.
    Path {
        /// Pattern.
        regex: Regex,
    },
    /// The request method is one of these (uppercase).
    Method {
        /// Methods.
        methods: Vec<String>,
    },
    /// The client address is inside one of these networks.
    SourceCidr {
        /// Networks.
        cidrs: Vec<IpNet>,
    },
    /// A request header is present (and matches a regex, if given).
    Header {
        /// Header name, lowercase.
        name: String,
        /// Pattern for the value.
        regex: Option<Regex>,
    },
    /// Password strength rules.
    Password {
        /// The rules.
        rules: super::values::password_rules::PasswordRules,
    },
    /// Fails once the user's password is this many days old.
    PasswordExpiry {
        /// Maximum age in days.
        days: u32,
        /// Only deny (authentik would also make the password unusable otherwise).
        deny_only: bool,
    },
    /// An authentik expression, compiled for the Starlark sandbox.
    Expression {
        /// The compiled expression.
        expression: crate::expression::Expression,
    },
    /// Passes when the client IP's or the identifier's reputation is at or below `threshold`.
    Reputation {
        /// Check the client IP's score.
        check_ip: bool,
        /// Check the identifier's score.
        check_username: bool,
        /// Score at or below which the policy passes.
        threshold: i64,
    },
    /// The current UTC time falls on one of the weekdays and inside `[from, to)`.
    Time {
        /// Weekdays, 0 = Monday.
        weekdays: Vec<u8>,
        /// Start (`HH:MM` in the YAML), minutes after midnight UTC.
        from: u32,
        /// End (exclusive, `HH:MM` in the YAML), minutes after midnight UTC; may be below
        /// `from` to span midnight.
        to: u32,
    },
}
