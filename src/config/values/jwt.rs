//! Signed identity (`apps[].jwt`): the settings and the signing keys, parsed once from PKCS#8
//! PEM (ES256 on P-256, or EdDSA on Ed25519) with `ring`. A key's id (`kid`) is its RFC 7638
//! JWK thumbprint, so the same key always has the same id and the JWKS needs no bookkeeping.
//! Signing itself is `sign` here (pure: the caller gives the claims and the time); the
//! proxy builds the claims and caches tokens (`proxy::jwt`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Default header carrying the JWT.
pub const DEFAULT_JWT_HEADER: &str = "X-Flowgate-Jwt";
/// Header the `authentik` header preset uses.
pub const AUTHENTIK_JWT_HEADER: &str = "X-authentik-jwt";
/// Default `iss` claim.
pub const DEFAULT_JWT_ISSUER: &str = "flowgate";
/// Default and longest lifetime of a token: 5 minutes.
pub const MAX_JWT_TTL: Duration = Duration::from_secs(300);
/// Shortest lifetime accepted: 10 seconds.
pub const MIN_JWT_TTL: Duration = Duration::from_secs(10);

/// Signature algorithm of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlg {
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl JwtAlg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }
}

enum Pair {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A signing key with its public JWK.
#[derive(Clone)]
pub struct JwtKey {
    pair: Arc<Pair>,
    /// Algorithm.
    pub alg: JwtAlg,
    /// Key id (RFC 7638 thumbprint).
    pub kid: String,
    /// The public key as a JWK (`kty`, `crv`, `x`, `y`, `kid`, `alg`, `use`).
    pub jwk: Value,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JwtKey({} {})", self.alg.as_str(), self.kid)
    }
}

impl PartialEq for JwtKey {
    fn eq(&self, other: &Self) -> bool {
        self.kid == other.kid
    }
}

// === impl JwtKey ===

impl JwtKey {
    /// Parses a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`), P-256 or Ed25519.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let der = match rustls_pemfile::read_one(&mut pem.as_bytes()) {
            Ok(Some(rustls_pemfile::Item::Pkcs8Key(k))) => k.secret_pkcs8_der().to_vec(),
            Ok(Some(rustls_pemfile::Item::Sec1Key(_))) => {
                return Err(
                    "an EC PRIVATE KEY (SEC1) is not PKCS#8: convert it with `openssl pkcs8 -topk8 -nocrypt`".into(),
                )
            }
            Ok(Some(_)) => return Err("not a PKCS#8 private key (expected -----BEGIN PRIVATE KEY-----)".into()),
            Ok(None) | Err(_) => return Err("no PEM private key found".into()),
        };
        let rng = ring::rand::SystemRandom::new();
        if let Ok(k) = EcdsaKeyPair::from_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng) {
            let public = k.public_key().as_ref();
            // Uncompressed point: 0x04 || X (32) || Y (32).
            if public.len() != 65 {
                return Err("unexpected P-256 public key length".into());
            }
            let (x, y) = (B64.encode(&public[1..33]), B64.encode(&public[33..65]));
            let thumb = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
            let kid = thumbprint(&thumb);
            let jwk = json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig" });
            return Ok(Self {
                pair: Arc::new(Pair::Ec(k)),
                alg: JwtAlg::Es256,
                kid,
                jwk,
            });
        }
        if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der) {
            let x = B64.encode(k.public_key().as_ref());
            let thumb = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
            let kid = thumbprint(&thumb);
            let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig" });
            return Ok(Self {
                pair: Arc::new(Pair::Ed(k)),
                alg: JwtAlg::EdDsa,
                kid,
                jwk,
            });
        }
        Err("unsupported key (expected a P-256 key for ES256 or an Ed25519 key for EdDSA)".into())
    }

    /// A compact JWS of `claims` signed with this key (`typ: JWT`, `kid` in the header).
    pub fn sign(&self, claims: &Value) -> Result<String, String> {
        let header = json!({ "alg": self.alg.as_str(), "typ": "JWT", "kid": self.kid });
        let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let sig = match &*self.pair {
            Pair::Ec(k) => k
                .sign(&ring::rand::SystemRandom::new(), input.as_bytes())
                .map_err(|_| "signing failed".to_string())?
                .as_ref()
                .to_vec(),
            Pair::Ed(k) => k.sign(input.as_bytes()).as_ref().to_vec(),
        };
        Ok(format!("{input}.{}", B64.encode(sig)))
    }
}

fn thumbprint(canonical: &str) -> String {
    use sha2::Digest;
    B64.encode(sha2::Sha256::digest(canonical.as_bytes()))
}

/// `apps[].jwt`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtSettings {
    /// Header the token is sent in.
    pub header: String,
    /// `iss` claim.
    pub issuer: String,
    /// Lifetime of a token (`exp` - `iat`), at most [`MAX_JWT_TTL`].
    pub ttl: Duration,
    /// The key that signs.
    pub key: JwtKey,
    /// Keys published in the JWKS but not used to sign: the previous key (still trusted during
    /// a rotation's overlap) and the next one (published before it signs).
    pub published: Vec<JwtKey>,
}

/// The JWKS (`{"keys": [...]}`) of every key in `settings`, each key once.
pub fn jwks<'a>(settings: impl Iterator<Item = &'a JwtSettings>) -> Value {
    let mut seen = std::collections::BTreeSet::new();
    let mut keys = Vec::new();
    for s in settings {
        for k in std::iter::once(&s.key).chain(s.published.iter()) {
            if seen.insert(k.kid.clone()) {
                keys.push(k.jwk.clone());
            }
        }
    }
    json!({ "keys": keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn es256_pem() -> String {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        kp.serialize_pem()
    }

    #[test]
    fn es256_and_eddsa_keys_sign() {
        let k = JwtKey::from_pem(&es256_pem()).unwrap();
        assert_eq!(k.alg, JwtAlg::Es256);
        let t = k.sign(&json!({ "sub": "alice" })).unwrap();
        assert_eq!(t.split('.').count(), 3);
        let sig = B64.decode(t.rsplit('.').next().unwrap()).unwrap();
        assert_eq!(sig.len(), 64);
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let k = JwtKey::from_pem(&ed.serialize_pem()).unwrap();
        assert_eq!(k.alg, JwtAlg::EdDsa);
        let t = k.sign(&json!({ "sub": "alice" })).unwrap();
        let (input, sig) = t.rsplit_once('.').unwrap();
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ED25519,
            B64.decode(k.jwk["x"].as_str().unwrap()).unwrap(),
        );
        public.verify(input.as_bytes(), &B64.decode(sig).unwrap()).unwrap();
    }

    #[test]
    fn other_keys_are_refused_with_a_reason() {
        assert!(JwtKey::from_pem("nonsense").is_err());
        let rsa_like = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(JwtKey::from_pem(rsa_like).is_err());
        let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        assert!(JwtKey::from_pem(&p384.serialize_pem())
            .unwrap_err()
            .contains("unsupported"));
    }
}
