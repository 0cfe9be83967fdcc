//! Test harness: a recording upstream (`upstream.rs`), an in-process gateway on port 0 with an
//! injected clock, a cookie-keeping client with redirects off, and the mails the gateway wrote
//! (`mailbox.rs`).
#![allow(dead_code)]

pub mod admin;
pub mod ldap;
pub mod log_buf;
pub mod mailbox;
pub mod oidc;
pub mod postgres;
pub mod redis;
pub mod siteverify;
pub mod smtp;
pub mod upstream;
pub mod webdriver;

// Re-exported so `use common::*` finds them as before; `tests/logging.rs`, a binary of its own,
// uses only some of them.
#[allow(unused_imports)]
pub use mailbox::{all_mail, mailed_link, mailed_links, wait_for_mail};
#[allow(unused_imports)]
pub use upstream::{Recorded, Upstream};

use flowgate::config::{Config, Source};
use flowgate::session::ManualClock;
use flowgate::{Gateway, Running, StartOptions};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub const ALICE_PASSWORD: &str = "correct horse battery staple";
pub const BOB_PASSWORD: &str = "bob's secret 42";

/// An in-process gateway with its temp dir and clock.
pub struct TestGateway {
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub https_addr: Option<SocketAddr>,
    pub clock: ManualClock,
    pub dir: tempfile::TempDir,
    pub upstream: Upstream,
    /// Directories that must live as long as the gateway (TLS certificates).
    pub keep: Vec<tempfile::TempDir>,
}

pub const SEED: &str = "groups:\n  - { name: staff }\n  - { name: admins, parent: staff }\nusers:\n  - { username: alice, email: alice@example.test, name: Alice Example, password: \"correct horse battery staple\", groups: [admins] }\n  - { username: bob, email: bob@example.test, name: Bob, password: \"bob's secret 42\", groups: [] }\n  - { username: carol, email: carol@example.test, password: \"carol pw\", is_active: false }\n";

/// The main config for a test: `apps` is YAML for the `apps:` list (use `UPSTREAM` as a
/// placeholder for the upstream address), `extra` is appended at the top level.
/// The main test config. Mail goes to `<dir>/mail` as files unless `extra` has its own `mail:`;
/// sessions last 2h (30m idle) unless `extra` has its own `session:`.
pub fn config_text(apps: &str, extra: &str, upstream: SocketAddr, dir: &std::path::Path) -> String {
    let mail = if extra.lines().any(|l| l.starts_with("mail:")) {
        String::new()
    } else {
        format!("mail: {{ transport: file, dir: \"{}\" }}\n", dir.join("mail").display())
    };
    let session = if extra.lines().any(|l| l.starts_with("session:")) {
        ""
    } else {
        "session: { ttl: 2h, idle_timeout: 30m }\n"
    };
    let listen = if extra.lines().any(|l| l.starts_with("listen:")) {
        ""
    } else {
        "listen: { http: \"127.0.0.1:0\" }\n"
    };
    // A test may give its own `identity:` (it then names the seed itself).
    let identity = if extra.lines().any(|l| l.starts_with("identity:")) {
        ""
    } else {
        "identity: { seed: seed.yaml }\n"
    };
    format!(
        "{listen}data_dir: \"{}\"\n{identity}{session}{mail}{extra}\napps:\n{}\n",
        dir.display(),
        apps.replace("UPSTREAM", &upstream.to_string())
    )
}

pub const DEFAULT_APP: &str = "  - name: app\n    upstream: \"http://UPSTREAM\"\n    skip_auth: [\"^/public/\"]\n";

impl TestGateway {
    /// Starts a gateway on `cfg` with the injected clock at a fixed time, owning `dir` and
    /// `upstream`.
    pub async fn from_config(cfg: Config, dir: tempfile::TempDir, upstream: Upstream) -> Self {
        Self::from_config_at(cfg, dir, upstream, ManualClock::new(1_800_000_000_000)).await
    }

    /// [`TestGateway::from_config`] with the given clock.
    pub async fn from_config_at(cfg: Config, dir: tempfile::TempDir, upstream: Upstream, clock: ManualClock) -> Self {
        let running = Gateway::start_with(
            cfg,
            StartOptions {
                clock: Arc::new(clock.clone()),
            },
        )
        .await
        .expect("gateway starts");
        TestGateway {
            addr: running.http_addr.unwrap(),
            https_addr: running.https_addr,
            running: Some(running),
            clock,
            dir,
            upstream,
            keep: Vec::new(),
        }
    }

    pub async fn start() -> Self {
        Self::start_with(DEFAULT_APP, "").await
    }

    pub async fn start_with(apps: &str, extra: &str) -> Self {
        let upstream = Upstream::spawn().await;
        Self::start_full(apps, extra, upstream, &[]).await
    }

    /// Starts with an HTTP and an HTTPS listener (a self-signed certificate for `localhost`);
    /// `https_addr` is set. Use [`https_client`] with [`TestGateway::https_url`].
    pub async fn start_tls(apps: &str, extra: &str) -> Self {
        let certs = tempfile::tempdir().unwrap();
        let (cert, key) = flowgate::tls::write_dev_certificate(certs.path(), &["localhost".into()]).unwrap();
        let listen = format!(
            "listen: {{ http: \"127.0.0.1:0\", https: {{ addr: \"127.0.0.1:0\", cert: \"{}\", key: \"{}\" }} }}\n",
            cert.display(),
            key.display()
        );
        let mut gw = Self::start_with(apps, &format!("{listen}{extra}")).await;
        gw.keep.push(certs);
        gw
    }

    /// `https://localhost:<port><path>` on the HTTPS listener.
    pub fn https_url(&self, path: &str) -> String {
        format!(
            "https://localhost:{}{}",
            self.https_addr.expect("an https listener").port(),
            path
        )
    }

    /// Starts with extra flow sources (name, yaml) besides the shipped default flows.
    pub async fn start_full(apps: &str, extra: &str, upstream: Upstream, flows: &[(&str, &str)]) -> Self {
        Self::start_flows(apps, extra, upstream, flows, true).await
    }

    /// Starts with the given flow sources only (no shipped flows).
    pub async fn start_only(apps: &str, extra: &str, flows: &[(&str, &str)]) -> Self {
        Self::start_flows(apps, extra, Upstream::spawn().await, flows, false).await
    }

    async fn start_flows(apps: &str, extra: &str, upstream: Upstream, flows: &[(&str, &str)], shipped: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("seed.yaml"), SEED).unwrap();
        let mut sources = vec![Source {
            name: "test.yaml".into(),
            text: config_text(apps, extra, upstream.addr, dir.path()),
            base_dir: dir.path().to_path_buf(),
        }];
        for (name, text) in flowgate::demo::SHIPPED_FLOWS {
            // A test may replace a shipped flow file by giving one of the same name.
            if !shipped || flows.iter().any(|(n, _)| n == name) {
                continue;
            }
            sources.push(Source {
                name: name.to_string(),
                text: text.to_string(),
                base_dir: dir.path().to_path_buf(),
            });
        }
        for (name, text) in flows {
            sources.push(Source {
                name: name.to_string(),
                text: text.to_string(),
                base_dir: dir.path().to_path_buf(),
            });
        }
        let cfg = Config::from_sources(sources).unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        Self::from_config(cfg, dir, upstream).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

/// A loopback port nobody listens on (bound once by the OS, then released).
pub fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A cookie-keeping client (redirects off) for the HTTPS listener of [`TestGateway::start_tls`]:
/// `localhost` resolves to it, the self-signed certificate is accepted, and HTTP/2 is offered
/// by ALPN (with `h2_only`, nothing else is). Sends `Origin` like a browser when given.
pub fn https_client(gw: &TestGateway, h2_only: bool, origin: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(o) = origin {
        headers.insert("origin", reqwest::header::HeaderValue::from_str(o).unwrap());
    }
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .danger_accept_invalid_certs(true)
        .resolve("localhost", gw.https_addr.expect("an https listener"))
        .default_headers(headers);
    if h2_only {
        b = b.http2_prior_knowledge();
    }
    b.build().unwrap()
}

/// A client with a cookie jar and redirects off.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
}

/// A client with no cookie jar.
pub fn bare_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

pub fn csrf_of(html: &str) -> String {
    let re = regex::Regex::new(r#"name="csrf_token" value="([^"]+)""#).unwrap();
    re.captures(html)
        .unwrap_or_else(|| panic!("no csrf token in page:\n{html}"))[1]
        .to_string()
}

pub fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

pub fn set_cookie_value(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (k, rest) = v.split_once('=')?;
            (k == name).then(|| rest.split(';').next().unwrap_or("").to_string())
        })
}

/// Logs in through the HTML forms starting from `path` on `base`; returns the final response
/// (the redirect back to `next`).
pub async fn html_login(c: &reqwest::Client, base: &str, path: &str, user: &str, password: &str) -> reqwest::Response {
    let r = c
        .get(format!("{base}{path}"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "protected path must redirect to the flow");
    // Relative from flowgate; a reverse proxy in front (nginx `return 302`) may make it absolute.
    let to = location(&r);
    let flow_url = if to.starts_with('/') { format!("{base}{to}") } else { to };
    let page = c.get(&flow_url).header("accept", BROWSER_ACCEPT).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let csrf = csrf_of(&html);
    let r = c
        .post(&flow_url)
        .form(&[("csrf_token", csrf.as_str()), ("uid_field", user)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "identification answered {}", r.status());
    let page = c.get(&flow_url).send().await.unwrap();
    let html = page.text().await.unwrap();
    assert!(
        html.contains("name=\"password\""),
        "expected the password stage:\n{html}"
    );
    let csrf = csrf_of(&html);
    let r = c
        .post(&flow_url)
        .form(&[("csrf_token", csrf.as_str()), ("password", password)])
        .send()
        .await
        .unwrap();
    if r.status() != 302 {
        return r;
    }
    // The password stage is done; the login stage runs on the next GET.
    c.get(&flow_url).send().await.unwrap()
}

/// Runs the real binary with `args`, feeding `stdin`; returns (exit code, stdout, stderr).
pub fn run_bin(args: &[&str], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The gateway's user store.
pub fn users(gw: &TestGateway) -> &flowgate::identity::UserStore {
    &gw.running.as_ref().unwrap().users
}

/// GETs a page and returns (status, body).
pub async fn page(c: &reqwest::Client, url: &str) -> (u16, String) {
    let r = get_flow(c, url).await;
    (r.status().as_u16(), r.text().await.unwrap())
}

/// GETs `url`; when it carries a token (`flow_token`, `itoken`, `token`) the gateway answers
/// with a redirect to the same path without it (LINK-2), which is followed once.
pub async fn get_flow(c: &reqwest::Client, url: &str) -> reqwest::Response {
    let r = c.get(url).send().await.unwrap();
    let path_of = |u: &str| u.split('?').next().unwrap_or("").to_string();
    let loc = location(&r);
    let has_token = url.contains("flow_token=") || url.contains("itoken=") || url.contains("token=");
    let same_flow = loc.starts_with("/.flowgate/flow/") && path_of(url).ends_with(&path_of(&loc));
    if r.status() == 302 && has_token && same_flow {
        let origin = url
            .find("://")
            .and_then(|i| url[i + 3..].find('/').map(|j| &url[..i + 3 + j]));
        let to = format!("{}{loc}", origin.unwrap_or(""));
        return c.get(&to).send().await.unwrap();
    }
    r
}

/// Fetches the form at `url`, posts `fields` with its CSRF token, and when the stage is done
/// (302 back to the executor) GETs the executor again. Returns the last response.
pub async fn walk(c: &reqwest::Client, url: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let (status, html) = page(c, url).await;
    assert!(
        status == 200 || status == 400,
        "expected a form at {url}, got {status}:\n{html}"
    );
    let csrf = csrf_of(&html);
    let mut form: Vec<(&str, &str)> = vec![("csrf_token", csrf.as_str())];
    form.extend_from_slice(fields);
    let r = c.post(url).form(&form).send().await.unwrap();
    let path_of = |u: &str| u.split('?').next().unwrap_or("").to_string();
    let next = path_of(&location(&r));
    if r.status() == 302 && next.starts_with("/.flowgate/flow/") && path_of(url).ends_with(&next) {
        return get_flow(c, url).await;
    }
    r
}

/// Every shipped flow file as a config source resolving against `base`.
pub fn shipped_flow_sources(base: &std::path::Path) -> Vec<Source> {
    flowgate::demo::SHIPPED_FLOWS
        .iter()
        .map(|(name, text)| Source {
            name: name.to_string(),
            text: text.to_string(),
            base_dir: base.to_path_buf(),
        })
        .collect()
}

/// Every off-site `next` value of RED-1..9 in docs/security.md (and a few more spellings): each
/// must fall back to `/`. (`/@evil.example` of RED-9 is a same-origin path by docs/design.md §3
/// and is tested on its own in `redirects.rs`.)
pub const OFF_SITE_NEXT: &[&str] = &[
    "//evil.com",
    "/\\evil.com",
    "https://evil.com",
    "/%2F%2Fevil.com",
    "javascript:alert(1)",
    "/%5Cevil.com",
    "\t//evil.com",
    "HTTPS://evil.example/",
    "%2F%2Fevil.example",
    "data:text/html,x",
    "JaVaScRiPt:alert(1)",
    "http:evil.example",
    "https:/evil.example",
    "/ok\r\nSet-Cookie: x=1",
    "/\t/evil.example",
    "/ //evil.example",
    "@evil.example",
    "https://app.example@evil.example/",
];

/// Sends `request` as raw bytes on a new connection and returns everything read until the
/// server closes it (send `Connection: close`) or 10 s pass.
pub async fn raw_http(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw HTTP response ("" when there is none).
pub fn raw_status(resp: &str) -> &str {
    resp.split_whitespace().nth(1).unwrap_or("")
}

/// Rate limits off, for tests that log in many times from one address.
pub const NO_LIMITS: &str = "rate_limits: { password_per_ip: off, password_per_username: off }\n";

/// Logs in through the HTML forms and returns the session cookie value.
pub async fn session_of(gw: &TestGateway, user: &str, password: &str) -> String {
    let done = html_login(&client(), &gw.url(""), "/", user, password).await;
    assert_eq!(done.status(), 302, "login of {user:?} failed");
    set_cookie_value(&done, "flowgate_session").expect("login sets the session cookie")
}

/// One request with an explicit cookie (no jar), as a replaying attacker sends it.
pub async fn with_cookie(
    gw: &TestGateway,
    method: reqwest::Method,
    path: &str,
    cookie: &str,
    form: Option<&[(&str, &str)]>,
) -> reqwest::Response {
    let mut rb = bare_client()
        .request(method, gw.url(path))
        .header("cookie", format!("flowgate_session={cookie}"));
    if let Some(f) = form {
        rb = rb.form(f);
    }
    rb.send().await.unwrap()
}

/// Whether `id` is a logged-in session (the upstream is reached with it).
pub async fn logged_in(gw: &TestGateway, id: &str) -> bool {
    with_cookie(gw, reqwest::Method::GET, "/private", id, None)
        .await
        .status()
        == 200
}

/// Answers the current-password step that opens the shipped settings flows (password change,
/// authenticator setup, unenrollment: CRED-1); returns the page after it.
pub async fn reauthenticate(c: &reqwest::Client, url: &str, password: &str) -> reqwest::Response {
    let r = walk(c, url, &[("password", password)]).await;
    assert_eq!(r.status(), 200, "the flow's next page follows the current password");
    r
}

/// Opens a mailed recovery link in `browser`, confirms it (the confirmation step uses the link
/// up), then sets `password` twice; asserts each step.
pub async fn reset_password_via_link(browser: &reqwest::Client, link: &str, password: &str) {
    let r = walk(browser, link, &[]).await;
    assert_eq!(r.status(), 200, "the password prompt follows the confirmation");
    let r = walk(browser, link, &[("password", password), ("password_repeat", password)]).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
}

/// The TOTP secret on a setup page, and the current code for it.
pub fn totp_on(gw: &TestGateway, html: &str) -> (Vec<u8>, String) {
    let b32 = regex::Regex::new(r#"<code id="totp-secret">([A-Z2-7]+)</code>"#)
        .unwrap()
        .captures(html)
        .unwrap_or_else(|| panic!("no TOTP secret in page:\n{html}"))[1]
        .to_string();
    let secret = data_encoding::BASE32_NOPAD.decode(b32.as_bytes()).unwrap();
    let code = flowgate::identity::mfa::totp_code(
        &secret,
        flowgate::identity::mfa::totp_step(flowgate::session::Clock::now_ms(&gw.clock)),
        6,
    );
    (secret, code)
}
