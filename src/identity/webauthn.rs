//! The WebAuthn verifier (W3C Web Authentication Level 2, §7.1 registration and §7.2
//! assertion): parses what the browser's `navigator.credentials` returned and checks it against
//! the relying party and the challenge the server issued. Pure: no storage, no clock, no I/O.
//! See docs/decisions/0018-webauthn-verifier-on-ring.md for why it is written here on `ring`
//! and `ciborium` rather than taken from `webauthn-rs`.
//!
//! Threat model: everything the browser sends is hostile input. Every field is decoded with a
//! bound (the JSON body is already capped by the HTTP layer), every failure is a
//! [`WebauthnError`] (never a panic), and a response is accepted only when all of these hold:
//! - `clientDataJSON.type` is `webauthn.create` (registration) or `webauthn.get` (assertion);
//! - `clientDataJSON.challenge` equals the challenge the caller issued (constant time); the
//!   caller keeps it server-side, bound to the pre-authentication session, and uses it once;
//! - `clientDataJSON.origin` equals the expected origin exactly, and `crossOrigin` is not true;
//! - the authenticator data's RP id hash is SHA-256 of the RP id;
//! - the user-present flag is set, and user-verified when verification is `required`;
//! - registration: attested credential data is present, its public key is an algorithm we
//!   verify (ES256, RS256 ≥ 2048 bits, EdDSA/Ed25519); the attestation statement is not
//!   trusted (we ask for `attestation: none`), see the ADR;
//! - assertion: the signature over `authenticatorData ‖ SHA-256(clientDataJSON)` verifies with
//!   the stored public key, and the signature counter went up (or both are zero).

use base64::engine::{general_purpose::GeneralPurpose, DecodePaddingMode, GeneralPurposeConfig};
use base64::{alphabet, Engine};
use ring::signature::{self, UnparsedPublicKey};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// COSE algorithm ES256 (ECDSA P-256 with SHA-256).
pub const ALG_ES256: i64 = -7;
/// COSE algorithm EdDSA (Ed25519).
pub const ALG_EDDSA: i64 = -8;
/// COSE algorithm RS256 (RSASSA-PKCS1-v1_5 with SHA-256).
pub const ALG_RS256: i64 = -257;
/// The algorithms offered at registration, in order of preference.
pub const ALGORITHMS: &[i64] = &[ALG_ES256, ALG_EDDSA, ALG_RS256];

/// Longest credential id accepted (the spec allows up to 1023 bytes).
pub const MAX_CREDENTIAL_ID: usize = 1023;
/// Longest base64url field decoded (a client data or attestation object is far smaller).
const MAX_FIELD_CHARS: usize = 64 * 1024;
/// Longest COSE public key stored.
const MAX_PUBLIC_KEY: usize = 2048;

/// Authenticator data flags.
const FLAG_UP: u8 = 0x01;
const FLAG_UV: u8 = 0x04;
const FLAG_AT: u8 = 0x40;

/// base64url, with or without padding (browsers and libraries differ).
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// base64url without padding, as WebAuthn JSON uses.
pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Decodes base64url (padding optional); `None` for anything else or anything too long.
pub fn unb64(text: &str) -> Option<Vec<u8>> {
    if text.len() > MAX_FIELD_CHARS {
        return None;
    }
    B64.decode(text).ok()
}

/// Why a response was refused. Messages name the check, never key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebauthnError {
    /// The response is not the JSON shape of a `PublicKeyCredential`.
    #[error("malformed credential: {0}")]
    Malformed(&'static str),
    /// `clientDataJSON.type` is wrong.
    #[error("wrong ceremony type")]
    Type,
    /// The challenge is not the one issued.
    #[error("challenge mismatch")]
    Challenge,
    /// The origin is not the expected one, or the call was cross-origin.
    #[error("origin mismatch")]
    Origin,
    /// The RP id hash is not SHA-256 of the RP id.
    #[error("rp id hash mismatch")]
    RpId,
    /// The user-present flag is missing.
    #[error("user not present")]
    UserPresence,
    /// User verification was required and is missing.
    #[error("user not verified")]
    UserVerification,
    /// The public key's algorithm or parameters are not supported.
    #[error("unsupported public key")]
    Algorithm,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// The signature counter did not go up (a cloned authenticator).
    #[error("signature counter went back")]
    Counter,
}

/// `user_verification` of registration and assertion options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserVerification {
    /// The UV flag must be set.
    Required,
    /// Asked for, not enforced.
    Preferred,
    /// Not asked for.
    Discouraged,
}

impl UserVerification {
    /// The WebAuthn spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::Preferred => "preferred",
            Self::Discouraged => "discouraged",
        }
    }
}

/// Who the credential is for: the RP id (a domain) and the exact origin the browser reports.
#[derive(Debug, Clone, Copy)]
pub struct RelyingParty<'a> {
    /// RP id: the cookie domain or the host, without port.
    pub id: &'a str,
    /// `scheme://host[:port]` of the page.
    pub origin: &'a str,
}

/// A credential that passed registration.
#[derive(Debug, Clone)]
pub struct NewCredential {
    /// Credential id.
    pub id: Vec<u8>,
    /// The COSE public key, as the authenticator encoded it.
    pub public_key: Vec<u8>,
    /// The initial signature counter.
    pub sign_count: u32,
    /// Authenticator model id (AAGUID), hex.
    pub aaguid: String,
    /// Whether the user was verified.
    pub user_verified: bool,
}

/// An assertion, decoded from the browser's JSON.
#[derive(Debug, Clone)]
pub struct Assertion {
    /// The credential used.
    pub credential_id: Vec<u8>,
    client_data_json: Vec<u8>,
    authenticator_data: Vec<u8>,
    signature: Vec<u8>,
    /// The user handle of a discoverable credential (the owner's uid), when sent.
    pub user_handle: Option<Vec<u8>>,
}

/// What an assertion proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The new signature counter to store.
    pub sign_count: u32,
    /// Whether the user was verified (PIN, biometrics).
    pub user_verified: bool,
}

/// The credential JSON: an object, or a string holding one (the HTML form posts a string).
fn credential_object(v: &Value) -> Result<serde_json::Map<String, Value>, WebauthnError> {
    match v {
        Value::Object(m) => Ok(m.clone()),
        Value::String(s) if s.len() <= MAX_FIELD_CHARS * 2 => match serde_json::from_str(s) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(WebauthnError::Malformed("not a JSON object")),
        },
        _ => Err(WebauthnError::Malformed("not a JSON object")),
    }
}

fn field_b64(m: &serde_json::Map<String, Value>, key: &'static str) -> Result<Vec<u8>, WebauthnError> {
    m.get(key)
        .and_then(Value::as_str)
        .and_then(unb64)
        .ok_or(WebauthnError::Malformed(key))
}

/// The credential id and the `response` member of a `PublicKeyCredential` JSON.
fn split_credential(v: &Value) -> Result<(Vec<u8>, serde_json::Map<String, Value>), WebauthnError> {
    let m = credential_object(v)?;
    if m.get("type").and_then(Value::as_str).is_some_and(|t| t != "public-key") {
        return Err(WebauthnError::Malformed("type"));
    }
    let id = field_b64(&m, "rawId").or_else(|_| field_b64(&m, "id"))?;
    if id.is_empty() || id.len() > MAX_CREDENTIAL_ID {
        return Err(WebauthnError::Malformed("id"));
    }
    match m.get("response") {
        Some(Value::Object(r)) => Ok((id, r.clone())),
        _ => Err(WebauthnError::Malformed("response")),
    }
}

/// Checks `clientDataJSON` (§7.1 steps 5-12, §7.2 steps 9-14).
fn check_client_data(raw: &[u8], kind: &str, challenge: &[u8], rp: &RelyingParty<'_>) -> Result<(), WebauthnError> {
    let cd: Value = serde_json::from_slice(raw).map_err(|_| WebauthnError::Malformed("clientDataJSON"))?;
    if cd.get("type").and_then(Value::as_str) != Some(kind) {
        return Err(WebauthnError::Type);
    }
    let got = cd
        .get("challenge")
        .and_then(Value::as_str)
        .and_then(unb64)
        .ok_or(WebauthnError::Challenge)?;
    if challenge.is_empty() || got.len() != challenge.len() || !bool::from(got.ct_eq(challenge)) {
        return Err(WebauthnError::Challenge);
    }
    if cd.get("origin").and_then(Value::as_str) != Some(rp.origin) {
        return Err(WebauthnError::Origin);
    }
    if cd.get("crossOrigin").and_then(Value::as_bool) == Some(true) {
        return Err(WebauthnError::Origin);
    }
    Ok(())
}

/// The fixed part of authenticator data: RP id hash, flags, counter.
struct AuthData<'a> {
    rp_id_hash: &'a [u8],
    flags: u8,
    sign_count: u32,
    rest: &'a [u8],
}

fn parse_auth_data(raw: &[u8]) -> Result<AuthData<'_>, WebauthnError> {
    if raw.len() < 37 {
        return Err(WebauthnError::Malformed("authenticatorData"));
    }
    Ok(AuthData {
        rp_id_hash: &raw[..32],
        flags: raw[32],
        sign_count: u32::from_be_bytes([raw[33], raw[34], raw[35], raw[36]]),
        rest: &raw[37..],
    })
}

/// RP id hash, UP and UV (§7.1 steps 13-15, §7.2 steps 15-17).
fn check_auth_data(ad: &AuthData<'_>, rp: &RelyingParty<'_>, uv: UserVerification) -> Result<(), WebauthnError> {
    let expected = Sha256::digest(rp.id.as_bytes());
    if !bool::from(ad.rp_id_hash.ct_eq(expected.as_slice())) {
        return Err(WebauthnError::RpId);
    }
    if ad.flags & FLAG_UP == 0 {
        return Err(WebauthnError::UserPresence);
    }
    if uv == UserVerification::Required && ad.flags & FLAG_UV == 0 {
        return Err(WebauthnError::UserVerification);
    }
    Ok(())
}

/// Verifies a registration response (`navigator.credentials.create()` as JSON) against the
/// issued `challenge`.
pub fn verify_registration(
    rp: &RelyingParty<'_>,
    challenge: &[u8],
    uv: UserVerification,
    credential: &Value,
) -> Result<NewCredential, WebauthnError> {
    let (id, resp) = split_credential(credential)?;
    let client_data = field_b64(&resp, "clientDataJSON")?;
    check_client_data(&client_data, "webauthn.create", challenge, rp)?;
    let att_raw = field_b64(&resp, "attestationObject")?;
    let att: ciborium::Value =
        ciborium::de::from_reader(att_raw.as_slice()).map_err(|_| WebauthnError::Malformed("attestationObject"))?;
    let auth_data = cbor_map_get(&att, "authData")
        .and_then(|v| v.as_bytes())
        .ok_or(WebauthnError::Malformed("authData"))?;
    let ad = parse_auth_data(auth_data)?;
    check_auth_data(&ad, rp, uv)?;
    if ad.flags & FLAG_AT == 0 || ad.rest.len() < 18 {
        return Err(WebauthnError::Malformed("attested credential data"));
    }
    let aaguid = hex::encode(&ad.rest[..16]);
    let id_len = usize::from(u16::from_be_bytes([ad.rest[16], ad.rest[17]]));
    let after_len = &ad.rest[18..];
    if id_len == 0 || id_len > MAX_CREDENTIAL_ID || after_len.len() < id_len {
        return Err(WebauthnError::Malformed("credential id"));
    }
    let (cred_id, key_and_ext) = after_len.split_at(id_len);
    if cred_id != id.as_slice() {
        return Err(WebauthnError::Malformed("credential id"));
    }
    // The COSE key is one CBOR item; extensions (if any) follow it.
    let mut reader = key_and_ext;
    let key: ciborium::Value =
        ciborium::de::from_reader(&mut reader).map_err(|_| WebauthnError::Malformed("credential public key"))?;
    let key_len = key_and_ext.len() - reader.len();
    let public_key = key_and_ext[..key_len].to_vec();
    if public_key.len() > MAX_PUBLIC_KEY {
        return Err(WebauthnError::Algorithm);
    }
    CoseKey::parse(&key)?;
    Ok(NewCredential {
        id,
        public_key,
        sign_count: ad.sign_count,
        aaguid,
        user_verified: ad.flags & FLAG_UV != 0,
    })
}

/// Decodes an assertion (`navigator.credentials.get()` as JSON) without checking it yet: the
/// caller needs its credential id to find the stored key.
pub fn parse_assertion(credential: &Value) -> Result<Assertion, WebauthnError> {
    let (credential_id, resp) = split_credential(credential)?;
    let user_handle = match resp.get("userHandle") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(unb64(s).ok_or(WebauthnError::Malformed("userHandle"))?),
        Some(_) => return Err(WebauthnError::Malformed("userHandle")),
    };
    Ok(Assertion {
        credential_id,
        client_data_json: field_b64(&resp, "clientDataJSON")?,
        authenticator_data: field_b64(&resp, "authenticatorData")?,
        signature: field_b64(&resp, "signature")?,
        user_handle,
    })
}

/// Verifies an assertion with the stored COSE `public_key` and counter.
pub fn verify_assertion(
    rp: &RelyingParty<'_>,
    challenge: &[u8],
    uv: UserVerification,
    assertion: &Assertion,
    public_key: &[u8],
    stored_count: u32,
) -> Result<Verified, WebauthnError> {
    check_client_data(&assertion.client_data_json, "webauthn.get", challenge, rp)?;
    let ad = parse_auth_data(&assertion.authenticator_data)?;
    check_auth_data(&ad, rp, uv)?;
    let key: ciborium::Value =
        ciborium::de::from_reader(public_key).map_err(|_| WebauthnError::Malformed("stored public key"))?;
    let key = CoseKey::parse(&key)?;
    let mut signed = assertion.authenticator_data.clone();
    signed.extend_from_slice(&Sha256::digest(&assertion.client_data_json));
    key.verify(&signed, &assertion.signature)?;
    // §7.2 step 21: a counter that does not go up means a cloned authenticator, unless the
    // authenticator keeps no counter at all (both zero).
    if (ad.sign_count != 0 || stored_count != 0) && ad.sign_count <= stored_count {
        return Err(WebauthnError::Counter);
    }
    Ok(Verified {
        sign_count: ad.sign_count,
        user_verified: ad.flags & FLAG_UV != 0,
    })
}

fn cbor_map_get<'a>(v: &'a ciborium::Value, key: &str) -> Option<&'a ciborium::Value> {
    v.as_map()?
        .iter()
        .find(|(k, _)| k.as_text() == Some(key))
        .map(|(_, v)| v)
}

fn cose_get(m: &[(ciborium::Value, ciborium::Value)], label: i64) -> Option<&ciborium::Value> {
    m.iter()
        .find(|(k, _)| k.as_integer().and_then(|i| i64::try_from(i).ok()) == Some(label))
        .map(|(_, v)| v)
}

fn cose_int(m: &[(ciborium::Value, ciborium::Value)], label: i64) -> Option<i64> {
    cose_get(m, label)?.as_integer().and_then(|i| i64::try_from(i).ok())
}

fn cose_bytes(m: &[(ciborium::Value, ciborium::Value)], label: i64) -> Option<&[u8]> {
    cose_get(m, label)?.as_bytes().map(Vec::as_slice)
}

/// A public key from its COSE form (RFC 9053), for the three algorithms we offer.
enum CoseKey {
    /// Uncompressed P-256 point (0x04 ‖ x ‖ y).
    Es256(Vec<u8>),
    /// Ed25519 public key.
    EdDsa(Vec<u8>),
    /// RSA modulus and exponent.
    Rs256 { n: Vec<u8>, e: Vec<u8> },
}

impl CoseKey {
    fn parse(v: &ciborium::Value) -> Result<Self, WebauthnError> {
        let m = v.as_map().ok_or(WebauthnError::Algorithm)?;
        let kty = cose_int(m, 1).ok_or(WebauthnError::Algorithm)?;
        let alg = cose_int(m, 3).ok_or(WebauthnError::Algorithm)?;
        match (kty, alg) {
            // EC2, ES256, crv P-256.
            (2, ALG_ES256) => {
                let (Some(1), Some(x), Some(y)) = (cose_int(m, -1), cose_bytes(m, -2), cose_bytes(m, -3)) else {
                    return Err(WebauthnError::Algorithm);
                };
                if x.len() != 32 || y.len() != 32 {
                    return Err(WebauthnError::Algorithm);
                }
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                Ok(Self::Es256(point))
            }
            // OKP, EdDSA, crv Ed25519.
            (1, ALG_EDDSA) => match (cose_int(m, -1), cose_bytes(m, -2)) {
                (Some(6), Some(x)) if x.len() == 32 => Ok(Self::EdDsa(x.to_vec())),
                _ => Err(WebauthnError::Algorithm),
            },
            // RSA, RS256, at least 2048 bits.
            (3, ALG_RS256) => match (cose_bytes(m, -1), cose_bytes(m, -2)) {
                (Some(n), Some(e)) if n.len() >= 256 && n.len() <= 1024 && !e.is_empty() && e.len() <= 8 => {
                    Ok(Self::Rs256 {
                        n: n.to_vec(),
                        e: e.to_vec(),
                    })
                }
                _ => Err(WebauthnError::Algorithm),
            },
            _ => Err(WebauthnError::Algorithm),
        }
    }

    fn verify(&self, message: &[u8], sig: &[u8]) -> Result<(), WebauthnError> {
        let ok = match self {
            Self::Es256(point) => UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, point)
                .verify(message, sig)
                .is_ok(),
            Self::EdDsa(x) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, sig)
                .is_ok(),
            Self::Rs256 { n, e } => signature::RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, sig)
                .is_ok(),
        };
        if ok {
            Ok(())
        } else {
            Err(WebauthnError::Signature)
        }
    }
}

#[cfg(test)]
mod tests;
