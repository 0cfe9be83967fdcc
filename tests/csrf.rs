//! Cross-site request forgery: a flow changes state only on a POST that carries the session's
//! own CSRF token and comes from the gateway's origin. A login POST without the token, another
//! session's token on every state-changing stage, cross-origin and `text/plain` JSON posts, stage
//! answers in a GET query and a cross-site logout change nothing but, at most, the caller's own
//! session. Over real sockets, with the store checked afterwards.

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
