//! Managing passkeys and where they are offered: owners rename and remove only their own, no
//! passkeys on an IP address host, authentik's WebAuthn setup and login imported and run, adding
//! a passkey needs the password once the login is not fresh, and the pages' one script.

use crate::common::*;
use crate::passkeys::{
    register, rejected, webauthn_challenge, Api, SoftKey, ALICE_PW, BOB_PW, LOGIN, PASSWORDLESS, SETUP,
};
use serde_json::{json, Value};

#[tokio::test]
async fn owners_rename_and_remove_their_own_passkeys_only() {
    let gw = TestGateway::start_with(DEFAULT_APP, NO_LIMITS).await;
    let mut key = SoftKey::new();
    let alice = Api::new(&gw);
    alice.password_login("alice", ALICE_PW).await;
    register(&alice, &mut key).await;
    let alice_id = users(&gw).get_by_username("alice").await.unwrap().unwrap().id;
    let device = users(&gw).passkeys(alice_id).await.unwrap()[0].id;

    // Bob cannot rename or delete alice's device through his own management flow.
    let bob = Api::new(&gw);
    bob.password_login("bob", BOB_PW).await;
    let c = bob.get(SETUP).await;
    assert_eq!(c["devices"], json!([]));
    for body in [
        json!({"action": "delete", "device": device.to_string()}),
        json!({"action": "rename", "device": device.to_string(), "name": "mine now"}),
    ] {
        let c = bob.post(SETUP, body).await;
        assert!(rejected(&c), "{c}");
    }
    let stored = users(&gw).passkeys(alice_id).await.unwrap();
    assert_eq!((stored.len(), stored[0].name.as_str()), (1, "Laptop"));

    // Alice lists, renames, removes.
    let c = alice.get(SETUP).await;
    assert_eq!(c["devices"][0]["name"], "Laptop");
    let c = alice
        .post(
            SETUP,
            json!({"action": "rename", "device": device.to_string(), "name": "Phone"}),
        )
        .await;
    assert_eq!(c["devices"][0]["name"], "Phone", "{c}");
    // A challenge issued before the removal, answered after it: refused at once.
    let pwl = Api::new(&gw);
    let c = pwl.get(PASSWORDLESS).await;
    let ch = webauthn_challenge(&c)["challenge"].as_str().unwrap().to_string();
    let c = alice
        .post(SETUP, json!({"action": "delete", "device": device.to_string()}))
        .await;
    assert_eq!(c["devices"], json!([]), "{c}");
    let a = key.sign(&ch, &pwl.origin, "localhost");
    assert!(rejected(&pwl.post(PASSWORDLESS, json!({"webauthn": a})).await));
    assert_eq!(pwl.who(&gw).await, None);
    // Without passkeys, alice's password login has no second factor again.
    let api = Api::new(&gw);
    let done = api.password_login("alice", ALICE_PW).await;
    assert_eq!(done["component"], "xak-flow-redirect", "{done}");
    gw.stop().await;
}

#[tokio::test]
async fn no_passkeys_on_an_ip_address_host() {
    // 127.0.0.1 cannot be an RP id: no autofill challenge, and the passwordless flow has
    // nothing to offer (its stage denies: not configured).
    let gw = TestGateway::start_with(DEFAULT_APP, NO_LIMITS).await;
    let c = client();
    let r = c
        .get(gw.url("/.flowgate/api/v3/flows/executor/default-authentication-flow/"))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["component"], "ak-stage-identification");
    assert_eq!(v["passkey_challenge"], Value::Null);
    let r = c
        .get(gw.url("/.flowgate/api/v3/flows/executor/default-passwordless-flow/"))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["component"], "ak-stage-access-denied", "{v}");
    assert!(v["error_message"].as_str().unwrap().contains("IP address"), "{v}");
    gw.stop().await;
}

#[tokio::test]
async fn authentiks_webauthn_setup_and_default_login_import_and_run() {
    use flowgate::blueprint::import;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/authentik/default");
    let native = |name: &str| {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let imp = import::import(&[(path.display().to_string(), text)], &Default::default())
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        // Only notes remain (authentik's `configure_flow` link is not used, duo/sms/email
        // are not implemented); nothing about WebAuthn is left out.
        for u in &imp.unsupported {
            let u = u.to_string();
            assert!(
                !u.contains("WebAuthn") && !u.contains("\"webauthn\" is not"),
                "{name}: {u}"
            );
        }
        import::to_yaml(&imp.doc, &[name.to_string()])
    };
    let setup = native("flow-default-authenticator-webauthn-setup.yaml");
    assert!(setup.contains("type: authenticator_webauthn"), "{setup}");
    let login = native("flow-default-authentication-flow.yaml");
    let logout = native("flow-default-invalidation-flow.yaml");
    let app = "  - name: app\n    upstream: \"http://UPSTREAM\"\n";
    let gw = TestGateway::start_only(
        app,
        NO_LIMITS,
        &[("setup.yaml", &setup), ("login.yaml", &login), ("logout.yaml", &logout)],
    )
    .await;
    let mut key = SoftKey::new();
    let api = Api::new(&gw);
    let done = api.password_login("alice", ALICE_PW).await;
    assert_eq!(done["component"], "xak-flow-redirect", "{done}");
    let c = api.get(SETUP).await;
    assert_eq!(c["component"], "ak-stage-authenticator-webauthn", "{c}");
    // authentik's defaults: resident key and user verification preferred.
    assert_eq!(c["registration"]["authenticatorSelection"]["residentKey"], "preferred");
    let cred = key.register(&c["registration"], &api.origin);
    let done = api.post(SETUP, json!({"response": cred})).await;
    assert_eq!(done["component"], "xak-flow-redirect", "{done}");
    let alice = users(&gw).get_by_username("alice").await.unwrap().unwrap();
    assert_eq!(users(&gw).passkeys(alice.id).await.unwrap()[0].name, "WebAuthn device");
    // The imported login (validation with authentik's default device classes) asks for it.
    let api = Api::new(&gw);
    let c = api.password_login("alice", ALICE_PW).await;
    assert_eq!(c["component"], "ak-stage-authenticator-validate", "{c}");
    let ch = webauthn_challenge(&c)["challenge"].as_str().unwrap().to_string();
    let a = key.sign(&ch, &api.origin, "localhost");
    let done = api.post(LOGIN, json!({"webauthn": a})).await;
    assert_eq!(done["component"], "xak-flow-redirect", "{done}");
    assert_eq!(api.who(&gw).await.as_deref(), Some("alice"));
    gw.stop().await;
}

#[tokio::test]
async fn adding_a_passkey_needs_the_password_once_the_login_is_not_fresh() {
    let gw = TestGateway::start_with(DEFAULT_APP, NO_LIMITS).await;
    let api = Api::new(&gw);
    api.password_login("alice", ALICE_PW).await;
    gw.clock.advance(std::time::Duration::from_secs(6 * 60));
    let c = api.get(SETUP).await;
    assert_eq!(
        c["component"], "ak-stage-password",
        "a stolen session cannot add a passkey: {c}"
    );
    let c = api.post(SETUP, json!({"password": "wrong"})).await;
    assert_eq!(c["component"], "ak-stage-password");
    let c = api.post(SETUP, json!({"password": ALICE_PW})).await;
    assert_eq!(c["component"], "ak-stage-authenticator-webauthn", "{c}");
    gw.stop().await;
}

#[tokio::test]
async fn pages_may_run_the_one_script_and_nothing_else() {
    let gw = TestGateway::start_with(DEFAULT_APP, NO_LIMITS).await;
    let api = Api::new(&gw);
    let r = api
        .c
        .get(format!("{}/.flowgate/flow/{LOGIN}/", api.origin))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    let script_src: Vec<&str> = csp
        .split(';')
        .map(str::trim)
        .filter(|d| d.starts_with("script-src"))
        .collect();
    assert_eq!(
        script_src,
        [format!("script-src {}/.flowgate/static/webauthn.js", api.origin).as_str()],
        "{csp}"
    );
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = r.text().await.unwrap();
    // The options reach the script as data, never as inline code.
    assert!(html.contains("data-webauthn-autofill="), "{html}");
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    assert!(html.contains(r#"<script src="/.flowgate/static/webauthn.js"></script>"#));
    let js = api
        .c
        .get(format!("{}/.flowgate/static/webauthn.js", api.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(js.text().await.unwrap().contains("navigator.credentials"));
    gw.stop().await;
}
