//! The login, TOTP setup and enrollment pages driven in a real headless Chromium: chromedriver
//! runs as a child process and is spoken to in W3C WebDriver over HTTP (`common/webdriver.rs`).
//! Every page gets a quick
//! accessibility check (an <h1>, a <label> for every visible field) and a screenshot under
//! `target/screenshots/`. Needs Debian's `chromium` and `chromium-driver` (`./dev deps`).

use crate::common::webdriver::{require_browser, screenshot_dir, Browser, ChromeDriver};
use crate::common::*;
use flowgate::identity::{mfa, UserStore};
use flowgate::session::clock::Clock;
use serde_json::{json, Value};
use std::time::Duration;

const LOGIN: &str = "/.flowgate/flow/default-authentication-flow/";
const ENROLL: &str = "/.flowgate/flow/default-enrollment-flow/";
const TOTP_SETUP: &str = "/.flowgate/flow/default-authenticator-totp-setup/";
const RECOVERY: &str = "/.flowgate/flow/default-recovery-flow/";
const NEW_PASSWORD: &str = "violet tangerine expedition 77";

fn users(gw: &TestGateway) -> &UserStore {
    &gw.running.as_ref().unwrap().users
}

/// The current code for the base32 secret shown on the setup page.
fn code_for(secret_b32: &str, now_ms: u64) -> String {
    let secret = data_encoding::BASE32_NOPAD
        .decode(secret_b32.trim().as_bytes())
        .unwrap_or_else(|e| panic!("secret {secret_b32:?} is not base32: {e}"));
    mfa::totp_code(&secret, mfa::totp_step(now_ms), 6)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_totp_setup_and_enrollment_in_chromium() {
    require_browser();
    let shots = screenshot_dir();
    let gw = TestGateway::start().await;
    let driver = ChromeDriver::start().await;

    // 1) A protected page sends the browser to the login form; identification, then password.
    let b = driver.session().await;
    b.goto(&gw.url("/")).await;
    b.find("input#uid_field").await;
    let url = b.current_url().await;
    assert!(url.starts_with(&gw.url(LOGIN)), "expected the login flow, at {url}");
    b.check_page("identification").await;
    b.screenshot(&shots, "login.png").await;
    b.fill("input#uid_field", "alice").await;
    b.submit().await;
    b.find("input#password").await;
    b.check_page("password").await;
    b.fill("input#password", ALICE_PASSWORD).await;
    b.submit().await;
    b.expect_upstream(&gw).await;
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("alice"));

    // 2) TOTP setup for the logged-in alice: the current password (CRED-1), QR code and key,
    // a code, then the recovery codes.
    b.goto(&gw.url(TOTP_SETUP)).await;
    b.find("input#password").await;
    b.fill("input#password", ALICE_PASSWORD).await;
    b.submit().await;
    let qr = b.find("figure.qr svg").await;
    assert!(b.displayed(&qr).await, "the QR code is not displayed");
    let (w, h) = b.size(&qr).await;
    assert!(w >= 100.0 && h >= 100.0, "the QR code is only {w}x{h} px");
    b.check_page("TOTP setup").await;
    b.screenshot(&shots, "totp-setup.png").await;
    let secret_el = b.find("code#totp-secret").await;
    let secret = b.text(&secret_el).await;
    b.fill("input#code", &code_for(&secret, gw.clock.now_ms())).await;
    b.submit().await;
    b.find("ul#recovery-codes").await;
    assert_eq!(b.find_all("ul#recovery-codes li").await.len(), 6);
    b.check_page("recovery codes").await;
    b.screenshot(&shots, "recovery-codes.png").await;
    b.submit().await;
    b.expect_upstream(&gw).await;
    let alice = users(&gw).get_by_username("alice").await.unwrap().unwrap();
    assert_eq!(users(&gw).totp_devices(alice.id).await.unwrap().len(), 1);
    assert_eq!(users(&gw).static_code_count(alice.id).await.unwrap(), 6);
    b.quit().await;

    // 3) Enrollment in a fresh browser profile (the flow refuses logged-in users).
    let e = driver.session().await;
    e.goto(&gw.url(ENROLL)).await;
    e.find("input#f-username").await;
    e.check_page("enrollment").await;
    e.screenshot(&shots, "enrollment.png").await;
    for (css, value) in [
        ("input#f-username", "dora"),
        ("input#f-name", "Dora Explorer"),
        ("input#f-email", "dora@example.test"),
        ("input#f-password", NEW_PASSWORD),
        ("input#f-password_repeat", NEW_PASSWORD),
    ] {
        e.fill(css, value).await;
    }
    e.submit().await;
    e.expect_upstream(&gw).await;
    let dora = users(&gw)
        .get_by_username("dora")
        .await
        .unwrap()
        .expect("enrollment stored the user");
    assert_eq!(dora.email, "dora@example.test");
    assert_eq!(dora.name, "Dora Explorer");
    assert!(users(&gw).verify_password(&dora, NEW_PASSWORD).await.unwrap());
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("dora"));
    e.quit().await;

    // 4) Recovery by a mailed link (LINK-2): the link's page has no token in its address and
    // its forms still post (a `no-referrer` page would make Chromium send `Origin: null`).
    let r = driver.session().await;
    r.goto(&gw.url(RECOVERY)).await;
    r.fill("input#uid_field", "bob").await;
    r.submit().await;
    r.find("button.secondary").await;
    let link = mailed_link(&gw, "bob@example.test");
    r.goto(&link).await;
    r.find("button[type=submit]").await;
    let url = r.current_url().await;
    assert!(url.starts_with(&gw.url(RECOVERY)) && !url.contains("token"), "{url}");
    r.submit().await;
    r.find("input#f-password_repeat").await;
    assert!(!r.current_url().await.contains("token"));
    r.fill("input#f-password", NEW_PASSWORD).await;
    r.fill("input#f-password_repeat", NEW_PASSWORD).await;
    r.submit().await;
    r.expect_upstream(&gw).await;
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("bob"));
    r.quit().await;

    for name in ["login.png", "totp-setup.png", "recovery-codes.png", "enrollment.png"] {
        let len = std::fs::metadata(shots.join(name)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{name} is empty or missing");
    }
    drop(driver);
    gw.stop().await;
}

/// HOST-2: the HTML login over HTTPS with HTTP/2, as a browser negotiates it (ALPN). Over h2
/// there is no `Host`, only `:authority`, and Chromium sends `Origin` on every form POST.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_login_over_http2_in_chromium() {
    require_browser();
    let shots = screenshot_dir();
    let gw = TestGateway::start_tls(DEFAULT_APP, "").await;
    let driver = ChromeDriver::start().await;
    let b = driver.session_with(&["--ignore-certificate-errors"]).await;
    b.goto(&gw.https_url("/private")).await;
    b.find("input#uid_field").await;
    let protocol = b
        .execute("return performance.getEntriesByType('navigation')[0].nextHopProtocol;")
        .await;
    assert_eq!(protocol, serde_json::json!("h2"), "Chromium did not negotiate HTTP/2");
    b.screenshot(&shots, "login-h2.png").await;
    b.fill("input#uid_field", "alice").await;
    b.submit().await;
    b.find("input#password").await;
    b.fill("input#password", ALICE_PASSWORD).await;
    b.submit().await;
    let pre = b.find("pre").await;
    assert_eq!(b.text(&pre).await, "upstream ok");
    let url = b.current_url().await;
    assert_eq!(url, gw.https_url("/private"));
    let seen = gw.upstream.last();
    let authority = format!("localhost:{}", gw.https_addr.unwrap().port());
    assert_eq!(seen.header("x-forwarded-user"), Some("alice"));
    assert_eq!(seen.header("x-forwarded-host"), Some(authority.as_str()));
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    b.quit().await;
    drop(driver);
    gw.stop().await;
}

/// SSO-5, SSO-8 (docs/decisions/0013): Chromium reaches four host names on flowgate
/// (`--host-resolver-rules`): wiki and git under `session.cookie_domain`, other.test through the
/// portal auth.example.test. One login on the portal opens all three apps; a logout on wiki
/// ends the sign-on, so the others ask for a login again. The apps never see the code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_sign_on_and_single_logout_across_hosts_in_chromium() {
    use crate::sign_on::{APPS, GIT, OTHER, PORTAL, SSO, WIKI};
    require_browser();
    let shots = screenshot_dir();
    let gw = TestGateway::start_with(APPS, &format!("{SSO}{NO_LIMITS}")).await;
    let driver = ChromeDriver::start().await;
    let rules = format!(
        "--host-resolver-rules=MAP {WIKI} 127.0.0.1, MAP {GIT} 127.0.0.1, MAP {OTHER} 127.0.0.1, MAP {PORTAL} 127.0.0.1"
    );
    let b = driver.session_with(&[rules.as_str()]).await;
    let port = gw.addr.port();
    let url = |host: &str, path: &str| format!("http://{host}:{port}{path}");
    async fn upstream_page(b: &Browser, want: String) {
        let pre = b.find("pre").await;
        assert_eq!(b.text(&pre).await, "upstream ok");
        let at = b.current_url().await;
        assert!(
            at.starts_with(&want) && !at.contains("/.flowgate/") && !at.contains("code="),
            "{at}"
        );
    }

    // other.test: through the portal's login form, back with a code, on to the page.
    b.goto(&url(OTHER, "/private?x=1")).await;
    b.find("input#uid_field").await;
    let at = b.current_url().await;
    assert!(
        at.starts_with(&url(PORTAL, "/.flowgate/flow/")),
        "the portal's login form, at {at}"
    );
    b.check_page("portal login").await;
    b.screenshot(&shots, "sso-portal-login.png").await;
    b.fill("input#uid_field", "alice").await;
    b.submit().await;
    b.find("input#password").await;
    b.fill("input#password", ALICE_PASSWORD).await;
    b.submit().await;
    upstream_page(&b, url(OTHER, "/")).await;
    assert_eq!(b.current_url().await, url(OTHER, "/private?x=1"));
    // The app's first request (Chromium asks for /favicon.ico after it).
    let first = gw.upstream.requests().first().cloned().expect("the app was reached");
    assert_eq!(first.header("x-forwarded-user"), Some("alice"));
    assert_eq!(first.uri, "/private?x=1");
    assert!(first.header("referer").is_none_or(|r| !r.contains("code")), "{first:?}");

    // The apps under the cookie domain: no login form.
    for host in [WIKI, GIT] {
        b.goto(&url(host, "/private")).await;
        upstream_page(&b, url(host, "/")).await;
        let seen = gw.upstream.requests();
        let last = seen
            .iter()
            .rev()
            .find(|r| r.uri == "/private")
            .expect("the app was reached");
        assert_eq!(last.header("x-forwarded-user"), Some("alice"));
    }
    b.screenshot(&shots, "sso-git.png").await;
    // No request any app received carried the code or the binding cookie, in any header.
    for r in gw.upstream.requests() {
        assert!(!r.uri.contains("code"), "{r:?}");
        for (k, v) in &r.headers {
            assert!(!v.contains("code=") && !v.contains("_sso"), "the app got {k}: {v}");
        }
    }

    // Logout on wiki: the page names what ended; every app asks for a login again.
    b.goto(&url(WIKI, "/logout")).await;
    let ended = b.find("ul#ended").await;
    let text = b.text(&ended).await;
    assert!(text.contains("other.test") && text.contains("example.test"), "{text}");
    b.check_page("signed out").await;
    b.screenshot(&shots, "sso-signed-out.png").await;
    for (host, form_host) in [(OTHER, PORTAL), (GIT, GIT), (WIKI, WIKI)] {
        b.goto(&url(host, "/private")).await;
        b.find("input#uid_field").await;
        let at = b.current_url().await;
        assert!(
            at.starts_with(&url(form_host, "/.flowgate/flow/")),
            "{host}: a login form, at {at}"
        );
    }
    b.quit().await;
    for name in ["sso-portal-login.png", "sso-git.png", "sso-signed-out.png"] {
        assert!(
            std::fs::metadata(shots.join(name)).map(|m| m.len()).unwrap_or(0) > 0,
            "{name}"
        );
    }
    drop(driver);
    gw.stop().await;
}

/// Issue 16: a login through an OpenID Connect source in Chromium, against npm's
/// oidc-provider: the source's button on flowgate's login page, the provider's login form, the
/// callback, the source's enrollment flow, and the app behind flowgate receives the user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_through_an_openid_provider_in_chromium() {
    use crate::common::oidc::NodeProvider;
    use crate::oauth_sources::{gateway_at, wall_clock_ms, SOURCE_FLOWS};
    require_browser();
    let shots = screenshot_dir();
    let port = unused_port();
    let well_known = format!("http://127.0.0.1:{port}/.well-known/openid-configuration");
    let gw = gateway_at(
        &well_known,
        "identifier",
        "openidconnect",
        SOURCE_FLOWS,
        wall_clock_ms(),
    )
    .await;
    let user = json!({ "sub": "idp-7", "preferred_username": "erin", "email": "erin@idp.example", "email_verified": true, "name": "Erin" });
    let _idp = NodeProvider::start(
        port,
        "k1",
        &gw.url("/.flowgate/source/oauth/callback/corp/"),
        &user,
        "erin's pw",
    );
    let driver = ChromeDriver::start().await;
    let b = driver.session().await;
    b.goto(&gw.url("/private/board")).await;
    let link = b.find("a.source").await;
    assert!(b.text(&link).await.contains("Log in with Corp SSO"));
    b.check_page("login page with a source").await;
    b.screenshot(&shots, "login-with-source.png").await;
    b.cmd(reqwest::Method::POST, &format!("/element/{link}/click"), None)
        .await;
    b.find("input#login").await;
    b.fill("input#login", "erin").await;
    b.fill("input#password", "erin's pw").await;
    b.submit().await;
    b.expect_upstream(&gw).await;
    assert_eq!(b.current_url().await, gw.url("/private/board"));
    let seen = gw.upstream.last();
    assert_eq!(seen.header("x-forwarded-user"), Some("erin"));
    assert_eq!(seen.header("x-forwarded-email"), Some("erin@idp.example"));
    b.quit().await;
    drop(driver);
    gw.stop().await;
}

#[path = "passkeys_browser.rs"]
mod passkeys_browser;
