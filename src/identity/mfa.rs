//! Second factors: TOTP devices (RFC 6238) and static recovery codes, stored beside the users.
//!
//! Owns the TOTP arithmetic (HMAC-SHA1, dynamic truncation, ±1 step drift), the enrolment helpers
//! (secret, `otpauth://` URI, QR code as SVG), recovery-code generation and the two tables
//! `totp_devices` and `static_codes`. It leaves rendering, rate limiting and the flow logic to the
//! stages that call it.
//!
//! Threat model: a submitted code is hostile input. It is normalised and length-checked before
//! use, compared in constant time, and a code is accepted at most once: every device records the
//! last accepted step, and acceptance is a single conditional `UPDATE`, so two concurrent
//! submissions of the same code cannot both pass. Recovery codes are stored as SHA-256 hashes of
//! their normalised form and are marked used with a single conditional `UPDATE`. Codes and
//! secrets never appear in error messages. Time is always passed in (`now_ms`), never read here.

use super::db::args;
use super::store::{StoreError, UserStore};
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::{Rng, RngCore};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// TOTP step length.
pub const TOTP_PERIOD_SECS: u64 = 30;

/// Length of a new TOTP secret in bytes (160 bits, as RFC 4226 recommends).
const SECRET_LEN: usize = 20;
/// Shortest secret accepted when saving a device (RFC 4226 requires at least 128 bits).
const MIN_SECRET_LEN: usize = 16;
/// Longest secret accepted when saving a device.
const MAX_SECRET_LEN: usize = 64;
/// Longest device name, in characters.
const MAX_DEVICE_NAME_CHARS: usize = 64;
/// Characters of recovery codes: lowercase letters and digits without 0/o, 1/l/i.
const STATIC_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
/// Characters in one recovery code (without dashes).
const STATIC_CODE_CHARS: usize = 12;
/// Characters between dashes when a recovery code is displayed.
const STATIC_GROUP_CHARS: usize = 4;
/// Longest normalised recovery code looked up at all.
const MAX_STATIC_CODE_CHARS: usize = 64;

/// RFC 3986 unreserved characters stay as they are; everything else is percent-encoded.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// The tables of this module, in the markers of `db::Dialect::ddl`.
pub(crate) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS totp_devices (
        id {pk},
        user_id {int} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        secret {blob} NOT NULL,
        digits {int} NOT NULL,
        last_step {int},
        created_ms {int} NOT NULL,
        last_used_ms {int}
    )",
    "CREATE INDEX IF NOT EXISTS totp_devices_user ON totp_devices(user_id)",
    "CREATE TABLE IF NOT EXISTS static_codes (
        id {pk},
        user_id {int} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        code_hash TEXT NOT NULL,
        used_ms {int},
        UNIQUE(user_id, code_hash)
    )",
];

/// A stored TOTP device.
#[derive(Debug, Clone)]
pub struct TotpDevice {
    /// Row id.
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// Name chosen at enrolment.
    pub name: String,
    /// Code length (6 or 8).
    pub digits: u32,
    /// When the device was saved (ms since the epoch).
    pub created_ms: i64,
    /// When a code of the device was last accepted (ms since the epoch).
    pub last_used_ms: Option<i64>,
}

// === TOTP ===

/// 20 random bytes from the OS CSPRNG.
pub fn new_totp_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_LEN];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

/// Base32 (RFC 4648, no padding) of a secret, as authenticator apps expect.
pub fn secret_base32(secret: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(secret)
}

/// Code lengths this module accepts.
fn valid_digits(digits: u32) -> bool {
    digits == 6 || digits == 8
}

/// The code for a time step (RFC 6238/4226, HMAC-SHA1, dynamic truncation), zero-padded to `digits` (6 or 8).
///
/// Other lengths up to 10 are computed the same way; longer ones are treated as 10. Returns an
/// empty string (which no submitted code matches) if the MAC cannot be keyed, which HMAC never
/// refuses in practice.
pub fn totp_code(secret: &[u8], step: u64, digits: u32) -> String {
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(&step.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    // SHA-1 output is 20 bytes; the offset is at most 15, so offset + 4 <= 19.
    let offset = usize::from(hash[hash.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([hash[offset], hash[offset + 1], hash[offset + 2], hash[offset + 3]]) & 0x7fff_ffff;
    let digits = digits.min(10);
    let value = u64::from(bin) % 10u64.pow(digits);
    format!("{value:0width$}", width = digits as usize)
}

/// The step of a time.
pub fn totp_step(now_ms: u64) -> u64 {
    now_ms / 1000 / TOTP_PERIOD_SECS
}

/// A submitted code without spaces, if it is exactly `digits` ASCII digits.
fn normalise_totp(code: &str, digits: u32) -> Option<String> {
    if !valid_digits(digits) {
        return None;
    }
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    (code.len() == digits as usize && code.bytes().all(|b| b.is_ascii_digit())).then_some(code)
}

/// Every step in now-1..=now+1 whose code equals `code` (already normalised), in ascending
/// order. All three candidates are computed and compared in constant time.
fn matching_steps(secret: &[u8], digits: u32, code: &str, now_ms: u64) -> Vec<u64> {
    let now = totp_step(now_ms);
    let candidates = [now.checked_sub(1), Some(now), now.checked_add(1)];
    let mut hits = Vec::new();
    for step in candidates.into_iter().flatten() {
        let expected = totp_code(secret, step, digits);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            hits.push(step);
        }
    }
    hits
}

/// Checks `code` against steps now-1, now, now+1 (±1 step drift); constant-time compare; returns the matching step. Codes that are not exactly `digits` ASCII digits (after removing spaces) never match.
///
/// If several steps match (a collision), the latest is returned, so recording it as used also
/// blocks the earlier ones.
pub fn match_totp(secret: &[u8], digits: u32, code: &str, now_ms: u64) -> Option<u64> {
    let code = normalise_totp(code, digits)?;
    matching_steps(secret, digits, &code, now_ms).into_iter().max()
}

/// `otpauth://totp/<issuer>:<account>?secret=..&issuer=..&digits=..&period=30&algorithm=SHA1`, label and params percent-encoded.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8], digits: u32) -> String {
    let enc = |s: &str| utf8_percent_encode(s, URI_COMPONENT).to_string();
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&digits={digits}&period={TOTP_PERIOD_SECS}&algorithm=SHA1",
        enc(issuer),
        enc(account),
        secret_base32(secret),
        enc(issuer),
    )
}

/// The QR code of `data` as a standalone SVG string (no scripts), with a <title> for accessibility.
///
/// The XML declaration is left out so the result can be served as `image/svg+xml` or inlined
/// in HTML alike. Data too long for a QR code is [`StoreError::Invalid`].
pub fn qr_svg(data: &str) -> Result<String, StoreError> {
    let code =
        qrcode::QrCode::new(data.as_bytes()).map_err(|e| StoreError::Invalid(format!("cannot make a qr code: {e}")))?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    let start = svg
        .find("<svg")
        .ok_or_else(|| StoreError::Invalid("qr renderer produced no svg element".into()))?;
    let open_end = svg[start..]
        .find('>')
        .map(|i| start + i)
        .ok_or_else(|| StoreError::Invalid("qr renderer produced a malformed svg element".into()))?;
    let mut out = String::with_capacity(svg.len() + 64);
    out.push_str(&svg[start..open_end]);
    out.push_str(r#" role="img"><title>QR code for an authenticator app</title>"#);
    out.push_str(&svg[open_end + 1..]);
    Ok(out)
}

// === recovery codes ===

/// `n` fresh recovery codes, each 12 chars from an unambiguous alphabet, formatted `xxxx-xxxx-xxxx`.
pub fn generate_static_codes(n: usize) -> Vec<String> {
    let mut rng = rand::rngs::OsRng;
    (0..n)
        .map(|_| {
            let mut code = String::with_capacity(STATIC_CODE_CHARS + STATIC_CODE_CHARS / STATIC_GROUP_CHARS);
            for i in 0..STATIC_CODE_CHARS {
                if i > 0 && i % STATIC_GROUP_CHARS == 0 {
                    code.push('-');
                }
                code.push(char::from(STATIC_ALPHABET[rng.gen_range(0..STATIC_ALPHABET.len())]));
            }
            code
        })
        .collect()
}

/// A recovery code without whitespace and dashes, lowercased; `None` if nothing usable remains.
fn normalise_static(code: &str) -> Option<String> {
    let code: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let usable = !code.is_empty()
        && code.chars().count() <= MAX_STATIC_CODE_CHARS
        && code.bytes().all(|b| b.is_ascii_alphanumeric());
    usable.then_some(code)
}

/// Hex SHA-256 of a normalised recovery code.
fn static_hash(normalised: &str) -> String {
    hex::encode(Sha256::digest(normalised.as_bytes()))
}

fn to_i64(v: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Invalid(format!("{what} out of range")))
}

// === impl UserStore ===

impl UserStore {
    /// Saves a confirmed TOTP device.
    ///
    /// `last_step` is the step whose code confirmed the enrolment, so that code cannot be used
    /// again. The name must be 1-64 characters without control characters, the secret 16-64
    /// bytes and `digits` 6 or 8; a name the user already uses is [`StoreError::Duplicate`].
    pub async fn add_totp_device(
        &self,
        user_id: i64,
        name: &str,
        secret: &[u8],
        digits: u32,
        now_ms: u64,
        last_step: Option<u64>,
    ) -> Result<i64, StoreError> {
        let name_ok = !name.trim().is_empty()
            && name.chars().count() <= MAX_DEVICE_NAME_CHARS
            && !name.chars().any(char::is_control);
        if !name_ok {
            return Err(StoreError::Invalid(format!(
                "invalid device name {name:?} (1-{MAX_DEVICE_NAME_CHARS} characters, no control characters)"
            )));
        }
        if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&secret.len()) {
            return Err(StoreError::Invalid(format!(
                "totp secret must be {MIN_SECRET_LEN}-{MAX_SECRET_LEN} bytes"
            )));
        }
        if !valid_digits(digits) {
            return Err(StoreError::Invalid(format!("totp digits must be 6 or 8, not {digits}")));
        }
        let created = to_i64(now_ms, "time")?;
        let last_step = last_step.map(|s| to_i64(s, "totp step")).transpose()?;
        let mut tx = self.db().begin().await?;
        let taken = tx
            .fetch_optional(
                "SELECT 1 FROM totp_devices WHERE user_id = $1 AND name = $2",
                args![user_id, name],
            )
            .await?;
        if taken.is_some() {
            return Err(StoreError::Duplicate {
                what: "totp device",
                value: name.to_string(),
            });
        }
        let id: i64 = tx
            .fetch_one(
                "INSERT INTO totp_devices (user_id, name, secret, digits, last_step, created_ms, last_used_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, NULL) RETURNING id",
                args![user_id, name, secret, i64::from(digits), last_step, created],
            )
            .await?
            .at(0)?;
        tx.commit().await?;
        Ok(id)
    }

    /// The user's TOTP devices.
    pub async fn totp_devices(&self, user_id: i64) -> Result<Vec<TotpDevice>, StoreError> {
        let rows = self
            .db()
            .fetch_all(
                "SELECT id, user_id, name, digits, created_ms, last_used_ms FROM totp_devices WHERE user_id = $1 ORDER BY id",
                args![user_id],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let digits: i64 = r.get("digits")?;
                Ok(TotpDevice {
                    id: r.get("id")?,
                    user_id: r.get("user_id")?,
                    name: r.get("name")?,
                    digits: u32::try_from(digits)
                        .map_err(|_| StoreError::Invalid(format!("stored totp digits {digits} out of range")))?,
                    created_ms: r.get("created_ms")?,
                    last_used_ms: r.get("last_used_ms")?,
                })
            })
            .collect()
    }

    /// Checks a code against all of the user's TOTP devices (±1 step). A step at or before the device's last accepted step is refused (no code reuse), and accepting updates last step and last_used_ms atomically (a single UPDATE ... WHERE last_step IS NULL OR last_step < ? so two concurrent submissions of one code cannot both pass). Returns the device id that accepted.
    pub async fn verify_totp(&self, user_id: i64, code: &str, now_ms: u64) -> Result<Option<i64>, StoreError> {
        let used_ms = to_i64(now_ms, "time")?;
        let rows = self
            .db()
            .fetch_all(
                "SELECT id, secret, digits, last_step FROM totp_devices WHERE user_id = $1 ORDER BY id",
                args![user_id],
            )
            .await?;
        for r in &rows {
            let id: i64 = r.get("id")?;
            let secret: Vec<u8> = r.get("secret")?;
            let Ok(digits) = u32::try_from(r.get::<i64>("digits")?) else {
                continue;
            };
            let last_step: Option<i64> = r.get("last_step")?;
            let Some(normalised) = normalise_totp(code, digits) else {
                continue;
            };
            // The latest matching step after the last accepted one; recording it also blocks
            // any earlier step the same code might match.
            let step = matching_steps(&secret, digits, &normalised, now_ms)
                .into_iter()
                .filter_map(|s| i64::try_from(s).ok())
                .filter(|s| last_step.is_none_or(|last| *s > last))
                .max();
            let Some(step) = step else {
                continue;
            };
            let accepted = self
                .db()
                .execute(
                    "UPDATE totp_devices SET last_step = $1, last_used_ms = $2
                     WHERE id = $3 AND user_id = $4 AND (last_step IS NULL OR last_step < $1)",
                    args![step, used_ms, id, user_id],
                )
                .await?;
            if accepted == 1 {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// Replaces the user's recovery codes (stores SHA-256 hashes of the normalised code, never the code).
    ///
    /// A code that normalises to nothing usable, or two codes that normalise alike, are
    /// [`StoreError::Invalid`] and nothing is changed.
    pub async fn set_static_codes(&self, user_id: i64, codes: &[String], now_ms: u64) -> Result<(), StoreError> {
        // Creation time is not stored; the parameter keeps the API uniform and validated.
        to_i64(now_ms, "time")?;
        let mut hashes = Vec::with_capacity(codes.len());
        for code in codes {
            let normalised =
                normalise_static(code).ok_or_else(|| StoreError::Invalid("invalid recovery code".into()))?;
            hashes.push(static_hash(&normalised));
        }
        let mut sorted = hashes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != hashes.len() {
            return Err(StoreError::Invalid("duplicate recovery code".into()));
        }
        let mut tx = self.db().begin().await?;
        tx.execute("DELETE FROM static_codes WHERE user_id = $1", args![user_id])
            .await?;
        for hash in &hashes {
            tx.execute(
                "INSERT INTO static_codes (user_id, code_hash, used_ms) VALUES ($1, $2, NULL)",
                args![user_id, hash],
            )
            .await?;
        }
        tx.commit().await
    }

    /// Uses one recovery code: true once per code (atomic delete-or-mark); normalises case, spaces and dashes.
    ///
    /// The code is marked used (kept for the record) by a single conditional `UPDATE`.
    pub async fn use_static_code(&self, user_id: i64, code: &str, now_ms: u64) -> Result<bool, StoreError> {
        let used_ms = to_i64(now_ms, "time")?;
        let Some(normalised) = normalise_static(code) else {
            return Ok(false);
        };
        let n = self
            .db()
            .execute(
                "UPDATE static_codes SET used_ms = $1 WHERE user_id = $2 AND code_hash = $3 AND used_ms IS NULL",
                args![used_ms, user_id, static_hash(&normalised)],
            )
            .await?;
        Ok(n == 1)
    }

    /// How many unused recovery codes the user has.
    pub async fn static_code_count(&self, user_id: i64) -> Result<usize, StoreError> {
        let n: i64 = self
            .db()
            .fetch_one(
                "SELECT COUNT(*) FROM static_codes WHERE user_id = $1 AND used_ms IS NULL",
                args![user_id],
            )
            .await?
            .at(0)?;
        usize::try_from(n).map_err(|_| StoreError::Invalid(format!("recovery code count {n} out of range")))
    }

    /// Deletes all of the user's devices and codes (passkeys included).
    pub async fn delete_mfa(&self, user_id: i64) -> Result<(), StoreError> {
        let mut tx = self.db().begin().await?;
        tx.execute("DELETE FROM totp_devices WHERE user_id = $1", args![user_id])
            .await?;
        tx.execute("DELETE FROM static_codes WHERE user_id = $1", args![user_id])
            .await?;
        tx.execute("DELETE FROM webauthn_devices WHERE user_id = $1", args![user_id])
            .await?;
        tx.commit().await
    }
}

#[cfg(test)]
mod tests;
