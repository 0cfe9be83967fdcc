//! The OpenID Connect source's login link and callback under attack and fault (issue 16):
//! forged ID tokens, a rotated key, replayed states and codes, a provider that is down or slow,
//! an expired login, a logged-in browser at the login link, a login finishing on another
//! replica, and a callback address built only from our own hosts.

use crate::common::log_buf::LogBuf;
use crate::common::oidc::{Forge, TestProvider, CLIENT_SECRET};
use crate::common::*;
use crate::oauth_sources::{
    alice_claims, gateway, gateway_from, gateway_with_apps, pair, reaches_app, source_yaml, walk_source, SOURCE_FLOWS,
};
use std::time::Duration;

#[tokio::test]
async fn forged_tokens_are_refused_with_a_reason_in_the_log() {
    let (logs, _guard) = LogBuf::capture("flowgate=info");
    let (provider, gw) = pair("identifier", alice_claims()).await;
    let n = users(&gw).list_users().await.unwrap().len();
    let cases = [
        (Forge::OtherAudience, "Invalid audiences"),
        (Forge::OtherAzp, "azp"),
        (Forge::Expired, "expired"),
        (Forge::Future, "issued in the future"),
        (Forge::UnknownKey, "key the provider does not publish"),
        (Forge::AlgNone, "algorithm \\\"none\\\" is not one"),
        (Forge::Hs256PublicKey, "algorithm \\\"HS256\\\" is not one"),
        (Forge::WrongNonce, "nonce mismatch"),
        (Forge::WrongIssuer, "expected"),
        (Forge::Tampered, "ID token refused"),
    ];
    for (forge, reason) in cases {
        provider.set_forge(forge);
        let c = client();
        let out = walk_source(&gw, &c, "/private").await;
        assert_eq!(out.status, 403, "{forge:?}: {}", out.body);
        assert!(out.body.contains("could not be verified"), "{forge:?}: {}", out.body);
        assert!(!reaches_app(&gw, &c).await, "{forge:?}: no session");
        let text = logs.text();
        let last = text.lines().rfind(|l| l.contains("source login refused")).unwrap_or("");
        assert!(last.contains(reason), "{forge:?}: expected {reason:?} in {last}");
    }
    assert_eq!(users(&gw).list_users().await.unwrap().len(), n, "no user created");
    assert_eq!(gw.upstream.count(), 0, "the app saw nothing");
    // Neither the client secret nor a code or token reaches the log.
    let text = logs.text();
    for secret in [CLIENT_SECRET, "code-1", "access-1", "eyJ"] {
        assert!(!text.contains(secret), "{secret:?} logged:\n{text}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_rotated_key_is_fetched_again_and_a_reused_state_or_code_is_refused() {
    let (provider, gw) = pair("identifier", alice_claims()).await;
    let out = walk_source(&gw, &client(), "/private").await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(provider.jwks_fetches(), 1);
    // The cached key set is used for the next login.
    let out = walk_source(&gw, &client(), "/private").await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(provider.jwks_fetches(), 1, "key set cached");
    provider.rotate();
    let out = walk_source(&gw, &client(), "/private").await;
    assert_eq!(out.status, 200, "after rotation: {}", out.body);
    assert_eq!(provider.jwks_fetches(), 2, "unknown kid: key set fetched again");

    // Replay: the same callback URL (state and code) a second time in the same browser.
    let c = client();
    let r = c
        .get(gw.url("/private"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    let flow = gw.url(&location(&r));
    let _ = c.get(&flow).send().await.unwrap();
    let r = c
        .get(gw.url("/.flowgate/source/oauth/login/corp/?next=%2Fprivate"))
        .send()
        .await
        .unwrap();
    let r = c.get(location(&r)).send().await.unwrap();
    let callback = location(&r);
    let first = c.get(&callback).send().await.unwrap();
    assert_eq!(first.status(), 302);
    let again = c.get(&callback).send().await.unwrap();
    assert_eq!(again.status(), 400);
    assert!(again.text().await.unwrap().contains("not valid any more"));

    // A replayed code with a fresh state of this browser: the provider refuses the code (used,
    // and bound to another PKCE verifier), so nobody is logged in.
    let old_code = callback
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("code="))
        .unwrap()
        .to_string();
    let c2 = client();
    let r = c2
        .get(gw.url("/.flowgate/source/oauth/login/corp/"))
        .send()
        .await
        .unwrap();
    let authorize = location(&r);
    let fresh_state = authorize
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("state="))
        .unwrap()
        .to_string();
    let forged = format!(
        "{}?code={old_code}&state={fresh_state}",
        gw.url("/.flowgate/source/oauth/callback/corp/")
    );
    let r = c2.get(&forged).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("could not be verified"));
    assert!(!reaches_app(&gw, &c2).await);

    // A callback whose state is not the session's (another browser's, or made up).
    let c = client();
    let r = c
        .get(gw.url("/.flowgate/source/oauth/login/corp/"))
        .send()
        .await
        .unwrap();
    let r = c.get(location(&r)).send().await.unwrap();
    let cb = location(&r);
    let forged = cb.replace("state=", "state=x");
    let r = c.get(&forged).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // The started login is used up by the failed attempt too.
    let r = c.get(&cb).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // Without the session cookie at all.
    let r = client().get(&cb).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("expired or was started in another browser"));
    gw.stop().await;
}

// Wall-clock time only bounds the wait for the provider's timeout.
#[allow(clippy::disallowed_methods)]
#[tokio::test]
async fn provider_down_or_slow_gives_a_clear_page_and_nothing_else() {
    let (logs, _guard) = LogBuf::capture("flowgate=info");
    // Down: nothing listens at the discovery address.
    let port = unused_port();
    let gw = gateway(
        &format!("http://127.0.0.1:{port}/.well-known/openid-configuration"),
        "identifier",
        "openidconnect",
    )
    .await;
    let c = client();
    let r = c
        .get(gw.url("/.flowgate/source/oauth/login/corp/?next=%2Fprivate"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("not reachable right now"));
    assert!(logs.text().contains("source login not started"));
    assert!(!reaches_app(&gw, &c).await);
    gw.stop().await;

    // Slow: every answer takes longer than the source's 2 s timeout.
    let (provider, gw) = pair("identifier", alice_claims()).await;
    provider.set_delay(Duration::from_secs(4));
    let started = std::time::Instant::now();
    let r = c
        .get(gw.url("/.flowgate/source/oauth/login/corp/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(started.elapsed() < Duration::from_secs(4), "the timeout cut the wait");
    assert!(logs.text().contains("timed out"), "{}", logs.text());
    assert_eq!(users(&gw).list_users().await.unwrap().len(), 3);
    gw.stop().await;
}

#[tokio::test]
async fn a_callback_after_the_login_expired_is_refused() {
    let (_provider, gw) = pair("identifier", alice_claims()).await;
    let c = client();
    let r = c
        .get(gw.url("/.flowgate/source/oauth/login/corp/"))
        .send()
        .await
        .unwrap();
    let r = c.get(location(&r)).send().await.unwrap();
    let callback = location(&r);
    gw.clock.advance(std::time::Duration::from_secs(11 * 60));
    let r = c.get(&callback).send().await.unwrap();
    // The flow session itself may have ended with the clock: either way a clear refusal.
    assert!(r.status() == 400 || r.status() == 403, "{}", r.status());
    let body = r.text().await.unwrap();
    assert!(body.contains("took too long") || body.contains("has expired"), "{body}");
    assert!(!reaches_app(&gw, &c).await);
    gw.stop().await;
}

#[tokio::test]
async fn a_logged_in_browser_keeps_its_session_at_the_login_link() {
    let (_provider, gw) = pair("identifier", alice_claims()).await;
    let cookie = session_of(&gw, "alice", ALICE_PASSWORD).await;
    let r = with_cookie(
        &gw,
        reqwest::Method::GET,
        "/.flowgate/source/oauth/login/corp/?next=%2Fprivate",
        &cookie,
        None,
    )
    .await;
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/private");
    assert!(
        r.headers().get("set-cookie").is_none(),
        "the session cookie is left alone"
    );
    assert!(logged_in(&gw, &cookie).await);
    gw.stop().await;
}

#[tokio::test]
async fn a_login_started_on_one_replica_finishes_on_another() {
    let redis = crate::common::redis::Redis::start();
    let provider = TestProvider::spawn(1_800_000_000, alice_claims()).await;
    let shared = tempfile::tempdir().unwrap();
    let main = format!(
        "{}session: {{ ttl: 2h, idle_timeout: 30m, store: redis, redis: {{ url: \"{}\", key_prefix: \"t:\" }} }}\nidentity: {{ database: \"{}\", seed: seed.yaml }}\n",
        source_yaml(&provider.well_known(), "identifier", "openidconnect"),
        redis.url(),
        shared.path().join("flowgate.db").display()
    );
    let files = [("source-flows.yaml", SOURCE_FLOWS.to_string())];
    let a = gateway_from(&main, &files, 1_800_000_000_000).await;
    let b = gateway_from(&main, &files, 1_800_000_000_000).await;
    let c = client();
    let r = c
        .get(a.url("/.flowgate/source/oauth/login/corp/?next=%2Fprivate%2Fb"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let r = c.get(location(&r)).send().await.unwrap();
    let callback = location(&r);
    assert!(callback.starts_with(&a.url("/.flowgate/source/oauth/callback/corp/")));
    // The browser's next request lands on replica B (same cookie: it ignores ports).
    let on_b = callback.replace(&a.addr.to_string(), &b.addr.to_string());
    let mut url = on_b;
    let mut last = None;
    for _ in 0..8 {
        let r = c.get(&url).header("accept", BROWSER_ACCEPT).send().await.unwrap();
        if r.status() != 302 {
            last = Some(r.status().as_u16());
            break;
        }
        url = b.url(&location(&r));
    }
    assert_eq!(last, Some(200));
    assert_eq!(b.upstream.last().uri, "/private/b");
    assert_eq!(b.upstream.last().header("x-forwarded-user"), Some("ann"));
    // Used up on A too: the same callback there finds nothing.
    let r = c.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 400);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn the_callback_address_is_built_only_from_our_own_hosts() {
    let provider = TestProvider::spawn(1_800_000_000, alice_claims()).await;
    let apps = "  - name: app\n    hosts: [app.test]\n    upstream: \"http://UPSTREAM\"\n";
    let main = source_yaml(&provider.well_known(), "identifier", "openidconnect");
    let gw = gateway_with_apps(
        apps,
        &main,
        &[("source-flows.yaml", SOURCE_FLOWS.to_string())],
        1_800_000_000_000,
    )
    .await;
    let login = gw.url("/.flowgate/source/oauth/login/corp/");
    let r = client()
        .get(&login)
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a Host that is not ours");
    assert!(provider.authorized().is_empty());
    let r = client().get(&login).header("host", "app.test").send().await.unwrap();
    assert_eq!(r.status(), 302);
    let to = location(&r);
    let q: std::collections::HashMap<String, String> = form_urlencoded::parse(to.split_once('?').unwrap().1.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(
        q["redirect_uri"],
        "http://app.test/.flowgate/source/oauth/callback/corp/"
    );
    gw.stop().await;
}
