//! Path and host confusion (PATH-9, HOST-1 of `../shared/security-tests.md`): a path or host
//! that some server reads differently from flowgate never reaches an app, or an app's policies,
//! that the canonical path or host would not. One rule (`src/proxy/path.rs`,
//! `routing::canonical_host`, docs/decisions/0004-one-path-rule.md) for routing, skip-auth, app
//! policies, path policies and the forward-auth endpoints. Every request is sent raw: an HTTP
//! library would resolve dot segments or reject the host itself.

use crate::common::*;

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
    gw.stop().await;
}

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
