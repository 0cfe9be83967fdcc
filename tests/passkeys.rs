//! Passkeys (WebAuthn) over HTTP, through the authentik-compatible JSON executor, with a
//! software authenticator in the test: ring keys make real attestation objects and real
//! signatures, and the test builds each hostile variant itself (wrong origin, wrong RP id,
//! replayed challenge, counter going back, another user's credential, a removed credential).
//! The gateway is reached as `localhost` (an IP address cannot be an RP id). Managing passkeys
//! and where they are offered is in `passkeys_management.rs`.

use crate::common::*;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub(crate) const LOGIN: &str = "default-authentication-flow";
pub(crate) const PASSWORDLESS: &str = "default-passwordless-flow";
pub(crate) const SETUP: &str = "default-authenticator-webauthn-setup";
pub(crate) const ALICE_PW: &str = "correct horse battery staple";
pub(crate) const BOB_PW: &str = "bob's secret 42";

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn unb64(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).unwrap()
}

/// A software authenticator holding one ES256 credential.
pub(crate) struct SoftKey {
    key: EcdsaKeyPair,
    pub(crate) id: Vec<u8>,
    user_handle: Vec<u8>,
    count: u32,
    /// Whether assertions carry the user-verified flag (PIN, biometrics).
    pub(crate) verified: bool,
}

impl SoftKey {
    pub(crate) fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let mut id = vec![0u8; 16];
        ring::rand::SecureRandom::fill(&rng, &mut id).unwrap();
        Self {
            key,
            id,
            user_handle: Vec::new(),
            count: 0,
            verified: true,
        }
    }

    fn cose(&self) -> Vec<u8> {
        use ciborium::Value as V;
        let p = self.key.public_key().as_ref();
        let v = V::Map(vec![
            (V::from(1), V::from(2)),
            (V::from(3), V::from(-7)),
            (V::from(-1), V::from(1)),
            (V::from(-2), V::Bytes(p[1..33].to_vec())),
            (V::from(-3), V::Bytes(p[33..65].to_vec())),
        ]);
        let mut out = Vec::new();
        ciborium::ser::into_writer(&v, &mut out).unwrap();
        out
    }

    fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false}))
            .unwrap()
    }

    /// `navigator.credentials.create()` for these creation options, as JSON.
    pub(crate) fn register(&mut self, options: &Value, origin: &str) -> Value {
        use ciborium::Value as V;
        self.user_handle = unb64(options["user"]["id"].as_str().unwrap());
        let rp_id = options["rp"]["id"].as_str().unwrap();
        let mut ad = Sha256::digest(rp_id.as_bytes()).to_vec();
        ad.push(0x01 | 0x04 | 0x40);
        ad.extend_from_slice(&0u32.to_be_bytes());
        ad.extend_from_slice(&[0u8; 16]);
        ad.extend_from_slice(&(self.id.len() as u16).to_be_bytes());
        ad.extend_from_slice(&self.id);
        ad.extend_from_slice(&self.cose());
        let att = V::Map(vec![
            (V::from("fmt"), V::from("none")),
            (V::from("attStmt"), V::Map(vec![])),
            (V::from("authData"), V::Bytes(ad)),
        ]);
        let mut att_bytes = Vec::new();
        ciborium::ser::into_writer(&att, &mut att_bytes).unwrap();
        let cd = Self::client_data("webauthn.create", options["challenge"].as_str().unwrap(), origin);
        json!({"id": b64(&self.id), "rawId": b64(&self.id), "type": "public-key",
               "response": {"clientDataJSON": b64(&cd), "attestationObject": b64(&att_bytes)}})
    }

    /// An assertion for `challenge`, with every field the test may falsify.
    pub(crate) fn assertion(&mut self, challenge: &str, origin: &str, rp_id: &str, count: u32) -> Value {
        self.count = count;
        let cd = Self::client_data("webauthn.get", challenge, origin);
        let mut ad = Sha256::digest(rp_id.as_bytes()).to_vec();
        ad.push(if self.verified { 0x01 | 0x04 } else { 0x01 });
        ad.extend_from_slice(&count.to_be_bytes());
        let mut msg = ad.clone();
        msg.extend_from_slice(&Sha256::digest(&cd));
        let sig = self.key.sign(&SystemRandom::new(), &msg).unwrap();
        json!({"id": b64(&self.id), "rawId": b64(&self.id), "type": "public-key",
               "response": {"clientDataJSON": b64(&cd), "authenticatorData": b64(&ad),
                            "signature": b64(sig.as_ref()), "userHandle": b64(&self.user_handle)}})
    }

    /// The next honest assertion.
    pub(crate) fn sign(&mut self, challenge: &str, origin: &str, rp_id: &str) -> Value {
        let next = self.count + 1;
        self.assertion(challenge, origin, rp_id, next)
    }
}

/// A JSON-executor client on `http://localhost:<port>`.
pub(crate) struct Api {
    pub(crate) c: reqwest::Client,
    pub(crate) origin: String,
}

impl Api {
    pub(crate) fn new(gw: &TestGateway) -> Self {
        let c = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .resolve("localhost", gw.addr)
            .build()
            .unwrap();
        Self {
            c,
            origin: format!("http://localhost:{}", gw.addr.port()),
        }
    }

    fn url(&self, slug: &str) -> String {
        format!("{}/.flowgate/api/v3/flows/executor/{slug}/", self.origin)
    }

    pub(crate) async fn get(&self, slug: &str) -> Value {
        let r = self.c.get(self.url(slug)).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {slug}");
        r.json().await.unwrap()
    }

    /// POSTs `body`; a stage done (302 to the executor) is followed by the next GET.
    pub(crate) async fn post(&self, slug: &str, body: Value) -> Value {
        let r = self
            .c
            .post(self.url(slug))
            .header("origin", &self.origin)
            .json(&body)
            .send()
            .await
            .unwrap();
        if r.status() == 302 {
            return self.get(slug).await;
        }
        assert_eq!(r.status(), 200, "POST {slug}");
        r.json().await.unwrap()
    }

    pub(crate) async fn password_login(&self, user: &str, password: &str) -> Value {
        let c = self.get(LOGIN).await;
        assert_eq!(c["component"], "ak-stage-identification");
        let c = self.post(LOGIN, json!({"uid_field": user})).await;
        assert_eq!(c["component"], "ak-stage-password", "{c}");
        self.post(LOGIN, json!({"password": password})).await
    }

    /// The upstream's view of this client: who it is logged in as (`None`: sent to log in).
    pub(crate) async fn who(&self, gw: &TestGateway) -> Option<String> {
        let r = self.c.get(format!("{}/private", self.origin)).send().await.unwrap();
        if r.status() != 200 {
            return None;
        }
        gw.upstream.last().header("x-forwarded-user").map(str::to_string)
    }
}

/// Makes a forged assertion for a challenge.
type Forge = Box<dyn Fn(&mut SoftKey, &str) -> Value>;

pub(crate) fn rejected(c: &Value) -> bool {
    c["response_errors"].is_object()
}

/// Registers a passkey for the logged-in `api` client through the setup flow.
pub(crate) async fn register(api: &Api, key: &mut SoftKey) -> Value {
    let c = api.get(SETUP).await;
    assert_eq!(c["component"], "ak-stage-authenticator-webauthn", "{c}");
    let reg = &c["registration"];
    assert_eq!(reg["rp"]["id"], "localhost");
    assert_eq!(reg["attestation"], "none");
    let cred = key.register(reg, &api.origin);
    api.post(SETUP, json!({"response": cred, "name": "Laptop"})).await
}

pub(crate) fn webauthn_challenge(c: &Value) -> Value {
    c["device_challenges"]
        .as_array()
        .unwrap_or_else(|| panic!("no device_challenges in {c}"))
        .iter()
        .find(|d| d["device_class"] == "webauthn")
        .unwrap_or_else(|| panic!("no webauthn challenge in {c}"))["challenge"]
        .clone()
}

#[tokio::test]
async fn register_then_second_factor_passwordless_and_autofill() {
    let gw = TestGateway::start_with(DEFAULT_APP, NO_LIMITS).await;
    let alice = users(&gw).get_by_username("alice").await.unwrap().unwrap();
    let mut key = SoftKey::new();

    // Registration by the logged-in owner.
    let api = Api::new(&gw);
    let done = api.password_login("alice", ALICE_PW).await;
    assert_eq!(done["component"], "xak-flow-redirect", "{done}");
    let done = register(&api, &mut key).await;
    assert_eq!(done["component"], "xak-flow-redirect", "{done}");
    let stored = users(&gw).passkeys(alice.id).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].name, "Laptop");
    assert_eq!(stored[0].credential_id, b64(&key.id));
    // The user handle is alice's stable uid.
    assert_eq!(key.user_handle, alice.uid.as_bytes());

    // Second factor: password, then the passkey (the challenge allows alice's credential).
    let api = Api::new(&gw);
    let c = api.password_login("alice", ALICE_PW).await;
    assert_eq!(c["component"], "ak-stage-authenticator-validate", "{c}");
    let options = webauthn_challenge(&c);
    assert_eq!(options["rpId"], "localhost");
    assert_eq!(options["allowCredentials"][0]["id"], b64(&key.id));
    let a = key.sign(options["challenge"].as_str().unwrap(), &api.origin, "localhost");
    let done = api.post(LOGIN, json!({"webauthn": a})).await;
    assert_eq!(done["component"], "xak-flow-redirect", "{done}");
    assert_eq!(api.who(&gw).await.as_deref(), Some("alice"));

    // Passwordless flow: no username, an empty allow list, the owner is logged in.
    let api = Api::new(&gw);
    let c = api.get(PASSWORDLESS).await;
    assert_eq!(c["component"], "ak-stage-authenticator-validate");
    let options = webauthn_challenge(&c);
    assert_eq!(options["allowCredentials"], json!([]));
    assert_eq!(options["userVerification"], "required");
    let a = key.sign(options["challenge"].as_str().unwrap(), &api.origin, "localhost");
    let done = api.post(PASSWORDLESS, json!({"webauthn": a})).await;
    assert_eq!(done["component"], "xak-flow-redirect", "{done}");
    assert_eq!(api.who(&gw).await.as_deref(), Some("alice"));

    // Autofill: the identification challenge carries `passkey_challenge`; answering it with
    // `passkey` skips the password and second factor (`auth_webauthn_pwl` in the context,
    // read by the default flow's binding policies).
    let api = Api::new(&gw);
    let c = api.get(LOGIN).await;
    assert_eq!(c["component"], "ak-stage-identification");
    assert_eq!(c["passwordless_url"], "/.flowgate/flow/default-passwordless-flow/");
    let options = c["passkey_challenge"].clone();
    assert_eq!(options["allowCredentials"], json!([]));
    // Autofill asks for user verification: a passkey answer without it is refused, and the
    // page then offers no new autofill request.
    key.verified = false;
    let unverified = key.sign(options["challenge"].as_str().unwrap(), &api.origin, "localhost");
    key.verified = true;
    let c = api.post(LOGIN, json!({"passkey": unverified})).await;
    assert!(rejected(&c), "{c}");
    assert_eq!(c["passkey_challenge"], Value::Null);
    let c = api.get(LOGIN).await;
    let options = c["passkey_challenge"].clone();
    assert_eq!(options["userVerification"], "required");
    let a = key.sign(options["challenge"].as_str().unwrap(), &api.origin, "localhost");
    let done = api.post(LOGIN, json!({"passkey": a})).await;
    assert_eq!(done["component"], "xak-flow-redirect", "{done}");
    assert_eq!(api.who(&gw).await.as_deref(), Some("alice"));
    // The counter moved with every use.
    assert_eq!(users(&gw).passkeys(alice.id).await.unwrap()[0].sign_count, 4);
    gw.stop().await;
}

#[tokio::test]
async fn the_verifier_refuses_every_forgery() {
    let gw = TestGateway::start_with(DEFAULT_APP, NO_LIMITS).await;
    let mut alice_key = SoftKey::new();
    let mut bob_key = SoftKey::new();
    let api = Api::new(&gw);
    api.password_login("alice", ALICE_PW).await;
    register(&api, &mut alice_key).await;
    let api = Api::new(&gw);
    api.password_login("bob", BOB_PW).await;
    register(&api, &mut bob_key).await;

    // One honest passwordless login moves alice's counter to 5.
    let origin = format!("http://localhost:{}", gw.addr.port());
    let api = Api::new(&gw);
    let c = api.get(PASSWORDLESS).await;
    let ch = webauthn_challenge(&c)["challenge"].as_str().unwrap().to_string();
    let a = alice_key.assertion(&ch, &origin, "localhost", 5);
    assert_eq!(
        api.post(PASSWORDLESS, json!({"webauthn": a})).await["component"],
        "xak-flow-redirect"
    );

    // Each forged assertion in the passwordless flow, each in a fresh challenge.
    let api = Api::new(&gw);
    let cases: Vec<(&str, Forge)> = vec![
        (
            "wrong origin",
            Box::new(|k: &mut SoftKey, ch: &str| k.sign(ch, "http://evil.test", "localhost")),
        ),
        (
            "origin on another port",
            Box::new(|k: &mut SoftKey, ch: &str| k.sign(ch, "http://localhost:1", "localhost")),
        ),
        ("wrong rp id hash", {
            let o = origin.clone();
            Box::new(move |k: &mut SoftKey, ch: &str| k.sign(ch, &o, "evil.test"))
        }),
        ("counter going back", {
            let o = origin.clone();
            Box::new(move |k: &mut SoftKey, ch: &str| k.assertion(ch, &o, "localhost", 3))
        }),
        ("counter standing still", {
            let o = origin.clone();
            Box::new(move |k: &mut SoftKey, ch: &str| k.assertion(ch, &o, "localhost", 5))
        }),
        ("no user verification (required)", {
            let o = origin.clone();
            Box::new(move |k: &mut SoftKey, ch: &str| {
                k.verified = false;
                let a = k.sign(ch, &o, "localhost");
                k.verified = true;
                a
            })
        }),
        ("another challenge", {
            let o = origin.clone();
            Box::new(move |k: &mut SoftKey, _: &str| k.sign(&b64(&[7u8; 32]), &o, "localhost"))
        }),
    ];
    for (what, forge) in &cases {
        let c = api.get(PASSWORDLESS).await;
        let ch = webauthn_challenge(&c)["challenge"].as_str().unwrap().to_string();
        let a = forge(&mut alice_key, &ch);
        let c = api.post(PASSWORDLESS, json!({"webauthn": a})).await;
        assert!(rejected(&c), "{what}: {c}");
        assert_eq!(api.who(&gw).await, None, "{what}");
        // Start over with a fresh plan for the next case (five failures cancel the flow).
        api.c
            .get(format!("{origin}/.flowgate/flows/-/cancel/"))
            .send()
            .await
            .unwrap();
    }
    // The counter did not move on refusals.
    let alice = users(&gw).get_by_username("alice").await.unwrap().unwrap();
    assert_eq!(users(&gw).passkeys(alice.id).await.unwrap()[0].sign_count, 5);

    // Replay: a challenge is used up by the first response, whatever its outcome; a valid
    // assertion for it then fails, and so does an assertion that already logged in.
    let api = Api::new(&gw);
    let c = api.get(PASSWORDLESS).await;
    let ch = webauthn_challenge(&c)["challenge"].as_str().unwrap().to_string();
    let bad = alice_key.sign(&ch, "http://evil.test", "localhost");
    assert!(rejected(&api.post(PASSWORDLESS, json!({"webauthn": bad})).await));
    let late = alice_key.sign(&ch, &origin, "localhost");
    assert!(
        rejected(&api.post(PASSWORDLESS, json!({"webauthn": late})).await),
        "used-up challenge"
    );
    let c = api.get(PASSWORDLESS).await;
    let ch = webauthn_challenge(&c)["challenge"].as_str().unwrap().to_string();
    let good = alice_key.sign(&ch, &origin, "localhost");
    let done = api.post(PASSWORDLESS, json!({"webauthn": good.clone()})).await;
    assert_eq!(done["component"], "xak-flow-redirect", "{done}");
    let other = Api::new(&gw);
    other.get(PASSWORDLESS).await;
    assert!(
        rejected(&other.post(PASSWORDLESS, json!({"webauthn": good})).await),
        "replayed assertion"
    );
    assert_eq!(other.who(&gw).await, None);

    // The challenge is bound to the pre-authentication session: another browser's challenge
    // signed and posted here fails.
    let victim = Api::new(&gw);
    let c = victim.get(PASSWORDLESS).await;
    let ch = webauthn_challenge(&c)["challenge"].as_str().unwrap().to_string();
    let attacker = Api::new(&gw);
    attacker.get(PASSWORDLESS).await;
    let a = alice_key.sign(&ch, &origin, "localhost");
    assert!(rejected(&attacker.post(PASSWORDLESS, json!({"webauthn": a})).await));

    // Another user's credential as alice's second factor: refused.
    let api = Api::new(&gw);
    let c = api.password_login("alice", ALICE_PW).await;
    let ch = webauthn_challenge(&c)["challenge"].as_str().unwrap().to_string();
    let a = bob_key.sign(&ch, &origin, "localhost");
    let c = api.post(LOGIN, json!({"webauthn": a})).await;
    assert!(rejected(&c), "bob's passkey for alice: {c}");
    assert_eq!(api.who(&gw).await, None);
    // Her own passkey still works in the same plan.
    let ch = webauthn_challenge(&c)["challenge"].as_str().unwrap().to_string();
    let a = alice_key.sign(&ch, &origin, "localhost");
    let done = api.post(LOGIN, json!({"webauthn": a})).await;
    assert_eq!(done["component"], "xak-flow-redirect", "{done}");
    assert_eq!(api.who(&gw).await.as_deref(), Some("alice"));
    gw.stop().await;
}
