//! Flow integrity: a flow runs its stages in order, for the browser that started it, and changes
//! state only on a same-origin POST carrying that session's CSRF token. Missing, foreign and
//! cross-origin tokens (CSRF), stage answers in a GET query, cross-site logout, skipped and
//! replayed stages, a mailed link opened where another user is pending, and configuration or
//! settings flows opened without a login (FLOW). Over real sockets, with the store checked
//! afterwards.

use crate::common::*;
use flowgate::identity::mfa;
use flowgate::session::clock::Clock;

// Attack ids: CSRF-1, CSRF-4.
#[tokio::test]
async fn csrf_and_cross_origin_posts_are_refused() {
    let gw = TestGateway::start().await;
    let c = client();
    let flow = gw.url("/.flowgate/flow/default-authentication-flow/");
    let html = c.get(&flow).send().await.unwrap().text().await.unwrap();
    let csrf = csrf_of(&html);
    let r = c.post(&flow).form(&[("uid_field", "alice")]).send().await.unwrap();
    assert_eq!(r.status(), 403, "missing token");
    let r = c
        .post(&flow)
        .form(&[("csrf_token", "x".repeat(43).as_str()), ("uid_field", "alice")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "wrong token");
    let r = c
        .post(&flow)
        .header("origin", "http://evil.example")
        .form(&[("csrf_token", csrf.as_str()), ("uid_field", "alice")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "foreign origin");
    let r = bare_client()
        .post(&flow)
        .form(&[("csrf_token", csrf.as_str()), ("uid_field", "alice")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "no session at all");
    // JSON API only takes application/json.
    let api = gw.url("/.flowgate/api/v3/flows/executor/default-authentication-flow/");
    let r = c
        .post(&api)
        .header("content-type", "text/plain")
        .body(r#"{"uid_field":"alice"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = c
        .post(&flow)
        .form(&[("csrf_token", csrf.as_str()), ("uid_field", "alice")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "the real token works");
    gw.stop().await;
}

const ENROLL: &str = "/.flowgate/flow/default-enrollment-flow/";

const UNENROLL: &str = "/.flowgate/flow/default-unenrollment-flow/";

const PASSWORD_CHANGE: &str = "/.flowgate/flow/default-password-change-flow/";

const TOTP_SETUP: &str = "/.flowgate/flow/default-authenticator-totp-setup/";

const NEW_PASSWORD: &str = "violet tangerine expedition 77";

/// The consent token on an unenrollment confirmation page.
fn consent_token(html: &str) -> String {
    regex::Regex::new(r#"name="token" value="([^"]*)""#)
        .unwrap()
        .captures(html)
        .map(|c| c[1].to_string())
        .unwrap_or_else(|| panic!("no consent token in page:\n{html}"))
}

/// The current code for the TOTP secret shown on the setup page.
fn totp_code_on(gw: &TestGateway, html: &str) -> String {
    let secret = regex::Regex::new(r#"<code id="totp-secret">([A-Z2-7]+)</code>"#)
        .unwrap()
        .captures(html)
        .unwrap_or_else(|| panic!("no TOTP secret in page:\n{html}"))[1]
        .to_string();
    let secret = data_encoding::BASE32_NOPAD.decode(secret.as_bytes()).unwrap();
    mfa::totp_code(&secret, mfa::totp_step(gw.clock.now_ms()), 6)
}

// Attack ids: CSRF-2.
#[tokio::test]
async fn another_sessions_csrf_token_changes_nothing() {
    // CSRF-2: the attacker holds valid tokens of sessions of their own (an anonymous flow
    // session, and bob's logged-in session) and makes the victim's browser post one of them
    // with the victim's cookie. Every stage that writes (enrollment prompt → user_write,
    // password change → user_write, TOTP setup, unenrollment → user_delete) refuses it and the
    // store is unchanged; the victim's own token then works, so the refusal is the token's.
    let gw = TestGateway::start_with(DEFAULT_APP, NO_LIMITS).await;
    let anon_attacker = client();
    let anon_token = csrf_of(&page(&anon_attacker, &gw.url(ENROLL)).await.1);
    let bob = client();
    html_login(&bob, &gw.url(""), "/", "bob", BOB_PASSWORD).await;
    let bob_token = csrf_of(&page(&bob, &gw.url(TOTP_SETUP)).await.1);
    let foreign = [("an anonymous session's", anon_token), ("bob's", bob_token)];
    let store = || async { users(&gw).list_users().await.unwrap() };

    // Enrollment: the prompt's answer would be written by user_write on the next GET.
    let victim = client();
    let own = csrf_of(&page(&victim, &gw.url(ENROLL)).await.1);
    let before = store().await;
    let enroll = |token: &str| {
        vec![
            ("csrf_token", token.to_string()),
            ("username", "mallory".to_string()),
            ("name", "M".to_string()),
            ("email", "m@example.test".to_string()),
            ("password", NEW_PASSWORD.to_string()),
            ("password_repeat", NEW_PASSWORD.to_string()),
        ]
    };
    for (what, token) in &foreign {
        let r = victim.post(gw.url(ENROLL)).form(&enroll(token)).send().await.unwrap();
        assert_eq!(r.status(), 403, "enrollment with {what} token");
        let (status, html) = page(&victim, &gw.url(ENROLL)).await;
        assert_eq!(status, 200, "{what}");
        assert!(
            html.contains("name=\"username\""),
            "still at the prompt ({what}):\n{html}"
        );
    }
    assert_eq!(store().await, before, "enrollment wrote nothing");
    let r = victim.post(gw.url(ENROLL)).form(&enroll(&own)).send().await.unwrap();
    assert_eq!(r.status(), 302, "the victim's own token is accepted");
    victim.get(gw.url(ENROLL)).send().await.unwrap();
    assert!(users(&gw).get_by_username("mallory").await.unwrap().is_some());

    // Password change (user_write on the logged-in user) and TOTP setup, as alice.
    let alice = client();
    html_login(&alice, &gw.url(""), "/", "alice", ALICE_PASSWORD).await;
    let alice_id = users(&gw).get_by_username("alice").await.unwrap().unwrap().id;
    let r = reauthenticate(&alice, &gw.url(PASSWORD_CHANGE), ALICE_PASSWORD).await;
    let own = csrf_of(&r.text().await.unwrap());
    let change = |token: &str| {
        vec![
            ("csrf_token", token.to_string()),
            ("password", NEW_PASSWORD.to_string()),
            ("password_repeat", NEW_PASSWORD.to_string()),
        ]
    };
    let before = store().await;
    for (what, token) in &foreign {
        let r = alice
            .post(gw.url(PASSWORD_CHANGE))
            .form(&change(token))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "password change with {what} token");
        page(&alice, &gw.url(PASSWORD_CHANGE)).await;
    }
    assert_eq!(store().await, before, "password change wrote nothing");
    let a = users(&gw).get_by_username("alice").await.unwrap().unwrap();
    assert!(users(&gw).verify_password(&a, ALICE_PASSWORD).await.unwrap());
    let r = alice
        .post(gw.url(PASSWORD_CHANGE))
        .form(&change(&own))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "the victim's own token is accepted");
    alice.get(gw.url(PASSWORD_CHANGE)).send().await.unwrap();
    let a = users(&gw).get_by_username("alice").await.unwrap().unwrap();
    assert!(users(&gw).verify_password(&a, NEW_PASSWORD).await.unwrap());

    let html = reauthenticate(&alice, &gw.url(TOTP_SETUP), NEW_PASSWORD)
        .await
        .text()
        .await
        .unwrap();
    let own = csrf_of(&html);
    let code = totp_code_on(&gw, &html);
    for (what, token) in &foreign {
        let r = alice
            .post(gw.url(TOTP_SETUP))
            .form(&[("csrf_token", token.as_str()), ("code", code.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "TOTP setup with {what} token");
        assert!(users(&gw).totp_devices(alice_id).await.unwrap().is_empty(), "{what}");
        assert_eq!(users(&gw).static_code_count(alice_id).await.unwrap(), 0, "{what}");
    }
    let r = alice
        .post(gw.url(TOTP_SETUP))
        .form(&[("csrf_token", own.as_str()), ("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "the victim's own token is accepted");
    assert_eq!(users(&gw).totp_devices(alice_id).await.unwrap().len(), 1);

    // Unenrollment, with the right consent token: only the CSRF token is wrong.
    let mallory = client();
    let done = html_login(&mallory, &gw.url(""), "/", "mallory", NEW_PASSWORD).await;
    assert_eq!(done.status(), 302);
    let html = reauthenticate(&mallory, &gw.url(UNENROLL), NEW_PASSWORD)
        .await
        .text()
        .await
        .unwrap();
    let own = csrf_of(&html);
    let consent = consent_token(&html);
    let before = store().await;
    for (what, token) in &foreign {
        let r = mallory
            .post(gw.url(UNENROLL))
            .form(&[("csrf_token", token.as_str()), ("token", consent.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "unenrollment with {what} token");
        mallory.get(gw.url(UNENROLL)).send().await.unwrap();
        assert_eq!(mallory.get(gw.url("/x")).send().await.unwrap().status(), 200, "{what}");
    }
    assert_eq!(store().await, before, "unenrollment deleted nobody");
    let r = mallory
        .post(gw.url(UNENROLL))
        .form(&[("csrf_token", own.as_str()), ("token", consent.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "the victim's own token is accepted");
    mallory.get(gw.url(UNENROLL)).send().await.unwrap();
    assert!(users(&gw).get_by_username("mallory").await.unwrap().is_none());
    assert_eq!(bob.get(gw.url("/x")).send().await.unwrap().status(), 200);
    gw.stop().await;
}

// Attack ids: CSRF-3.
#[tokio::test]
async fn cross_site_logout_ends_only_the_callers_session() {
    // CSRF-3, first half: an <img src=/logout> on another site.
    let gw = TestGateway::start_with(DEFAULT_APP, NO_LIMITS).await;
    let victim = session_of(&gw, "alice", ALICE_PASSWORD).await;
    let victim_laptop = session_of(&gw, "alice", ALICE_PASSWORD).await;
    let bystander = session_of(&gw, "bob", BOB_PASSWORD).await;
    let users_before = users(&gw).list_users().await.unwrap();
    let get_with = |id: &str, path: &str| {
        bare_client()
            .get(gw.url(path))
            .header("cookie", format!("flowgate_session={id}"))
            .header("sec-fetch-site", "cross-site")
            .header("sec-fetch-mode", "no-cors")
            .header("sec-fetch-dest", "image")
            .header("accept", "image/avif,image/webp,*/*")
            .header("referer", "https://evil.example/page")
            .send()
    };
    let r = get_with(&victim, "/logout").await.unwrap();
    assert!(matches!(r.status().as_u16(), 302 | 200), "{}", r.status());
    let status = |id: String| {
        let c = bare_client();
        let url = gw.url("/private");
        async move {
            c.get(url)
                .header("cookie", format!("flowgate_session={id}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(victim.clone()).await, 401, "the caller's own session ends");
    assert_eq!(
        status(victim_laptop.clone()).await,
        200,
        "the same user's other session stays"
    );
    assert_eq!(status(bystander.clone()).await, 200, "other users' sessions stay");
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("bob"));
    let users_after = users(&gw).list_users().await.unwrap();
    assert_eq!(users_before, users_after, "no user data changed");
    let alice = users(&gw).get_by_username("alice").await.unwrap().unwrap();
    assert!(users(&gw).verify_password(&alice, ALICE_PASSWORD).await.unwrap());
    gw.stop().await;
}

const LOGIN: &str = "/.flowgate/flow/default-authentication-flow/";

/// The JSON executor path of a flow's HTML path.
fn api(flow: &str) -> String {
    flow.replace("/.flowgate/flow/", "/.flowgate/api/v3/flows/executor/")
}

// Attack ids: CSRF-3.
#[tokio::test]
async fn stage_forms_never_submit_on_get() {
    // CSRF-3, second half: form fields in a GET query string are not a stage response.
    let gw = TestGateway::start_with(DEFAULT_APP, NO_LIMITS).await;
    let c = client();
    let flow = gw.url(LOGIN);
    let csrf = csrf_of(&c.get(&flow).send().await.unwrap().text().await.unwrap());
    let q = |pairs: &[(&str, &str)]| {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    };
    // Identification answered in the query: still the identification form.
    let (status, html) = page(
        &c,
        &format!("{flow}?{}", q(&[("csrf_token", &csrf), ("uid_field", "alice")])),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        html.contains("name=\"uid_field\"") && !html.contains("name=\"password\""),
        "{html}"
    );
    let (_, html) = page(&c, &flow).await;
    assert!(!html.contains("name=\"password\""), "a GET moved the flow on:\n{html}");
    // Identification done by POST; the password in a GET query does not log in.
    c.post(&flow)
        .form(&[("csrf_token", csrf.as_str()), ("uid_field", "alice")])
        .send()
        .await
        .unwrap();
    for url in [
        format!("{flow}?{}", q(&[("csrf_token", &csrf), ("password", ALICE_PASSWORD)])),
        gw.url(&format!(
            "/.flowgate/api/v3/flows/executor/default-authentication-flow/?{}",
            q(&[("password", ALICE_PASSWORD), ("query", "password=x")])
        )),
    ] {
        let r = c.get(&url).send().await.unwrap();
        assert!(set_cookie_value(&r, "flowgate_session").is_none(), "{url}");
        assert!(r.status() == 200, "{url}: {}", r.status());
        assert_eq!(c.get(gw.url("/private")).send().await.unwrap().status(), 401, "{url}");
    }
    let (_, html) = page(&c, &flow).await;
    assert!(
        html.contains("name=\"password\""),
        "still at the password stage:\n{html}"
    );

    // Enrollment (user_write) answered in a GET query creates nobody.
    let e = client();
    let enroll = gw.url(ENROLL);
    let csrf = csrf_of(&page(&e, &enroll).await.1);
    let fields = [
        ("csrf_token", csrf.as_str()),
        ("username", "mallory"),
        ("name", "M"),
        ("email", "m@example.test"),
        ("password", NEW_PASSWORD),
        ("password_repeat", NEW_PASSWORD),
    ];
    let (status, _) = page(&e, &format!("{enroll}?{}", q(&fields))).await;
    assert_eq!(status, 200);
    let (status, _) = page(&e, &enroll).await;
    assert_eq!(status, 200);
    assert!(users(&gw).get_by_username("mallory").await.unwrap().is_none());

    // Unenrollment (user_delete) confirmed in a GET query deletes nobody.
    let b = client();
    html_login(&b, &gw.url(""), "/", "bob", BOB_PASSWORD).await;
    let (status, html) = page(&b, &gw.url(UNENROLL)).await;
    assert_eq!(status, 200);
    let token = regex::Regex::new(r#"name="token" value="([^"]*)""#)
        .unwrap()
        .captures(&html)
        .map(|c| c[1].to_string())
        .unwrap_or_default();
    let csrf = csrf_of(&html);
    page(
        &b,
        &format!(
            "{}?{}",
            gw.url(UNENROLL),
            q(&[("csrf_token", &csrf), ("token", &token)])
        ),
    )
    .await;
    page(&b, &gw.url(UNENROLL)).await;
    assert!(users(&gw).get_by_username("bob").await.unwrap().is_some());
    assert_eq!(b.get(gw.url("/x")).send().await.unwrap().status(), 200);
    gw.stop().await;
}

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
