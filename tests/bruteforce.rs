//! Brute-force limits (BRUTE-2, BRUTE-3): password and code checks are limited per client IP and
//! per username (GCRA on the injected clock); a refusal is a 429 page with `Retry-After`, and the
//! real user from another address is locked out no longer than the limit's period.

use crate::common::*;
use std::time::Duration;

const LIMITS: &str = "trusted_proxies: [127.0.0.1]\nrate_limits: { password_per_ip: 5/1m, password_per_username: 3/1m, code_per_username: 3/1m }\n";

/// A browser at `ip` (through the trusted loopback proxy).
fn browser_at(ip: &str) -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert("x-forwarded-for", ip.parse().unwrap());
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .default_headers(h)
        .build()
        .unwrap()
}

/// One password attempt in a fresh flow; returns the password step's response.
async fn attempt(gw: &TestGateway, c: &reqwest::Client, user: &str, password: &str) -> reqwest::Response {
    let url = gw.url("/.flowgate/flow/default-authentication-flow/");
    walk(c, &url, &[("uid_field", user)]).await;
    walk(c, &url, &[("password", password)]).await
}

fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers()
        .get("retry-after")
        .expect("Retry-After on a 429")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn username_limit_answers_429_and_ends_after_its_period() {
    let gw = TestGateway::start_with(DEFAULT_APP, LIMITS).await;
    let attacker = browser_at("10.0.0.66");
    for _ in 0..3 {
        assert_eq!(attempt(&gw, &attacker, "bob", "guess").await.status(), 400);
    }
    let r = attempt(&gw, &attacker, "bob", "guess").await;
    assert_eq!(r.status(), 429);
    let wait = retry_after(&r);
    assert!((1..=20).contains(&wait), "{wait}");
    assert!(r.text().await.unwrap().contains("Too many attempts"));
    // The real bob from another address waits too, but no longer than the period.
    let bob = browser_at("10.0.0.7");
    let r = attempt(&gw, &bob, "bob", "bob's secret 42").await;
    assert_eq!(r.status(), 429);
    gw.clock.advance(Duration::from_secs(retry_after(&r)));
    let r = attempt(&gw, &bob, "bob", "bob's secret 42").await;
    assert_eq!(r.status(), 302, "bob gets in once the wait is over");
    // The JSON executor says the same with a 429.
    let api = gw.url("/.flowgate/api/v3/flows/executor/default-authentication-flow/");
    let j = browser_at("10.0.0.66");
    j.get(&api).send().await.unwrap();
    j.post(&api)
        .json(&serde_json::json!({"uid_field": "bob"}))
        .send()
        .await
        .unwrap();
    j.get(&api).send().await.unwrap();
    let mut last = 0;
    for _ in 0..4 {
        last = j
            .post(&api)
            .json(&serde_json::json!({"password": "guess"}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
    }
    assert_eq!(last, 429);
}

#[tokio::test]
async fn ip_limit_stops_password_spraying_from_one_address_only() {
    let gw = TestGateway::start_with(DEFAULT_APP, LIMITS).await;
    let mut statuses = Vec::new();
    for user in ["alice", "bob", "carol", "dave", "erin", "frank"] {
        // A fresh session per guess: the address is what ties them together.
        let sprayer = browser_at("10.0.0.99");
        statuses.push(attempt(&gw, &sprayer, user, "Winter2026!").await.status().as_u16());
    }
    assert_eq!(
        statuses,
        [400, 400, 400, 400, 400, 429],
        "the sixth guess from one address is refused"
    );
    // Another address is not affected.
    let alice = browser_at("10.0.0.8");
    let r = attempt(&gw, &alice, "alice", "correct horse battery staple").await;
    assert_eq!(r.status(), 302);
}

#[tokio::test]
async fn totp_codes_are_rate_limited() {
    let gw = TestGateway::start_with(DEFAULT_APP, LIMITS).await;
    let alice = users(&gw).get_by_username("alice").await.unwrap().unwrap();
    let secret = flowgate::identity::mfa::new_totp_secret();
    users(&gw)
        .add_totp_device(alice.id, "phone", &secret, 6, 0, None)
        .await
        .unwrap();
    let c = browser_at("10.0.0.5");
    let r = attempt(&gw, &c, "alice", "correct horse battery staple").await;
    assert_eq!(r.status(), 200, "code page");
    let url = gw.url("/.flowgate/flow/default-authentication-flow/");
    for _ in 0..3 {
        assert_eq!(walk(&c, &url, &[("code", "000000")]).await.status(), 400);
    }
    let r = walk(&c, &url, &[("code", "000000")]).await;
    assert_eq!(r.status(), 429);
    assert!(retry_after(&r) >= 1);
}

#[test]
fn limits_are_configurable_and_checked() {
    let text = "listen: { http: \"127.0.0.1:0\" }\nrate_limits: { password_per_ip: lots, code_per_ip: off }\n";
    let err = flowgate::Config::from_yaml_str(text, "m.yaml").unwrap_err().to_string();
    assert!(
        err.contains("rate_limits.password_per_ip: invalid rate \"lots\""),
        "{err}"
    );
}
