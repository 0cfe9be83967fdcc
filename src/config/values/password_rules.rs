//! Validated password policy settings (`password` policies). The checks that apply them live in
//! `flow::policies::password`.

/// Validated password policy settings.
#[derive(Debug, Clone)]
pub struct PasswordRules {
    /// Context key holding the password.
    pub password_field: String,
    /// Run the static rules.
    pub check_static_rules: bool,
    /// Run zxcvbn.
    pub check_zxcvbn: bool,
    /// Minimum counts.
    pub amount_digits: usize,
    /// Minimum uppercase letters.
    pub amount_uppercase: usize,
    /// Minimum lowercase letters.
    pub amount_lowercase: usize,
    /// Minimum symbols from `symbol_charset`.
    pub amount_symbols: usize,
    /// Minimum length in characters.
    pub length_min: usize,
    /// Characters counted as symbols.
    pub symbol_charset: String,
    /// Message for static rule failures.
    pub error_message: String,
    /// The score must be above this.
    pub zxcvbn_score_threshold: u8,
    /// Range API to ask, when the HIBP check is on.
    pub hibp: Option<super::hibp::RangeUrl>,
    /// Breach count allowed.
    pub hibp_allowed_count: u64,
    /// Deadline for the HIBP lookup.
    pub hibp_timeout: std::time::Duration,
}

/// authentik's default symbol set: ASCII punctuation and space.
pub const DEFAULT_SYMBOLS: &str = "!\\\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ ";
