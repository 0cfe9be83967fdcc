//! Attacks on the portal handshake (SSO-1..6, 10, 11 of docs/security.md, issue 13): code
//! replay, a code for one host on another, an expired code, return addresses off the
//! configured hosts or scheme, login CSRF through the handshake, a code issued before a
//! logout, the store down, and `form-action`. Several host names on loopback, as in
//! `sign_on.rs`, whose helpers these tests use.
#![allow(clippy::disallowed_methods)]

use crate::common::redis::Redis;
use crate::common::*;
use crate::sign_on::*;
use std::time::Duration;

#[tokio::test]
async fn a_code_is_single_use() {
    let gw = start().await;
    let c = browser(&gw);
    let begun = begin(&c, &gw, OTHER, "/").await;
    let callback = login_at_portal(&c, gw.addr, &begun.start, "alice", ALICE_PASSWORD).await;
    redeem(&c, &callback).await;
    // The same code again, with the same binding cookie.
    let r = callback_with(&gw, OTHER, &callback, &begun.nonce).await;
    assert_eq!(r.status(), 400);
    assert!(no_session_cookie(&r));
    assert_eq!(gw.upstream.count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn a_code_for_one_host_is_refused_on_another_and_is_then_gone() {
    let gw = start().await;
    let c = browser(&gw);
    let begun = begin(&c, &gw, OTHER, "/").await;
    let callback = login_at_portal(&c, gw.addr, &begun.start, "alice", ALICE_PASSWORD).await;
    let r = callback_with(&gw, THIRD, &callback, &begun.nonce).await;
    assert_eq!(r.status(), 400, "a code for other.test on third.test");
    assert!(no_session_cookie(&r));
    // Presented on the wrong host, it is used up: the right host refuses it too.
    let r = get(&c, &callback).await;
    assert_eq!(r.status(), 400);
    assert!(!reaches(&c, &gw, THIRD).await && !reaches(&c, &gw, OTHER).await);
    gw.stop().await;
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let gw = start().await;
    let c = browser(&gw);
    let begun = begin(&c, &gw, OTHER, "/").await;
    let callback = login_at_portal(&c, gw.addr, &begun.start, "alice", ALICE_PASSWORD).await;
    gw.clock.advance(Duration::from_secs(31));
    let r = get(&c, &callback).await;
    assert_eq!(r.status(), 400, "30 s after it was issued");
    assert!(no_session_cookie(&r));
    // A fresh code a little under its life still works.
    let begun = begin(&c, &gw, OTHER, "/").await;
    let callback = code_url(&c, &begun.start).await;
    gw.clock.advance(Duration::from_secs(29));
    redeem(&c, &callback).await;
    assert!(reaches(&c, &gw, OTHER).await);
    gw.stop().await;
}

#[tokio::test]
async fn return_addresses_never_leave_the_configured_hosts_or_scheme() {
    let gw = start().await;
    let c = browser(&gw);
    let begun = begin(&c, &gw, OTHER, "/").await;
    login_at_portal(&c, gw.addr, &begun.start, "alice", ALICE_PASSWORD).await;
    let port = gw.addr.port();
    let s = begun.start.split("&s=").nth(1).unwrap().to_string();
    let pb = base(&gw, PORTAL);
    for rd in [
        format!("http://evil.test:{port}/"),
        format!("https://other.test:{port}/"),
        format!("javascript://other.test:{port}/%0aalert(1)"),
        format!("ftp://other.test:{port}/"),
        format!("http://wiki.example.test:{port}/"),
        format!("http://auth.example.test:{port}/"),
        format!("http://other.test.evil.test:{port}/"),
        format!("http://alice@other.test:{port}/"),
        format!("http://other.test:{port}//evil.test/"),
        "/relative".to_string(),
    ] {
        let q = form_urlencoded::Serializer::new(String::new())
            .append_pair("rd", &rd)
            .append_pair("s", &s)
            .finish();
        let r = get(&c, &format!("{pb}/.flowgate/sso/start?{q}")).await;
        assert_eq!(r.status(), 400, "rd={rd}");
        assert!(location(&r).is_empty(), "rd={rd}: {}", location(&r));
    }
    // A malformed or missing binding.
    let rd = format!("http://other.test:{port}/");
    for q in [
        format!(
            "rd={}&s=short",
            form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
        ),
        format!(
            "rd={}",
            form_urlencoded::byte_serialize(rd.as_bytes()).collect::<String>()
        ),
    ] {
        let r = get(&c, &format!("{pb}/.flowgate/sso/start?{q}")).await;
        assert_eq!(r.status(), 400, "{q}");
    }
    // The steps answer only where they apply.
    for (host, path) in [
        (OTHER, "/.flowgate/sso/start?rd=x&s=y"),
        (WIKI, "/.flowgate/sso/begin?next=/"),
        (WIKI, "/.flowgate/sso/callback?code=x"),
        (PORTAL, "/.flowgate/sso/callback?code=x"),
    ] {
        let r = get(&c, &format!("{}{path}", base(&gw, host))).await;
        assert_eq!(r.status(), 404, "{host}{path}");
    }
    // `begin` keeps `next` on its own host.
    let r = get(
        &c,
        &format!("{}/.flowgate/sso/begin?next=//evil.test/", base(&gw, OTHER)),
    )
    .await;
    let start = location(&r);
    let rd = form_urlencoded::parse(start.split_once('?').unwrap().1.as_bytes())
        .find(|(k, _)| k == "rd")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(rd, format!("http://other.test:{port}/"));
    gw.stop().await;
}

#[tokio::test]
async fn login_csrf_through_the_handshake_is_refused() {
    let gw = start().await;
    // The attacker signs on as bob in their own browser and keeps the code.
    let attacker = browser(&gw);
    let a = begin(&attacker, &gw, OTHER, "/").await;
    let bobs_code = login_at_portal(&attacker, gw.addr, &a.start, "bob", BOB_PASSWORD).await;
    // The victim's browser, lured to the callback (with or without a handshake of its own).
    let victim = browser(&gw);
    let r = get(&victim, &bobs_code).await;
    assert_eq!(r.status(), 400, "no binding cookie");
    assert!(no_session_cookie(&r));
    let a2 = begin(&attacker, &gw, OTHER, "/").await;
    let bobs_code = code_url(&attacker, &a2.start).await;
    begin(&victim, &gw, OTHER, "/").await;
    let r = get(&victim, &bobs_code).await;
    assert_eq!(r.status(), 400, "the victim's own binding");
    assert!(no_session_cookie(&r));
    assert!(!reaches(&victim, &gw, OTHER).await);

    // The other way round: a victim signed on at the portal follows the attacker's start link
    // (the attacker's binding): the code goes to the victim's browser, which cannot use it.
    let v = begin(&victim, &gw, OTHER, "/").await;
    login_at_portal(&victim, gw.addr, &v.start, "alice", ALICE_PASSWORD).await;
    let a3 = begin(&attacker, &gw, OTHER, "/").await;
    let alices_code = code_url(&victim, &a3.start).await;
    let r = get(&victim, &alices_code).await;
    assert_eq!(r.status(), 400);
    let r = callback_with(&gw, OTHER, &alices_code, &a3.nonce).await;
    assert_eq!(r.status(), 400, "used up by the victim's attempt");
    assert!(gw
        .upstream
        .requests()
        .iter()
        .all(|r| r.header("x-forwarded-user") != Some("bob")));
    gw.stop().await;
}

#[tokio::test]
async fn a_code_issued_before_a_logout_logs_nobody_in() {
    let gw = start().await;
    let c = browser(&gw);
    let begun = begin(&c, &gw, OTHER, "/").await;
    let callback = login_at_portal(&c, gw.addr, &begun.start, "alice", ALICE_PASSWORD).await;
    let r = get(&c, &format!("{}/logout", base(&gw, PORTAL))).await;
    assert_eq!(r.status(), 200);
    let r = get(&c, &callback).await;
    assert_eq!(r.status(), 400);
    assert!(no_session_cookie(&r));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_store_down_the_handshake_fails_closed() {
    let mut redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("seed.yaml"), SEED).unwrap();
    let gw = replica(dir.path(), &redis, PORTAL, Upstream::spawn().await).await;
    let c = browser(&gw);
    let begun = begin(&c, &gw, OTHER, "/").await;
    let callback = login_at_portal(&c, gw.addr, &begun.start, "alice", ALICE_PASSWORD).await;
    let begun = begin(&c, &gw, THIRD, "/").await;
    redis.kill();
    // A code issued before the outage cannot be read: 503, no session.
    let r = get(&c, &callback).await;
    assert_eq!(r.status(), 503);
    assert!(no_session_cookie(&r));
    // The portal session is still in the near cache, but no code can be stored: 503.
    let r = get(&c, &begun.start).await;
    assert_eq!(r.status(), 503);
    assert!(location(&r).is_empty());
    assert_eq!(gw.upstream.count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn only_the_portals_pages_may_send_a_form_on_to_the_app_hosts() {
    // Browsers apply `form-action` to every redirect after a form is sent: the portal's login
    // ends on an app host's callback, so the portal's pages name those hosts; no other page does.
    let gw = start().await;
    let c = browser(&gw);
    let csp = |r: &reqwest::Response| header(r, "content-security-policy");
    let flow = "/.flowgate/flow/default-authentication-flow/";
    let r = get(&c, &format!("{}{flow}", base(&gw, PORTAL))).await;
    assert_eq!(r.status(), 200);
    let portal = csp(&r);
    assert!(
        portal.contains("form-action 'self' other.test:* third.test:*;"),
        "{portal}"
    );
    for host in [WIKI, OTHER] {
        let r = get(&c, &format!("{}{flow}", base(&gw, host))).await;
        assert!(csp(&r).contains("form-action 'self';"), "{host}: {}", csp(&r));
    }
    gw.stop().await;
}
