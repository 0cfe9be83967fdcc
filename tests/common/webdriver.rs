//! Headless Chromium for the browser tests: a chromedriver child process spoken to in W3C
//! WebDriver over HTTP, one [`Browser`] per session, and the checks and screenshots every page
//! gets. Needs Debian's `chromium` and `chromium-driver` (`./dev deps`).

use super::TestGateway;
use base64::Engine as _;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long element look-ups wait for the element to appear (WebDriver implicit wait).
const FIND_WAIT_MS: u64 = 10_000;

/// Fails (never skips) when the browser is not installed.
pub fn require_browser() {
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

pub fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A chromedriver child process. On drop it closes the sessions still open (so chromedriver
/// shuts its browsers down and reaps them), then kills and reaps chromedriver itself.
pub struct ChromeDriver {
    child: Child,
    port: u16,
    http: reqwest::Client,
    /// Holds the log and the browser profiles; removed after the processes are gone.
    dir: tempfile::TempDir,
    open: Arc<Mutex<Vec<String>>>,
    profiles: AtomicUsize,
}

impl ChromeDriver {
    pub async fn start() -> Self {
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
    pub async fn session(&self) -> Browser {
        self.session_with(&[]).await
    }

    /// [`Self::session`] with extra Chromium arguments.
    pub async fn session_with(&self, extra: &[&str]) -> Browser {
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
pub struct Browser {
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

    pub async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
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

    pub async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    pub async fn current_url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn title(&self) -> String {
        self.cmd(reqwest::Method::GET, "/title", None)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Finds the element matching `css`, waiting up to FIND_WAIT_MS for it to appear (so it
    /// also waits for the page a click navigated to).
    pub async fn find(&self, css: &str) -> String {
        let body = json!({"using": "css selector", "value": css});
        match self.try_cmd(reqwest::Method::POST, "/element", Some(body)).await {
            Ok(v) => v[ELEMENT].as_str().unwrap().to_string(),
            Err(e) => self.fail(&format!("no element {css:?}: {e}")).await,
        }
    }

    pub async fn find_all(&self, css: &str) -> Vec<String> {
        let body = json!({"using": "css selector", "value": css});
        let v = self.cmd(reqwest::Method::POST, "/elements", Some(body)).await;
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e[ELEMENT].as_str().unwrap().to_string())
            .collect()
    }

    pub async fn text(&self, el: &str) -> String {
        let v = self
            .cmd(reqwest::Method::GET, &format!("/element/{el}/text"), None)
            .await;
        v.as_str().unwrap().to_string()
    }

    pub async fn displayed(&self, el: &str) -> bool {
        let v = self
            .cmd(reqwest::Method::GET, &format!("/element/{el}/displayed"), None)
            .await;
        v.as_bool().unwrap()
    }

    /// (width, height) of the element in CSS pixels.
    pub async fn size(&self, el: &str) -> (f64, f64) {
        let v = self
            .cmd(reqwest::Method::GET, &format!("/element/{el}/rect"), None)
            .await;
        (v["width"].as_f64().unwrap(), v["height"].as_f64().unwrap())
    }

    /// Types `text` into the field matching `css`.
    pub async fn fill(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        let path = format!("/element/{el}/value");
        self.cmd(reqwest::Method::POST, &path, Some(json!({ "text": text })))
            .await;
    }

    /// Clicks the form's submit button.
    pub async fn submit(&self) {
        let el = self.find("button[type=submit]").await;
        self.cmd(reqwest::Method::POST, &format!("/element/{el}/click"), None)
            .await;
    }

    pub async fn execute(&self, script: &str) -> Value {
        let body = json!({"script": script, "args": []});
        self.cmd(reqwest::Method::POST, "/execute/sync", Some(body)).await
    }

    /// Saves a PNG of the viewport as `dir/name`; checks it is a non-empty PNG.
    pub async fn screenshot(&self, dir: &Path, name: &str) -> PathBuf {
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
    pub async fn check_page(&self, what: &str) {
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
    pub async fn expect_upstream(&self, gw: &TestGateway) {
        let pre = self.find("pre").await;
        assert_eq!(self.text(&pre).await, "upstream ok");
        let url = self.current_url().await;
        assert!(url.starts_with(&gw.url("/")) && !url.contains("/.flowgate/"), "{url}");
    }

    /// Ends the session (the browser exits).
    pub async fn quit(self) {
        self.cmd(reqwest::Method::DELETE, "", None).await;
        self.open.lock().unwrap().retain(|id| id != &self.id);
    }
}
