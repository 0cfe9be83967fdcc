//! ID-1 and ID-2 of docs/security.md: who a sign-up may claim to be. Another user's email (in
//! any case) is refused on the form and by the store, an address nobody confirmed never
//! reaches the app as the user's email, usernames are stored in NFKC without invisible
//! characters, and reserved names and look-alikes of existing names (case, width, Cyrillic
//! letters, zero-width characters) are field errors on the re-rendered form, not a 403.

use crate::common::*;
use flowgate::identity::{NewUser, StoreError, UserUpdate};

const ENROLL: &str = "/.flowgate/flow/default-enrollment-flow/";
const ENROLL_EMAIL: &str = "/.flowgate/flow/default-enrollment-email-flow/";
const ENROLL_API: &str = "/.flowgate/api/v3/flows/executor/default-enrollment-flow/";
const PASSWORD: &str = "violet tangerine expedition 77";

fn fields<'a>(username: &'a str, email: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("username", username),
        ("name", "New User"),
        ("email", email),
        ("password", PASSWORD),
        ("password_repeat", PASSWORD),
    ]
}

/// Posts the sign-up form in a fresh browser; the answer's status and body.
async fn sign_up(gw: &TestGateway, flow: &str, username: &str, email: &str) -> (u16, String) {
    let r = walk(&client(), &gw.url(flow), &fields(username, email)).await;
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The same through the JSON executor: the first error code on `field`, if any.
async fn api_error(gw: &TestGateway, username: &str, email: &str, field: &str) -> Option<String> {
    let c = client();
    let url = gw.url(ENROLL_API);
    c.get(&url).send().await.unwrap();
    let body: serde_json::Map<String, serde_json::Value> = fields(username, email)
        .into_iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
        .collect();
    let v: serde_json::Value = c.post(&url).json(&body).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["component"], "ak-stage-prompt", "the prompt comes back: {v}");
    v["response_errors"][field][0]["code"].as_str().map(str::to_string)
}

async fn user_count(gw: &TestGateway) -> usize {
    users(gw).list_users().await.unwrap().len()
}

// === ID-1 ===

#[tokio::test]
async fn another_users_email_in_any_case_is_a_field_error() {
    let gw = TestGateway::start().await;
    let before = user_count(&gw).await;
    for email in [
        "bob@example.test",
        "BOB@example.test",
        "Bob@Example.Test",
        "ｂob@example.test",
        " bob@example.test ",
    ] {
        let (status, html) = sign_up(&gw, ENROLL, "newcomer", email).await;
        assert_eq!(status, 400, "{email:?} must be a form error, not {status}:\n{html}");
        assert!(
            html.contains("This email address is already in use."),
            "{email:?}: no field error:\n{html}"
        );
        assert!(html.contains(r#"id="f-email""#), "{email:?}: the form is shown again");
        assert_eq!(
            api_error(&gw, "newcomer", email, "email").await.as_deref(),
            Some("unique")
        );
    }
    // The verifying sign-up refuses it on its form too, before any mail goes out.
    let (status, html) = sign_up(&gw, ENROLL_EMAIL, "newcomer", "BOB@EXAMPLE.TEST").await;
    assert_eq!(status, 400, "{html}");
    assert!(html.contains("This email address is already in use."));
    assert!(all_mail(&gw).is_empty(), "no mail for a taken address");
    assert_eq!(user_count(&gw).await, before, "nobody was created");
    gw.stop().await;
}

#[tokio::test]
async fn the_store_refuses_a_second_user_with_the_same_email() {
    let gw = TestGateway::start().await;
    let store = users(&gw);
    let new = |username: &str, email: &str| NewUser {
        username: username.into(),
        email: email.into(),
        is_active: true,
        ..Default::default()
    };
    for email in ["bob@example.test", "BOB@EXAMPLE.TEST", "ｂｏｂ@example.test"] {
        let e = store.create_user(new("someone", email)).await.unwrap_err();
        assert!(matches!(e, StoreError::Duplicate { what: "email", .. }), "{email}: {e}");
    }
    let dora = store.create_user(new("dora", "dora@example.test")).await.unwrap();
    let e = store
        .update_user(
            dora.id,
            UserUpdate {
                email: Some("Alice@Example.Test".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Duplicate { what: "email", .. }), "{e}");
    // A user keeps their own address in another case.
    store
        .update_user(
            dora.id,
            UserUpdate {
                email: Some("DORA@example.test".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    gw.stop().await;
}

#[tokio::test]
async fn an_unverified_email_never_reaches_the_app_and_a_verified_one_does() {
    let gw = TestGateway::start().await;
    // The plain sign-up stores the address it was given, unverified.
    let c = client();
    let r = walk(&c, &gw.url(ENROLL), &fields("dora", "dora@example.test")).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let dora = users(&gw).get_by_username("dora").await.unwrap().unwrap();
    assert_eq!(dora.email, "dora@example.test");
    assert!(!dora.email_verified);
    assert_eq!(c.get(gw.url("/app")).send().await.unwrap().status(), 200);
    let seen = gw.upstream.last();
    assert_eq!(seen.header("x-forwarded-user"), Some("dora"));
    assert_eq!(
        seen.header("x-forwarded-email").unwrap_or(""),
        "",
        "an address nobody confirmed reached the app as the user's email"
    );

    // The verifying sign-up: the user exists once the link is followed, with a verified address.
    // The link is followed in the browser that signed up (a link signs in only that one, LINK-1).
    let browser = client();
    let r = walk(&browser, &gw.url(ENROLL_EMAIL), &fields("erin", "erin@example.test")).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let link = mailed_link(&gw, "erin@example.test");
    let r = walk(&browser, &link, &[]).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert!(
        users(&gw)
            .get_by_username("erin")
            .await
            .unwrap()
            .unwrap()
            .email_verified
    );
    assert_eq!(browser.get(gw.url("/app")).send().await.unwrap().status(), 200);
    assert_eq!(
        gw.upstream.last().header("x-forwarded-email"),
        Some("erin@example.test")
    );

    // Seeded (admin-given) addresses are sent as before.
    let alice = client();
    html_login(&alice, &gw.url(""), "/", "alice", ALICE_PASSWORD).await;
    alice.get(gw.url("/app")).send().await.unwrap();
    assert_eq!(
        gw.upstream.last().header("x-forwarded-email"),
        Some("alice@example.test")
    );
    gw.stop().await;
}

// === ID-2 ===

#[tokio::test]
async fn look_alikes_and_reserved_names_are_field_errors() {
    let gw = TestGateway::start().await;
    let before = user_count(&gw).await;
    for (i, name) in [
        "ALICE",
        "Bob",
        "ａｌｉｃｅ",
        "аlice",
        "alіce",
        "b\u{043E}b",
        "admin",
        "ADMIN",
        "ａｄｍｉｎ",
        "аdmin",
        "root",
        "Administrator",
        "system",
    ]
    .iter()
    .enumerate()
    {
        let email = format!("new{i}@example.test");
        let (status, html) = sign_up(&gw, ENROLL, name, &email).await;
        assert_eq!(status, 400, "{name:?} must be a form error, not {status}:\n{html}");
        assert!(html.contains("Username is already taken."), "{name:?}:\n{html}");
        assert!(html.contains(r#"id="f-username""#), "{name:?}: the form is shown again");
        assert_eq!(
            api_error(&gw, name, &email, "username").await.as_deref(),
            Some("unique"),
            "{name:?}"
        );
    }
    assert_eq!(user_count(&gw).await, before, "nobody was created");
    gw.stop().await;
}

#[tokio::test]
async fn invisible_characters_are_refused_and_names_are_stored_in_nfkc() {
    let gw = TestGateway::start().await;
    let before = user_count(&gw).await;
    for (i, name) in [
        "al\u{200B}ice",
        "dora\u{200D}",
        "\u{FEFF}dora",
        "do\u{2060}ra",
        "do\u{202E}ra",
        "dora\u{FE0F}",
        "do\u{00AD}ra",
        "do\u{3164}ra",
        "do ra",
    ]
    .iter()
    .enumerate()
    {
        let email = format!("new{i}@example.test");
        let (status, html) = sign_up(&gw, ENROLL, name, &email).await;
        assert_eq!(status, 400, "{name:?} must be a form error, not {status}:\n{html}");
        assert!(html.contains("Enter a valid username"), "{name:?}:\n{html}");
        assert_eq!(
            api_error(&gw, name, &email, "username").await.as_deref(),
            Some("invalid"),
            "{name:?}"
        );
    }
    assert_eq!(user_count(&gw).await, before);
    // Fullwidth letters are stored as the letters they stand for, and the app sees those.
    let c = client();
    let r = walk(&c, &gw.url(ENROLL), &fields("ｄｏｒａ", "dora@example.test")).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert!(users(&gw).get_by_username("dora").await.unwrap().is_some());
    c.get(gw.url("/app")).send().await.unwrap();
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("dora"));
    // And the store refuses look-alikes whoever writes them.
    let e = users(&gw)
        .create_user(NewUser {
            username: "DОRA".into(),
            is_active: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Duplicate { what: "user", .. }), "{e}");
    gw.stop().await;
}

#[tokio::test]
async fn the_reserved_list_is_configurable() {
    let extra = "identity: { seed: seed.yaml, reserved_usernames: [ops, \"helpdesk\"] }\n";
    let gw = TestGateway::start_with(DEFAULT_APP, extra).await;
    for name in ["ops", "OPS", "ｈelpdesk"] {
        let (status, html) = sign_up(&gw, ENROLL, name, &format!("{}@example.test", name.len())).await;
        assert_eq!(status, 400, "{name:?}:\n{html}");
        assert!(html.contains("Username is already taken."), "{name:?}");
    }
    // The configured list replaces the default one.
    let (status, html) = sign_up(&gw, ENROLL, "admin", "admin@example.test").await;
    assert_eq!(status, 302, "{html}");
    gw.stop().await;

    let bad = "identity: { seed: seed.yaml, reserved_usernames: [\"\"] }\n";
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(DEFAULT_APP, bad, "127.0.0.1:1".parse().unwrap(), dir.path());
    let err = flowgate::config::Config::from_yaml_str(&text, "t.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("identity.reserved_usernames[0]"), "{err}");
}
