//! A small OpenID provider written for the tests (hyper, loopback, port 0): discovery, a key set
//! (ES256, rotatable), an authorization endpoint that approves at once (no login page: it
//! redirects back with a code), a token endpoint that checks the client secret, the code (single
//! use) and the PKCE verifier, and a userinfo endpoint. What its ID tokens say is set by the test
//! through [`Forge`]: the honest token, or one of the forgeries a gateway must refuse. It can
//! also answer slowly, and it records what it was sent.
#![allow(dead_code)]

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Map, Value};
use sha2::Digest;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const CLIENT_ID: &str = "flowgate-test";
pub const CLIENT_SECRET: &str = "s3cret-of-the-test-client";

/// What the next ID tokens are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forge {
    /// Honest.
    Good,
    /// `aud` names another client.
    OtherAudience,
    /// `aud` has this client and another, `azp` the other.
    OtherAzp,
    /// `exp` has passed.
    Expired,
    /// `iat` an hour ahead.
    Future,
    /// Signed with a key the provider does not publish.
    UnknownKey,
    /// `alg: none`, no signature.
    AlgNone,
    /// HS256 with the provider's public key as the HMAC secret.
    Hs256PublicKey,
    /// `nonce` is not the one sent.
    WrongNonce,
    /// `iss` is another issuer.
    WrongIssuer,
    /// The payload changed after signing.
    Tampered,
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

struct Key {
    pair: EcdsaKeyPair,
    kid: String,
}

impl Key {
    fn new(kid: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        Self { pair, kid: kid.into() }
    }

    fn jwk(&self) -> Value {
        let p = self.pair.public_key().as_ref();
        json!({ "kty": "EC", "crv": "P-256", "x": b64(&p[1..33]), "y": b64(&p[33..65]), "kid": self.kid, "alg": "ES256", "use": "sig" })
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self.pair.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", b64(sig.as_ref()))
    }
}

/// One authorization request as received.
#[derive(Debug, Clone, Default)]
pub struct Authorized {
    pub params: HashMap<String, String>,
}

struct Grant {
    nonce: String,
    challenge: String,
    redirect_uri: String,
}

struct State {
    key: Key,
    rotations: u32,
    forge: Forge,
    /// The claims of the user the provider logs in.
    user: Map<String, Value>,
    /// Unix seconds the tokens are issued at.
    now_s: i64,
    delay: Duration,
    grants: HashMap<String, Grant>,
    tokens: HashMap<String, Map<String, Value>>,
    authorized: Vec<Authorized>,
    token_requests: Vec<Vec<(String, String)>>,
    jwks_fetches: u32,
}

/// A running provider; it stops when dropped.
pub struct TestProvider {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestProvider {
    /// Starts a provider that issues tokens at `now_s` (the gateway's clock) for a user with
    /// these claims (`sub` included).
    pub async fn spawn(now_s: i64, user: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            key: Key::new("key-1"),
            rotations: 1,
            forge: Forge::Good,
            user: user.as_object().cloned().unwrap_or_default(),
            now_s,
            delay: Duration::ZERO,
            grants: HashMap::new(),
            tokens: HashMap::new(),
            authorized: Vec::new(),
            token_requests: Vec::new(),
            jwks_fetches: 0,
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let st = st.clone();
                        async move { Ok::<_, hyper::Error>(answer(addr, st, req).await) }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
                });
            }
        });
        Self { addr, state, task }
    }

    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn well_known(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer())
    }

    pub fn set_forge(&self, f: Forge) {
        self.state.lock().unwrap().forge = f;
    }

    pub fn set_user(&self, user: Value) {
        self.state.lock().unwrap().user = user.as_object().cloned().unwrap_or_default();
    }

    pub fn set_delay(&self, d: Duration) {
        self.state.lock().unwrap().delay = d;
    }

    /// A new signing key; the old one is no longer published.
    pub fn rotate(&self) {
        let mut s = self.state.lock().unwrap();
        s.rotations += 1;
        s.key = Key::new(&format!("key-{}", s.rotations));
    }

    pub fn authorized(&self) -> Vec<Authorized> {
        self.state.lock().unwrap().authorized.clone()
    }

    pub fn token_requests(&self) -> Vec<Vec<(String, String)>> {
        self.state.lock().unwrap().token_requests.clone()
    }

    pub fn jwks_fetches(&self) -> u32 {
        self.state.lock().unwrap().jwks_fetches
    }
}

fn json_resp(status: u16, v: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())))
        .unwrap()
}

fn query_map(q: &str) -> HashMap<String, String> {
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

async fn answer(addr: SocketAddr, st: Arc<Mutex<State>>, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let delay = st.lock().unwrap().delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let issuer = format!("http://{addr}");
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    match path.as_str() {
        "/.well-known/openid-configuration" => json_resp(
            200,
            &json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{issuer}/authorize"),
                "token_endpoint": format!("{issuer}/token"),
                "userinfo_endpoint": format!("{issuer}/userinfo"),
                "jwks_uri": format!("{issuer}/jwks"),
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
                "code_challenge_methods_supported": ["S256"],
            }),
        ),
        "/jwks" => {
            let mut s = st.lock().unwrap();
            s.jwks_fetches += 1;
            json_resp(200, &json!({ "keys": [s.key.jwk()] }))
        }
        "/authorize" => {
            let p = query_map(&query);
            let mut s = st.lock().unwrap();
            s.authorized.push(Authorized { params: p.clone() });
            let code = format!("code-{}", s.authorized.len());
            s.grants.insert(
                code.clone(),
                Grant {
                    nonce: p.get("nonce").cloned().unwrap_or_default(),
                    challenge: p.get("code_challenge").cloned().unwrap_or_default(),
                    redirect_uri: p.get("redirect_uri").cloned().unwrap_or_default(),
                },
            );
            let back = p.get("redirect_uri").cloned().unwrap_or_default();
            let q = form_urlencoded::Serializer::new(String::new())
                .append_pair("code", &code)
                .append_pair("state", p.get("state").map(String::as_str).unwrap_or(""))
                .finish();
            Response::builder()
                .status(302)
                .header("location", format!("{back}?{q}"))
                .body(Full::new(Bytes::new()))
                .unwrap()
        }
        "/token" => {
            let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
            let f: HashMap<String, String> = form.iter().cloned().collect();
            let mut s = st.lock().unwrap();
            s.token_requests.push(form.clone());
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
            );
            // client_secret_basic, or client_secret_post as GitHub takes it.
            let posted = f.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                && f.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
            if auth != expected && !posted {
                return json_resp(401, &json!({ "error": "invalid_client" }));
            }
            let Some(grant) = f.get("code").and_then(|c| s.grants.remove(c)) else {
                return json_resp(400, &json!({ "error": "invalid_grant" }));
            };
            let verifier = f.get("code_verifier").cloned().unwrap_or_default();
            if b64(&sha2::Sha256::digest(verifier.as_bytes())) != grant.challenge
                || f.get("redirect_uri") != Some(&grant.redirect_uri)
            {
                return json_resp(400, &json!({ "error": "invalid_grant" }));
            }
            let id_token = forge(&s, &issuer, &grant.nonce);
            let access = format!("access-{}", s.tokens.len() + 1);
            let user = s.user.clone();
            s.tokens.insert(access.clone(), user);
            json_resp(
                200,
                &json!({ "access_token": access, "token_type": "Bearer", "expires_in": 300, "id_token": id_token }),
            )
        }
        // GitHub's user API: the user (its public `email` is not vouched for) and the address list.
        "/user" | "/user/emails" => {
            let s = st.lock().unwrap();
            let Some(u) = auth.strip_prefix("Bearer ").and_then(|t| s.tokens.get(t)) else {
                return json_resp(401, &json!({ "message": "Bad credentials" }));
            };
            if path == "/user" {
                json_resp(
                    200,
                    &json!({ "id": u.get("id"), "login": u.get("login"), "name": u.get("name"), "email": "public@elsewhere.example" }),
                )
            } else {
                json_resp(200, u.get("emails").unwrap_or(&json!([])))
            }
        }
        "/userinfo" => {
            let s = st.lock().unwrap();
            match auth.strip_prefix("Bearer ").and_then(|t| s.tokens.get(t)) {
                Some(u) => json_resp(200, &Value::Object(u.clone())),
                None => json_resp(401, &json!({ "error": "invalid_token" })),
            }
        }
        _ => json_resp(404, &json!({ "error": "not found" })),
    }
}

/// The ID token the provider's [`Forge`] setting asks for.
fn forge(s: &State, issuer: &str, nonce: &str) -> String {
    let now = s.now_s;
    let mut claims = s.user.clone();
    for (k, v) in [
        ("iss", json!(issuer)),
        ("aud", json!(CLIENT_ID)),
        ("iat", json!(now)),
        ("exp", json!(now + 300)),
        ("nonce", json!(nonce)),
    ] {
        claims.insert(k.into(), v);
    }
    let header = json!({ "alg": "ES256", "typ": "JWT", "kid": s.key.kid });
    match s.forge {
        Forge::Good => {}
        Forge::OtherAudience => {
            claims.insert("aud".into(), json!("another-client"));
        }
        Forge::OtherAzp => {
            claims.insert("aud".into(), json!([CLIENT_ID]));
            claims.insert("azp".into(), json!("another-client"));
        }
        Forge::Expired => {
            claims.insert("iat".into(), json!(now - 600));
            claims.insert("exp".into(), json!(now - 10));
        }
        Forge::Future => {
            claims.insert("iat".into(), json!(now + 3600));
            claims.insert("exp".into(), json!(now + 7200));
        }
        Forge::WrongNonce => {
            claims.insert("nonce".into(), json!("not-the-nonce"));
        }
        Forge::WrongIssuer => {
            claims.insert("iss".into(), json!("http://evil.example"));
        }
        Forge::UnknownKey => {
            return Key::new(&s.key.kid.replace("key", "rogue")).sign(
                &json!({ "alg": "ES256", "typ": "JWT", "kid": "rogue" }),
                &Value::Object(claims),
            );
        }
        Forge::AlgNone => {
            let h = json!({ "alg": "none", "typ": "JWT" });
            return format!(
                "{}.{}.",
                b64(h.to_string().as_bytes()),
                b64(Value::Object(claims).to_string().as_bytes())
            );
        }
        Forge::Hs256PublicKey => {
            let h = json!({ "alg": "HS256", "typ": "JWT", "kid": s.key.kid });
            let input = format!(
                "{}.{}",
                b64(h.to_string().as_bytes()),
                b64(Value::Object(claims).to_string().as_bytes())
            );
            let secret = s.key.jwk().to_string();
            let tag = ring::hmac::sign(
                &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes()),
                input.as_bytes(),
            );
            return format!("{input}.{}", b64(tag.as_ref()));
        }
        Forge::Tampered => {
            let good = s.key.sign(&header, &Value::Object(claims.clone()));
            let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
            claims.insert("sub".into(), json!("someone-else"));
            parts[1] = b64(Value::Object(claims).to_string().as_bytes());
            return parts.join(".");
        }
    }
    s.key.sign(&header, &Value::Object(claims))
}

/// npm's `oidc-provider` run by node (`common/oidc_provider.mjs`; `./dev deps` installs the
/// package outside the repository). Killed when dropped.
pub struct NodeProvider {
    pub port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for NodeProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where `./dev deps` put the npm packages.
pub fn npm_dir() -> std::path::PathBuf {
    if let Ok(d) = std::env::var("FLOWGATE_NPM_DIR") {
        return d.into();
    }
    let cache = std::env::var("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache"));
    cache.join("flowgate").join("npm")
}

impl NodeProvider {
    /// Starts the provider on `port` with signing key `kid`, a client whose callback is
    /// `redirect_uri`, and `user` (claims with `sub` and `preferred_username`) whose password is
    /// `password`.
    pub fn start(port: u16, kid: &str, redirect_uri: &str, user: &Value, password: &str) -> Self {
        let npm = npm_dir();
        assert!(
            npm.join("node_modules/oidc-provider/package.json").exists(),
            "oidc-provider is not installed in {} (run ./dev deps)",
            npm.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("provider.mjs");
        std::fs::write(&script, include_str!("oidc_provider.mjs")).unwrap();
        let cfg = json!({
            "npm_dir": npm, "port": port, "kid": kid, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "redirect_uri": redirect_uri, "user": user, "password": password,
        });
        let mut child = std::process::Command::new("node")
            .arg(&script)
            .arg(cfg.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("node runs");
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "oidc-provider did not start:\n{}",
            std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
        );
        // Keep reading its notices: a closed pipe would kill it at the next line it prints.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Self { port, child, _dir: dir }
    }

    pub fn well_known(&self) -> String {
        format!("http://127.0.0.1:{}/.well-known/openid-configuration", self.port)
    }
}
