//! The verifier against a software authenticator: ring ECDSA P-256 and Ed25519 keys produce
//! real attestation objects and signatures; every check is shown to refuse.

use super::*;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde_json::json;

const RP: RelyingParty<'static> = RelyingParty {
    id: "localhost",
    origin: "http://localhost:8080",
};

enum Key {
    Es(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

struct Soft {
    key: Key,
    id: Vec<u8>,
    count: u32,
}

fn cbor(v: &ciborium::Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).unwrap();
    out
}

impl Soft {
    fn es256() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        Self {
            key: Key::Es(key),
            id: vec![7; 16],
            count: 0,
        }
    }

    fn ed25519() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        Self {
            key: Key::Ed(key),
            id: vec![9; 20],
            count: 0,
        }
    }

    fn cose(&self) -> Vec<u8> {
        use ciborium::Value as V;
        let v = match &self.key {
            Key::Es(k) => {
                let p = k.public_key().as_ref();
                V::Map(vec![
                    (V::from(1), V::from(2)),
                    (V::from(3), V::from(-7)),
                    (V::from(-1), V::from(1)),
                    (V::from(-2), V::Bytes(p[1..33].to_vec())),
                    (V::from(-3), V::Bytes(p[33..65].to_vec())),
                ])
            }
            Key::Ed(k) => V::Map(vec![
                (V::from(1), V::from(1)),
                (V::from(3), V::from(-8)),
                (V::from(-1), V::from(6)),
                (V::from(-2), V::Bytes(k.public_key().as_ref().to_vec())),
            ]),
        };
        cbor(&v)
    }

    fn auth_data(&self, rp_id: &str, flags: u8, count: u32, attested: bool) -> Vec<u8> {
        let mut ad = Sha256::digest(rp_id.as_bytes()).to_vec();
        ad.push(flags | if attested { FLAG_AT } else { 0 });
        ad.extend_from_slice(&count.to_be_bytes());
        if attested {
            ad.extend_from_slice(&[0u8; 16]);
            ad.extend_from_slice(&(self.id.len() as u16).to_be_bytes());
            ad.extend_from_slice(&self.id);
            ad.extend_from_slice(&self.cose());
        }
        ad
    }

    fn client_data(kind: &str, challenge: &[u8], origin: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({"type": kind, "challenge": b64(challenge), "origin": origin, "crossOrigin": false}))
            .unwrap()
    }

    fn register(&self, challenge: &[u8], origin: &str, rp_id: &str, flags: u8) -> Value {
        use ciborium::Value as V;
        let att = cbor(&V::Map(vec![
            (V::from("fmt"), V::from("none")),
            (V::from("attStmt"), V::Map(vec![])),
            (V::from("authData"), V::Bytes(self.auth_data(rp_id, flags, 0, true))),
        ]));
        json!({"id": b64(&self.id), "rawId": b64(&self.id), "type": "public-key", "response": {
            "clientDataJSON": b64(&Self::client_data("webauthn.create", challenge, origin)),
            "attestationObject": b64(&att)}})
    }

    fn assert(&mut self, challenge: &[u8], origin: &str, rp_id: &str, flags: u8, count: u32) -> Value {
        self.count = count;
        let cd = Self::client_data("webauthn.get", challenge, origin);
        let ad = self.auth_data(rp_id, flags, count, false);
        let mut msg = ad.clone();
        msg.extend_from_slice(&Sha256::digest(&cd));
        let sig = match &self.key {
            Key::Es(k) => k.sign(&SystemRandom::new(), &msg).unwrap().as_ref().to_vec(),
            Key::Ed(k) => k.sign(&msg).as_ref().to_vec(),
        };
        json!({"id": b64(&self.id), "rawId": b64(&self.id), "type": "public-key", "response": {
            "clientDataJSON": b64(&cd), "authenticatorData": b64(&ad), "signature": b64(&sig), "userHandle": null}})
    }
}

const UP_UV: u8 = FLAG_UP | FLAG_UV;

#[test]
fn registration_and_assertion_round_trip_for_es256_and_ed25519() {
    for mut soft in [Soft::es256(), Soft::ed25519()] {
        let ch = [1u8; 32];
        let reg = soft.register(&ch, RP.origin, RP.id, UP_UV);
        let cred = verify_registration(&RP, &ch, UserVerification::Required, &reg).unwrap();
        assert_eq!(cred.id, soft.id);
        assert!(cred.user_verified);
        let ch2 = [2u8; 32];
        let a = parse_assertion(&soft.assert(&ch2, RP.origin, RP.id, UP_UV, 5)).unwrap();
        let v = verify_assertion(&RP, &ch2, UserVerification::Required, &a, &cred.public_key, 0).unwrap();
        assert_eq!(v.sign_count, 5);
        // The same JSON as a string (the HTML form posts it so).
        let s = Value::String(soft.assert(&ch2, RP.origin, RP.id, UP_UV, 6).to_string());
        assert!(parse_assertion(&s).is_ok());
    }
}

#[test]
fn each_check_refuses() {
    let mut soft = Soft::es256();
    let ch = [3u8; 32];
    let reg = soft.register(&ch, RP.origin, RP.id, UP_UV);
    let cred = verify_registration(&RP, &ch, UserVerification::Preferred, &reg).unwrap();
    let reg_err = |v: &Value, uv| verify_registration(&RP, &ch, uv, v).unwrap_err();
    assert_eq!(
        reg_err(
            &soft.register(&[4; 32], RP.origin, RP.id, UP_UV),
            UserVerification::Preferred
        ),
        WebauthnError::Challenge
    );
    assert_eq!(
        reg_err(
            &soft.register(&ch, "http://evil.test", RP.id, UP_UV),
            UserVerification::Preferred
        ),
        WebauthnError::Origin
    );
    assert_eq!(
        reg_err(
            &soft.register(&ch, RP.origin, "evil.test", UP_UV),
            UserVerification::Preferred
        ),
        WebauthnError::RpId
    );
    assert_eq!(
        reg_err(&soft.register(&ch, RP.origin, RP.id, 0), UserVerification::Preferred),
        WebauthnError::UserPresence
    );
    assert_eq!(
        reg_err(
            &soft.register(&ch, RP.origin, RP.id, FLAG_UP),
            UserVerification::Required
        ),
        WebauthnError::UserVerification
    );
    assert!(verify_registration(
        &RP,
        &ch,
        UserVerification::Preferred,
        &soft.register(&ch, RP.origin, RP.id, FLAG_UP)
    )
    .is_ok());

    let check = |a: &Value, stored: u32, key: &[u8]| {
        let a = parse_assertion(a).unwrap();
        verify_assertion(&RP, &ch, UserVerification::Preferred, &a, key, stored)
    };
    assert!(check(&soft.assert(&ch, RP.origin, RP.id, UP_UV, 10), 9, &cred.public_key).is_ok());
    assert_eq!(
        check(&soft.assert(&ch, RP.origin, RP.id, UP_UV, 10), 10, &cred.public_key),
        Err(WebauthnError::Counter)
    );
    assert_eq!(
        check(&soft.assert(&ch, RP.origin, RP.id, UP_UV, 3), 10, &cred.public_key),
        Err(WebauthnError::Counter)
    );
    assert!(check(&soft.assert(&ch, RP.origin, RP.id, UP_UV, 0), 0, &cred.public_key).is_ok());
    assert_eq!(
        check(
            &soft.assert(&[5; 32], RP.origin, RP.id, UP_UV, 11),
            10,
            &cred.public_key
        ),
        Err(WebauthnError::Challenge)
    );
    assert_eq!(
        check(
            &soft.assert(&ch, "https://localhost:8080", RP.id, UP_UV, 11),
            10,
            &cred.public_key
        ),
        Err(WebauthnError::Origin)
    );
    assert_eq!(
        check(
            &soft.assert(&ch, RP.origin, "example.com", UP_UV, 11),
            10,
            &cred.public_key
        ),
        Err(WebauthnError::RpId)
    );
    // Another key's signature.
    let other = Soft::es256();
    assert_eq!(
        check(&soft.assert(&ch, RP.origin, RP.id, UP_UV, 11), 10, &other.cose()),
        Err(WebauthnError::Signature)
    );
    // A registration response is not an assertion.
    assert!(parse_assertion(&reg).is_err());
}

#[test]
fn hostile_input_is_an_error() {
    for v in [
        json!(null),
        json!("x"),
        json!({}),
        json!({"id": "!!", "response": {}}),
        json!({"id": "AA", "response": {"clientDataJSON": "AA"}}),
    ] {
        assert!(parse_assertion(&v).is_err());
        assert!(verify_registration(&RP, &[1; 32], UserVerification::Preferred, &v).is_err());
    }
    let a = parse_assertion(&json!({"id": "AAAA", "response": {"clientDataJSON": b64(b"{}"), "authenticatorData": "AA", "signature": "AA"}})).unwrap();
    assert!(verify_assertion(&RP, &[1; 32], UserVerification::Preferred, &a, b"\xff", 0).is_err());
}

#[test]
fn random_and_truncated_bytes_never_panic() {
    use rand::{Rng, RngCore};
    let mut rng = rand::thread_rng();
    let soft = Soft::es256();
    let real = match soft.register(&[1; 32], RP.origin, RP.id, UP_UV)["response"]["attestationObject"].as_str() {
        Some(s) => unb64(s).unwrap(),
        None => unreachable!(),
    };
    for i in 0..2000 {
        // Random bytes, or the real attestation object cut short or with one byte flipped.
        let bytes = match i % 3 {
            0 => {
                let mut b = vec![0u8; rng.gen_range(0..300)];
                rng.fill_bytes(&mut b);
                b
            }
            1 => real[..rng.gen_range(0..real.len())].to_vec(),
            _ => {
                let mut b = real.clone();
                let at = rng.gen_range(0..b.len());
                b[at] ^= 1 << rng.gen_range(0..8);
                b
            }
        };
        let cd = b64(&Soft::client_data("webauthn.create", &[1; 32], RP.origin));
        let v = json!({"id": b64(&soft.id), "response": {"clientDataJSON": cd, "attestationObject": b64(&bytes)}});
        let _ = verify_registration(&RP, &[1; 32], UserVerification::Preferred, &v);
        let a = json!({"id": "AAAA", "response": {"clientDataJSON": b64(&Soft::client_data("webauthn.get", &[1; 32], RP.origin)),
            "authenticatorData": b64(&bytes), "signature": b64(&bytes)}});
        if let Ok(a) = parse_assertion(&a) {
            let _ = verify_assertion(&RP, &[1; 32], UserVerification::Preferred, &a, &bytes, 0);
            let _ = verify_assertion(&RP, &[1; 32], UserVerification::Preferred, &a, &soft.cose(), 0);
        }
    }
}

#[test]
fn huge_declared_cbor_lengths_are_errors_not_allocations() {
    for header in [
        &[0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
        &[0x9b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
        &[0xbb, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
        &[0x7b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..],
        &[0x5a, 0xff, 0xff, 0xff, 0xff][..],
    ] {
        let cd = b64(&Soft::client_data("webauthn.create", &[1; 32], RP.origin));
        let v = json!({"id": "AAAA", "response": {"clientDataJSON": cd, "attestationObject": b64(header)}});
        assert!(verify_registration(&RP, &[1; 32], UserVerification::Preferred, &v).is_err());
    }
    // Deep nesting (arrays of arrays) stops at ciborium's recursion limit, not the stack.
    let deep = vec![0x81u8; 40_000];
    let cd = b64(&Soft::client_data("webauthn.create", &[1; 32], RP.origin));
    let v = json!({"id": "AAAA", "response": {"clientDataJSON": cd, "attestationObject": b64(&deep)}});
    assert!(verify_registration(&RP, &[1; 32], UserVerification::Preferred, &v).is_err());
}
