//! The gateway's own cookies and the client's forwarding headers (COOK-1..3, FWD-6 of
//! `../shared/security-tests.md`), over real sockets, asserting on what the app received: both
//! schemes' session cookies are removed on every listener; several `Cookie` lines are one
//! cookie header to the duplicate-cookie rule; the app cannot set the gateway's cookies; and
//! client-address, rewrite and method-override headers from an untrusted peer never reach it.

use crate::common::*;

/// Every cookie name the app received.
fn cookie_names(seen: &Recorded) -> Vec<String> {
    seen.headers_named("cookie")
        .iter()
        .flat_map(|l| l.split(';'))
        .filter_map(|p| p.split_once('=').map(|(k, _)| k.trim().to_string()))
        .collect()
}

#[tokio::test]
async fn both_session_cookie_names_are_removed_on_every_listener() {
    let gw = TestGateway::start_tls(DEFAULT_APP, NO_LIMITS).await;
    let plain = session_of(&gw, "alice", ALICE_PASSWORD).await;
    let tls = {
        let c = https_client(&gw, false, None);
        let done = html_login(&c, &gw.https_url(""), "/", "bob", BOB_PASSWORD).await;
        set_cookie_value(&done, "__Host-flowgate_session").expect("an https session")
    };
    // Over each listener, with its own session valid and the other scheme's cookie beside it,
    // in every position and in other cases: the app sees neither, and the app's own cookies.
    for (base, client, own, other) in [
        (
            gw.url(""),
            bare_client(),
            format!("flowgate_session={plain}"),
            format!("__Host-flowgate_session={tls}"),
        ),
        (
            gw.https_url(""),
            https_client(&gw, false, None),
            format!("__Host-flowgate_session={tls}"),
            format!("flowgate_session={plain}"),
        ),
    ] {
        for cookie in [
            format!("{own}; {other}; app=1"),
            format!("app=1; {other}; {own}"),
            format!("{other}; app=1; {own}; __host-FLOWGATE_SESSION=x; __Secure-flowgate_session=y"),
        ] {
            let r = client
                .get(format!("{base}/private"))
                .header("cookie", cookie.as_str())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{base} {cookie}");
            let names = cookie_names(&gw.upstream.last());
            assert_eq!(names, vec!["app".to_string()], "{base} {cookie}");
        }
        // The other scheme's cookie alone is no session here, and is not forwarded either.
        let before = gw.upstream.count();
        let r = client
            .get(format!("{base}/public/x"))
            .header("cookie", format!("{other}; app=2"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(gw.upstream.count(), before + 1);
        assert_eq!(cookie_names(&gw.upstream.last()), vec!["app".to_string()], "{base}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn several_cookie_lines_are_one_header_to_the_duplicate_rule() {
    let gw = TestGateway::start_with(DEFAULT_APP, NO_LIMITS).await;
    let alice = session_of(&gw, "alice", ALICE_PASSWORD).await;
    let bob = session_of(&gw, "bob", BOB_PASSWORD).await;
    let addr = gw.addr;
    let send = |cookies: Vec<String>| async move {
        let mut req = String::from("GET /private HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n");
        for c in cookies {
            req.push_str(&format!("Cookie: {c}\r\n"));
        }
        req.push_str("Connection: close\r\n\r\n");
        raw_http(addr, req.as_bytes()).await
    };
    // Two sessions on two lines are as ambiguous as on one: no session.
    for lines in [
        vec![format!("flowgate_session={alice}"), format!("flowgate_session={bob}")],
        vec![
            format!("a=1; flowgate_session={alice}"),
            format!("flowgate_session={bob}; b=2"),
        ],
        vec![format!("flowgate_session={alice}"), format!("flowgate_session={alice}")],
    ] {
        let before = gw.upstream.count();
        let resp = send(lines.clone()).await;
        assert_eq!(raw_status(&resp), "401", "{lines:?}: {resp}");
        assert_eq!(gw.upstream.count(), before, "{lines:?}");
    }
    // One session on one of several lines works; the app gets one line without it.
    let resp = send(vec!["a=1".into(), format!("flowgate_session={bob}"), "b=2".into()]).await;
    assert_eq!(raw_status(&resp), "200", "{resp}");
    let seen = gw.upstream.last();
    assert_eq!(seen.header("x-forwarded-user"), Some("bob"));
    assert_eq!(seen.headers_named("cookie"), vec!["a=1; b=2"]);
    gw.stop().await;
}

#[tokio::test]
async fn the_app_cannot_set_the_gateways_cookies() {
    let gw = TestGateway::start_tls(DEFAULT_APP, NO_LIMITS).await;
    let planted = "A".repeat(43);
    for (base, client) in [
        (gw.url(""), bare_client()),
        (gw.https_url(""), https_client(&gw, false, None)),
    ] {
        let mut req = client.get(format!("{base}/public/x"));
        for v in [
            format!("flowgate_session={planted}; Path=/"),
            format!("__Host-flowgate_session={planted}; Path=/; Secure"),
            format!("__Secure-flowgate_session={planted}; Secure"),
            "FLOWGATE_SESSION=; Max-Age=0".to_string(),
            " flowgate_session =x".to_string(),
            "app=1; Path=/".to_string(),
        ] {
            req = req.header("x-test-set-cookie", v);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200);
        let set: Vec<String> = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        assert_eq!(set, vec!["app=1; Path=/".to_string()], "{base}");
    }
    gw.stop().await;
}

/// Client-address, forwarding, rewrite and method-override headers in several spellings.
const SPOOFED: &[(&str, &str)] = &[
    ("Forwarded", "for=1.2.3.4;host=evil.example;proto=https"),
    ("X-Real-IP", "1.2.3.4"),
    ("X_Real_IP", "1.2.3.4"),
    ("True-Client-IP", "1.2.3.4"),
    ("X-Client-IP", "1.2.3.4"),
    ("CF-Connecting-IP", "1.2.3.4"),
    ("Fastly-Client-IP", "1.2.3.4"),
    ("X-Cluster-Client-IP", "1.2.3.4"),
    ("X-Forwarded-Server", "evil.example"),
    ("X-Forwarded-Port", "443"),
    ("X-Forwarded-Prefix", "/admin"),
    ("X-Host", "evil.example"),
    ("X-Original-Host", "evil.example"),
    ("X_Forwarded_For", "1.2.3.4"),
    ("X.Forwarded.Host", "evil.example"),
    ("X-Original-URL", "/admin"),
    ("X-Rewrite-URL", "/admin"),
    ("X_Original_URL", "/admin"),
    ("X-Original-URI", "/admin"),
    ("X-Forwarded-Uri", "/admin"),
    ("X-HTTP-Method-Override", "DELETE"),
    ("X-HTTP-Method", "DELETE"),
    ("X-Method-Override", "DELETE"),
    ("X-Custom-Client", "1.2.3.4"),
];

/// Names the app may see only from a trusted proxy (the rest never).
const REWRITES: &[&str] = &[
    "x-original-url",
    "x-rewrite-url",
    "x_original_url",
    "x-original-uri",
    "x-forwarded-uri",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

#[tokio::test]
async fn client_forwarding_and_rewrite_headers_never_reach_the_app_from_untrusted_peers() {
    for (who, extra) in [("untrusted", ""), ("trusted", "trusted_proxies: [127.0.0.1/32]\n")] {
        let gw = TestGateway::start_with(
            DEFAULT_APP,
            &format!("{NO_LIMITS}{extra}strip_headers: [X-Custom-Client]\n"),
        )
        .await;
        let alice = session_of(&gw, "alice", ALICE_PASSWORD).await;
        for (path, cookie) in [
            ("/public/x", String::new()),
            ("/private", format!("flowgate_session={alice}")),
        ] {
            let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n");
            for (k, v) in SPOOFED {
                req.push_str(&format!("{k}: {v}\r\n"));
            }
            req.push_str("Connection: close\r\n\r\n");
            let resp = raw_http(gw.addr, req.as_bytes()).await;
            assert_eq!(raw_status(&resp), "200", "{who} {path}: {resp}");
            let seen = gw.upstream.last();
            assert_eq!(seen.uri, path);
            assert_eq!(seen.method, "GET");
            for (k, v) in SPOOFED {
                let got = seen.headers_named(k);
                let rewrite = REWRITES.contains(&k.to_ascii_lowercase().as_str());
                if who == "untrusted" || rewrite {
                    assert!(got.is_empty(), "{who} {path}: {k} reached the app: {got:?}");
                } else {
                    assert_eq!(got, vec![*v], "{who} {path}: a trusted proxy's {k} is kept");
                }
            }
            // flowgate's own forwarding headers, one of each.
            assert_eq!(seen.headers_named("x-forwarded-for").len(), 1);
            assert_eq!(seen.headers_named("x-forwarded-host").len(), 1);
            if who == "untrusted" {
                assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
                assert_eq!(seen.header("x-forwarded-host"), Some("127.0.0.1"));
            }
        }
        gw.stop().await;
    }
}
