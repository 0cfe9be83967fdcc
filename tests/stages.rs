//! The shipped flows walked end to end over HTTP as a new user would, with the database checked
//! afterwards: enrollment (plain and with email verification through a real SMTP exchange),
//! recovery by email, unenrollment, password change, TOTP setup and login with TOTP, and the
//! captcha shown only on bad reputation (against a local siteverify server).

use crate::common::*;
use crate::common::{siteverify, smtp};
use flowgate::identity::mfa;
use flowgate::session::clock::Clock;
use std::time::Duration;

const ENROLL: &str = "/.flowgate/flow/default-enrollment-flow/";
const ENROLL_EMAIL: &str = "/.flowgate/flow/default-enrollment-email-flow/";
const RECOVERY: &str = "/.flowgate/flow/default-recovery-flow/";
const UNENROLL: &str = "/.flowgate/flow/default-unenrollment-flow/";
const PASSWORD_CHANGE: &str = "/.flowgate/flow/default-password-change-flow/";
const TOTP_SETUP: &str = "/.flowgate/flow/default-authenticator-totp-setup/";
const LOGIN: &str = "/.flowgate/flow/default-authentication-flow/";
const NEW_PASSWORD: &str = "violet tangerine expedition 77";

/// Logs `user` in through the default flow (no second factor asked).
async fn login(gw: &TestGateway, c: &reqwest::Client, user: &str, password: &str) {
    let r = html_login(c, &gw.url(""), "/", user, password).await;
    assert_eq!(r.status(), 302, "login of {user} failed");
    assert_eq!(location(&r), "/");
}

fn enroll_fields<'a>(username: &'a str, email: &'a str, pw: &'a str, repeat: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("username", username),
        ("name", "Dora Explorer"),
        ("email", email),
        ("password", pw),
        ("password_repeat", repeat),
    ]
}

#[tokio::test]
async fn enrollment_creates_the_user_and_logs_in() {
    let gw = TestGateway::start().await;
    let c = client();
    let url = gw.url(ENROLL);
    let r = walk(
        &c,
        &url,
        &enroll_fields("dora", "dora@example.test", NEW_PASSWORD, NEW_PASSWORD),
    )
    .await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert_eq!(location(&r), "/");
    let u = users(&gw).get_by_username("dora").await.unwrap().expect("user stored");
    assert!(u.is_active);
    assert_eq!(u.email, "dora@example.test");
    assert_eq!(u.name, "Dora Explorer");
    assert_eq!(u.groups, vec!["users".to_string()]);
    assert!(users(&gw).verify_password(&u, NEW_PASSWORD).await.unwrap());
    // The new session reaches the app as dora.
    assert_eq!(c.get(gw.url("/app")).send().await.unwrap().status(), 200);
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("dora"));
}

#[tokio::test]
async fn enrollment_rejects_bad_values_and_stores_nothing() {
    let gw = TestGateway::start().await;
    let c = client();
    let url = gw.url(ENROLL);
    let cases: [(Vec<(&str, &str)>, &str); 5] = [
        (
            enroll_fields("dora", "dora@example.test", NEW_PASSWORD, "other"),
            "Passwords don&#x27;t match.",
        ),
        (
            enroll_fields("dora", "not-an-email", NEW_PASSWORD, NEW_PASSWORD),
            "Enter a valid email address.",
        ),
        (
            enroll_fields("alice", "a2@example.test", NEW_PASSWORD, NEW_PASSWORD),
            "Username is already taken.",
        ),
        (
            enroll_fields("", "dora@example.test", NEW_PASSWORD, NEW_PASSWORD),
            "This field is required.",
        ),
        (
            enroll_fields("dora", "dora@example.test", "short", "short"),
            "Choose a longer or less common password.",
        ),
    ];
    for (fields, message) in cases {
        let r = walk(&c, &url, &fields).await;
        assert_eq!(r.status(), 400);
        let html = r.text().await.unwrap();
        assert!(html.contains(message), "expected {message:?} in:\n{html}");
    }
    assert!(users(&gw).get_by_username("dora").await.unwrap().is_none());
    assert_eq!(users(&gw).list_users().await.unwrap().len(), 3);
}

#[tokio::test]
async fn enrollment_answers_json_clients_with_the_prompt_fields() {
    let gw = TestGateway::start().await;
    let c = client();
    let url = gw.url("/.flowgate/api/v3/flows/executor/default-enrollment-flow/");
    let v: serde_json::Value = c.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["component"], "ak-stage-prompt");
    let keys: Vec<&str> = v["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["username", "name", "email", "password", "password_repeat"]);
    // A number where a string belongs is refused without storing anything.
    let r = c
        .post(&url)
        .json(&serde_json::json!({"username": ["x"], "name": "n", "email": "e@example.test", "password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD}))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["response_errors"]["username"][0]["code"], "invalid", "{v}");
    assert_eq!(users(&gw).list_users().await.unwrap().len(), 3);
}

fn smtp_mail(server: &smtp::SmtpServer) -> String {
    format!(
        "mail: {{ transport: smtp, host: 127.0.0.1, port: {}, security: none, timeout: 5s }}\n",
        server.addr().port()
    )
}

/// The first http link in a mail's text.
fn link_in(mail: &smtp::Received) -> String {
    let text = mail.text();
    let re = regex::Regex::new(r"https?://\S+").unwrap();
    re.find(&text)
        .unwrap_or_else(|| panic!("no link in mail:\n{text}"))
        .as_str()
        .to_string()
}

#[tokio::test]
async fn enrollment_with_email_verification_over_smtp() {
    let server = smtp::SmtpServer::spawn().await;
    let gw = TestGateway::start_with(DEFAULT_APP, &smtp_mail(&server)).await;
    let c = client();
    let url = gw.url(&format!("{ENROLL_EMAIL}?next=%2Fwelcome"));
    let r = walk(
        &c,
        &url,
        &enroll_fields("erin", "erin@example.test", NEW_PASSWORD, NEW_PASSWORD),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Check your email"));
    let mails = server.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails[0].to, vec!["erin@example.test".to_string()]);
    assert_eq!(
        mails[0].header("subject").as_deref(),
        Some("Confirm your email address")
    );
    // Nothing is stored before the address is confirmed.
    assert!(users(&gw).get_by_username("erin").await.unwrap().is_none());

    let link = link_in(&mails[0]);
    assert!(link.starts_with(&gw.url(ENROLL_EMAIL)), "{link}");
    // A mail scanner opening the link sees the confirmation page and uses nothing up.
    let scanner = client();
    let (status, html) = page(&scanner, &link).await;
    assert_eq!(status, 200);
    assert!(html.contains("Continue to confirm this email address."));
    // The user opens the same link in the browser that asked for it and confirms.
    let browser = c.clone();
    let r = walk(&browser, &link, &[]).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert_eq!(location(&r), "/welcome");
    let u = users(&gw)
        .get_by_username("erin")
        .await
        .unwrap()
        .expect("user stored after confirmation");
    assert!(u.is_active);
    assert!(users(&gw).verify_password(&u, NEW_PASSWORD).await.unwrap());
    // The link works once.
    let (status, html) = page(&client(), &link).await;
    assert_eq!(status, 403);
    assert!(html.contains("expired or was already used"), "{html}");
    let (status, _) = page(&scanner, &link).await;
    assert_eq!(status, 403, "the scanner's parked copy cannot be confirmed either");
}

#[tokio::test]
async fn mailed_links_expire() {
    let server = smtp::SmtpServer::spawn().await;
    let gw = TestGateway::start_with(DEFAULT_APP, &smtp_mail(&server)).await;
    let c = client();
    walk(
        &c,
        &gw.url(ENROLL_EMAIL),
        &enroll_fields("fay", "fay@example.test", NEW_PASSWORD, NEW_PASSWORD),
    )
    .await;
    let link = link_in(&server.wait_for(1, Duration::from_secs(10)).await[0]);
    gw.clock.advance(Duration::from_secs(31 * 60));
    let (status, html) = page(&client(), &link).await;
    assert_eq!(status, 403);
    assert!(html.contains("expired or was already used"));
    assert!(users(&gw).get_by_username("fay").await.unwrap().is_none());
}

#[tokio::test]
async fn smtp_down_stores_nothing_and_the_page_does_not_depend_on_it() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let extra = format!("mail: {{ transport: smtp, host: 127.0.0.1, port: {dead}, security: none, timeout: 2s }}\n");
    let gw = TestGateway::start_with(DEFAULT_APP, &extra).await;
    let c = client();
    let r = walk(
        &c,
        &gw.url(ENROLL_EMAIL),
        &enroll_fields("gus", "gus@example.test", NEW_PASSWORD, NEW_PASSWORD),
    )
    .await;
    // The mail is sent off the request path (ENUM-4): the page is the usual one.
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Check your email"));
    crate::common::wait_for_mail(&gw);
    assert!(users(&gw).get_by_username("gus").await.unwrap().is_none());
}

#[tokio::test]
async fn recovery_by_email_sets_a_new_password() {
    let server = smtp::SmtpServer::spawn().await;
    let gw = TestGateway::start_with(DEFAULT_APP, &smtp_mail(&server)).await;
    let c = client();
    let r = walk(&c, &gw.url(RECOVERY), &[("uid_field", "BOB@example.test")]).await;
    assert_eq!(r.status(), 200);
    let mails = server.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails[0].to, vec!["bob@example.test".to_string()]);
    let link = link_in(&mails[0]);
    // Confirm the link in the browser that asked for it (only that one is logged in by it),
    // then choose the new password twice.
    let browser = c.clone();
    reset_password_via_link(&browser, &link, NEW_PASSWORD).await;
    let bob = users(&gw).get_by_username("bob").await.unwrap().unwrap();
    assert!(users(&gw).verify_password(&bob, NEW_PASSWORD).await.unwrap());
    assert!(!users(&gw).verify_password(&bob, "bob's secret 42").await.unwrap());
    assert_eq!(browser.get(gw.url("/x")).send().await.unwrap().status(), 200);
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("bob"));
}

#[tokio::test]
async fn recovery_for_an_unknown_address_looks_the_same_and_sends_nothing() {
    let server = smtp::SmtpServer::spawn().await;
    let gw = TestGateway::start_with(DEFAULT_APP, &smtp_mail(&server)).await;
    let known = walk(&client(), &gw.url(RECOVERY), &[("uid_field", "bob@example.test")]).await;
    let unknown = walk(&client(), &gw.url(RECOVERY), &[("uid_field", "nobody@example.test")]).await;
    assert_eq!(known.status(), unknown.status());
    let csrf = regex::Regex::new(r#"name="csrf_token" value="[^"]+""#).unwrap();
    let (a, b) = (known.text().await.unwrap(), unknown.text().await.unwrap());
    assert!(b.contains("Check your email"));
    let a = csrf.replace(&a.replace("bob@example.test", "X"), "").into_owned();
    let b = csrf.replace(&b.replace("nobody@example.test", "X"), "").into_owned();
    assert_eq!(a, b, "the page must not tell a known address from an unknown one");
    server.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(server.messages().len(), 1, "only the known address gets mail");
}

#[tokio::test]
async fn unenrollment_deletes_the_user_and_every_session() {
    let gw = TestGateway::start().await;
    let c = client();
    let other = client();
    login(&gw, &c, "bob", "bob's secret 42").await;
    login(&gw, &other, "bob", "bob's secret 42").await;
    let url = gw.url(UNENROLL);
    let html = reauthenticate(&c, &url, "bob's secret 42").await.text().await.unwrap();
    assert!(html.contains("name=\"token\""));
    // A forged confirmation without the challenge's token changes nothing.
    let csrf = csrf_of(&html);
    let r = c
        .post(&url)
        .form(&[("csrf_token", csrf.as_str()), ("token", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(users(&gw).get_by_username("bob").await.unwrap().is_some());
    let token = regex::Regex::new(r#"name="token" value="([^"]+)""#)
        .unwrap()
        .captures(&r.text().await.unwrap())
        .unwrap()[1]
        .to_string();
    let r = walk(&c, &url, &[("token", token.as_str())]).await;
    assert_eq!(r.status(), 302);
    assert!(users(&gw).get_by_username("bob").await.unwrap().is_none());
    for client in [&c, &other] {
        let r = client
            .get(gw.url("/x"))
            .header("accept", BROWSER_ACCEPT)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "a deleted user's sessions are gone");
    }
}

#[tokio::test]
async fn unenrollment_needs_a_login() {
    let gw = TestGateway::start().await;
    let (status, _) = page(&client(), &gw.url(UNENROLL)).await;
    assert_eq!(status, 403);
    assert_eq!(users(&gw).list_users().await.unwrap().len(), 3);
}

#[tokio::test]
async fn password_change_for_the_logged_in_user() {
    let gw = TestGateway::start().await;
    let c = client();
    login(&gw, &c, "alice", "correct horse battery staple").await;
    let url = gw.url(PASSWORD_CHANGE);
    reauthenticate(&c, &url, "correct horse battery staple").await;
    let r = walk(&c, &url, &[("password", NEW_PASSWORD), ("password_repeat", "typo")]).await;
    assert_eq!(r.status(), 400);
    let alice = users(&gw).get_by_username("alice").await.unwrap().unwrap();
    assert!(users(&gw)
        .verify_password(&alice, "correct horse battery staple")
        .await
        .unwrap());
    let r = walk(
        &c,
        &url,
        &[("password", NEW_PASSWORD), ("password_repeat", NEW_PASSWORD)],
    )
    .await;
    assert_eq!(r.status(), 302);
    let alice = users(&gw).get_by_username("alice").await.unwrap().unwrap();
    assert!(users(&gw).verify_password(&alice, NEW_PASSWORD).await.unwrap());
    assert_eq!(alice.groups, vec!["admins".to_string(), "staff".to_string()]);
    // Still logged in.
    assert_eq!(c.get(gw.url("/x")).send().await.unwrap().status(), 200);
}

/// The current code for the base32 secret shown on the setup page.
fn code_for(secret_b32: &str, now_ms: u64) -> String {
    let secret = data_encoding::BASE32_NOPAD.decode(secret_b32.as_bytes()).unwrap();
    mfa::totp_code(&secret, mfa::totp_step(now_ms), 6)
}

async fn setup_totp(gw: &TestGateway, c: &reqwest::Client, password: &str) -> (String, Vec<String>) {
    let url = gw.url(TOTP_SETUP);
    let html = reauthenticate(c, &url, password).await.text().await.unwrap();
    assert!(html.contains("<svg"), "the QR code is inline SVG");
    let secret = regex::Regex::new(r#"<code id="totp-secret">([A-Z2-7]+)</code>"#)
        .unwrap()
        .captures(&html)
        .unwrap()[1]
        .to_string();
    // A wrong code is refused and nothing is stored.
    let r = walk(c, &url, &[("code", "000000")]).await;
    assert_eq!(r.status(), 400);
    let code = code_for(&secret, gw.clock.now_ms());
    let r = walk(c, &url, &[("code", code.as_str())]).await;
    assert_eq!(r.status(), 200, "the recovery codes come next");
    let html = r.text().await.unwrap();
    let codes: Vec<String> = regex::Regex::new(r"<li><code>([a-z0-9-]+)</code></li>")
        .unwrap()
        .captures_iter(&html)
        .map(|c| c[1].to_string())
        .collect();
    assert_eq!(codes.len(), 6);
    let r = walk(c, &url, &[]).await;
    assert_eq!(r.status(), 302);
    (secret, codes)
}

/// Identification and password of the default flow; returns the page that follows.
async fn first_factor(gw: &TestGateway, c: &reqwest::Client, user: &str, password: &str) -> (u16, String) {
    let url = gw.url(LOGIN);
    walk(c, &url, &[("uid_field", user)]).await;
    let r = walk(c, &url, &[("password", password)]).await;
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn totp_setup_then_login_with_a_second_factor() {
    let gw = TestGateway::start().await;
    let c = client();
    login(&gw, &c, "alice", "correct horse battery staple").await;
    let (secret, codes) = setup_totp(&gw, &c, "correct horse battery staple").await;
    let alice = users(&gw).get_by_username("alice").await.unwrap().unwrap();
    assert_eq!(users(&gw).totp_devices(alice.id).await.unwrap().len(), 1);
    assert_eq!(users(&gw).static_code_count(alice.id).await.unwrap(), 6);

    // A new login now asks for a code after the password.
    let url = gw.url(LOGIN);
    let fresh = client();
    let (status, html) = first_factor(&gw, &fresh, "alice", "correct horse battery staple").await;
    assert_eq!(status, 200);
    assert!(html.contains("authenticator app"), "{html}");
    let r = walk(&fresh, &url, &[("code", "123456")]).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("Invalid Token"));
    // The code used at setup time is not accepted again in the same time step.
    let used = code_for(&secret, gw.clock.now_ms());
    let r = walk(&fresh, &url, &[("code", used.as_str())]).await;
    assert_eq!(r.status(), 400, "a code is never accepted twice");
    gw.clock.advance(Duration::from_secs(30));
    let code = code_for(&secret, gw.clock.now_ms());
    let r = walk(&fresh, &url, &[("code", code.as_str())]).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert_eq!(fresh.get(gw.url("/x")).send().await.unwrap().status(), 200);

    // A recovery code works once.
    let third = client();
    first_factor(&gw, &third, "alice", "correct horse battery staple").await;
    let r = walk(&third, &url, &[("code", codes[0].as_str())]).await;
    assert_eq!(r.status(), 302);
    let fourth = client();
    first_factor(&gw, &fourth, "alice", "correct horse battery staple").await;
    let r = walk(&fourth, &url, &[("code", codes[0].as_str())]).await;
    assert_eq!(r.status(), 400);
    assert_eq!(users(&gw).static_code_count(alice.id).await.unwrap(), 5);
}

#[tokio::test]
async fn five_wrong_codes_cancel_the_login() {
    let gw = TestGateway::start().await;
    let c = client();
    login(&gw, &c, "alice", "correct horse battery staple").await;
    setup_totp(&gw, &c, "correct horse battery staple").await;
    let fresh = client();
    first_factor(&gw, &fresh, "alice", "correct horse battery staple").await;
    let url = gw.url(LOGIN);
    for _ in 0..4 {
        assert_eq!(walk(&fresh, &url, &[("code", "999999")]).await.status(), 400);
    }
    let r = walk(&fresh, &url, &[("code", "999999")]).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("Too many invalid codes."));
}

#[tokio::test]
async fn captcha_is_shown_only_on_bad_reputation() {
    let verify = siteverify::SiteVerify::spawn(serde_json::json!({"success": true})).await;
    let flow = flowgate::demo::SHIPPED_FLOWS
        .iter()
        .find(|(n, _)| *n == "reputation-captcha-authentication.yaml")
        .unwrap()
        .1
        .replace("https://www.google.com/recaptcha/api/siteverify", &verify.url());
    let app = "  - name: app\n    upstream: \"http://UPSTREAM\"\n    authentication_flow: reputation-captcha-authentication-flow\n";
    let gw = TestGateway::start_full(
        app,
        "",
        Upstream::spawn().await,
        &[("reputation-captcha-authentication.yaml", &flow)],
    )
    .await;
    let url = gw.url("/.flowgate/flow/reputation-captcha-authentication-flow/");
    // Good reputation: straight to the password.
    let c = client();
    let r = walk(&c, &url, &[("uid_field", "bob")]).await;
    assert!(r.text().await.unwrap().contains("name=\"password\""));
    // Three failed passwords for bob.
    for _ in 0..3 {
        let c = client();
        walk(&c, &url, &[("uid_field", "bob")]).await;
        assert_eq!(walk(&c, &url, &[("password", "wrong")]).await.status(), 400);
    }
    let c = client();
    let r = walk(&c, &url, &[("uid_field", "bob")]).await;
    let html = r.text().await.unwrap();
    assert!(html.contains("data-sitekey"), "captcha expected:\n{html}");
    assert!(verify.requests().is_empty());
    verify.set_answer(serde_json::json!({"success": false, "error-codes": ["invalid-input-response"]}));
    let r = walk(&c, &url, &[("g-recaptcha-response", "bad-token")]).await;
    assert_eq!(r.status(), 400);
    verify.set_answer(serde_json::json!({"success": true}));
    let r = walk(&c, &url, &[("g-recaptcha-response", "good-token")]).await;
    assert!(r.text().await.unwrap().contains("name=\"password\""));
    let posted = verify.requests();
    assert_eq!(posted.len(), 2);
    assert_eq!(posted[1].response, "good-token");
    assert_eq!(posted[1].secret, "6LeIxAcTAAAAAGG-vFI1TnRWxMZNFuojJ4WifJWe");
    let r = walk(&c, &url, &[("password", "bob's secret 42")]).await;
    assert_eq!(r.status(), 302);
}

#[tokio::test]
async fn mail_goes_out_over_starttls_with_auth_and_a_password_file() {
    let server = smtp::SmtpServer::spawn_starttls()
        .await
        .with_auth("flowgate", "s3cret mail pw");
    let secrets = tempfile::tempdir().unwrap();
    let pw_file = secrets.path().join("smtp-password");
    std::fs::write(&pw_file, "s3cret mail pw\n").unwrap();
    let extra = format!(
        "mail: {{ transport: smtp, host: localhost, port: {}, security: starttls, username: flowgate, password_file: \"{}\", ca_file: \"{}\", timeout: 5s }}\n",
        server.addr().port(),
        pw_file.display(),
        server.ca_pem_path().display()
    );
    let gw = TestGateway::start_with(DEFAULT_APP, &extra).await;
    let r = walk(&client(), &gw.url(RECOVERY), &[("uid_field", "alice")]).await;
    assert_eq!(r.status(), 200);
    let mails = server.wait_for(1, Duration::from_secs(10)).await;
    assert!(mails[0].tls, "sent after STARTTLS");
    assert_eq!(mails[0].user.as_deref(), Some("flowgate"));
    assert_eq!(mails[0].to, vec!["alice@example.test".to_string()]);
}

#[test]
fn smtp_passwords_come_from_the_environment_or_a_file_never_the_yaml() {
    let text = "listen: { http: \"127.0.0.1:0\" }\nmail: { transport: smtp, username: u, password_env: FLOWGATE_TEST_SURELY_UNSET_1234 }\n";
    let err = flowgate::Config::from_yaml_str(text, "m.yaml").unwrap_err().to_string();
    assert!(
        err.contains("mail.password_env: environment variable \"FLOWGATE_TEST_SURELY_UNSET_1234\" is not set"),
        "{err}"
    );
    let text = "listen: { http: \"127.0.0.1:0\" }\nmail: { transport: smtp, username: u, password: inline }\n";
    let err = flowgate::Config::from_yaml_str(text, "m.yaml").unwrap_err().to_string();
    assert!(err.contains("unknown field `password`"), "{err}");
    let text =
        "listen: { http: \"127.0.0.1:0\" }\nmail: { transport: smtp, username: u, password_file: /nonexistent/pw }\n";
    let err = flowgate::Config::from_yaml_str(text, "m.yaml").unwrap_err().to_string();
    assert!(err.contains("mail.password_file: cannot read /nonexistent/pw"), "{err}");
}
