//! The login, TOTP setup and enrollment pages driven in a real headless Chromium: chromedriver
//! runs as a child process and is spoken to in W3C WebDriver over HTTP. Every page gets a quick
//! accessibility check (an <h1>, a <label> for every visible field) and a screenshot under
//! `target/screenshots/`. Needs Debian's `chromium` and `chromium-driver` (`./dev deps`).

use crate::common::*;
use base64::Engine as _;
use flowgate::identity::{mfa, UserStore};
use flowgate::session::clock::Clock;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const LOGIN: &str = "/.flowgate/flow/default-authentication-flow/";
const ENROLL: &str = "/.flowgate/flow/default-enrollment-flow/";
const TOTP_SETUP: &str = "/.flowgate/flow/default-authenticator-totp-setup/";
const RECOVERY: &str = "/.flowgate/flow/default-recovery-flow/";
const NEW_PASSWORD: &str = "violet tangerine expedition 77";
/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long element look-ups wait for the element to appear (WebDriver implicit wait).
const FIND_WAIT_MS: u64 = 10_000;

fn users(gw: &TestGateway) -> &UserStore {
    &gw.running.as_ref().unwrap().users
}

/// Fails (never skips) when the browser is not installed.
fn require_browser() {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "{} not found: run `./dev deps` to install Debian's chromium and chromium-driver",
        missing.join(" and ")
    );
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A chromedriver child process. On drop it closes the sessions still open (so chromedriver
/// shuts its browsers down and reaps them), then kills and reaps chromedriver itself.
struct ChromeDriver {
    child: Child,
    port: u16,
    http: reqwest::Client,
    /// Holds the log and the browser profiles; removed after the processes are gone.
    dir: tempfile::TempDir,
    open: Arc<Mutex<Vec<String>>>,
    profiles: AtomicUsize,
}

impl ChromeDriver {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", dir.path().join("chromedriver.log").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER} ({e}): run `./dev deps`"));
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let mut driver = Self {
            child,
            port,
            http,
            dir,
            open: Arc::default(),
            profiles: AtomicUsize::new(0),
        };
        driver.wait_ready().await;
        driver
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Polls GET /status until chromedriver says it is ready (at most 10 s).
    async fn wait_ready(&mut self) {
        let url = format!("{}/status", self.base());
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("chromedriver exited with {status} before it was ready:\n{}", self.log());
            }
            if let Ok(r) = self.http.get(&url).timeout(Duration::from_secs(1)).send().await {
                if let Ok(v) = r.json::<Value>().await {
                    if v["value"]["ready"] == true {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver was not ready after 10 s:\n{}", self.log());
    }

    /// A new browser with a fresh profile (no cookies shared with other sessions).
    async fn session(&self) -> Browser {
        self.session_with(&[]).await
    }

    /// [`Self::session`] with extra Chromium arguments.
    async fn session_with(&self, extra: &[&str]) -> Browser {
        // Inside `self.dir`, which is removed only after chromium is gone.
        let n = self.profiles.fetch_add(1, Ordering::Relaxed);
        let profile = self.dir.path().join(format!("profile-{n}"));
        std::fs::create_dir(&profile).unwrap();
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1000,900",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.extend(extra.iter().map(|a| a.to_string()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": args,
            },
        }}});
        let r = self
            .http
            .post(format!("{}/session", self.base()))
            .json(&caps)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        let Some(id) = v["value"]["sessionId"].as_str().filter(|_| status.is_success()) else {
            panic!("new session failed ({status}): {v}\n{}", self.log());
        };
        self.open.lock().unwrap().push(id.to_string());
        let b = Browser {
            http: self.http.clone(),
            url: format!("{}/session/{id}", self.base()),
            id: id.to_string(),
            open: self.open.clone(),
        };
        b.cmd(
            reqwest::Method::POST,
            "/timeouts",
            Some(json!({"implicit": FIND_WAIT_MS, "pageLoad": 30_000, "script": 10_000})),
        )
        .await;
        b
    }
}

/// A blocking DELETE /session/{id}, for Drop (no runtime to await on there).
fn delete_session_blocking(port: u16, id: &str) {
    let Ok(mut tcp) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(15)));
    let _ = tcp.set_write_timeout(Some(Duration::from_secs(5)));
    let req = format!("DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if tcp.write_all(req.as_bytes()).is_err() {
        return;
    }
    // chromedriver answers once the browser is closed, and may keep the connection open after
    // that: read up to the end of the response head, not to EOF.
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let open = std::mem::take(&mut *self.open.lock().unwrap_or_else(|e| e.into_inner()));
        for id in open {
            delete_session_blocking(self.port, &id);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One WebDriver session.
struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>/session/<id>`
    url: String,
    id: String,
    open: Arc<Mutex<Vec<String>>>,
}

impl Browser {
    /// Sends a command; Err carries the WebDriver error.
    async fn try_cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, String> {
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.url));
        if let Some(body) = body {
            req = req.json(&body);
        } else if method == reqwest::Method::POST {
            req = req.json(&json!({}));
        }
        let r = req.send().await.map_err(|e| format!("{method} {path}: {e}"))?;
        let status = r.status();
        let v: Value = r.json().await.map_err(|e| format!("{method} {path}: {e}"))?;
        if status.is_success() {
            Ok(v["value"].clone())
        } else {
            Err(format!(
                "{method} {path}: {status} {}: {}",
                v["value"]["error"], v["value"]["message"]
            ))
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        match self.try_cmd(method, path, body).await {
            Ok(v) => v,
            Err(e) => self.fail(&e).await,
        }
    }

    /// Panics with `msg` and where the browser is.
    async fn fail(&self, msg: &str) -> ! {
        let url = self
            .try_cmd(reqwest::Method::GET, "/url", None)
            .await
            .unwrap_or_default();
        let source = self
            .try_cmd(reqwest::Method::GET, "/source", None)
            .await
            .unwrap_or_default();
        panic!("{msg}\nat {url}; page source:\n{}", source.as_str().unwrap_or_default());
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn current_url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn title(&self) -> String {
        self.cmd(reqwest::Method::GET, "/title", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Finds the element matching `css`, waiting up to FIND_WAIT_MS for it to appear (so it
    /// also waits for the page a click navigated to).
    async fn find(&self, css: &str) -> String {
        let body = json!({"using": "css selector", "value": css});
        match self.try_cmd(reqwest::Method::POST, "/element", Some(body)).await {
            Ok(v) => v[ELEMENT].as_str().unwrap().to_string(),
            Err(e) => self.fail(&format!("no element {css:?}: {e}")).await,
        }
    }

    async fn find_all(&self, css: &str) -> Vec<String> {
        let body = json!({"using": "css selector", "value": css});
        let v = self.cmd(reqwest::Method::POST, "/elements", Some(body)).await;
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e[ELEMENT].as_str().unwrap().to_string())
            .collect()
    }

    async fn text(&self, el: &str) -> String {
        let v = self
            .cmd(reqwest::Method::GET, &format!("/element/{el}/text"), None)
            .await;
        v.as_str().unwrap().to_string()
    }

    async fn displayed(&self, el: &str) -> bool {
        let v = self
            .cmd(reqwest::Method::GET, &format!("/element/{el}/displayed"), None)
            .await;
        v.as_bool().unwrap()
    }

    /// (width, height) of the element in CSS pixels.
    async fn size(&self, el: &str) -> (f64, f64) {
        let v = self
            .cmd(reqwest::Method::GET, &format!("/element/{el}/rect"), None)
            .await;
        (v["width"].as_f64().unwrap(), v["height"].as_f64().unwrap())
    }

    /// Types `text` into the field matching `css`.
    async fn fill(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        let path = format!("/element/{el}/value");
        self.cmd(reqwest::Method::POST, &path, Some(json!({ "text": text })))
            .await;
    }

    /// Clicks the form's submit button.
    async fn submit(&self) {
        let el = self.find("button[type=submit]").await;
        self.cmd(reqwest::Method::POST, &format!("/element/{el}/click"), None)
            .await;
    }

    async fn execute(&self, script: &str) -> Value {
        let body = json!({"script": script, "args": []});
        self.cmd(reqwest::Method::POST, "/execute/sync", Some(body)).await
    }

    /// Saves a PNG of the viewport as `dir/name`; checks it is a non-empty PNG.
    async fn screenshot(&self, dir: &Path, name: &str) -> PathBuf {
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name}: not a PNG");
        assert!(png.len() > 1_000, "{name}: only {} bytes", png.len());
        let path = dir.join(name);
        std::fs::write(&path, &png).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), png.len() as u64);
        path
    }

    /// The page has a title and one non-empty <h1>, and every visible form field has a <label>.
    async fn check_page(&self, what: &str) {
        let title = self.title().await;
        assert!(!title.trim().is_empty(), "{what}: the page has no <title>");
        let problems = self
            .execute(
                r#"
                const problems = [];
                const h1 = document.querySelectorAll("h1");
                if (h1.length !== 1 || !h1[0].textContent.trim()) problems.push(`${h1.length} <h1> elements`);
                for (const el of document.querySelectorAll("input, select, textarea")) {
                  if (el.type === "hidden" || el.getClientRects().length === 0) continue;
                  const labels = Array.from(el.labels || []).filter(l => l.textContent.trim());
                  if (labels.length === 0) problems.push(`no <label> for ${el.outerHTML}`);
                }
                return problems;
                "#,
            )
            .await;
        let problems = problems.as_array().unwrap();
        if !problems.is_empty() {
            self.fail(&format!("{what}: accessibility problems: {problems:?}"))
                .await;
        }
    }

    /// Waits for the upstream's answer (a text/plain page, which Chromium shows in a <pre>).
    async fn expect_upstream(&self, gw: &TestGateway) {
        let pre = self.find("pre").await;
        assert_eq!(self.text(&pre).await, "upstream ok");
        let url = self.current_url().await;
        assert!(url.starts_with(&gw.url("/")) && !url.contains("/.flowgate/"), "{url}");
    }

    /// Ends the session (the browser exits).
    async fn quit(self) {
        self.cmd(reqwest::Method::DELETE, "", None).await;
        self.open.lock().unwrap().retain(|id| id != &self.id);
    }
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
