//! Settings of the Have I Been Pwned range check; the check itself is `flow::policies::hibp`.

use std::time::Duration;

/// Default range API.
pub const DEFAULT_URL: &str = "https://api.pwnedpasswords.com/range/";
/// Default deadline for one lookup.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// A parsed range API address (`http(s)://host[:port]/path/`; the prefix is appended to the path).
pub type RangeUrl = super::url::HttpUrl;
