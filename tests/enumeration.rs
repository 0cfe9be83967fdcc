//! ENUM-4 and ENUM-5 of docs/security.md: the recovery flow answers the same for an account
//! and for an identifier without one on every step (resends up to the limit and past it, an
//! untrusted `Host`, an account without an address, a mail relay that is down), and the login
//! pages show what the user typed, never the stored username it matched. Timing is measured by
//! `benches/enum_timing.sh`, not asserted here.

use crate::common::*;
use flowgate::identity::NewUser;

const LOGIN: &str = "/.flowgate/flow/default-authentication-flow/";
const LOGIN_API: &str = "/.flowgate/api/v3/flows/executor/default-authentication-flow/";
const RECOVERY: &str = "/.flowgate/flow/default-recovery-flow/";
/// The per-address and per-client mail limits off: these tests walk the per-plan resend limit
/// for several identifiers from one address (the mail limits are FLOOD-1, `floods.rs`).
const MAIL_LIMITS_OFF: &str = "rate_limits: { mail_per_address: off, mail_per_ip: off }\n";
/// More than the email stage's limit of five sends per plan.
const RESENDS: usize = 7;

fn client_with_host(host: &str) -> reqwest::Client {
    let mut map = reqwest::header::HeaderMap::new();
    map.insert(
        reqwest::header::HOST,
        reqwest::header::HeaderValue::from_str(host).unwrap(),
    );
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .default_headers(map)
        .build()
        .unwrap()
}

/// A page with what differs by construction taken out: the CSRF token and the identifier.
fn normalised(html: &str, identifier: &str) -> String {
    let csrf = regex::Regex::new(r#"name="csrf_token" value="[^"]+""#).unwrap();
    csrf.replace_all(&html.replace(identifier, "IDENTIFIER"), "")
        .into_owned()
}

/// Every answer of one recovery attempt for `identifier`: the identification step, then
/// `RESENDS` requests for the mail again.
async fn recovery_answers(gw: &TestGateway, c: &reqwest::Client, identifier: &str) -> Vec<(u16, String)> {
    let url = gw.url(RECOVERY);
    let mut out = Vec::new();
    let r = walk(c, &url, &[("uid_field", identifier)]).await;
    out.push((r.status().as_u16(), normalised(&r.text().await.unwrap(), identifier)));
    for _ in 0..RESENDS {
        let (status, html) = page(c, &url).await;
        if status != 200 && status != 400 {
            out.push((status, normalised(&html, identifier)));
            break;
        }
        let r = c
            .post(&url)
            .form(&[("csrf_token", csrf_of(&html).as_str())])
            .send()
            .await
            .unwrap();
        out.push((r.status().as_u16(), normalised(&r.text().await.unwrap(), identifier)));
    }
    out
}

/// Asserts that `known` and `unknown` got the same answers step by step.
fn same_answers(what: &str, known: &[(u16, String)], unknown: &[(u16, String)]) {
    assert_eq!(known.len(), unknown.len(), "{what}: a different number of steps");
    for (i, (k, u)) in known.iter().zip(unknown).enumerate() {
        assert_eq!(
            k.0, u.0,
            "{what}, step {i}: status {} for the account, {} without",
            k.0, u.0
        );
        assert_eq!(k.1, u.1, "{what}, step {i}: the page tells an account from no account");
    }
}

async fn add_user_without_email(gw: &TestGateway) {
    users(gw)
        .create_user(NewUser {
            username: "dave".into(),
            password: Some("dave's long password 1".into()),
            is_active: true,
            ..Default::default()
        })
        .await
        .unwrap();
}

// === ENUM-4 ===

#[tokio::test]
async fn recovery_answers_alike_through_the_resend_limit() {
    let gw = TestGateway::start_with(DEFAULT_APP, MAIL_LIMITS_OFF).await;
    add_user_without_email(&gw).await;
    let unknown = recovery_answers(&gw, &client(), "nobody@example.test").await;
    assert!(
        unknown.iter().any(|(_, html)| html.contains("Too many emails")),
        "the resend limit holds for an unknown identifier too: {unknown:?}"
    );
    for known in ["bob@example.test", "BOB", "dave"] {
        let answers = recovery_answers(&gw, &client(), known).await;
        same_answers(&format!("{known} vs unknown"), &answers, &unknown);
    }
    // Mail went to bob only: five sends allowed per plan, for each of the two attempts.
    let mails = all_mail(&gw);
    assert_eq!(mails.len(), 10, "five mails per attempt, to bob only");
    assert!(mails.iter().all(|m| m.contains("To: bob@example.test")));
    gw.stop().await;
}

#[tokio::test]
async fn recovery_answers_alike_for_an_untrusted_host() {
    let gw = TestGateway::start_with(DEFAULT_APP, MAIL_LIMITS_OFF).await;
    add_user_without_email(&gw).await;
    let host = "evil.example";
    let unknown = recovery_answers(&gw, &client_with_host(host), "nobody@example.test").await;
    assert!(
        unknown[0].1.contains("Email links cannot be built"),
        "no link is built from an unknown Host: {:?}",
        unknown[0]
    );
    for known in ["bob", "bob@example.test", "dave"] {
        let answers = recovery_answers(&gw, &client_with_host(host), known).await;
        same_answers(&format!("{known} vs unknown, Host {host}"), &answers, &unknown);
    }
    assert!(all_mail(&gw).is_empty(), "a mail went out for an unknown Host");
    gw.stop().await;
}

#[tokio::test]
async fn recovery_answers_alike_when_the_relay_is_down() {
    let dead = unused_port();
    let extra = format!(
        "mail: {{ transport: smtp, host: 127.0.0.1, port: {dead}, security: none, timeout: 2s }}\n{MAIL_LIMITS_OFF}"
    );
    let gw = TestGateway::start_with(DEFAULT_APP, &extra).await;
    add_user_without_email(&gw).await;
    let unknown = recovery_answers(&gw, &client(), "nobody@example.test").await;
    assert_eq!(unknown[0].0, 200);
    assert!(unknown[0].1.contains("Check your email"), "{:?}", unknown[0]);
    for known in ["bob", "dave"] {
        let answers = recovery_answers(&gw, &client(), known).await;
        same_answers(&format!("{known} vs unknown, relay down"), &answers, &unknown);
    }
    wait_for_mail(&gw);
    gw.stop().await;
}

#[tokio::test]
async fn recovery_for_a_known_address_still_mails_a_working_link() {
    let gw = TestGateway::start().await;
    let r = walk(&client(), &gw.url(RECOVERY), &[("uid_field", "Bob@Example.Test")]).await;
    assert_eq!(r.status(), 200);
    let link = mailed_link(&gw, "bob@example.test");
    let browser = client();
    reset_password_via_link(&browser, &link, "violet tangerine expedition 77").await;
    let bob = users(&gw).get_by_username("bob").await.unwrap().unwrap();
    assert!(users(&gw)
        .verify_password(&bob, "violet tangerine expedition 77")
        .await
        .unwrap());
    assert!(bob.email_verified, "following the link proved the address");
    gw.stop().await;
}

// === ENUM-5 ===

#[tokio::test]
async fn the_login_page_shows_what_was_typed_never_the_stored_username() {
    let gw = TestGateway::start().await;
    let unknown_typed = "nobody@example.test";
    let c = client();
    let r = walk(&c, &gw.url(LOGIN), &[("uid_field", unknown_typed)]).await;
    let unknown = normalised(&r.text().await.unwrap(), unknown_typed);
    for typed in ["BOB", "Bob", "bob@example.test", "BOB@EXAMPLE.TEST"] {
        let c = client();
        let r = walk(&c, &gw.url(LOGIN), &[("uid_field", typed)]).await;
        assert_eq!(r.status(), 200);
        let html = r.text().await.unwrap();
        assert!(
            html.contains(&format!("Signing in as <strong>{typed}</strong>")),
            "{typed:?}: the page shows something else:\n{html}"
        );
        assert!(
            !html.contains("<strong>bob</strong>"),
            "{typed:?}: the stored username is shown"
        );
        assert_eq!(
            normalised(&html, typed),
            unknown,
            "{typed:?}: the password page tells an account from no account"
        );
        // The JSON executor says the same.
        let api = client();
        let url = gw.url(LOGIN_API);
        api.get(&url).send().await.unwrap();
        let r = api
            .post(&url)
            .json(&serde_json::json!({ "uid_field": typed }))
            .send()
            .await
            .unwrap();
        let v: serde_json::Value = if r.status() == 302 {
            api.get(&url).send().await.unwrap().json().await.unwrap()
        } else {
            r.json().await.unwrap()
        };
        assert_eq!(v["pending_user"], *typed, "{v}");
    }
    // The right password still logs in, as bob.
    let c = client();
    let done = html_login(&c, &gw.url(""), "/", "BOB@example.test", BOB_PASSWORD).await;
    assert_eq!(done.status(), 302);
    c.get(gw.url("/app")).send().await.unwrap();
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("bob"));
    gw.stop().await;
}
