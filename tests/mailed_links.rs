//! Mailed links over real sockets (LINK-1, LINK-2): an attacker's sign-up or recovery link
//! opened by a victim never signs the victim's browser into the attacker's account; a link
//! resumes only where its flow's `authentication` requirement holds; no page has a token in
//! its address (the URL with the token answers `Referrer-Policy: no-referrer` and a redirect);
//! cancelling a flow ends its links.

use crate::common::*;

const ENROLL_EMAIL: &str = "/.flowgate/flow/default-enrollment-email-flow/";
const RECOVERY: &str = "/.flowgate/flow/default-recovery-flow/";
const NEW_PASSWORD: &str = "violet tangerine expedition 77";

fn signup(username: &str, email: &str) -> Vec<(&'static str, String)> {
    vec![
        ("username", username.to_string()),
        ("name", "Mallory".to_string()),
        ("email", email.to_string()),
        ("password", NEW_PASSWORD.to_string()),
        ("password_repeat", NEW_PASSWORD.to_string()),
    ]
}

/// Runs the email sign-up up to "check your email" in `c` and returns the mailed link.
async fn request_signup_link(gw: &TestGateway, c: &reqwest::Client, username: &str, email: &str) -> String {
    let fields = signup(username, email);
    let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = walk(c, &gw.url(ENROLL_EMAIL), &refs).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Check your email"));
    mailed_link(gw, email)
}

/// Whether `c` reaches the app, and as whom (the upstream's `X-Forwarded-User`).
async fn app_user(gw: &TestGateway, c: &reqwest::Client) -> Option<String> {
    let before = gw.upstream.count();
    let r = c.get(gw.url("/x")).send().await.unwrap();
    if r.status() != 200 || gw.upstream.count() == before {
        return None;
    }
    gw.upstream.last().header("x-forwarded-user").map(str::to_string)
}

/// Confirms an opened link and walks the rest of the sign-up; returns the last response.
async fn confirm(c: &reqwest::Client, link: &str) -> reqwest::Response {
    walk(c, link, &[]).await
}

#[tokio::test]
async fn an_attackers_signup_link_never_signs_the_victim_in() {
    // LINK-1: mallory signs up with her own address and sends the link to victims.
    let gw = TestGateway::start_with(DEFAULT_APP, NO_LIMITS).await;
    let attacker = client();
    let link = request_signup_link(&gw, &attacker, "mallory", "mallory@example.test").await;

    // A logged-in victim: refused, still alice, nothing created.
    let alice = client();
    html_login(&alice, &gw.url(""), "/", "alice", ALICE_PASSWORD).await;
    let (status, html) = page(&alice, &link).await;
    assert_eq!(status, 403, "{html}");
    assert_eq!(app_user(&gw, &alice).await.as_deref(), Some("alice"));
    // A victim half-way through a login (bob pending at the password stage): refused.
    let pending = client();
    walk(
        &pending,
        &gw.url("/.flowgate/flow/default-authentication-flow/"),
        &[("uid_field", "bob")],
    )
    .await;
    let (status, html) = page(&pending, &link).await;
    assert_eq!(status, 403, "{html}");
    assert!(users(&gw).get_by_username("mallory").await.unwrap().is_none());

    // A victim with no session: the address is confirmed and the account created, but the
    // victim's browser is not signed into it.
    let victim = client();
    let r = confirm(&victim, &link).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert!(users(&gw).get_by_username("mallory").await.unwrap().is_some());
    assert_eq!(
        app_user(&gw, &victim).await,
        None,
        "the victim is not logged in as mallory"
    );
    assert!(gw
        .upstream
        .requests()
        .iter()
        .all(|r| r.header("x-forwarded-user") != Some("mallory")));
    gw.stop().await;
}

#[tokio::test]
async fn a_link_signs_in_only_the_browser_that_asked_for_it() {
    // LINK-1, positive control: the browser that signed up is logged in by its own link.
    let gw = TestGateway::start_with(DEFAULT_APP, NO_LIMITS).await;
    let c = client();
    let link = request_signup_link(&gw, &c, "erin", "erin@example.test").await;
    let r = confirm(&c, &link).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert_eq!(app_user(&gw, &c).await.as_deref(), Some("erin"));
    gw.stop().await;
}

#[tokio::test]
async fn an_attackers_recovery_link_sets_a_password_but_signs_nobody_in_elsewhere() {
    // LINK-1 for recovery: bob (the attacker here) asks for a reset of his own account and
    // sends the link to a victim, who would otherwise end up logged in as bob.
    let gw = TestGateway::start_with(DEFAULT_APP, NO_LIMITS).await;
    let r = walk(&client(), &gw.url(RECOVERY), &[("uid_field", "bob")]).await;
    assert_eq!(r.status(), 200);
    let link = mailed_link(&gw, "bob@example.test");
    let victim = client();
    reset_password_via_link(&victim, &link, NEW_PASSWORD).await;
    let bob = users(&gw).get_by_username("bob").await.unwrap().unwrap();
    assert!(users(&gw).verify_password(&bob, NEW_PASSWORD).await.unwrap());
    assert_eq!(app_user(&gw, &victim).await, None, "the victim is not logged in as bob");
    gw.stop().await;
}

#[tokio::test]
async fn the_flows_authentication_requirement_holds_on_restore() {
    // LINK-1: the recovery flow is `require_unauthenticated`. bob asks for a reset, logs in
    // in the same browser, then opens the link: refused, and the link is not used up.
    let gw = TestGateway::start_with(DEFAULT_APP, NO_LIMITS).await;
    let c = client();
    walk(&c, &gw.url(RECOVERY), &[("uid_field", "bob")]).await;
    let link = mailed_link(&gw, "bob@example.test");
    html_login(&c, &gw.url(""), "/", "bob", BOB_PASSWORD).await;
    let (status, html) = page(&c, &link).await;
    assert_eq!(status, 403, "{html}");
    assert!(html.contains("signed in"), "{html}");
    let bob = users(&gw).get_by_username("bob").await.unwrap().unwrap();
    assert!(users(&gw).verify_password(&bob, BOB_PASSWORD).await.unwrap());
    assert_eq!(app_user(&gw, &c).await.as_deref(), Some("bob"));
    gw.stop().await;
}

#[tokio::test]
async fn no_page_carries_a_token_and_token_urls_send_no_referrer() {
    // LINK-2: the page a link opens would hand its token to the app in `Referer` (the cancel
    // link goes back to the app). The URL with the token answers a redirect to the same URL
    // without it, with `Referrer-Policy: no-referrer`; the token stays server-side.
    let gw = TestGateway::start_with(DEFAULT_APP, NO_LIMITS).await;
    let c = client();
    walk(&c, &gw.url(&format!("{RECOVERY}?next=%2Fx")), &[("uid_field", "bob")]).await;
    let link = mailed_link(&gw, "bob@example.test");
    assert!(link.contains("next=%2Fx"), "{link}");
    let r = c.get(&link).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    let to = location(&r);
    assert_eq!(to, format!("{RECOVERY}?next=%2Fx"), "same flow, same next, no token");
    let r = c.get(gw.url(&to)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    let token = link.split("flow_token=").nth(1).unwrap();
    assert!(html.contains("Continue to confirm"), "{html}");
    assert!(!html.contains(token) && !html.contains("flow_token"), "{html}");
    // Confirming from the token-free page works; the next pages carry no token either.
    let r = walk(&c, &gw.url(&to), &[]).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("name=\"password_repeat\"") && !html.contains(token),
        "{html}"
    );
    // Every other answer for a token URL sends no-referrer too: a used link, the JSON API.
    let r = client().get(&link).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    let api = gw.url(&format!(
        "/.flowgate/api/v3/flows/executor/default-recovery-flow/?query=flow_token%3D{token}"
    ));
    let r = client().get(&api).send().await.unwrap();
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    // A page without a token keeps the ordinary policy (forms need the Origin header).
    let r = client().get(gw.url(RECOVERY)).send().await.unwrap();
    assert_eq!(r.headers()["referrer-policy"], "same-origin");
    gw.stop().await;
}

/// An invitation-only sign-up, to check the invitation token (`itoken`) the same way.
const INVITE_FLOW: &str = r#"
flows:
  - slug: link-invited-signup
    designation: enrollment
    bindings:
      - { stage: link-invite, order: 0 }
      - { stage: link-invite-prompt, order: 10 }
      - { stage: link-invite-write, order: 20 }
stages:
  link-invite: { type: invitation }
  link-invite-prompt:
    type: prompt
    fields:
      - { field_key: username, label: Username, type: username }
      - { field_key: password, label: Password, type: password }
  link-invite-write: { type: user_write }
"#;

#[tokio::test]
async fn an_invitation_token_leaves_the_address_bar_too() {
    // LINK-2 for invitations: the class is "a secret in the URL of a page".
    let gw = TestGateway::start_full(DEFAULT_APP, "", Upstream::spawn().await, &[("inv.yaml", INVITE_FLOW)]).await;
    let now = flowgate::session::clock::Clock::now_ms(&gw.clock);
    let inv = users(&gw)
        .create_invitation(
            "one",
            Some("link-invited-signup"),
            Some(now as i64 + 3_600_000),
            true,
            serde_json::Map::new(),
            now,
        )
        .await
        .unwrap();
    let c = client();
    let url = gw.url(&format!("/.flowgate/flow/link-invited-signup/?itoken={}", inv.token));
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    assert_eq!(location(&r), "/.flowgate/flow/link-invited-signup/");
    // The plan kept the invitation: the sign-up completes from the token-free address.
    let r = walk(
        &c,
        &gw.url("/.flowgate/flow/link-invited-signup/"),
        &[("username", "ivy"), ("password", NEW_PASSWORD)],
    )
    .await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert!(users(&gw).get_by_username("ivy").await.unwrap().is_some());
    gw.stop().await;
}

#[tokio::test]
async fn cancelling_ends_the_link() {
    // LINK-2: cancel on the page a link opened ends that link; cancel on "check your email"
    // ends the link that was sent.
    let gw = TestGateway::start_with(DEFAULT_APP, NO_LIMITS).await;
    let c = client();
    walk(&c, &gw.url(RECOVERY), &[("uid_field", "bob")]).await;
    let link = mailed_link(&gw, "bob@example.test");
    let (status, html) = page(&c, &link).await;
    assert_eq!(status, 200);
    let html = html.replace("&#x2f;", "/").replace("&amp;", "&");
    let cancel = regex::Regex::new(r#"href="(/\.flowgate/flows/-/cancel/[^"]*)""#)
        .unwrap()
        .captures(&html)
        .unwrap_or_else(|| panic!("no cancel link:\n{html}"))[1]
        .to_string();
    let r = c.get(gw.url(&cancel)).send().await.unwrap();
    assert_eq!(r.status(), 302);
    for browser in [&c, &client()] {
        let (status, html) = page(browser, &link).await;
        assert_eq!(status, 403, "{html}");
        assert!(html.contains("expired or was already used"), "{html}");
    }

    let gw = TestGateway::start_with(DEFAULT_APP, NO_LIMITS).await;
    let c = client();
    let r = walk(&c, &gw.url(RECOVERY), &[("uid_field", "alice")]).await;
    assert_eq!(r.status(), 200);
    let link = mailed_link(&gw, "alice@example.test");
    let r = c.get(gw.url("/.flowgate/flows/-/cancel/")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let (status, html) = page(&client(), &link).await;
    assert_eq!(status, 403, "{html}");
    let alice = users(&gw).get_by_username("alice").await.unwrap().unwrap();
    assert!(users(&gw).verify_password(&alice, ALICE_PASSWORD).await.unwrap());
    gw.stop().await;
}
