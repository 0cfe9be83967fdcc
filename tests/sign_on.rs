//! Single sign-on across hosts and single logout (docs/decisions/0013, issue 13):
//! `session.cookie_domain` and the portal handshake, with several host names on loopback (the
//! client resolves every test host to the gateway), and one logout ending the sign-on
//! everywhere, on every replica with a shared store. The attacks on the handshake are in
//! `sign_on_attacks.rs`, which uses the helpers here.
#![allow(clippy::disallowed_methods)]

use crate::common::redis::Redis;
use crate::common::*;
use flowgate::config::{Config, Source};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub(crate) const WIKI: &str = "wiki.example.test";
pub(crate) const GIT: &str = "git.example.test";
pub(crate) const OTHER: &str = "other.test";
pub(crate) const THIRD: &str = "third.test";
pub(crate) const PORTAL: &str = "auth.example.test";
const HOSTS: [&str; 5] = [WIKI, GIT, OTHER, THIRD, PORTAL];

pub(crate) const APPS: &str = "  - name: wiki\n    hosts: [wiki.example.test]\n    upstream: \"http://UPSTREAM\"\n  - name: git\n    hosts: [git.example.test]\n    upstream: \"http://UPSTREAM\"\n  - name: other\n    hosts: [other.test]\n    upstream: \"http://UPSTREAM\"\n  - name: third\n    hosts: [third.test]\n    upstream: \"http://UPSTREAM\"\n";
pub(crate) const SSO: &str =
    "session: { ttl: 2h, idle_timeout: 30m, cookie_domain: example.test }\nportal: { host: auth.example.test }\n";

pub(crate) async fn start() -> TestGateway {
    TestGateway::start_with(APPS, &format!("{SSO}{NO_LIMITS}")).await
}

/// A browser (cookie jar, redirects off) for which every test host is the gateway at `addr`.
pub(crate) fn browser_at(addr: SocketAddr) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .danger_accept_invalid_certs(true);
    for h in HOSTS {
        b = b.resolve(h, addr);
    }
    b.build().unwrap()
}

pub(crate) fn browser(gw: &TestGateway) -> reqwest::Client {
    browser_at(gw.addr)
}

pub(crate) fn base_at(addr: SocketAddr, host: &str) -> String {
    format!("http://{host}:{}", addr.port())
}

pub(crate) fn base(gw: &TestGateway, host: &str) -> String {
    base_at(gw.addr, host)
}

pub(crate) fn abs(base: &str, loc: &str) -> String {
    if loc.starts_with('/') {
        format!("{base}{loc}")
    } else {
        loc.to_string()
    }
}

pub(crate) async fn get(c: &reqwest::Client, url: &str) -> reqwest::Response {
    c.get(url).header("accept", BROWSER_ACCEPT).send().await.unwrap()
}

pub(crate) fn set_cookies(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

pub(crate) fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// What `begin` gave the browser: the portal's start URL and the binding nonce.
pub(crate) struct Begun {
    pub(crate) start: String,
    pub(crate) nonce: String,
}

/// An anonymous request for `path` on `host` (an app outside the cookie domain), followed to
/// the portal: asserts each hop and returns the start URL.
pub(crate) async fn begin_at(
    c: &reqwest::Client,
    addr: SocketAddr,
    portal: SocketAddr,
    host: &str,
    path: &str,
) -> Begun {
    let b = base_at(addr, host);
    let r = get(c, &format!("{b}{path}")).await;
    assert_eq!(r.status(), 302, "{host}{path}: anonymous request");
    let loc = location(&r);
    assert!(loc.starts_with("/.flowgate/sso/begin?next="), "{loc}");
    let r = get(c, &abs(&b, &loc)).await;
    assert_eq!(r.status(), 302);
    let start = location(&r);
    assert!(
        start.starts_with(&format!("{}/.flowgate/sso/start?rd=", base_at(portal, PORTAL))),
        "{start}"
    );
    let cookie = set_cookies(&r)
        .into_iter()
        .find(|c| c.starts_with("flowgate_session_sso="))
        .expect("begin sets the binding cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Path=/.flowgate/sso/") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let nonce = cookie["flowgate_session_sso=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_string();
    Begun { start, nonce }
}

pub(crate) async fn begin(c: &reqwest::Client, gw: &TestGateway, host: &str, path: &str) -> Begun {
    begin_at(c, gw.addr, gw.addr, host, path).await
}

/// The portal's answer to a start URL when its session is good: the callback URL with a code.
pub(crate) async fn code_url(c: &reqwest::Client, start: &str) -> String {
    let r = get(c, start).await;
    assert_eq!(r.status(), 302, "start with a portal session");
    assert_eq!(header(&r, "referrer-policy"), "no-referrer");
    let to = location(&r);
    assert!(to.contains("/.flowgate/sso/callback?code="), "{to}");
    to
}

/// Logs in at the portal from a start URL; returns the callback URL.
pub(crate) async fn login_at_portal(
    c: &reqwest::Client,
    portal: SocketAddr,
    start: &str,
    user: &str,
    pw: &str,
) -> String {
    let pb = base_at(portal, PORTAL);
    let path = start.strip_prefix(&pb).expect("start is on the portal");
    let done = html_login(c, &pb, path, user, pw).await;
    assert_eq!(done.status(), 302, "login at the portal");
    let back = location(&done);
    assert!(back.starts_with("/.flowgate/sso/start?"), "{back}");
    code_url(c, &abs(&pb, &back)).await
}

/// Redeems a callback URL; asserts the clean redirect and returns where it goes.
pub(crate) async fn redeem(c: &reqwest::Client, callback: &str) -> String {
    let r = get(c, callback).await;
    assert_eq!(r.status(), 302, "callback: {}", r.status());
    assert_eq!(header(&r, "referrer-policy"), "no-referrer");
    let cookies = set_cookies(&r);
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("flowgate_session=") && !c.contains("Domain=")),
        "a host-only session cookie: {cookies:?}"
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("flowgate_session_sso=;") && c.contains("Max-Age=0")),
        "the binding cookie is cleared: {cookies:?}"
    );
    let to = location(&r);
    assert!(to.starts_with('/') && !to.contains("code"), "{to}");
    to
}

/// Whether `c` gets through to the app on `host`.
pub(crate) async fn reaches(c: &reqwest::Client, gw: &TestGateway, host: &str) -> bool {
    get(c, &format!("{}/private", base(gw, host))).await.status() == 200
}

/// Sends a callback with the code and a binding nonce of the attacker's choosing, no jar.
pub(crate) async fn callback_with(gw: &TestGateway, host: &str, code_url: &str, nonce: &str) -> reqwest::Response {
    let code = code_url.split("code=").nth(1).unwrap();
    let c = browser(gw);
    let mut r = c.get(format!("{}/.flowgate/sso/callback?code={code}", base(gw, host)));
    if !nonce.is_empty() {
        r = r.header("cookie", format!("flowgate_session_sso={nonce}"));
    }
    r.send().await.unwrap()
}

pub(crate) fn no_session_cookie(r: &reqwest::Response) -> bool {
    !set_cookies(r)
        .iter()
        .any(|c| c.starts_with("flowgate_session=") && !c.contains("Max-Age=0"))
}

// === session.cookie_domain ===

#[tokio::test]
async fn one_login_covers_every_host_under_the_cookie_domain() {
    let gw = start().await;
    let c = browser(&gw);
    let done = html_login(&c, &base(&gw, WIKI), "/w", "alice", ALICE_PASSWORD).await;
    assert_eq!(done.status(), 302);
    let cookie = set_cookies(&done)
        .into_iter()
        .find(|c| c.starts_with("flowgate_session=") && !c.contains("Max-Age=0"))
        .expect("a session cookie");
    for attr in ["Domain=example.test", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert!(reaches(&c, &gw, WIKI).await);
    assert!(reaches(&c, &gw, GIT).await, "the other app under the domain");
    let seen = gw.upstream.last();
    assert_eq!(seen.header("x-forwarded-user"), Some("alice"));
    assert_eq!(seen.header("host"), Some(format!("{GIT}:{}", gw.addr.port()).as_str()));
    // The cookie never goes to a host outside the domain: there the portal handshake starts.
    let r = get(&c, &format!("{}/private", base(&gw, OTHER))).await;
    assert_eq!(r.status(), 302);
    assert!(location(&r).starts_with("/.flowgate/sso/begin?"));
    gw.stop().await;
}

#[tokio::test]
async fn over_https_the_domain_cookie_is_secure_prefixed_never_host_prefixed() {
    let certs = tempfile::tempdir().unwrap();
    let names: Vec<String> = HOSTS.iter().map(|h| h.to_string()).collect();
    let (cert, key) = flowgate::tls::write_dev_certificate(certs.path(), &names).unwrap();
    let listen = format!(
        "listen: {{ http: \"127.0.0.1:0\", https: {{ addr: \"127.0.0.1:0\", cert: \"{}\", key: \"{}\" }} }}\n",
        cert.display(),
        key.display()
    );
    let mut gw = TestGateway::start_with(APPS, &format!("{listen}{SSO}{NO_LIMITS}")).await;
    gw.keep.push(certs);
    let https = gw.https_addr.unwrap();
    let c = browser_at(https);
    let b = |h: &str| format!("https://{h}:{}", https.port());
    let done = html_login(&c, &b(WIKI), "/w", "alice", ALICE_PASSWORD).await;
    assert_eq!(done.status(), 302);
    let cookies = set_cookies(&done);
    assert!(cookies.iter().all(|c| !c.starts_with("__Host-")), "{cookies:?}");
    let cookie = cookies
        .iter()
        .find(|c| c.starts_with("__Secure-flowgate_session=") && !c.contains("Max-Age=0"))
        .unwrap_or_else(|| panic!("a __Secure- session cookie: {cookies:?}"));
    assert!(
        cookie.contains("Domain=example.test") && cookie.contains("Secure"),
        "{cookie}"
    );
    let r = get(&c, &format!("{}/private", b(GIT))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("alice"));
    // Neither name of the cookie reaches the app.
    assert!(gw
        .upstream
        .last()
        .header("cookie")
        .is_none_or(|c| !c.contains("flowgate_session")));
    gw.stop().await;
}

fn config_errors(main: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut sources = vec![Source {
        name: "sso.yaml".into(),
        text: format!("listen: {{ http: \"127.0.0.1:0\" }}\nmail: {{ transport: file }}\n{main}"),
        base_dir: dir.path().to_path_buf(),
    }];
    sources.extend(shipped_flow_sources(dir.path()));
    match Config::from_sources(sources) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

const TWO_APPS: &str = "apps:\n  - { name: wiki, hosts: [wiki.example.test], upstream: \"http://127.0.0.1:9\" }\n  - { name: other, hosts: [other.test], upstream: \"http://127.0.0.1:9\" }\n";

#[test]
fn cookie_domain_misconfigurations_are_refused() {
    let cases: &[(&str, &str)] = &[
        ("session: { cookie_domain: com }\n", "\"com\" is a public suffix"),
        ("session: { cookie_domain: co.uk }\n", "\"co.uk\" is a public suffix"),
        (
            "session: { cookie_domain: github.io }\n",
            "\"github.io\" is a public suffix",
        ),
        ("session: { cookie_domain: test }\n", "\"test\" is a public suffix"),
        ("session: { cookie_domain: .example.test }\n", "without a leading dot"),
        ("session: { cookie_domain: 127.0.0.1 }\n", "an IP address"),
        (
            "session: { cookie_domain: example.org }\nportal: { host: auth.example.org }\n",
            "\"example.org\" is not a parent of any app's host",
        ),
        (
            "session: { cookie_domain: example.test }\n",
            "apps[1].hosts[0]: host \"other.test\" is outside session.cookie_domain",
        ),
        (
            "session: { cookie_domain: example.test }\nportal: { host: auth.other.test }\n",
            "portal.host: the portal \"auth.other.test\" is outside session.cookie_domain",
        ),
        (
            "portal: { host: \"auth.example.test:0x1\" }\n",
            "portal.host: invalid port",
        ),
    ];
    for (extra, want) in cases {
        let err = config_errors(&format!("{extra}{TWO_APPS}"));
        assert!(err.contains(want), "{extra}: expected {want:?} in:\n{err}");
        assert!(err.contains("sso.yaml:"), "errors name the file: {err}");
    }
    // An app on any host cannot take part.
    let err = config_errors(
        "session: { cookie_domain: example.test }\napps:\n  - { name: all, upstream: \"http://127.0.0.1:9\" }\n",
    );
    assert!(err.contains("apps[0].hosts: app \"all\" answers on any host"), "{err}");
    // The good shapes pass.
    for ok in [
        "session: { cookie_domain: example.test }\nportal: { host: auth.example.test }\n",
        "portal: { host: auth.example.test }\n",
        "session: { cookie_domain: Example.Test. }\nportal: { host: \"auth.example.test:8443\" }\n",
    ] {
        let err = config_errors(&format!("{ok}{TWO_APPS}"));
        assert!(err.is_empty(), "{ok}: {err}");
    }
}

// === the portal handshake ===

#[tokio::test]
async fn the_portal_signs_other_domains_on_once_and_the_code_never_reaches_the_app() {
    let gw = start().await;
    let c = browser(&gw);
    let begun = begin(&c, &gw, OTHER, "/private?x=1").await;
    let callback = login_at_portal(&c, gw.addr, &begun.start, "alice", ALICE_PASSWORD).await;
    assert!(callback.starts_with(&format!("{}/", base(&gw, OTHER))), "{callback}");
    assert_eq!(gw.upstream.count(), 0, "no app saw the handshake");
    let to = redeem(&c, &callback).await;
    assert_eq!(to, "/private?x=1");
    let r = get(&c, &abs(&base(&gw, OTHER), &to)).await;
    assert_eq!(r.status(), 200);
    // The app's first request: the clean URL, and nothing about the code anywhere.
    assert_eq!(gw.upstream.count(), 1);
    let seen = gw.upstream.last();
    assert_eq!(seen.uri, "/private?x=1");
    assert_eq!(seen.header("x-forwarded-user"), Some("alice"));
    let code = callback.split("code=").nth(1).unwrap();
    for (k, v) in &seen.headers {
        assert!(!v.contains(code) && !v.contains("sso"), "the app got {k}: {v}");
    }
    assert!(seen.header("referer").is_none());
    // Logged in at the portal, which is under the cookie domain: the apps there too.
    assert!(reaches(&c, &gw, WIKI).await);
    assert!(reaches(&c, &gw, GIT).await);
    // A third app outside the domain: the handshake runs without a login form.
    let begun = begin(&c, &gw, THIRD, "/t").await;
    let callback = code_url(&c, &begun.start).await;
    assert_eq!(redeem(&c, &callback).await, "/t");
    assert!(reaches(&c, &gw, THIRD).await);
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("alice"));
    gw.stop().await;
}

#[tokio::test]
async fn logout_on_any_host_ends_the_sign_on_everywhere_and_says_what_ended() {
    for logout_host in [THIRD, WIKI] {
        let gw = start().await;
        let c = browser(&gw);
        let begun = begin(&c, &gw, OTHER, "/o").await;
        let callback = login_at_portal(&c, gw.addr, &begun.start, "alice", ALICE_PASSWORD).await;
        redeem(&c, &callback).await;
        let begun = begin(&c, &gw, THIRD, "/t").await;
        redeem(&c, &code_url(&c, &begun.start).await).await;
        for h in [WIKI, GIT, OTHER, THIRD] {
            assert!(reaches(&c, &gw, h).await, "{h} before logout");
        }
        // alice on another device, and bob: neither is part of this sign-on.
        let laptop = browser(&gw);
        html_login(&laptop, &base(&gw, WIKI), "/", "alice", ALICE_PASSWORD).await;
        let bob = browser(&gw);
        html_login(&bob, &base(&gw, GIT), "/", "bob", BOB_PASSWORD).await;

        let r = get(&c, &format!("{}/logout", base(&gw, logout_host))).await;
        assert_eq!(r.status(), 200, "{logout_host}: the logout page");
        let page = r.text().await.unwrap();
        assert!(page.contains("Signed out"), "{page}");
        for ended in ["other.test", "third.test", "example.test and every host under it"] {
            assert!(page.contains(ended), "{logout_host}: {ended} not named:\n{page}");
        }
        assert!(page.contains("3 session(s)"), "{page}");
        for h in [WIKI, GIT, OTHER, THIRD] {
            let r = get(&c, &format!("{}/private", base(&gw, h))).await;
            assert_eq!(r.status(), 302, "{logout_host}: {h} must ask for a login again");
        }
        assert!(reaches(&laptop, &gw, WIKI).await, "the other device is another sign-on");
        assert!(reaches(&bob, &gw, GIT).await);
        gw.stop().await;
    }
}

// === replicas sharing Redis ===

pub(crate) async fn replica(dir: &std::path::Path, redis: &Redis, portal: &str, upstream: Upstream) -> TestGateway {
    let own = tempfile::tempdir().unwrap();
    let extra = format!(
        "identity: {{ database: \"{}\", seed: seed.yaml }}\nsession: {{ ttl: 2h, idle_timeout: 30m, cookie_domain: example.test, store: redis, redis: {{ url: \"{}\", key_prefix: \"sso:\" }} }}\nportal: {{ host: \"{portal}\" }}\n{NO_LIMITS}mail: {{ transport: file, dir: \"{}\" }}\n",
        dir.join("users.db").display(),
        redis.url(),
        own.path().join("mail").display(),
    );
    let mut sources = vec![Source {
        name: "test.yaml".into(),
        text: config_text(APPS, &extra, upstream.addr, own.path()),
        base_dir: dir.to_path_buf(),
    }];
    sources.extend(shipped_flow_sources(dir));
    let cfg = Config::from_sources(sources).unwrap_or_else(|e| panic!("{e}"));
    TestGateway::from_config(cfg, own, upstream).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_and_single_logout_span_replicas_sharing_redis() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("seed.yaml"), SEED).unwrap();
    let upstream = Upstream::spawn().await;
    // A serves the portal; B serves other.test and names A's portal with its port.
    let a = replica(dir.path(), &redis, PORTAL, upstream.clone()).await;
    let b = replica(
        dir.path(),
        &redis,
        &format!("{PORTAL}:{}", a.addr.port()),
        upstream.clone(),
    )
    .await;
    // One browser: the portal and wiki on A, other.test on B (its URLs carry the ports).
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true);
    for h in [PORTAL, WIKI, GIT] {
        builder = builder.resolve(h, a.addr);
    }
    builder = builder.resolve(OTHER, b.addr);
    let c = builder.build().unwrap();
    let begun = begin_at(&c, b.addr, a.addr, OTHER, "/o").await;
    let callback = login_at_portal(&c, a.addr, &begun.start, "alice", ALICE_PASSWORD).await;
    assert!(callback.starts_with(&base_at(b.addr, OTHER)), "{callback}");
    // Issued on A, redeemed on B.
    let to = redeem(&c, &callback).await;
    let r = get(&c, &abs(&base_at(b.addr, OTHER), &to)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(upstream.last().header("x-forwarded-user"), Some("alice"));
    assert_eq!(get(&c, &format!("{}/w", base_at(a.addr, WIKI))).await.status(), 200);

    // Logout on B (other.test) ends the portal's domain session, cached on A, within 100 ms.
    let r = get(&c, &format!("{}/logout", base_at(b.addr, OTHER))).await;
    assert_eq!(r.status(), 200);
    let started = Instant::now();
    loop {
        let s = get(&c, &format!("{}/w", base_at(a.addr, WIKI))).await.status();
        if s == 302 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "A still lets the sign-on in {:?} after the logout on B",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(get(&c, &format!("{}/o", base_at(b.addr, OTHER))).await.status(), 302);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn the_invalidation_flow_can_end_the_users_other_devices_too() {
    const EVERYWHERE: &str = "flows:\n  - { slug: logout-everywhere, designation: invalidation, bindings: [{ stage: out, order: 0 }] }\nstages:\n  out: { type: user_logout, terminate_other_sessions: true }\n";
    let gw = TestGateway::start_full(
        APPS,
        &format!("{SSO}{NO_LIMITS}"),
        Upstream::spawn().await,
        &[("default-invalidation.yaml", EVERYWHERE)],
    )
    .await;
    let c = browser(&gw);
    let begun = begin(&c, &gw, OTHER, "/").await;
    let callback = login_at_portal(&c, gw.addr, &begun.start, "alice", ALICE_PASSWORD).await;
    redeem(&c, &callback).await;
    let laptop = browser(&gw);
    html_login(&laptop, &base(&gw, WIKI), "/", "alice", ALICE_PASSWORD).await;
    let bob = browser(&gw);
    html_login(&bob, &base(&gw, GIT), "/", "bob", BOB_PASSWORD).await;
    assert!(reaches(&laptop, &gw, WIKI).await);

    let r = get(&c, &format!("{}/logout", base(&gw, OTHER))).await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("1 session(s) on other devices"), "{page}");
    assert!(!reaches(&c, &gw, OTHER).await && !reaches(&c, &gw, WIKI).await);
    assert!(!reaches(&laptop, &gw, WIKI).await, "the other device is signed out too");
    assert!(reaches(&bob, &gw, GIT).await, "another user is not");
    gw.stop().await;
}

#[tokio::test]
async fn an_app_with_its_own_flow_steps_up_at_the_portal() {
    use flowgate::identity::mfa;
    use flowgate::session::clock::Clock;
    let apps = APPS.replace(
        "  - name: other\n    hosts: [other.test]\n    upstream: \"http://UPSTREAM\"\n",
        "  - name: other\n    hosts: [other.test]\n    upstream: \"http://UPSTREAM\"\n    authentication_flow: mfa-login\n",
    );
    assert_ne!(apps, APPS);
    let gw = TestGateway::start_full(
        &apps,
        &format!("{SSO}{NO_LIMITS}"),
        Upstream::spawn().await,
        &[("mfa.yaml", crate::step_up::MFA_FLOW)],
    )
    .await;
    // An API client is told where the handshake starts.
    let r = browser(&gw)
        .get(format!("{}/secret", base(&gw, OTHER)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["login_url"], "/.flowgate/sso/begin?next=%2Fsecret");

    // alice signs on at wiki with her password only, then gets a TOTP device.
    let c = browser(&gw);
    assert_eq!(
        html_login(&c, &base(&gw, WIKI), "/", "alice", ALICE_PASSWORD)
            .await
            .status(),
        302
    );
    let secret = mfa::new_totp_secret();
    let alice = users(&gw).get_by_username("alice").await.unwrap().unwrap();
    users(&gw)
        .add_totp_device(alice.id, "phone", &secret, 6, gw.clock.now_ms(), None)
        .await
        .unwrap();
    // other.test names a flow with a code: the portal session is not enough, the portal asks
    // for the code only (it knows alice), then hands out the code for other.test.
    let begun = begin(&c, &gw, OTHER, "/secret").await;
    let r = get(&c, &begun.start).await;
    assert_eq!(r.status(), 302);
    let step_up = location(&r);
    assert!(
        step_up.starts_with("/.flowgate/flow/mfa-login/?next=%2F.flowgate%2Fsso%2Fstart"),
        "{step_up}"
    );
    assert_eq!(gw.upstream.count(), 0);
    let flow_url = abs(&base(&gw, PORTAL), &step_up);
    let (status, html) = page(&c, &flow_url).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("name=\"code\"") && !html.contains("name=\"password\""),
        "{html}"
    );
    gw.clock.advance(Duration::from_secs(30));
    let totp = mfa::totp_code(&secret, mfa::totp_step(gw.clock.now_ms()), 6);
    let r = walk(&c, &flow_url, &[("code", totp.as_str())]).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let back = location(&r);
    assert!(back.starts_with("/.flowgate/sso/start?"), "{back}");
    let callback = code_url(&c, &abs(&base(&gw, PORTAL), &back)).await;
    assert_eq!(redeem(&c, &callback).await, "/secret");
    let r = get(&c, &format!("{}/secret", base(&gw, OTHER))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("alice"));
    // Still one sign-on: logout on other.test ends wiki's too.
    assert_eq!(get(&c, &format!("{}/logout", base(&gw, OTHER))).await.status(), 200);
    assert!(!reaches(&c, &gw, WIKI).await);
    gw.stop().await;
}
