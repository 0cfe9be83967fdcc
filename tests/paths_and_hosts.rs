//! Path and host confusion: a path or host that some server reads differently from flowgate
//! never reaches an app, a skip-auth rule or a policy that the canonical form would not. Dot
//! segments, encoded slashes, matrix and servlet parameters, backslashes, case, NUL, absolute-form
//! targets and host spellings (trailing dot, bad ports). One rule (`src/proxy/path.rs`,
//! `routing::canonical_host`, docs/decisions/0004-one-path-rule.md) for routing, skip-auth, app
//! policies, path policies and the forward-auth endpoints. Requests that an HTTP library would
//! normalise itself are sent raw.

use crate::common::*;

// Attack ids: PATH-1..5, PATH-7, PATH-8.
#[tokio::test]
async fn skip_auth_matches_only_the_normalised_unambiguous_path() {
    let gw = TestGateway::start().await;
    let c = bare_client();
    assert_eq!(c.get(gw.url("/public/app.css")).send().await.unwrap().status(), 200);
    assert_eq!(
        c.get(gw.url("/%70ublic/app.css")).send().await.unwrap().status(),
        200,
        "decoded before matching"
    );
    for sneaky in [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "/public%2F..%2Fadmin",
        "/public/..%5Cadmin",
        "//public/x",
        "/admin/public/x",
        "/x?/public/",
    ] {
        let before = gw.upstream.count();
        let r = c.get(gw.url(sneaky)).send().await.unwrap();
        // 400: refused as confusing (PATH-9, src/proxy/path.rs); 401: needs a session.
        assert!(matches!(r.status().as_u16(), 400 | 401), "{sneaky} must need a session");
        assert_eq!(gw.upstream.count(), before, "{sneaky} reached the upstream");
    }
    // PATH-3, -4, -8: dot segments, matrix parameters, NUL and overlong UTF-8: a session is
    // needed (401) or the path is refused (400); never the upstream.
    for sneaky in [
        "/./admin",
        "/admin/.",
        "/public;/../admin",
        "/admin;public",
        "/public/%00/../admin",
        "/public/%c0%ae%c0%ae/admin",
        "/PUBLIC/../admin",
    ] {
        // Sent raw: an HTTP client library would resolve the dot segments itself.
        let before = gw.upstream.count();
        let addr = gw.addr;
        let req = format!("GET {sneaky} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let resp = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            out
        })
        .await
        .unwrap();
        let status = resp.split_whitespace().nth(1).unwrap_or("");
        assert!(matches!(status, "400" | "401"), "{sneaky}: {resp}");
        assert_eq!(gw.upstream.count(), before, "{sneaky} reached the upstream");
    }
    gw.stop().await;
}

// Attack ids: PATH-6.
#[tokio::test]
async fn absolute_form_targets_get_no_skip_auth_and_no_host_confusion() {
    // PATH-6. `open.example` is public as a whole; `app.example` needs a session. Both are served
    // by the same upstream, which picks the site by Host, as a shared web server does.
    let apps = "  - name: open\n    hosts: [open.example]\n    upstream: \"http://UPSTREAM\"\n    skip_auth: [\"^/\"]\n  - name: app\n    hosts: [app.example]\n    upstream: \"http://UPSTREAM\"\n    skip_auth: [\"^/public/\"]\n";
    let gw = TestGateway::start_with(apps, "").await;
    let send = |target: &str, host: &str| {
        format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nAccept: text/html\r\nConnection: close\r\n\r\n")
    };
    // Control: the public page works in both forms.
    for req in [
        send("/public/a.css", "app.example"),
        send("http://app.example/public/a.css", "app.example"),
    ] {
        let resp = raw_http(gw.addr, req.as_bytes()).await;
        assert_eq!(raw_status(&resp), "200", "{req}: {resp}");
    }
    for (target, host) in [
        ("http://app.example/public/../private", "app.example"),
        ("http://app.example/public/%2e%2e/private", "app.example"),
        ("http://app.example//private", "app.example"),
        ("http://app.example/./private", "app.example"),
        ("http://APP.EXAMPLE/public/../private", "app.example"),
        ("http://app.example/private", "app.example"),
        // The absolute form names another app than the Host header.
        ("http://open.example/private", "app.example"),
        ("http://open.example/public/../private", "app.example"),
        ("http://open.example:80/private", "app.example"),
        ("https://open.example/private", "app.example"),
    ] {
        let before = gw.upstream.count();
        let resp = raw_http(gw.addr, send(target, host).as_bytes()).await;
        let status = raw_status(&resp);
        assert!(
            matches!(status, "302" | "400" | "401"),
            "{target} (Host {host}) answered {status}: {resp}"
        );
        assert_eq!(
            gw.upstream.count(),
            before,
            "{target} (Host {host}) reached the upstream"
        );
    }
    gw.stop().await;
}

/// Three apps on one upstream, as in the reported attack: `/internal` for admins only, a
/// host-bound admin app, and a catch-all with a skip-auth prefix and a path policy that denies
/// `^/admin` to everybody.
const APPS: &str = "  - name: internal\n    path_prefix: /internal\n    upstream: \"http://UPSTREAM\"\n    policies: [{ group: admins }]\n  - name: admin\n    hosts: [admin.test]\n    upstream: \"http://UPSTREAM\"\n    policies: [{ group: admins }]\n  - name: main\n    upstream: \"http://UPSTREAM\"\n    skip_auth: [\"^/public/\"]\n    policies: [{ policy: admin-path, negate: true }]\n";

const EXTRA: &str = "policies:\n  admin-path: { type: path, regex: \"^/admin\" }\n";

async fn get_raw(gw: &TestGateway, target: &str, host: &str, cookie: Option<&str>) -> String {
    let cookie = cookie
        .map(|c| format!("Cookie: flowgate_session={c}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{cookie}Connection: close\r\n\r\n");
    raw_http(gw.addr, req.as_bytes()).await
}

// Attack ids: PATH-9.
#[tokio::test]
async fn servlet_params_backslashes_and_case_never_reach_another_apps_policies() {
    let gw = TestGateway::start_with(APPS, &format!("{EXTRA}{NO_LIMITS}")).await;
    let bob = session_of(&gw, "bob", BOB_PASSWORD).await;
    // Controls: the catch-all serves bob; the internal app refuses him; public needs nothing.
    assert_eq!(raw_status(&get_raw(&gw, "/other", "x", Some(&bob)).await), "200");
    assert_eq!(raw_status(&get_raw(&gw, "/internal/x", "x", Some(&bob)).await), "403");
    assert_eq!(raw_status(&get_raw(&gw, "/public/x", "x", None).await), "200");

    // Anonymous: a skip-auth prefix never lets a servlet-resolved private path through.
    for target in [
        "/public/..;/private",
        "/public/..;x/private",
        "/public/.;/../private",
        "/public;/../private",
        "/public/..%3b/private",
        "/public/%2e%2e;/private",
        "/public/..%5cprivate",
        "/public\\..\\private",
        "/public/%252e%252e/private",
        "/public;x/private",
        "//public/x",
    ] {
        let before = gw.upstream.count();
        let resp = get_raw(&gw, target, "x", None).await;
        assert!(matches!(raw_status(&resp), "400" | "401"), "{target}: {resp}");
        assert_eq!(gw.upstream.count(), before, "{target} reached the upstream anonymously");
    }

    // Bob: every spelling of /internal or /admin is refused or denied, never forwarded.
    for target in [
        "/x/..;/internal/x",
        "/x/..;foo/internal/x",
        "/internal;x/y",
        "/internal;/y",
        "/x/..\\internal/x",
        "/x/..%5cinternal/x",
        "/x/..%5Cinternal/x",
        "/x%2f..%2finternal/x",
        "/INTERNAL/x",
        "/Internal/x",
        "/iNtErNaL;jsessionid=1/x",
        "//internal/x",
        "/%69nternal/x",
        "/admin/x",
        "/ADMIN/x",
        "/Admin;x/y",
        "/x/..;/admin",
        "/%61dmin",
    ] {
        let before = gw.upstream.count();
        let resp = get_raw(&gw, target, "x", Some(&bob)).await;
        assert!(matches!(raw_status(&resp), "400" | "403"), "{target}: {resp}");
        assert_eq!(gw.upstream.count(), before, "{target} reached the upstream for bob");
    }

    // Alice (admins) reaches the internal app through the same spellings that are not refused,
    // and the app receives the path as sent.
    let alice = session_of(&gw, "alice", ALICE_PASSWORD).await;
    for target in ["/internal;x/y", "/INTERNAL/x"] {
        let resp = get_raw(&gw, target, "x", Some(&alice)).await;
        assert_eq!(raw_status(&resp), "200", "{target}: {resp}");
        assert_eq!(gw.upstream.last().uri, target);
    }
    gw.stop().await;
}

// Attack ids: HOST-1.
#[tokio::test]
async fn host_spellings_never_fall_through_to_a_catch_all() {
    let gw = TestGateway::start_with(APPS, &format!("{EXTRA}{NO_LIMITS}")).await;
    let bob = session_of(&gw, "bob", BOB_PASSWORD).await;
    assert_eq!(raw_status(&get_raw(&gw, "/x", "admin.test", Some(&bob)).await), "403");
    // The canonical spellings of the admin host reach the admin app (403 for bob, 200 for
    // alice); the rest are refused. None falls through to the catch-all.
    for host in ["admin.test.", "ADMIN.test", "Admin.Test.:80", "admin.test:080"] {
        let before = gw.upstream.count();
        let resp = get_raw(&gw, "/x", host, Some(&bob)).await;
        assert_eq!(raw_status(&resp), "403", "{host}: {resp}");
        assert_eq!(gw.upstream.count(), before, "{host}");
    }
    for host in [
        "admin.test:abc",
        "admin.test:",
        "admin.test:0",
        "admin.test:99999",
        "admin.test..",
        "admin.test:80:80",
        "admin%2etest",
        "admin .test",
        "127.1",
        "0x7f.0.0.1",
        "[::1",
    ] {
        let before = gw.upstream.count();
        let resp = get_raw(&gw, "/x", host, Some(&bob)).await;
        assert_eq!(raw_status(&resp), "400", "{host:?}: {resp}");
        assert_eq!(gw.upstream.count(), before, "{host:?}");
    }
    // Absolute-form targets: the authority is canonicalised and routed like Host.
    for (target, host) in [
        ("http://admin.test./x", "admin.test."),
        ("http://ADMIN.TEST/x", "ADMIN.TEST"),
    ] {
        let before = gw.upstream.count();
        let resp = get_raw(&gw, target, host, Some(&bob)).await;
        assert_eq!(raw_status(&resp), "403", "{target}: {resp}");
        assert_eq!(gw.upstream.count(), before, "{target}");
    }
    // Alice reaches the admin app, and the app receives the canonical host.
    let alice = session_of(&gw, "alice", ALICE_PASSWORD).await;
    let resp = get_raw(&gw, "/x", "Admin.Test.:8080", Some(&alice)).await;
    assert_eq!(raw_status(&resp), "200", "{resp}");
    let seen = gw.upstream.last();
    assert_eq!(seen.header("host"), Some("admin.test:8080"));
    assert_eq!(seen.header("x-forwarded-host"), Some("admin.test:8080"));
    // Targets reach the app byte for byte, the absolute form included: flowgate rewrites the
    // header map, never the request line.
    for target in ["/x/y?q=%41&r=a%20b", "http://admin.test:8080/x/y?q=1"] {
        let resp = get_raw(&gw, target, "admin.test:8080", Some(&alice)).await;
        assert_eq!(raw_status(&resp), "200", "{target}: {resp}");
        assert_eq!(gw.upstream.last().uri, target);
    }
    gw.stop().await;
}

// Attack ids: PATH-9, HOST-1.
#[tokio::test]
async fn forward_auth_applies_the_same_path_and_host_rule() {
    let trusted = format!("{EXTRA}{NO_LIMITS}trusted_proxies: [127.0.0.1/32]\n");
    let gw = TestGateway::start_with(APPS, &trusted).await;
    let bob = session_of(&gw, "bob", BOB_PASSWORD).await;
    let ask = |host: &'static str, uri: &'static str| {
        let c = bare_client();
        let url = gw.url("/.flowgate/auth/traefik");
        let cookie = format!("flowgate_session={bob}");
        async move {
            c.get(url)
                .header("x-forwarded-proto", "http")
                .header("x-forwarded-host", host)
                .header("x-forwarded-uri", uri)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(ask("app.test", "/other").await, 200, "control");
    for (host, uri) in [
        ("app.test", "/x/..;/internal/x"),
        ("app.test", "/internal;x/y"),
        ("app.test", "/INTERNAL/x"),
        ("app.test", "/x/..%5cinternal/x"),
        ("app.test", "/ADMIN/x"),
        ("admin.test.", "/x"),
        ("admin.test:abc", "/x"),
        ("ADMIN.TEST", "/x"),
    ] {
        let status = ask(host, uri).await;
        assert!(matches!(status, 400 | 403), "{host} {uri}: {status}");
    }
    assert_eq!(gw.upstream.count(), 0, "forward auth never forwards");
    gw.stop().await;
}
