//! STEP-1 of docs/security.md over real sockets: an app that names its own
//! `authentication_flow` (here `admin.test`, whose flow asks for a TOTP code) does not accept a
//! session from a weaker flow, through the proxy and the forward-auth endpoints alike; the
//! browser steps up (asked only for the missing code, as the user it already is), an API client
//! gets 401, and the plain app keeps working with the same sign-on. Asserted on what the
//! upstream received.

use crate::common::*;
use flowgate::identity::mfa;
use flowgate::session::clock::Clock;
use std::sync::Arc;
use std::time::Duration;

const APPS: &str = "  - name: admin\n    hosts: [admin.test]\n    upstream: \"http://UPSTREAM\"\n    authentication_flow: mfa-login\n  - name: mfa-only\n    path_prefix: /mfa-only\n    upstream: \"http://UPSTREAM\"\n    policies: [{ policy: used-a-code }]\n  - name: app\n    upstream: \"http://UPSTREAM\"\n";

pub const MFA_FLOW: &str = r#"
flows:
  - slug: mfa-login
    name: Admin login
    title: Admin
    designation: authentication
    authentication: require_unauthenticated
    bindings:
      - { stage: mfa-identification, order: 10 }
      - { stage: mfa-password, order: 20 }
      - { stage: mfa-totp, order: 30 }
      - { stage: mfa-login-stage, order: 100 }
stages:
  mfa-identification: { type: identification, user_fields: [username, email] }
  mfa-password: { type: password }
  mfa-totp: { type: authenticator_validate, device_classes: [totp], not_configured_action: deny }
  mfa-login-stage: { type: user_login }
policies:
  used-a-code:
    type: expression
    expression: |
      args = request.context.get("auth_method_args")
      return request.context.get("auth_method") == "auth_mfa" and "totp" in args["methods"]
"#;

const EXTRA: &str =
    "trusted_proxies: [127.0.0.1/32]\nrate_limits: { password_per_ip: off, password_per_username: off }\n";

async fn start() -> TestGateway {
    TestGateway::start_full(APPS, EXTRA, Upstream::spawn().await, &[("mfa.yaml", MFA_FLOW)]).await
}

/// A browser that reaches the gateway as `admin.test`, holding session `id`.
fn admin_browser(gw: &TestGateway, id: &str) -> (reqwest::Client, String) {
    let base = format!("http://admin.test:{}", gw.addr.port());
    let jar = reqwest::cookie::Jar::default();
    jar.add_cookie_str(&format!("flowgate_session={id}"), &base.parse().unwrap());
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(Arc::new(jar))
        .resolve("admin.test", gw.addr)
        .build()
        .unwrap();
    (c, base)
}

/// One request to the admin app with session `id`, as a browser or an API client.
async fn admin_get(gw: &TestGateway, id: &str, browser: bool) -> reqwest::Response {
    let mut rb = bare_client()
        .get(gw.url("/secret?x=1"))
        .header("host", "admin.test")
        .header("cookie", format!("flowgate_session={id}"));
    if browser {
        rb = rb.header("accept", BROWSER_ACCEPT);
    }
    rb.send().await.unwrap()
}

/// The forward-auth answers (nginx, Traefik) for `http://admin.test/secret` with session `id`.
async fn forward_auth(gw: &TestGateway, id: &str) -> (u16, u16) {
    let cookie = format!("flowgate_session={id}");
    let nginx = bare_client()
        .get(gw.url("/.flowgate/auth/nginx"))
        .header("x-original-url", "http://admin.test/secret")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    let traefik = bare_client()
        .get(gw.url("/.flowgate/auth/traefik"))
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", "admin.test")
        .header("x-forwarded-uri", "/secret")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    (nginx.status().as_u16(), traefik.status().as_u16())
}

async fn add_totp(gw: &TestGateway, username: &str) -> Vec<u8> {
    let secret = mfa::new_totp_secret();
    let u = users(gw).get_by_username(username).await.unwrap().unwrap();
    users(gw)
        .add_totp_device(u.id, "phone", &secret, 6, gw.clock.now_ms(), None)
        .await
        .unwrap();
    secret
}

/// The status of the app whose policy wants a TOTP code in the sign-on.
async fn mfa_only(gw: &TestGateway, id: &str) -> u16 {
    with_cookie(gw, reqwest::Method::GET, "/mfa-only/x", id, None)
        .await
        .status()
        .as_u16()
}

fn code(gw: &TestGateway, secret: &[u8]) -> String {
    mfa::totp_code(secret, mfa::totp_step(gw.clock.now_ms()), 6)
}

#[tokio::test]
async fn a_password_only_session_steps_up_to_the_apps_totp_flow() {
    let gw = start().await;
    // alice signs on through the default flow with her password only (no device yet).
    let weak = session_of(&gw, "alice", ALICE_PASSWORD).await;
    let secret = add_totp(&gw, "alice").await;

    // The plain app accepts the sign-on and receives alice.
    let before = gw.upstream.count();
    assert!(logged_in(&gw, &weak).await);
    assert_eq!(gw.upstream.count(), before + 1);
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("alice"));

    // The admin app does not: a browser is sent to the app's flow with `next`, an API client
    // gets 401, the forward-auth endpoints answer the same; the upstream sees nothing.
    let seen = gw.upstream.count();
    let r = admin_get(&gw, &weak, true).await;
    assert_eq!(r.status(), 302);
    let to = location(&r);
    assert_eq!(to, "/.flowgate/flow/mfa-login/?next=%2Fsecret%3Fx%3D1");
    assert!(
        set_cookie_value(&r, "flowgate_session").is_none(),
        "the sign-on is kept"
    );
    assert_eq!(admin_get(&gw, &weak, false).await.status(), 401);
    assert_eq!(forward_auth(&gw, &weak).await, (401, 302));
    assert_eq!(gw.upstream.count(), seen, "the admin upstream was reached");
    assert!(logged_in(&gw, &weak).await, "stepping up does not log the user out");

    // The step-up knows the user: no identification, no password again, only the code.
    let (browser, base) = admin_browser(&gw, &weak);
    let flow_url = format!("{base}{to}");
    let (status, html) = page(&browser, &flow_url).await;
    assert_eq!(status, 200);
    assert!(html.contains("name=\"code\""), "the TOTP stage first:\n{html}");
    assert!(!html.contains("name=\"uid_field\"") && !html.contains("name=\"password\""));
    let r = walk(&browser, &flow_url, &[("code", "000000")]).await;
    assert_ne!(r.status(), 302, "a wrong code does not step up");
    gw.clock.advance(Duration::from_secs(30));
    let r = walk(&browser, &flow_url, &[("code", &code(&gw, &secret))]).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert_eq!(location(&r), "/secret?x=1");
    let strong = set_cookie_value(&r, "flowgate_session").expect("a new session after the step-up");
    assert_ne!(strong, weak, "the step-up rotates the session id");

    // Now both apps accept the (upgraded) sign-on, the admin upstream receives alice.
    let r = admin_get(&gw, &strong, true).await;
    assert_eq!(r.status(), 200);
    let rec = gw.upstream.last();
    assert_eq!(rec.uri, "/secret?x=1");
    assert_eq!(rec.header("x-forwarded-user"), Some("alice"));
    assert_eq!(forward_auth(&gw, &strong).await, (200, 200));
    assert!(logged_in(&gw, &strong).await);
    gw.stop().await;
}

#[tokio::test]
async fn a_session_with_the_same_factors_needs_no_step_up_and_a_user_without_one_is_refused() {
    let gw = start().await;
    let secret = add_totp(&gw, "alice").await;
    // alice signs on through the default flow, which asks her code: password + totp.
    let c = client();
    let r = html_login(&c, &gw.url(""), "/", "alice", ALICE_PASSWORD).await;
    assert_eq!(r.status(), 200, "the default flow asks for the code");
    gw.clock.advance(Duration::from_secs(30));
    let url = gw.url("/.flowgate/flow/default-authentication-flow/?next=%2F");
    let r = walk(&c, &url, &[("code", &code(&gw, &secret))]).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let id = set_cookie_value(&r, "flowgate_session").unwrap();
    let seen = gw.upstream.count();
    assert_eq!(admin_get(&gw, &id, true).await.status(), 200);
    assert_eq!(gw.upstream.count(), seen + 1);
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("alice"));
    // App policies see how the session was authenticated (`auth_method`, `auth_method_args`).
    assert_eq!(mfa_only(&gw, &id).await, 200);

    // bob has no TOTP device: his step-up is refused on the flow's page (no redirect loop
    // back to the app), and the admin upstream never sees him.
    let bob = session_of(&gw, "bob", BOB_PASSWORD).await;
    let seen = gw.upstream.count();
    let r = admin_get(&gw, &bob, true).await;
    assert_eq!(r.status(), 302);
    let (browser, base) = admin_browser(&gw, &bob);
    let r = browser.get(format!("{base}{}", location(&r))).send().await.unwrap();
    let status = r.status();
    let body = r.text().await.unwrap();
    assert!(status == 403 || status == 200, "{status}: {body}");
    assert!(!body.contains("name=\"code\""));
    assert_eq!(
        mfa_only(&gw, &bob).await,
        403,
        "a password-only session fails the policy"
    );
    assert_eq!(admin_get(&gw, &bob, false).await.status(), 401);
    assert_eq!(gw.upstream.count(), seen);
    gw.stop().await;
}

#[tokio::test]
async fn a_session_from_the_apps_own_flow_is_accepted_and_cannot_switch_user() {
    let gw = start().await;
    let secret = add_totp(&gw, "alice").await;
    // A fresh visitor to the admin app goes through its flow from the start.
    let (browser, base) = admin_browser(&gw, "none");
    let r = browser
        .get(format!("{base}/secret"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let flow_url = format!("{base}{}", location(&r));
    let r = walk(&browser, &flow_url, &[("uid_field", "alice")]).await;
    assert_eq!(r.status(), 200);
    let r = walk(&browser, &flow_url, &[("password", ALICE_PASSWORD)]).await;
    assert_eq!(r.status(), 200);
    gw.clock.advance(Duration::from_secs(30));
    let r = walk(&browser, &flow_url, &[("code", &code(&gw, &secret))]).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let id = set_cookie_value(&r, "flowgate_session").unwrap();
    assert_eq!(admin_get(&gw, &id, true).await.status(), 200);
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("alice"));

    // bob's password-only session steps up as bob: posting another identifier to the step-up
    // changes nothing (there is no identification stage in it).
    let bob = session_of(&gw, "bob", BOB_PASSWORD).await;
    let bob_secret = add_totp(&gw, "bob").await;
    let seen = gw.upstream.count();
    assert_eq!(admin_get(&gw, &bob, false).await.status(), 401);
    assert_eq!(gw.upstream.count(), seen);
    let (browser, base) = admin_browser(&gw, &bob);
    let flow_url = format!("{base}/.flowgate/flow/mfa-login/?next=%2Fsecret");
    let r = walk(
        &browser,
        &flow_url,
        &[("uid_field", "alice"), ("password", ALICE_PASSWORD)],
    )
    .await;
    assert_ne!(r.status(), 302);
    gw.clock.advance(Duration::from_secs(30));
    let r = walk(&browser, &flow_url, &[("code", &code(&gw, &bob_secret))]).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let id = set_cookie_value(&r, "flowgate_session").unwrap();
    assert_eq!(admin_get(&gw, &id, true).await.status(), 200);
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("bob"));
    gw.stop().await;
}
