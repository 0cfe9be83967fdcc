//! Forward-auth endpoints over real sockets: `/.flowgate/auth/nginx` (nginx `auth_request`) and
//! `/.flowgate/auth/traefik` (Traefik `forwardAuth`, Caddy `forward_auth`). The test client
//! plays the reverse proxy; it connects from 127.0.0.1, which the main config trusts (except
//! where a test checks the untrusted case). The recording upstream must never see any of these
//! calls. FLOW-9 of docs/security.md: every error answers 4xx/5xx, never 200.

use crate::common::*;

const APPS: &str = "  - name: app\n    hosts: [app.test]\n    upstream: \"http://UPSTREAM\"\n    skip_auth: [\"^/public/\"]\n  - name: staff\n    hosts: [staff.test]\n    upstream: \"http://UPSTREAM\"\n    policies: [{ group: staff }]\n";
const TRUSTED: &str =
    "trusted_proxies: [127.0.0.1/32]\nrate_limits: { password_per_ip: off, password_per_username: off }\n";
const LOGIN: &str = "/.flowgate/flow/default-authentication-flow/";

async fn start(trust_loopback: bool) -> TestGateway {
    let extra = if trust_loopback {
        TRUSTED
    } else {
        "trusted_proxies: [10.0.0.0/8]\n"
    };
    TestGateway::start_with(APPS, extra).await
}

/// A client that reaches the gateway as `app.test` (cookie jar on, redirects off).
fn app_client(gw: &TestGateway) -> (reqwest::Client, String) {
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .resolve("app.test", gw.addr)
        .build()
        .unwrap();
    (c, format!("http://app.test:{}", gw.addr.port()))
}

/// Logs `user` in through the proxy and returns the session cookie header.
async fn session_cookie(gw: &TestGateway, user: &str, password: &str) -> String {
    let (c, base) = app_client(gw);
    let done = html_login(&c, &base, "/", user, password).await;
    let id = set_cookie_value(&done, "flowgate_session").expect("login sets the session cookie");
    format!("flowgate_session={id}")
}

fn nginx(gw: &TestGateway, original_url: &str) -> reqwest::RequestBuilder {
    bare_client()
        .get(gw.url("/.flowgate/auth/nginx"))
        .header("x-original-url", original_url)
}

/// A Traefik forwardAuth request for a browser on plain HTTP (the tests log in over plain HTTP;
/// with `X-Forwarded-Proto: https` from the trusted proxy the session cookie would be the
/// `__Host-` one, see `forwarded_headers_host::trusted_proxy_forwarded_proto_https_…`).
fn traefik(gw: &TestGateway, host: &str, uri: &str) -> reqwest::RequestBuilder {
    bare_client()
        .get(gw.url("/.flowgate/auth/traefik"))
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", host)
        .header("x-forwarded-uri", uri)
}

const IDENTITY: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-name",
    "x-forwarded-uid",
];

/// A skip-auth 200 names every identity header with an empty value (a reverse proxy that copies
/// a missing header may put a placeholder in its place, see forward_auth_peers.rs).
fn assert_blank_identity(r: &reqwest::Response, what: &str) {
    for h in IDENTITY {
        let values: Vec<_> = r.headers().get_all(*h).iter().collect();
        assert_eq!(values, [""], "{what}: {h} on the response");
    }
    for (k, v) in r.headers() {
        assert_ne!(v, "mallory", "{what}: spoofed {k} echoed");
    }
}

fn assert_no_identity(r: &reqwest::Response, what: &str) {
    for h in IDENTITY {
        assert!(r.headers().get(*h).is_none(), "{what}: {h} on the response");
    }
    for (k, v) in r.headers() {
        assert_ne!(v, "mallory", "{what}: spoofed {k} echoed");
    }
}

/// Sends raw bytes and returns the status code of the answer.
async fn raw_status(gw: &TestGateway, request: Vec<u8>) -> u16 {
    let addr = gw.addr;
    let resp = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(&request).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .unwrap();
    resp.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn authenticated_gets_200_with_the_proxys_identity_headers() {
    let gw = start(true).await;
    let cookie = session_cookie(&gw, "alice", ALICE_PASSWORD).await;
    // What the proxy itself sends upstream for this session, for comparison.
    let (c, base) = app_client(&gw);
    let r = c
        .get(format!("{base}/x"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let proxied = gw.upstream.last();
    let before = gw.upstream.count();

    let n = nginx(&gw, "https://app.test/private?a=1")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(n.status(), 200);
    let t = traefik(&gw, "app.test", "/private?a=1")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(t.status(), 200);
    for r in [&n, &t] {
        assert_eq!(r.headers()["x-forwarded-user"], "alice");
        for h in IDENTITY {
            assert_eq!(
                r.headers().get(*h).map(|v| v.to_str().unwrap()),
                proxied.header(h),
                "{h}: same value as the proxy sends upstream"
            );
        }
    }
    // A session on a skip-auth path still gets its identity.
    let r = nginx(&gw, "https://app.test/public/x")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-forwarded-user"], "alice");
    // nginx may describe the original with X-Original-URI plus X-Forwarded-Host.
    let r = bare_client()
        .get(gw.url("/.flowgate/auth/nginx"))
        .header("x-original-uri", "/private")
        .header("x-forwarded-host", "app.test")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(gw.upstream.count(), before, "forward auth forwarded something");
    gw.stop().await;
}

#[tokio::test]
async fn unauthenticated_gets_401_from_nginx_and_302_from_traefik() {
    let gw = start(true).await;
    let want = format!("{LOGIN}?next=%2Fprivate%3Fa%3D1");
    let r = nginx(&gw, "https://app.test/private?a=1").send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-flowgate-login"], want.as_str());
    assert_no_identity(&r, "nginx 401");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["login_url"], want.as_str());
    assert!(v["error"].is_string());

    let r = traefik(&gw, "app.test", "/private?a=1").send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), want);
    assert_no_identity(&r, "traefik 302");

    // The Location really leads back: log in from it and land on the original path.
    let (c, base) = app_client(&gw);
    let done = walk(&c, &format!("{base}{want}"), &[("uid_field", "alice")]).await;
    assert_eq!(done.status(), 200, "password stage");
    let done = walk(&c, &format!("{base}{want}"), &[("password", ALICE_PASSWORD)]).await;
    assert_eq!(done.status(), 302);
    assert_eq!(location(&done), "/private?a=1");
    assert_eq!(gw.upstream.count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn skip_auth_is_200_with_blank_identity_even_with_spoofed_headers() {
    let gw = start(true).await;
    let spoof = |rb: reqwest::RequestBuilder| {
        rb.header("X-Forwarded-User", "mallory")
            .header("X_Forwarded_Email", "mallory")
            .header("X-authentik-username", "mallory")
            .header("Remote-User", "mallory")
            .header("X-Forwarded-Groups", "mallory")
    };
    let r = spoof(nginx(&gw, "https://app.test/public/app.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_blank_identity(&r, "nginx skip-auth");
    let r = spoof(traefik(&gw, "app.test", "/public/app.css?v=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_blank_identity(&r, "traefik skip-auth");
    // Same normalisation and ambiguity rules as the proxy: tricks need a session.
    for sneaky in [
        "/public/../private",
        "/public/%2e%2e/private",
        "/public%2F..%2Fprivate",
        "/public/..%5Cprivate",
        "/private?x=/public/",
        "/private#/public/",
    ] {
        let r = spoof(traefik(&gw, "app.test", sneaky)).send().await.unwrap();
        // 400: refused as confusing (PATH-9); 302: needs a session.
        assert!(matches!(r.status().as_u16(), 302 | 400), "traefik {sneaky}");
        let r = spoof(nginx(&gw, &format!("https://app.test{sneaky}")))
            .send()
            .await
            .unwrap();
        assert!(
            matches!(r.status().as_u16(), 400 | 401),
            "nginx {sneaky}: {}",
            r.status()
        );
    }
    assert_eq!(gw.upstream.count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn forged_cookies_never_get_200() {
    let gw = start(true).await;
    let real = session_cookie(&gw, "alice", ALICE_PASSWORD).await;
    let id = real.trim_start_matches("flowgate_session=").to_string();
    let cookies = [
        format!("flowgate_session={}", "A".repeat(43)),
        format!("flowgate_session={}", &id[..20]),
        format!("flowgate_session={id}x"),
        format!("flowgate_session={}", "A".repeat(8 * 1024)),
        format!("flowgate_session={}", "%41".repeat(43)),
        format!("flowgate_session=%00{}", &id[3..]),
        format!("flowgate_session={id}; flowgate_session={}", "B".repeat(43)),
        "flowgate_session=".to_string(),
        "garbage".to_string(),
    ];
    for cookie in &cookies {
        let r = nginx(&gw, "https://app.test/private")
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "nginx {cookie:.60}");
        let r = traefik(&gw, "app.test", "/private")
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "traefik {cookie:.60}");
    }
    // A NUL byte inside the cookie: refused by the parser or unauthenticated, never 200.
    for endpoint in ["nginx", "traefik"] {
        let mut req = format!(
            "GET /.flowgate/auth/{endpoint} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Original-URL: https://app.test/private\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: app.test\r\nX-Forwarded-Uri: /private\r\nCookie: flowgate_session="
        )
        .into_bytes();
        req.extend_from_slice(&id.as_bytes()[..20]);
        req.push(0);
        req.extend_from_slice(&id.as_bytes()[21..]);
        req.extend_from_slice(b"\r\n\r\n");
        let status = raw_status(&gw, req).await;
        assert!(matches!(status, 400 | 401 | 302), "{endpoint} with NUL: {status}");
    }
    // The real cookie still works.
    let r = nginx(&gw, "https://app.test/private")
        .header("cookie", &real)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(gw.upstream.count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn untrusted_peer_is_refused() {
    let gw = start(false).await;
    let cookie = session_cookie(&gw, "alice", ALICE_PASSWORD).await;
    let calls = [
        nginx(&gw, "https://app.test/private").header("cookie", &cookie),
        nginx(&gw, "https://app.test/public/x"),
        traefik(&gw, "app.test", "/private").header("cookie", &cookie),
        traefik(&gw, "app.test", "/public/x"),
        bare_client().get(gw.url("/.flowgate/auth/nginx")),
        bare_client()
            .get(gw.url("/.flowgate/auth/traefik"))
            .header("cookie", &cookie),
    ];
    for (i, rb) in calls.into_iter().enumerate() {
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), 403, "call {i}");
        assert_no_identity(&r, "untrusted");
    }
    assert_eq!(gw.upstream.count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn missing_or_garbage_headers_are_4xx_never_200() {
    let gw = start(true).await;
    // A valid session rides along: an error must not fall back to "authenticated".
    let cookie = session_cookie(&gw, "alice", ALICE_PASSWORD).await;
    let ep = |name: &str| {
        bare_client()
            .get(gw.url(&format!("/.flowgate/auth/{name}")))
            .header("cookie", &cookie)
    };
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        ("nginx without headers", ep("nginx")),
        ("traefik without headers", ep("traefik")),
        (
            "traefik without uri",
            ep("traefik")
                .header("x-forwarded-proto", "https")
                .header("x-forwarded-host", "app.test"),
        ),
        (
            "traefik without host",
            ep("traefik")
                .header("x-forwarded-proto", "https")
                .header("x-forwarded-uri", "/x"),
        ),
        (
            "traefik without proto",
            ep("traefik")
                .header("x-forwarded-host", "app.test")
                .header("x-forwarded-uri", "/x"),
        ),
        (
            "traefik bad proto",
            ep("traefik")
                .header("x-forwarded-proto", "gopher")
                .header("x-forwarded-host", "app.test")
                .header("x-forwarded-uri", "/x"),
        ),
        (
            "traefik two hosts",
            ep("traefik")
                .header("x-forwarded-proto", "https")
                .header("x-forwarded-host", "app.test")
                .header("x-forwarded-host", "staff.test")
                .header("x-forwarded-uri", "/x"),
        ),
        (
            "traefik garbage host",
            ep("traefik")
                .header("x-forwarded-proto", "https")
                .header("x-forwarded-host", "app.test/evil")
                .header("x-forwarded-uri", "/x"),
        ),
        ("nginx not a url", ep("nginx").header("x-original-url", "not a url")),
        ("nginx relative url", ep("nginx").header("x-original-url", "/private")),
        (
            "nginx userinfo",
            ep("nginx").header("x-original-url", "https://app.test@evil.test/"),
        ),
        (
            "nginx uri disagrees with url",
            ep("nginx")
                .header("x-original-url", "https://app.test/private")
                .header("x-original-uri", "/public/x"),
        ),
        (
            "nginx uri without host",
            ep("nginx").header("x-original-uri", "/x").header("host", ""),
        ),
        ("nginx empty url", ep("nginx").header("x-original-url", "")),
        (
            "nginx NUL in path",
            ep("nginx").header("x-original-url", "https://app.test/a%00b"),
        ),
        (
            "nginx bad utf-8",
            ep("nginx").header("x-original-url", "https://app.test/%ff"),
        ),
        (
            "nginx reserved path",
            ep("nginx").header("x-original-url", "https://app.test/.flowgate/flow/x/"),
        ),
        (
            "nginx logout path",
            ep("nginx").header("x-original-url", "https://app.test/logout"),
        ),
        (
            "nginx bad method",
            ep("nginx")
                .header("x-original-url", "https://app.test/x")
                .header("x-original-method", "get / x"),
        ),
    ];
    for (what, rb) in cases {
        let r = rb.send().await.unwrap();
        let s = r.status().as_u16();
        assert!((400..500).contains(&s), "{what}: {s}");
        assert_no_identity(&r, what);
    }
    // Unknown endpoints under /.flowgate/auth/ are 404 too.
    let r = ep("envoy")
        .header("x-original-url", "https://app.test/x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(gw.upstream.count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn unknown_host_is_404() {
    let gw = start(true).await;
    let cookie = session_cookie(&gw, "alice", ALICE_PASSWORD).await;
    for rb in [
        nginx(&gw, "https://evil.test/private"),
        nginx(&gw, "https://evil.test/public/x"),
        traefik(&gw, "evil.test", "/private"),
        traefik(&gw, "evil.test", "/public/x"),
    ] {
        let r = rb.header("cookie", &cookie).send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert_no_identity(&r, "unknown host");
    }
    assert_eq!(gw.upstream.count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn app_policies_deny_with_403() {
    let gw = start(true).await;
    let bob = session_cookie(&gw, "bob", BOB_PASSWORD).await;
    let alice = session_cookie(&gw, "alice", ALICE_PASSWORD).await;
    let r = nginx(&gw, "https://staff.test/x")
        .header("cookie", &bob)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_no_identity(&r, "nginx deny");
    let r = traefik(&gw, "staff.test", "/x")
        .header("cookie", &bob)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_no_identity(&r, "traefik deny");
    let r = traefik(&gw, "staff.test", "/x")
        .header("cookie", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "admins inherit staff");
    assert_eq!(r.headers()["x-forwarded-user"], "alice");
    assert_eq!(gw.upstream.count(), 0);
    gw.stop().await;
}

/// Whether a redirect target stays on the same origin (the shape `safe_next` enforces).
fn on_site(to: &str) -> bool {
    let decoded = percent_encoding::percent_decode_str(to)
        .decode_utf8_lossy()
        .into_owned();
    [to, decoded.as_str()].iter().all(|s| {
        let b = s.as_bytes();
        b.first() == Some(&b'/') && !matches!(b.get(1), Some(b'/') | Some(b'\\')) && !s.chars().any(char::is_control)
    })
}

#[tokio::test]
async fn red_next_values_via_x_forwarded_uri_stay_on_site() {
    let gw = start(true).await;
    let (c0, base) = app_client(&gw);
    drop(c0);
    let reds = [
        "//evil.example",
        "/\\evil.example",
        "/%5Cevil.example",
        "https://evil.example/",
        "HTTPS://evil.example/",
        "/%2F%2Fevil.example",
        "%2F%2Fevil.example",
        "javascript:alert(1)",
        "data:text/html,x",
        "JaVaScRiPt:alert(1)",
        "http:evil.example",
        "https:/evil.example",
        "/ok%0d%0aSet-Cookie:%20x=1",
        "/%09/evil.example",
        "/%20//evil.example",
        "@evil.example",
        "/@evil.example",
        "https://app.example@evil.example/",
    ];
    let mut redirects = 0;
    for red in reds {
        // As the whole original URI, and as a next parameter inside it.
        for uri in [red.to_string(), format!("/private?next={red}")] {
            let r = traefik(&gw, "app.test", &uri).send().await.unwrap();
            let status = r.status().as_u16();
            assert!(matches!(status, 302 | 400), "{uri}: {status}");
            if status == 400 {
                continue;
            }
            let to = location(&r);
            assert!(to.starts_with(LOGIN), "{uri}: Location {to}");
            assert!(on_site(&to), "{uri}: Location {to}");
            let query = to.split_once('?').map(|(_, q)| q).unwrap_or("");
            if let Some((_, next)) = form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "next") {
                assert!(on_site(&next), "{uri}: next {next}");
            }
            redirects += 1;
            if uri != red {
                continue;
            }
            // Follow the login from that Location: it must end on-site.
            let (c, _) = app_client(&gw);
            walk(&c, &format!("{base}{to}"), &[("uid_field", "alice")]).await;
            let done = walk(&c, &format!("{base}{to}"), &[("password", ALICE_PASSWORD)]).await;
            assert_eq!(done.status(), 302, "{uri}");
            let end = location(&done);
            assert!(on_site(&end), "{uri}: login ended at {end}");
        }
    }
    assert!(
        redirects >= reds.len(),
        "every value inside a query must reach the login"
    );
    assert_eq!(gw.upstream.count(), 0);
    gw.stop().await;
}
