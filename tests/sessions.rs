//! Sessions and the gateway's cookies: a cookie set before login is replaced at login and forged,
//! truncated or hostile cookies are no session (never a 500); session ids are unique and random;
//! both session cookie names (plain and `__Host-`) are removed before forwarding on every
//! listener; several `Cookie` lines are one cookie header to the duplicate-cookie rule; and the
//! app cannot set the gateway's cookies. Over real sockets, asserting on what the app received.

use crate::common::*;
use std::time::Duration;

// Attack ids: SES-1, SES-4.
#[tokio::test]
async fn session_fixation_and_forged_cookies_are_useless() {
    let gw = TestGateway::start().await;
    // An attacker-chosen id (well-formed) is never adopted.
    let planted = "A".repeat(43);
    let c = client();
    let url = reqwest::Url::parse(&gw.url("/")).unwrap();
    let jar_client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider({
            let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
            jar.add_cookie_str(&format!("flowgate_session={planted}"), &url);
            jar
        })
        .build()
        .unwrap();
    let done = html_login(&jar_client, &gw.url(""), "/", "alice", ALICE_PASSWORD).await;
    let id = set_cookie_value(&done, "flowgate_session").unwrap();
    assert_ne!(id, planted);
    let r = bare_client()
        .get(gw.url("/"))
        .header("cookie", format!("flowgate_session={planted}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    drop(c);
    // Forged shapes: wrong length, bad characters, duplicates, a real id with a flipped char.
    let mut flipped = id.clone().into_bytes();
    flipped[5] = if flipped[5] == b'a' { b'b' } else { b'a' };
    let flipped = String::from_utf8(flipped).unwrap();
    for cookie in [
        "flowgate_session=".to_string(),
        "flowgate_session=abc".to_string(),
        format!("flowgate_session={}", "%".repeat(43)),
        format!("flowgate_session={flipped}"),
        format!("flowgate_session={id}; flowgate_session={flipped}"),
        format!("flowgate_session={id}x"),
        format!("FLOWGATE_SESSION={id}"),
    ] {
        let r = bare_client()
            .get(gw.url("/"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{cookie}");
    }
    let r = bare_client()
        .get(gw.url("/"))
        .header("cookie", format!("flowgate_session={id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the real cookie works");
    gw.stop().await;
}

const LOGIN: &str = "/.flowgate/flow/default-authentication-flow/";

// Attack ids: SES-6.
#[tokio::test]
async fn ten_thousand_session_ids_are_unique_and_random() {
    // SES-6 (ASVS 3.2.2): through the store that logins and flow starts use, then over HTTP.
    use base64::Engine;
    let clock = flowgate::session::ManualClock::new(1_800_000_000_000);
    let store = flowgate::session::SessionStore::new(20_000, Duration::from_secs(3600), std::sync::Arc::new(clock));
    let mut seen = std::collections::HashSet::new();
    let mut counts = [0u64; 256];
    for _ in 0..10_000 {
        let s = store.create(None, Duration::from_secs(60), Duration::from_secs(60));
        for id in [s.id.to_string(), s.csrf()] {
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&id)
                .expect("ids are base64url");
            assert!(raw.len() * 8 >= 128, "{} bits", raw.len() * 8);
            assert!(seen.insert(raw.clone()), "duplicate id");
            for b in raw {
                counts[b as usize] += 1;
            }
        }
    }
    assert_eq!(seen.len(), 20_000);
    // Byte distribution: chi-square with 255 degrees of freedom (mean 255, sd ~22.6); 400 is
    // beyond 6 sd, so a sound generator fails this about never, a broken one (a stuck or
    // biased byte) always.
    let n: u64 = counts.iter().sum();
    let expected = n as f64 / 256.0;
    let chi2: f64 = counts.iter().map(|&c| (c as f64 - expected).powi(2) / expected).sum();
    assert!(chi2 < 400.0, "chi-square {chi2:.1} over {n} bytes");

    // The ids handed out over HTTP come from the same generator.
    let gw = TestGateway::start().await;
    let mut http_ids = std::collections::HashSet::new();
    for _ in 0..200 {
        let r = bare_client().get(gw.url(LOGIN)).send().await.unwrap();
        let id = set_cookie_value(&r, "flowgate_session").unwrap();
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&id).unwrap();
        assert_eq!(raw.len(), 32);
        assert!(http_ids.insert(id));
    }
    gw.stop().await;
}

/// Every cookie name the app received.
fn cookie_names(seen: &Recorded) -> Vec<String> {
    seen.headers_named("cookie")
        .iter()
        .flat_map(|l| l.split(';'))
        .filter_map(|p| p.split_once('=').map(|(k, _)| k.trim().to_string()))
        .collect()
}

// Attack ids: COOK-1.
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

// Attack ids: COOK-2.
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

// Attack ids: COOK-3.
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
