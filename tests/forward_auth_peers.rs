//! The reverse-proxy snippets of `docs/forward-auth.md`, run for real: the nginx `auth_request`
//! and the Caddy `forward_auth` blocks are read from the document itself, given free ports, and
//! started in front of an in-process flowgate and the recording upstream (the "app"). A client
//! then goes through the reverse proxy only: anonymous redirect to the login flow, skip-auth,
//! a login through the proxied flow pages, identity headers on the app's request with every
//! client spelling of them removed (HDR-1..4 in forward-auth mode), the app's own cookies kept
//! and flowgate's session cookie removed, and logout.
//!
//! Needs Debian's `nginx` and `caddy` (`./dev deps` installs them). Traefik is not packaged for
//! Debian and is not run; its snippet is checked only from the endpoint's side (forward_auth.rs).

use crate::common::*;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const APPS: &str =
    "  - name: wiki\n    hosts: [wiki.example.test]\n    upstream: \"http://UPSTREAM\"\n    skip_auth: [\"^/public/\"]\n";
const EXTRA: &str =
    "trusted_proxies: [127.0.0.1/32]\nrate_limits: { password_per_ip: off, password_per_username: off }\n";

/// The identity header names as a client may spell them to slip past a filter (an app behind
/// CGI, PHP or WSGI reads all of them as `HTTP_X_FORWARDED_USER`), and the client's rewrite,
/// override and address headers.
const SPOOFED: &[&str] = &[
    "X-Forwarded-User",
    "x-forwarded-user",
    "X_Forwarded_User",
    "X.Forwarded.User",
    "X-Forwarded-Groups",
    "X_Forwarded_Groups",
    "X-Forwarded-Email",
    // Rewrite, method-override and client-address headers (FWD-6).
    "X-Original-URL",
    "X-Rewrite-URL",
    "X-HTTP-Method-Override",
    "X-HTTP-Method",
    "X-Method-Override",
    "Forwarded",
    "True-Client-IP",
    "X-Real-IP",
];

/// The body of the first fenced block in `docs/forward-auth.md` whose info string is `lang`.
fn snippet(lang: &str) -> String {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/forward-auth.md")).unwrap();
    let fence = format!("```{lang}\n");
    let start = doc
        .find(&fence)
        .unwrap_or_else(|| panic!("no ```{lang} block in docs/forward-auth.md"))
        + fence.len();
    let len = doc[start..].find("```").expect("unterminated block");
    doc[start..start + len].to_string()
}

/// The snippet with the documented addresses replaced by the test's: flowgate on 8080, the app on
/// 9000. Panics when the document no longer names them (the test would otherwise run nothing).
fn with_addresses(mut text: String, gw: &TestGateway) -> String {
    for (documented, real) in [("127.0.0.1:8080", gw.addr), ("127.0.0.1:9000", gw.upstream.addr)] {
        assert!(text.contains(documented), "the snippet no longer uses {documented}");
        text = text.replace(documented, &real.to_string());
    }
    text
}

fn program(name: &str) -> String {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
        let p = format!("{dir}/{name}");
        if Path::new(&p).exists() {
            return p;
        }
    }
    panic!("{name} not found: run `./dev deps` to install Debian's nginx and caddy");
}

/// A reverse proxy process, killed when dropped; its log is shown when it does not come up.
struct Peer {
    child: Child,
    log: std::path::PathBuf,
}

impl Peer {
    fn spawn(mut cmd: Command, log: std::path::PathBuf, port: u16) -> Self {
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut peer = Peer { child, log };
        // Up to 20 s (400 polls of 50 ms) for the listener.
        for _ in 0..400 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return peer;
            }
            if peer.child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the reverse proxy did not start ({:?}):\n{}",
            peer.child.try_wait(),
            std::fs::read_to_string(&peer.log).unwrap_or_default()
        );
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port and a directory for one reverse proxy, and its block of the document with the test's
/// addresses.
fn prepare(gw: &TestGateway, lang: &str) -> (u16, std::path::PathBuf, String) {
    let dir = gw.dir.path().join(lang);
    std::fs::create_dir_all(&dir).unwrap();
    (unused_port(), dir, with_addresses(snippet(lang), gw))
}

/// The portal block of the document's single sign-on section (`lang title=portal`), with the
/// test's flowgate address.
fn portal_block(gw: &TestGateway, lang: &str) -> String {
    let text = snippet(&format!("{lang} title=portal"));
    assert!(
        text.contains("127.0.0.1:8080"),
        "the portal block no longer uses 127.0.0.1:8080"
    );
    text.replace("127.0.0.1:8080", &gw.addr.to_string())
}

fn start_nginx(gw: &TestGateway) -> (Peer, u16) {
    start_nginx_with(gw, false)
}

/// nginx with the document's block; with `sso`, serving other.test too, and the portal block.
fn start_nginx_with(gw: &TestGateway, sso: bool) -> (Peer, u16) {
    let (port, dir, mut server) = prepare(gw, "nginx");
    if sso {
        assert!(server.contains("server_name wiki.example.test;"));
        server = server.replace(
            "server_name wiki.example.test;",
            "server_name wiki.example.test other.test;",
        );
        server.push_str(&portal_block(gw, "nginx"));
    }
    assert!(server.contains("listen 80;"));
    let server = server.replace("listen 80;", &format!("listen 127.0.0.1:{port};"));
    let d = dir.display();
    let conf = format!(
        "pid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n  access_log off;\n  \
         client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  \
         uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n{server}}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let mut cmd = Command::new(program("nginx"));
    // `-e`: the start-up error log too, so that no path outside `dir` is needed (non-root runs).
    cmd.arg("-p").arg(&dir).arg("-c").arg(dir.join("nginx.conf"));
    cmd.arg("-e").arg(dir.join("error.log"));
    cmd.args(["-g", "daemon off; master_process off;"]);
    (Peer::spawn(cmd, dir.join("stderr.log"), port), port)
}

fn start_caddy(gw: &TestGateway) -> (Peer, u16) {
    start_caddy_with(gw, false)
}

/// Caddy with the document's block; with `sso`, serving other.test too, and the portal block.
fn start_caddy_with(gw: &TestGateway, sso: bool) -> (Peer, u16) {
    let (port, dir, site) = prepare(gw, "caddyfile");
    assert!(site.starts_with("wiki.example.test {"));
    let addresses = if sso {
        format!("http://wiki.example.test:{port}, http://other.test:{port} {{")
    } else {
        format!("http://wiki.example.test:{port} {{")
    };
    let mut site = site.replacen("wiki.example.test {", &addresses, 1);
    if sso {
        let portal = portal_block(gw, "caddyfile");
        assert!(portal.starts_with("auth.example.test {"));
        site.push_str(&portal.replacen("auth.example.test {", &format!("http://auth.example.test:{port} {{"), 1));
    }
    let conf = format!(
        "{{\n\tadmin off\n\tauto_https off\n\tstorage file_system {}\n}}\n{site}",
        dir.join("data").display()
    );
    std::fs::write(dir.join("Caddyfile"), conf).unwrap();
    let mut cmd = Command::new(program("caddy"));
    cmd.args(["run", "--adapter", "caddyfile", "--config"])
        .arg(dir.join("Caddyfile"));
    cmd.env("HOME", &dir)
        .env("XDG_DATA_HOME", &dir)
        .env("XDG_CONFIG_HOME", &dir);
    (Peer::spawn(cmd, dir.join("stderr.log"), port), port)
}

/// A browser that reaches `wiki.example.test` through the reverse proxy on `port`.
fn browser(port: u16) -> (reqwest::Client, String) {
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .resolve("wiki.example.test", SocketAddr::from(([127, 0, 0, 1], port)))
        .build()
        .unwrap();
    (c, format!("http://wiki.example.test:{port}"))
}

fn spoofed(r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    SPOOFED.iter().fold(r, |r, name| r.header(*name, "mallory"))
}

/// No header on the app's request carries the client's value, under any name.
fn assert_nothing_spoofed(seen: &Recorded, what: &str) {
    for (k, v) in &seen.headers {
        assert!(!v.contains("mallory"), "{what}: the app got {k}: {v}");
    }
}

/// The walk every reverse proxy must pass; `peer` names it in failures.
async fn through_the_reverse_proxy(gw: &TestGateway, port: u16, peer: &str) {
    let (c, base) = browser(port);

    // Anonymous: sent to the login flow with `next`, the app never reached.
    let r = c.get(format!("{base}/private?a=1")).send().await.unwrap();
    assert_eq!(r.status(), 302, "{peer}: anonymous request");
    // flowgate answers with a relative URL; nginx's `return 302` makes it absolute on the same host.
    let to = location(&r);
    let to = to.strip_prefix(base.as_str()).unwrap_or(&to);
    assert!(
        to.starts_with("/.flowgate/flow/default-authentication-flow/?next=%2Fprivate%3Fa%3D1"),
        "{peer}: login redirect {to}"
    );
    assert_eq!(gw.upstream.count(), 0, "{peer}: the app saw an anonymous request");

    // Skip-auth reaches the app with no identity, whatever the client sent.
    let r = spoofed(c.get(format!("{base}/public/page"))).send().await.unwrap();
    assert_eq!(r.status(), 200, "{peer}: skip-auth path");
    let seen = gw.upstream.last();
    assert_eq!(seen.uri, "/public/page");
    // Absent (nginx drops the empty values flowgate answers with) or empty (Caddy copies them).
    for h in [
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-forwarded-uid",
    ] {
        let values = seen.headers_named(h);
        assert!(
            values.iter().all(|v| v.is_empty()),
            "{peer}: {h} on skip-auth: {seen:?}"
        );
    }
    assert_nothing_spoofed(&seen, &format!("{peer}, skip-auth"));

    // Login through the proxied flow pages, then the app sees alice, once, and nothing spoofed.
    let done = html_login(&c, &base, "/private?a=1", "alice", ALICE_PASSWORD).await;
    assert_eq!(done.status(), 302, "{peer}: login did not finish");
    assert_eq!(
        location(&done),
        "/private?a=1",
        "{peer}: back to where the user was going"
    );
    let r = spoofed(c.get(format!("{base}/private?a=1"))).send().await.unwrap();
    assert_eq!(r.status(), 200, "{peer}: authenticated request");
    let seen = gw.upstream.last();
    assert_eq!(seen.uri, "/private?a=1");
    assert_eq!(seen.headers_named("x-forwarded-user"), ["alice"], "{peer}: {seen:?}");
    assert_eq!(
        seen.headers_named("x-forwarded-email"),
        ["alice@example.test"],
        "{peer}"
    );
    assert_eq!(seen.headers_named("x-forwarded-groups"), ["admins,staff"], "{peer}");
    assert_nothing_spoofed(&seen, &format!("{peer}, logged in"));
    // The jar's request carried the session cookie only: the app got no Cookie, or an empty one.
    let cookies = seen.headers_named("cookie");
    assert!(
        cookies.iter().all(|c| c.trim().is_empty()),
        "{peer}: the app got {cookies:?}"
    );

    // The app's own cookies reach it; flowgate's session cookie, under either name, never does.
    let id = set_cookie_value(&done, "flowgate_session").expect("login sets the session cookie");
    for (sent, kept) in [
        (
            format!("theme=dark; flowgate_session={id}; lang=en"),
            "theme=dark; lang=en",
        ),
        (format!("flowgate_session={id}; theme=dark"), "theme=dark"),
        (format!("theme=dark; flowgate_session={id}"), "theme=dark"),
        (
            format!("__Host-flowgate_session=x; theme=dark; flowgate_session={id}"),
            "theme=dark",
        ),
        (
            format!("xflowgate_session=keep; flowgate_session={id}"),
            "xflowgate_session=keep",
        ),
    ] {
        let r = bare_client()
            .get(format!("http://127.0.0.1:{port}/private"))
            .header("host", format!("wiki.example.test:{port}"))
            .header("cookie", &sent)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{peer}: {sent}");
        let seen = gw.upstream.last();
        let got = seen.headers_named("cookie").join("; ");
        let pairs = |c: &str| -> Vec<String> {
            c.split(';')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect()
        };
        assert_eq!(pairs(&got), pairs(kept), "{peer}: {sent} reached the app as {got:?}");
    }

    // Logout through the proxy ends the session for the auth check too.
    let before = gw.upstream.count();
    let r = c.get(format!("{base}/logout")).send().await.unwrap();
    assert!(
        r.status().is_redirection() || r.status() == 200,
        "{peer}: logout {}",
        r.status()
    );
    let r = c.get(format!("{base}/private")).send().await.unwrap();
    assert_eq!(r.status(), 302, "{peer}: still let in after logout");
    assert_eq!(gw.upstream.count(), before, "{peer}: the app was reached after logout");
}

#[tokio::test]
async fn nginx_snippet_of_the_docs_works_end_to_end() {
    let gw = TestGateway::start_with(APPS, EXTRA).await;
    let (_nginx, port) = start_nginx(&gw);
    through_the_reverse_proxy(&gw, port, "nginx").await;
    gw.stop().await;
}

#[tokio::test]
async fn caddy_snippet_of_the_docs_works_end_to_end() {
    let gw = TestGateway::start_with(APPS, EXTRA).await;
    let (_caddy, port) = start_caddy(&gw);
    through_the_reverse_proxy(&gw, port, "caddy").await;
    gw.stop().await;
}

const SSO_APPS: &str = "  - name: wiki\n    hosts: [wiki.example.test]\n    upstream: \"http://UPSTREAM\"\n  - name: other\n    hosts: [other.test]\n    upstream: \"http://UPSTREAM\"\n";
const SSO_EXTRA: &str =
    "session: { ttl: 2h, idle_timeout: 30m, cookie_domain: example.test }\nportal: { host: auth.example.test }\n";

/// Single sign-on through the reverse proxy on `port` (docs/forward-auth.md, "Single sign-on
/// across hosts"): the portal handshake for other.test, the domain cookie for wiki, one logout.
async fn sso_through_the_reverse_proxy(gw: &TestGateway, port: u16, peer: &str) {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true);
    for h in ["wiki.example.test", "other.test", "auth.example.test"] {
        b = b.resolve(h, SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let c = b.build().unwrap();
    let base = |h: &str| format!("http://{h}:{port}");
    let rel = |h: &str, loc: String| loc.strip_prefix(&base(h)).map(str::to_string).unwrap_or(loc);
    let get = |url: String| {
        let c = c.clone();
        async move { c.get(url).header("accept", BROWSER_ACCEPT).send().await.unwrap() }
    };

    let r = get(format!("{}/private?a=1", base("other.test"))).await;
    assert_eq!(r.status(), 302, "{peer}: anonymous on other.test");
    let begin = rel("other.test", location(&r));
    assert!(
        begin.starts_with("/.flowgate/sso/begin?next=%2Fprivate%3Fa%3D1"),
        "{peer}: {begin}"
    );
    let r = get(format!("{}{begin}", base("other.test"))).await;
    assert_eq!(r.status(), 302, "{peer}: begin");
    let start = location(&r);
    let path = start
        .strip_prefix(&base("auth.example.test"))
        .unwrap_or_else(|| panic!("{peer}: begin must go to the portal, went to {start}"))
        .to_string();
    let done = html_login(&c, &base("auth.example.test"), &path, "alice", ALICE_PASSWORD).await;
    assert_eq!(done.status(), 302, "{peer}: login at the portal");
    let back = rel("auth.example.test", location(&done));
    let r = get(format!("{}{back}", base("auth.example.test"))).await;
    assert_eq!(r.status(), 302, "{peer}: start with a session");
    let callback = location(&r);
    assert!(
        callback.starts_with(&format!("{}/.flowgate/sso/callback?code=", base("other.test"))),
        "{peer}: {callback}"
    );
    assert_eq!(gw.upstream.count(), 0, "{peer}: an app saw the handshake");
    let r = get(callback.clone()).await;
    assert_eq!(r.status(), 302, "{peer}: callback");
    assert_eq!(rel("other.test", location(&r)), "/private?a=1");
    let r = get(format!("{}/private?a=1", base("other.test"))).await;
    assert_eq!(r.status(), 200, "{peer}: other.test after the handshake");
    let seen = gw.upstream.last();
    assert_eq!(seen.uri, "/private?a=1");
    assert_eq!(seen.headers_named("x-forwarded-user"), ["alice"], "{peer}");
    let code = callback.split("code=").nth(1).unwrap();
    for (k, v) in &seen.headers {
        assert!(!v.contains(code) && !v.contains("_sso"), "{peer}: the app got {k}: {v}");
    }

    // The portal signed in under the cookie domain: wiki opens without a login.
    let r = get(format!("{}/w", base("wiki.example.test"))).await;
    assert_eq!(r.status(), 200, "{peer}: wiki through the domain cookie");
    assert_eq!(gw.upstream.last().headers_named("x-forwarded-user"), ["alice"]);

    // Logout on other.test ends both.
    let r = get(format!("{}/logout", base("other.test"))).await;
    assert_eq!(r.status(), 200, "{peer}: logout page");
    let page = r.text().await.unwrap();
    assert!(
        page.contains("other.test") && page.contains("example.test"),
        "{peer}: {page}"
    );
    let before = gw.upstream.count();
    for h in ["other.test", "wiki.example.test"] {
        let r = get(format!("{}/private", base(h))).await;
        assert_eq!(r.status(), 302, "{peer}: {h} after the logout");
    }
    assert_eq!(
        gw.upstream.count(),
        before,
        "{peer}: an app was reached after the logout"
    );
}

#[tokio::test]
async fn nginx_single_sign_on_across_hosts() {
    let gw = TestGateway::start_with(SSO_APPS, &format!("{EXTRA}{SSO_EXTRA}")).await;
    let (_nginx, port) = start_nginx_with(&gw, true);
    sso_through_the_reverse_proxy(&gw, port, "nginx").await;
    gw.stop().await;
}

#[tokio::test]
async fn caddy_single_sign_on_across_hosts() {
    let gw = TestGateway::start_with(SSO_APPS, &format!("{EXTRA}{SSO_EXTRA}")).await;
    let (_caddy, port) = start_caddy_with(&gw, true);
    sso_through_the_reverse_proxy(&gw, port, "caddy").await;
    gw.stop().await;
}
