//! Credentials and sessions over real sockets (CRED-1..3): a stolen session cannot change the
//! password, add a second factor or delete the account without the current password; a
//! password change or reset ends the user's other sessions; recovery does not log in past a
//! second factor. Checked on the shipped flows and on flows without a password stage (as
//! imported from authentik).

use crate::common::*;
use flowgate::identity::mfa;
use flowgate::session::clock::Clock;
use std::time::Duration;

const RECOVERY: &str = "/.flowgate/flow/default-recovery-flow/";
const UNENROLL: &str = "/.flowgate/flow/default-unenrollment-flow/";
const PASSWORD_CHANGE: &str = "/.flowgate/flow/default-password-change-flow/";
const TOTP_SETUP: &str = "/.flowgate/flow/default-authenticator-totp-setup/";
const NEW_PASSWORD: &str = "violet tangerine expedition 77";

/// Settings flows without a password stage, as authentik ships them.
const BARE_SETTINGS: &str = r#"
flows:
  - slug: bare-password-change
    designation: stage_configuration
    authentication: require_authenticated
    bindings:
      - { stage: default-password-change-prompt, order: 10 }
      - { stage: default-password-change-write, order: 20 }
  - slug: bare-totp-setup
    designation: stage_configuration
    authentication: require_authenticated
    bindings:
      - { stage: default-authenticator-totp-setup, order: 10 }
  - slug: bare-recovery
    designation: recovery
    authentication: require_unauthenticated
    bindings:
      - { stage: default-recovery-identification, order: 10 }
      - { stage: default-recovery-email, order: 20 }
      - { stage: default-password-change-prompt, order: 30 }
      - { stage: default-password-change-write, order: 40 }
      - { stage: default-recovery-login, order: 100 }
"#;

async fn start() -> TestGateway {
    TestGateway::start_full(
        DEFAULT_APP,
        NO_LIMITS,
        Upstream::spawn().await,
        &[("bare.yaml", BARE_SETTINGS)],
    )
    .await
}

/// A client that replays a stolen session cookie (no jar of its own).
fn thief(gw: &TestGateway, cookie: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("cookie", format!("flowgate_session={cookie}").parse().unwrap());
    let _ = gw;
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap()
}

async fn password_is(gw: &TestGateway, user: &str, password: &str) -> bool {
    let u = users(gw).get_by_username(user).await.unwrap().unwrap();
    users(gw).verify_password(&u, password).await.unwrap()
}

#[tokio::test]
async fn a_stolen_session_cannot_change_credentials_without_the_password() {
    // CRED-1 on the shipped flows: each opens with the current password.
    let gw = start().await;
    let stolen = thief(&gw, &session_of(&gw, "alice", ALICE_PASSWORD).await);
    let alice_id = users(&gw).get_by_username("alice").await.unwrap().unwrap().id;
    for flow in [PASSWORD_CHANGE, TOTP_SETUP, UNENROLL] {
        let url = gw.url(flow);
        let (status, html) = page(&stolen, &url).await;
        assert_eq!(status, 200, "{flow}");
        assert!(html.contains("name=\"password\""), "{flow}: {html}");
        assert!(
            !html.contains("password_repeat") && !html.contains("totp-secret") && !html.contains("name=\"token\""),
            "{flow}: the change itself is not offered yet:\n{html}"
        );
        // The new password in place of the current one is just a wrong guess.
        let r = stolen
            .post(&url)
            .form(&[
                ("csrf_token", csrf_of(&html).as_str()),
                ("password", NEW_PASSWORD),
                ("password_repeat", NEW_PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{flow}");
        let (_, html) = page(&stolen, &url).await;
        assert!(
            !html.contains("password_repeat") && !html.contains("totp-secret"),
            "{flow}"
        );
    }
    assert!(password_is(&gw, "alice", ALICE_PASSWORD).await);
    assert!(users(&gw).totp_devices(alice_id).await.unwrap().is_empty());
    assert!(users(&gw).get_by_username("alice").await.unwrap().is_some());
    // With the current password the change goes through.
    let url = gw.url(PASSWORD_CHANGE);
    reauthenticate(&stolen, &url, ALICE_PASSWORD).await;
    let r = walk(
        &stolen,
        &url,
        &[("password", NEW_PASSWORD), ("password_repeat", NEW_PASSWORD)],
    )
    .await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert!(password_is(&gw, "alice", NEW_PASSWORD).await);
    gw.stop().await;
}

#[tokio::test]
async fn flows_without_a_password_stage_ask_for_it_once_the_login_is_not_fresh() {
    // CRED-1 for the class: a settings flow without a password stage (authentik's shape) works
    // right after a login, and asks for the current password when the login is older.
    let gw = start().await;
    let c = client();
    html_login(&c, &gw.url(""), "/", "bob", BOB_PASSWORD).await;
    let url = gw.url("/.flowgate/flow/bare-password-change/");
    let (_, html) = page(&c, &url).await;
    assert!(
        html.contains("password_repeat"),
        "a fresh login goes straight to the form:\n{html}"
    );
    gw.clock.advance(Duration::from_secs(6 * 60));
    for flow in ["bare-password-change", "bare-totp-setup"] {
        let url = gw.url(&format!("/.flowgate/flow/{flow}/"));
        let (status, html) = page(&c, &url).await;
        assert_eq!(status, 200);
        assert!(
            html.contains("name=\"password\"") && !html.contains("password_repeat") && !html.contains("totp-secret"),
            "{flow}: the current password first:\n{html}"
        );
        let r = walk(&c, &url, &[("password", "not bob's password")]).await;
        assert_eq!(r.status(), 400, "{flow}");
    }
    // The TOTP setup form appears only after the password, and then stores the device.
    let url = gw.url("/.flowgate/flow/bare-totp-setup/");
    let html = reauthenticate(&c, &url, BOB_PASSWORD).await.text().await.unwrap();
    let (_, code) = totp_on(&gw, &html);
    let r = walk(&c, &url, &[("code", code.as_str())]).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let bob = users(&gw).get_by_username("bob").await.unwrap().unwrap();
    assert_eq!(users(&gw).totp_devices(bob.id).await.unwrap().len(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions_and_keeps_this_one() {
    // CRED-2: the owner changes the password after a theft; the thief's session ends.
    let gw = start().await;
    let thief_session = session_of(&gw, "alice", ALICE_PASSWORD).await;
    let owner = client();
    html_login(&owner, &gw.url(""), "/", "alice", ALICE_PASSWORD).await;
    assert!(logged_in(&gw, &thief_session).await);
    // authentik's shape (no password stage; the login is fresh), then the shipped flow.
    const SECOND: &str = "another long passphrase 9";
    let url = gw.url("/.flowgate/flow/bare-password-change/");
    let r = walk(&owner, &url, &[("password", SECOND), ("password_repeat", SECOND)]).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert!(password_is(&gw, "alice", SECOND).await);
    assert!(!logged_in(&gw, &thief_session).await, "the other session ended");
    let thief_session = session_of(&gw, "alice", SECOND).await;
    let url = gw.url(PASSWORD_CHANGE);
    reauthenticate(&owner, &url, SECOND).await;
    let r = walk(
        &owner,
        &url,
        &[("password", NEW_PASSWORD), ("password_repeat", NEW_PASSWORD)],
    )
    .await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert!(!logged_in(&gw, &thief_session).await, "the other session ended");
    let before = gw.upstream.count();
    assert_eq!(owner.get(gw.url("/x")).send().await.unwrap().status(), 200);
    assert_eq!(gw.upstream.count(), before + 1);
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("alice"));
    gw.stop().await;
}

#[tokio::test]
async fn a_reset_ends_every_session_of_the_user() {
    // CRED-2 for recovery: the reset ends every session of bob; the browser that reset the
    // password (and asked for the link) is logged in afresh by the flow.
    let gw = start().await;
    let thief_session = session_of(&gw, "bob", BOB_PASSWORD).await;
    let c = client();
    walk(&c, &gw.url(RECOVERY), &[("uid_field", "bob")]).await;
    let link = mailed_link(&gw, "bob@example.test");
    reset_password_via_link(&c, &link, NEW_PASSWORD).await;
    assert!(password_is(&gw, "bob", NEW_PASSWORD).await);
    assert!(!logged_in(&gw, &thief_session).await, "the old session ended");
    assert_eq!(c.get(gw.url("/x")).send().await.unwrap().status(), 200);
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("bob"));
    gw.stop().await;
}

/// Gives `user` a TOTP device (straight into the store); returns the secret.
async fn add_totp(gw: &TestGateway, user: &str) -> Vec<u8> {
    let u = users(gw).get_by_username(user).await.unwrap().unwrap();
    let secret = mfa::new_totp_secret();
    users(gw)
        .add_totp_device(u.id, "app", &secret, 6, gw.clock.now_ms(), None)
        .await
        .unwrap();
    secret
}

#[tokio::test]
async fn recovery_asks_for_the_second_factor() {
    // CRED-3: the mailed link proves the address, not the second factor.
    let gw = start().await;
    let secret = add_totp(&gw, "alice").await;

    let c = client();
    walk(&c, &gw.url(RECOVERY), &[("uid_field", "alice")]).await;
    let link = mailed_link(&gw, "alice@example.test");
    let r = walk(&c, &link, &[]).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("name=\"code\"") && !html.contains("password_repeat"),
        "the code comes before the new password:\n{html}"
    );
    let r = walk(&c, &link, &[("code", "000000")]).await;
    assert_eq!(r.status(), 400);
    let code = mfa::totp_code(&secret, mfa::totp_step(gw.clock.now_ms()), 6);
    let r = walk(&c, &link, &[("code", code.as_str())]).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("password_repeat"));
    let r = walk(
        &c,
        &link,
        &[("password", NEW_PASSWORD), ("password_repeat", NEW_PASSWORD)],
    )
    .await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert!(password_is(&gw, "alice", NEW_PASSWORD).await);
    assert_eq!(c.get(gw.url("/x")).send().await.unwrap().status(), 200);
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("alice"));
    gw.stop().await;
}

#[tokio::test]
async fn a_recovery_flow_without_a_second_factor_stage_does_not_log_in_past_it() {
    // CRED-3 for the class: authentik's example recovery flow has no authenticator_validate.
    // The password is reset, but a user with a second factor is not logged in by it (and a
    // user without one still is).
    let gw = start().await;
    add_totp(&gw, "alice").await;
    let bare = "/.flowgate/flow/bare-recovery/";
    for (user, email, logs_in) in [
        ("alice", "alice@example.test", false),
        ("bob", "bob@example.test", true),
    ] {
        let c = client();
        walk(&c, &gw.url(bare), &[("uid_field", user)]).await;
        let link = mailed_link(&gw, email);
        reset_password_via_link(&c, &link, NEW_PASSWORD).await;
        assert!(password_is(&gw, user, NEW_PASSWORD).await, "{user}");
        let before = gw.upstream.count();
        let status = c.get(gw.url("/x")).send().await.unwrap().status();
        assert_eq!(
            status == 200 && gw.upstream.count() == before + 1,
            logs_in,
            "{user}: {status}"
        );
    }
    gw.stop().await;
}
