//! Signed identity (`apps[].jwt`): the app receives a JWT that it verifies, with a JWT library
//! other than the one flowgate signs with (`jsonwebtoken`), against the keys it fetched over
//! HTTP from `/.flowgate/jwks.json`; the claims name the user, the app and the groups, live at
//! most five minutes; during a rotation both keys are published; a client's copy of the header
//! never reaches the app; the authentik preset names the header `X-authentik-jwt`.

use crate::common::*;
use flowgate::session::Clock;
use jsonwebtoken::{decode, decode_header, jwk::JwkSet, Algorithm, DecodingKey, Validation};
use serde_json::Value;

fn write_key(dir: &std::path::Path, name: &str, alg: &'static rcgen::SignatureAlgorithm) -> String {
    let kp = rcgen::KeyPair::generate_for(alg).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, kp.serialize_pem()).unwrap();
    path.display().to_string()
}

async fn jwks(gw: &TestGateway) -> JwkSet {
    let r = bare_client().get(gw.url("/.flowgate/jwks.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    r.json().await.unwrap()
}

/// Verifies `token` for `aud` against `set` the way an app would: the key by `kid`.
fn verify(set: &JwkSet, token: &str, alg: Algorithm, aud: &str) -> Value {
    let header = decode_header(token).unwrap();
    assert_eq!(header.alg, alg);
    let kid = header.kid.expect("kid in the header");
    let jwk = set.find(&kid).expect("the signing key is published");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut v = Validation::new(alg);
    v.set_audience(&[aud]);
    v.set_issuer(&["flowgate"]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    decode::<Value>(token, &key, &v).expect("the token verifies").claims
}

#[tokio::test]
async fn the_app_verifies_the_jwt_against_the_published_keys() {
    let keys = tempfile::tempdir().unwrap();
    let es = write_key(keys.path(), "es.pem", &rcgen::PKCS_ECDSA_P256_SHA256);
    let old = write_key(keys.path(), "old.pem", &rcgen::PKCS_ECDSA_P256_SHA256);
    let ed = write_key(keys.path(), "ed.pem", &rcgen::PKCS_ED25519);
    let apps = format!(
        "  - name: app\n    upstream: \"http://UPSTREAM\"\n    skip_auth: [\"^/public/\"]\n    jwt: {{ key_file: \"{es}\", previous_key_file: \"{old}\" }}\n\
         \x20 - name: wiki\n    hosts: [wiki.test]\n    upstream: \"http://UPSTREAM\"\n    headers: authentik\n    jwt: {{ key_file: \"{ed}\", ttl: 2m }}\n"
    );
    let gw = TestGateway::start_with(&apps, NO_LIMITS).await;
    let set = jwks(&gw).await;
    assert_eq!(set.keys.len(), 3, "signing, previous and the other app's key: {set:?}");

    let cookie = session_of(&gw, "alice", ALICE_PASSWORD).await;
    let r = bare_client()
        .get(gw.url("/private"))
        .header("cookie", format!("flowgate_session={cookie}"))
        .header("X-Flowgate-Jwt", "forged.token.value")
        .header("x_flowgate_jwt", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = gw.upstream.last();
    let tokens = seen.headers_named("x-flowgate-jwt");
    assert_eq!(tokens.len(), 1, "only flowgate's token reaches the app");
    assert!(seen.header("x_flowgate_jwt").is_none());
    let token = tokens[0].to_string();
    let claims = verify(&set, &token, Algorithm::ES256, "app");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["email"], "alice@example.test");
    assert_eq!(claims["aud"], "app");
    let mut groups: Vec<&str> = claims["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    groups.sort();
    assert_eq!(groups, ["admins", "staff"]);
    let (iat, exp) = (claims["iat"].as_u64().unwrap(), claims["exp"].as_u64().unwrap());
    assert_eq!(iat, gw.clock.now_ms() / 1000, "on the gateway's clock");
    assert_eq!(exp - iat, 300);
    // The previous key is published but does not sign.
    let kid_of = |p: &str| {
        flowgate::config::values::jwt::JwtKey::from_pem(&std::fs::read_to_string(p).unwrap())
            .unwrap()
            .kid
    };
    let (old_kid, new_kid) = (kid_of(&old), kid_of(&es));
    assert_eq!(decode_header(&token).unwrap().kid.unwrap(), new_kid);
    assert!(set.find(&old_kid).is_some(), "the previous key stays published");

    // The token is not valid for another app.
    let header = decode_header(&token).unwrap();
    let mut v = Validation::new(Algorithm::ES256);
    v.set_audience(&["wiki"]);
    let key = DecodingKey::from_jwk(set.find(&header.kid.unwrap()).unwrap()).unwrap();
    assert!(decode::<Value>(&token, &key, &v).is_err());

    // Skip-auth routes carry no identity: a client's token is stripped and none is set.
    let r = bare_client()
        .get(gw.url("/public/x"))
        .header("X-Flowgate-Jwt", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(gw.upstream.last().header("x-flowgate-jwt").is_none());

    // The authentik preset: X-authentik-jwt, EdDSA, ttl 2m.
    let r = bare_client()
        .get(gw.url("/dav"))
        .header("host", "wiki.test")
        .header("cookie", format!("flowgate_session={cookie}"))
        .header("X-authentik-jwt", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = gw.upstream.last();
    let tokens = seen.headers_named("x-authentik-jwt");
    assert_eq!(tokens.len(), 1);
    let claims = verify(&set, tokens[0], Algorithm::EdDSA, "wiki");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 120);
    assert!(seen.header("x-flowgate-jwt").is_none());

    // A changed group gets a new token at once (the cache key holds the claims).
    flowgate_users_add_group(&gw, "alice").await;
    let r = with_cookie(&gw, reqwest::Method::GET, "/again", &cookie, None).await;
    assert_eq!(r.status(), 200);
    let token2 = gw.upstream.last().header("x-flowgate-jwt").unwrap().to_string();
    let claims = verify(&set, &token2, Algorithm::ES256, "app");
    assert!(
        claims["groups"].as_array().unwrap().iter().any(|g| g == "editors"),
        "{claims}"
    );
    gw.stop().await;
}

async fn flowgate_users_add_group(gw: &TestGateway, user: &str) {
    let store = users(gw);
    let u = store.get_by_username(user).await.unwrap().unwrap();
    store
        .update_user(
            u.id,
            flowgate::identity::UserUpdate {
                add_groups: vec!["editors".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // Other replicas learn through the invalidation channel; this one drops its cached user.
    gw.running.as_ref().unwrap().sessions.user_changed(u.id).await;
}

#[tokio::test]
async fn bad_jwt_settings_are_config_errors() {
    let keys = tempfile::tempdir().unwrap();
    std::fs::write(keys.path().join("junk.pem"), "not a key\n").unwrap();
    let p384 = write_key(keys.path(), "p384.pem", &rcgen::PKCS_ECDSA_P384_SHA384);
    let es = write_key(keys.path(), "es.pem", &rcgen::PKCS_ECDSA_P256_SHA256);
    for (jwt, expect) in [
        (
            format!("{{ key_file: \"{}\" }}", keys.path().join("junk.pem").display()),
            "no PEM private key",
        ),
        (format!("{{ key_file: \"{p384}\" }}"), "unsupported key"),
        (format!("{{ key_file: \"{es}\", ttl: 10m }}"), "between 10s and 5m"),
        (
            format!("{{ key_file: \"{es}\", header: \"Cookie\" }}"),
            "invalid header name",
        ),
        ("{ header: X-Jwt }".to_string(), "a signing key is required"),
        (
            format!("{{ key_file: \"{es}\", key_env: FLOWGATE_TEST_NO_SUCH_VAR }}"),
            "set only one of",
        ),
    ] {
        let text = format!(
            "listen: {{ http: \"127.0.0.1:0\" }}\napps:\n  - name: app\n    upstream: \"http://127.0.0.1:9\"\n    authentication_flow: none\n    jwt: {jwt}\n"
        );
        let err = flowgate::Config::from_yaml_str(&text, "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains(expect), "{jwt}: {err}");
        assert!(err.contains("apps[0].jwt"), "{err}");
    }
}

/// nginx `auth_request`: the 200 carries the JWT for nginx to copy to the app, and an API
/// client's Basic credentials are checked there too (401 with the challenge otherwise).
#[tokio::test]
async fn forward_auth_answers_carry_the_jwt_and_check_api_clients() {
    let keys = tempfile::tempdir().unwrap();
    let es = write_key(keys.path(), "es.pem", &rcgen::PKCS_ECDSA_P256_SHA256);
    let apps = format!(
        "  - name: app\n    hosts: [app.test]\n    upstream: \"http://UPSTREAM\"\n    basic_auth: true\n    basic_auth_user_passwords: true\n    jwt: {{ key_file: \"{es}\" }}\n"
    );
    let gw = TestGateway::start_with(&apps, &format!("trusted_proxies: [127.0.0.1/32]\n{NO_LIMITS}")).await;
    let set = jwks(&gw).await;
    let basic = |p: &str| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("alice:{p}"))
        )
    };
    let r = bare_client()
        .get(gw.url("/.flowgate/auth/nginx"))
        .header("x-original-url", "http://app.test/files/")
        .header("authorization", basic(ALICE_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-forwarded-user"], "alice");
    let token = r.headers()["x-flowgate-jwt"].to_str().unwrap().to_string();
    let claims = verify(&set, &token, Algorithm::ES256, "app");
    assert_eq!(claims["sub"], "alice");
    let r = bare_client()
        .get(gw.url("/.flowgate/auth/nginx"))
        .header("x-original-url", "http://app.test/files/")
        .header("authorization", basic("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("x-flowgate-jwt").is_none());
    gw.stop().await;
}
