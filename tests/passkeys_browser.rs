//! Passkeys in a real headless Chromium, with the W3C WebAuthn virtual authenticator of
//! chromedriver (ctap2, internal transport, resident keys, user verification): register a
//! passkey, log in with it as second factor, passwordless, and through autofill (conditional
//! mediation); remove it and see it fail; a second user's browser cannot use the first
//! user's credential. A child module of `browser` (it uses the chromedriver driver it imports).
//! Screenshots go to `target/screenshots/passkey-*.png`.

use super::*;

const SETUP: &str = "/.flowgate/flow/default-authenticator-webauthn-setup/";
const PASSWORDLESS: &str = "/.flowgate/flow/default-passwordless-flow/";

impl Browser {
    /// Adds a virtual platform authenticator (resident keys, user verification, always
    /// consenting) and returns its id.
    async fn add_virtual_authenticator(&self) -> String {
        let v = self
            .cmd(
                reqwest::Method::POST,
                "/webauthn/authenticator",
                Some(json!({
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": true,
                    "hasUserVerification": true,
                    "isUserConsenting": true,
                    "isUserVerified": true,
                })),
            )
            .await;
        v.as_str().expect("an authenticator id").to_string()
    }

    /// The credentials the virtual authenticator holds.
    async fn virtual_credentials(&self, authenticator: &str) -> Vec<Value> {
        let v = self
            .cmd(
                reqwest::Method::GET,
                &format!("/webauthn/authenticator/{authenticator}/credentials"),
                None,
            )
            .await;
        v.as_array().cloned().unwrap_or_default()
    }

    /// Removes every credential from the virtual authenticator.
    async fn remove_virtual_credentials(&self, authenticator: &str) {
        self.cmd(
            reqwest::Method::DELETE,
            &format!("/webauthn/authenticator/{authenticator}/credentials"),
            None,
        )
        .await;
    }

    /// Puts a credential (as listed by [`Self::virtual_credentials`]) into the authenticator.
    async fn add_virtual_credential(&self, authenticator: &str, credential: &Value) {
        self.cmd(
            reqwest::Method::POST,
            &format!("/webauthn/authenticator/{authenticator}/credential"),
            Some(credential.clone()),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{el}/click"), None)
            .await;
    }

    /// The identification and password steps of the default login (the caller waits for
    /// the page that follows).
    async fn password_steps(&self, gw: &TestGateway, base: &str, user: &str, password: &str) {
        let _ = gw;
        self.goto(&format!("{base}/private")).await;
        self.fill("input#uid_field", user).await;
        self.submit().await;
        self.fill("input#password", password).await;
        self.submit().await;
    }

    /// Waits until the status line of the WebAuthn form says something.
    async fn webauthn_status(&self) -> String {
        for _ in 0..100 {
            let v = self
                .execute("const s = document.querySelector('[data-webauthn-status]'); return s ? s.textContent : '';")
                .await;
            let s = v.as_str().unwrap_or_default().to_string();
            if !s.is_empty() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        String::new()
    }
}

async fn logout(b: &Browser, base: &str) {
    b.goto(&format!("{base}/logout")).await;
    b.find("main").await;
}

/// Whether the browser now reaches the app (`Some(user)` as the app saw it).
async fn upstream_user(b: &Browser, gw: &TestGateway) -> Option<String> {
    let pre = b.find("pre").await;
    assert_eq!(b.text(&pre).await, "upstream ok");
    gw.upstream.last().header("x-forwarded-user").map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkeys_in_chromium_with_a_virtual_authenticator() {
    require_browser();
    let shots = screenshot_dir();
    let gw = TestGateway::start_with(DEFAULT_APP, NO_LIMITS).await;
    // WebAuthn needs a domain RP id and a secure context: Chromium treats http://localhost
    // as secure.
    let base = format!("http://localhost:{}", gw.addr.port());
    let driver = ChromeDriver::start().await;
    let alice = users(&gw).get_by_username("alice").await.unwrap().unwrap();

    // 1) Register: alice logs in with her password, opens the passkey page, registers.
    let b = driver.session().await;
    let auth = b.add_virtual_authenticator().await;
    b.password_steps(&gw, &base, "alice", ALICE_PASSWORD).await;
    assert_eq!(upstream_user(&b, &gw).await.as_deref(), Some("alice"));
    b.goto(&format!("{base}{SETUP}")).await;
    b.find("#register-passkey").await;
    b.check_page("passkey setup").await;
    b.screenshot(&shots, "passkey-setup.png").await;
    b.click("#register-passkey").await;
    assert_eq!(upstream_user(&b, &gw).await.as_deref(), Some("alice"));
    let stored = users(&gw).passkeys(alice.id).await.unwrap();
    assert_eq!(stored.len(), 1, "one passkey stored");
    let held = b.virtual_credentials(&auth).await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0]["isResidentCredential"], true);
    assert_eq!(held[0]["rpId"], "localhost");
    let held_id = held[0]["credentialId"]
        .as_str()
        .unwrap()
        .trim_end_matches('=')
        .to_string();
    assert_eq!(stored[0].credential_id, held_id.replace('+', "-").replace('/', "_"));
    // The management page lists it.
    b.goto(&format!("{base}{SETUP}")).await;
    b.find("ul#passkeys li").await;
    b.check_page("passkey list").await;
    b.screenshot(&shots, "passkey-list.png").await;
    logout(&b, &base).await;

    // Chromium answers the login page's conditional request (autofill) by itself whenever the
    // virtual authenticator holds a credential for the site; to reach the other ways in, the
    // credential is taken out of the authenticator and put back (W3C WebAuthn commands).
    let saved = b.virtual_credentials(&auth).await;
    b.remove_virtual_credentials(&auth).await;

    // 2) Second factor: password, then "Use a passkey".
    b.goto(&format!("{base}/private")).await;
    b.find("a#passwordless").await;
    b.find("input#uid_field[autocomplete='username webauthn']").await;
    b.check_page("login with passkey autofill").await;
    b.screenshot(&shots, "passkey-login.png").await;
    b.password_steps(&gw, &base, "alice", ALICE_PASSWORD).await;
    b.find("#use-passkey").await;
    b.check_page("passkey second factor").await;
    b.screenshot(&shots, "passkey-second-factor.png").await;
    b.add_virtual_credential(&auth, &saved[0]).await;
    b.click("#use-passkey").await;
    assert_eq!(upstream_user(&b, &gw).await.as_deref(), Some("alice"));
    logout(&b, &base).await;

    // 3) Passwordless: no username typed, the passkey names the user.
    b.goto(&format!("{base}{PASSWORDLESS}")).await;
    b.find("#use-passkey").await;
    b.check_page("passwordless").await;
    b.screenshot(&shots, "passkey-passwordless.png").await;
    b.click("#use-passkey").await;
    assert_eq!(upstream_user(&b, &gw).await.as_deref(), Some("alice"));
    logout(&b, &base).await;

    // 4) Autofill: the login page asks with conditional mediation; the passkey offered for
    // the username field logs in without a password (Chromium picks it at once here).
    let before = users(&gw).passkeys(alice.id).await.unwrap()[0].sign_count;
    b.goto(&format!("{base}/private")).await;
    assert_eq!(upstream_user(&b, &gw).await.as_deref(), Some("alice"));
    b.screenshot(&shots, "passkey-autofill.png").await;
    let used = users(&gw).passkeys(alice.id).await.unwrap();
    assert!(used[0].sign_count > before, "the passkey was used");

    // 5) Remove it (the login is fresh: no password asked), then it no longer works.
    b.goto(&format!("{base}{SETUP}")).await;
    b.click(&format!("#delete-{}", used[0].id)).await;
    let mut left = -1;
    for _ in 0..100 {
        left = b
            .execute("return document.querySelectorAll('ul#passkeys li').length;")
            .await
            .as_i64()
            .unwrap_or(-1);
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "the page lists no passkey after the removal");
    assert!(users(&gw).passkeys(alice.id).await.unwrap().is_empty());
    logout(&b, &base).await;
    b.goto(&format!("{base}{PASSWORDLESS}")).await;
    b.click("#use-passkey").await;
    // The browser still holds the key and signs; the server refuses the removed credential.
    let error = b.find("div.error").await;
    assert!(b.text(&error).await.contains("could not be verified"));
    assert_eq!(b.virtual_credentials(&auth).await.len(), 1);
    b.screenshot(&shots, "passkey-removed.png").await;
    assert!(b.current_url().await.contains(PASSWORDLESS));
    b.quit().await;

    // 6) A second user's browser: bob registers his own passkey. The passwordless login there
    // is bob's; alice's second factor (her password known) cannot be passed with it.
    let bob = driver.session().await;
    let bob_auth = bob.add_virtual_authenticator().await;
    bob.password_steps(&gw, &base, "bob", "bob's secret 42").await;
    assert_eq!(upstream_user(&bob, &gw).await.as_deref(), Some("bob"));
    bob.goto(&format!("{base}{SETUP}")).await;
    bob.click("#register-passkey").await;
    assert_eq!(upstream_user(&bob, &gw).await.as_deref(), Some("bob"));
    logout(&bob, &base).await;
    bob.goto(&format!("{base}{PASSWORDLESS}")).await;
    bob.click("#use-passkey").await;
    assert_eq!(upstream_user(&bob, &gw).await.as_deref(), Some("bob"));
    logout(&bob, &base).await;
    // Alice gets a passkey again (in her own browser), so her login asks for one.
    let a2 = driver.session().await;
    a2.add_virtual_authenticator().await;
    a2.password_steps(&gw, &base, "alice", ALICE_PASSWORD).await;
    assert_eq!(upstream_user(&a2, &gw).await.as_deref(), Some("alice"));
    a2.goto(&format!("{base}{SETUP}")).await;
    a2.click("#register-passkey").await;
    assert_eq!(upstream_user(&a2, &gw).await.as_deref(), Some("alice"));
    a2.quit().await;
    let bob_saved = bob.virtual_credentials(&bob_auth).await;
    bob.remove_virtual_credentials(&bob_auth).await;
    bob.password_steps(&gw, &base, "alice", ALICE_PASSWORD).await;
    bob.find("#use-passkey").await;
    bob.add_virtual_credential(&bob_auth, &bob_saved[0]).await;
    bob.click("#use-passkey").await;
    let status = bob.webauthn_status().await;
    assert!(!status.is_empty(), "the passkey request should fail in bob's browser");
    assert!(bob.current_url().await.contains("/.flowgate/flow/"));
    bob.screenshot(&shots, "passkey-other-user.png").await;
    bob.quit().await;

    for name in [
        "passkey-setup.png",
        "passkey-list.png",
        "passkey-login.png",
        "passkey-second-factor.png",
        "passkey-passwordless.png",
        "passkey-autofill.png",
        "passkey-removed.png",
        "passkey-other-user.png",
    ] {
        assert!(
            std::fs::metadata(shots.join(name)).map(|m| m.len()).unwrap_or(0) > 0,
            "{name}"
        );
    }
    drop(driver);
    gw.stop().await;
}
