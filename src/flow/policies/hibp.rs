//! The Have I Been Pwned range check: SHA-1 the password, send only the first five hex digits
//! to `<url><prefix>` (k-anonymity), and find the rest in the answer. Plain HTTP (for tests and
//! internal mirrors) or HTTPS, through the shared client in [`crate::outbound::http`] (one hard
//! deadline for the whole exchange; a bounded answer).

pub use crate::config::values::hibp::{RangeUrl, DEFAULT_TIMEOUT, DEFAULT_URL};
use crate::outbound::http;
use sha1::{Digest, Sha1};
use std::time::Duration;

/// Largest answer read.
pub const MAX_ANSWER_BYTES: usize = 2 * 1024 * 1024;

/// How many times `password` appears in breaches, according to the range API at `url`.
pub async fn count(url: &RangeUrl, password: &str, timeout: Duration) -> Result<u64, String> {
    let digest = hex::encode_upper(Sha1::digest(password.as_bytes()));
    let (prefix, suffix) = digest.split_at(5);
    let (status, body) = http::get(url, prefix, timeout, MAX_ANSWER_BYTES).await.map_err(|e| {
        if e == http::TIMED_OUT {
            "range API timed out".to_string()
        } else {
            e
        }
    })?;
    if !(200..300).contains(&status) {
        let status = ::http::StatusCode::from_u16(status).map_or_else(|_| status.to_string(), |s| s.to_string());
        return Err(format!("range API answered {status}"));
    }
    let text = std::str::from_utf8(&body).map_err(|_| "range API answer is not text".to_string())?;
    for line in text.lines() {
        if let Some((s, n)) = line.trim().split_once(':') {
            if s.eq_ignore_ascii_case(suffix) {
                return n
                    .trim()
                    .parse()
                    .map_err(|_| "range API answer is malformed".to_string());
            }
        }
    }
    Ok(0)
}
