//! Flow integrity: a flow runs its stages in order, for the browser and the user that started it.
//! Skipped stages and a directly posted `user_login` log nobody in, a replayed last POST does
//! nothing a second time, a mailed link never resumes where another user is pending, and
//! configuration or settings flows opened without a login are denied and create nobody. Over real
//! sockets, with the store checked afterwards. CSRF is in `csrf.rs`.

use crate::common::*;

// Attack ids: FLOW-1, FLOW-2, SES-8.
#[tokio::test]
async fn flow_skipping_cannot_reach_later_stages() {
    let gw = TestGateway::start().await;
    let c = client();
    let flow = gw.url("/.flowgate/flow/default-authentication-flow/");
    let csrf = csrf_of(&c.get(&flow).send().await.unwrap().text().await.unwrap());
    // Post a password straight away: it is an answer to the identification stage and fails.
    let r = c
        .post(&flow)
        .form(&[("csrf_token", csrf.as_str()), ("password", ALICE_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("No identification data provided."));
    // Identify as bob, then answer with alice's password: still bob's stage, fails.
    c.post(&flow)
        .form(&[("csrf_token", csrf.as_str()), ("uid_field", "bob")])
        .send()
        .await
        .unwrap();
    let r = c
        .post(&flow)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("uid_field", "alice"),
            ("password", ALICE_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), 401);
    gw.stop().await;
}

const ENROLL: &str = "/.flowgate/flow/default-enrollment-flow/";

const NEW_PASSWORD: &str = "violet tangerine expedition 77";

const LOGIN: &str = "/.flowgate/flow/default-authentication-flow/";

/// The JSON executor path of a flow's HTML path.
fn api(flow: &str) -> String {
    flow.replace("/.flowgate/flow/", "/.flowgate/api/v3/flows/executor/")
}

// Attack ids: FLOW-3.
#[tokio::test]
async fn replaying_the_last_post_of_a_finished_flow_does_nothing() {
    // FLOW-3.
    let gw = TestGateway::start_with(DEFAULT_APP, NO_LIMITS).await;
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;

    // Login, cookie by cookie.
    let r = bare_client().get(gw.url(LOGIN)).send().await.unwrap();
    let anon = set_cookie_value(&r, "flowgate_session").unwrap();
    let csrf = csrf_of(&r.text().await.unwrap());
    let r = with_cookie(
        &gw,
        post.clone(),
        LOGIN,
        &anon,
        Some(&[("csrf_token", &csrf), ("uid_field", "alice")]),
    )
    .await;
    assert_eq!(r.status(), 302);
    let last_post: [(&str, &str); 2] = [("csrf_token", &csrf), ("password", ALICE_PASSWORD)];
    let r = with_cookie(&gw, post.clone(), LOGIN, &anon, Some(&last_post)).await;
    assert_eq!(r.status(), 302);
    let r = with_cookie(&gw, get.clone(), LOGIN, &anon, None).await;
    assert_eq!((r.status().as_u16(), location(&r)), (302, "/".to_string()));
    let session = set_cookie_value(&r, "flowgate_session").unwrap();
    assert!(logged_in(&gw, &session).await);

    // The same POST again, with the same cookie and with the new one; then the final GET.
    for (cookie, what) in [(&anon, "pre-login cookie"), (&session, "logged-in cookie")] {
        let r = with_cookie(&gw, post.clone(), LOGIN, cookie, Some(&last_post)).await;
        assert_eq!(r.status(), 403, "replay with the {what}");
        assert!(
            set_cookie_value(&r, "flowgate_session").is_none_or(|v| v.is_empty()),
            "{what}"
        );
    }
    let r = with_cookie(&gw, get.clone(), LOGIN, &anon, None).await;
    if let Some(v) = set_cookie_value(&r, "flowgate_session").filter(|v| !v.is_empty()) {
        assert!(!logged_in(&gw, &v).await, "the replayed GET logged in again");
    }
    // The JSON API has no CSRF token: replay the password answer there too.
    let api = "/.flowgate/api/v3/flows/executor/default-authentication-flow/";
    for cookie in [&anon, &session] {
        let r = bare_client()
            .post(gw.url(api))
            .header("cookie", format!("flowgate_session={cookie}"))
            .json(&serde_json::json!({ "password": ALICE_PASSWORD }))
            .send()
            .await
            .unwrap();
        if let Some(v) = set_cookie_value(&r, "flowgate_session").filter(|v| !v.is_empty()) {
            assert!(!logged_in(&gw, &v).await, "a replayed JSON answer logged in");
        }
    }
    assert!(logged_in(&gw, &session).await, "the real session is untouched");
    assert!(!logged_in(&gw, &anon).await);
    let sessions = gw.running.as_ref().unwrap().sessions.clone();
    let alice = users(&gw).get_by_username("alice").await.unwrap().unwrap();
    assert_eq!(
        sessions.remove_user_sessions(alice.id, Some(&session)),
        0,
        "no second session of alice exists"
    );

    // Enrollment: the final POST replayed creates no second user.
    let count = || async { users(&gw).list_users().await.unwrap().len() };
    let before = count().await;
    let r = bare_client().get(gw.url(ENROLL)).send().await.unwrap();
    let anon = set_cookie_value(&r, "flowgate_session").unwrap();
    let csrf = csrf_of(&r.text().await.unwrap());
    let fields: [(&str, &str); 6] = [
        ("csrf_token", &csrf),
        ("username", "dora"),
        ("name", "Dora"),
        ("email", "dora@example.test"),
        ("password", NEW_PASSWORD),
        ("password_repeat", NEW_PASSWORD),
    ];
    let r = with_cookie(&gw, post.clone(), ENROLL, &anon, Some(&fields)).await;
    assert_eq!(r.status(), 302);
    let r = with_cookie(&gw, get.clone(), ENROLL, &anon, None).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert_eq!(count().await, before + 1);
    let dora_session = set_cookie_value(&r, "flowgate_session").unwrap();
    for cookie in [&anon, &dora_session] {
        with_cookie(&gw, post.clone(), ENROLL, cookie, Some(&fields)).await;
        with_cookie(&gw, get.clone(), ENROLL, cookie, None).await;
        let json: serde_json::Map<String, serde_json::Value> = fields[1..]
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect();
        bare_client()
            .post(gw.url("/.flowgate/api/v3/flows/executor/default-enrollment-flow/"))
            .header("cookie", format!("flowgate_session={cookie}"))
            .json(&json)
            .send()
            .await
            .unwrap();
        with_cookie(&gw, get.clone(), ENROLL, cookie, None).await;
    }
    assert_eq!(count().await, before + 1, "no second user");
    let doras = users(&gw)
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .filter(|u| u.username.eq_ignore_ascii_case("dora"))
        .count();
    assert_eq!(doras, 1);
    let dora = users(&gw).get_by_username("dora").await.unwrap().unwrap();
    assert_eq!(
        sessions.remove_user_sessions(dora.id, Some(&dora_session)),
        0,
        "one login of dora"
    );
    gw.stop().await;
}

const RECOVERY: &str = "/.flowgate/flow/default-recovery-flow/";

// Attack ids: FLOW-4.
#[tokio::test]
async fn a_mailed_link_never_resumes_where_another_user_is_pending() {
    // FLOW-4 (CVE-2023-26481): bob's recovery link opened in a browser where alice is pending,
    // and in one where alice is logged in.
    let gw = TestGateway::start_with(DEFAULT_APP, NO_LIMITS).await;
    let other = client();
    let r = walk(&other, &gw.url(RECOVERY), &[("uid_field", "alice")]).await;
    assert_eq!(r.status(), 200);
    let r = walk(&client(), &gw.url(RECOVERY), &[("uid_field", "bob")]).await;
    assert_eq!(r.status(), 200);
    let link = mailed_link(&gw, "bob@example.test");

    let alice_logged_in = client();
    html_login(&alice_logged_in, &gw.url(""), "/", "alice", ALICE_PASSWORD).await;
    for (browser, what) in [(&other, "alice pending"), (&alice_logged_in, "alice logged in")] {
        let (status, html) = page(browser, &link).await;
        assert_eq!(status, 403, "{what}: {html}");
        assert!(html.contains("another account"), "{what}: {html}");
        // Nothing to confirm, nothing to set.
        let (_, html) = page(browser, &gw.url(RECOVERY)).await;
        assert!(!html.contains("name=\"password_repeat\""), "{what}: {html}");
    }
    let alice = users(&gw).get_by_username("alice").await.unwrap().unwrap();
    assert!(users(&gw).verify_password(&alice, ALICE_PASSWORD).await.unwrap());
    // The refusals did not use the link up: bob, in a clean browser, still can.
    let bob_browser = client();
    reset_password_via_link(&bob_browser, &link, NEW_PASSWORD).await;
    let bob = users(&gw).get_by_username("bob").await.unwrap().unwrap();
    assert!(users(&gw).verify_password(&bob, NEW_PASSWORD).await.unwrap());
    let alice = users(&gw).get_by_username("alice").await.unwrap().unwrap();
    assert!(users(&gw).verify_password(&alice, ALICE_PASSWORD).await.unwrap());
    gw.stop().await;
}

const PASSWORD_CHANGE: &str = "/.flowgate/flow/default-password-change-flow/";

const TOTP_SETUP: &str = "/.flowgate/flow/default-authenticator-totp-setup/";

/// A settings-like flow left open by mistake (`authentication` not set): the password-change
/// prompt and its `never_create` user_write.
const OPEN_SETTINGS: &str = r#"
flows:
  - slug: open-settings
    designation: stage_configuration
    bindings:
      - { stage: default-password-change-prompt, order: 10 }
      - { stage: default-password-change-write, order: 20 }
"#;

// Attack ids: FLOW-8.
#[tokio::test]
async fn configuration_flows_need_a_login_and_settings_flows_create_nobody() {
    // FLOW-8 (CVE-2022-46145, CVE-2022-46172).
    let gw = TestGateway::start_full(
        DEFAULT_APP,
        NO_LIMITS,
        Upstream::spawn().await,
        &[("open-settings.yaml", OPEN_SETTINGS)],
    )
    .await;
    let store = || async { users(&gw).list_users().await.unwrap() };
    let before = store().await;
    let alice_id = users(&gw).get_by_username("alice").await.unwrap().unwrap().id;
    let secrets_shown = |html: &str| html.contains("totp-secret") || html.contains("name=\"password\"");

    // A browser with a pre-login session where alice is identified but not logged in.
    let pending = client();
    let r = walk(&pending, &gw.url(LOGIN), &[("uid_field", "alice")]).await;
    assert!(r.text().await.unwrap().contains("name=\"password\""));

    for flow in [TOTP_SETUP, PASSWORD_CHANGE] {
        for (c, who) in [(&bare_client(), "no session"), (&pending, "alice pending")] {
            let (status, html) = page(c, &gw.url(flow)).await;
            assert_eq!(status, 403, "{flow}, {who}: {html}");
            assert!(!secrets_shown(&html), "{flow}, {who}: {html}");
            let r = c
                .post(gw.url(flow))
                .form(&[
                    ("csrf_token", "x"),
                    ("code", "123456"),
                    ("password", NEW_PASSWORD),
                    ("password_repeat", NEW_PASSWORD),
                    ("username", "mallory"),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{flow}, {who}: HTML POST");
            // The JSON executor takes no CSRF token: the flow's login requirement alone stops it.
            let r = c
                .post(gw.url(&api(flow)))
                .json(&serde_json::json!({
                    "code": "123456", "password": NEW_PASSWORD,
                    "password_repeat": NEW_PASSWORD, "username": "mallory",
                }))
                .send()
                .await
                .unwrap();
            let v: serde_json::Value = r.json().await.unwrap();
            assert_eq!(v["component"], "ak-stage-access-denied", "{flow}, {who}: {v}");
            let v: serde_json::Value = c.get(gw.url(&api(flow))).send().await.unwrap().json().await.unwrap();
            assert_eq!(v["component"], "ak-stage-access-denied", "{flow}, {who}: {v}");
        }
    }
    assert!(users(&gw).totp_devices(alice_id).await.unwrap().is_empty());
    assert_eq!(users(&gw).static_code_count(alice_id).await.unwrap(), 0);
    assert_eq!(store().await, before, "nothing was written");

    // The open settings flow runs without a session, but its user_write never creates.
    for c in [client(), pending.clone()] {
        let url = gw.url("/.flowgate/flow/open-settings/");
        let r = walk(
            &c,
            &url,
            &[
                ("password", NEW_PASSWORD),
                ("password_repeat", NEW_PASSWORD),
                ("username", "mallory"),
                ("email", "m@example.test"),
            ],
        )
        .await;
        let (status, html) = (r.status(), r.text().await.unwrap());
        assert_eq!(status, 403, "{html}");
        assert!(
            html.contains("can&#x27;t create new user") || html.contains("can't create new user"),
            "{html}"
        );
    }
    assert_eq!(store().await, before, "a settings flow created or changed a user");
    let a = users(&gw).get_by_username("alice").await.unwrap().unwrap();
    assert!(
        users(&gw).verify_password(&a, ALICE_PASSWORD).await.unwrap(),
        "alice's password is unchanged"
    );
    gw.stop().await;
}
