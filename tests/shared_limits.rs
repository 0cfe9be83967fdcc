//! Shared limits (issue 12 item 4, docs/decisions/0010): with `session.store: redis` the brute-force
//! counters (GCRA) and the reputation scores live in Redis, so replicas do not multiply the
//! attempts an attacker gets; a Redis that cannot be reached refuses attempts (fail closed).
//! Every test runs a real redis-server; gateways are in-process with their own injected clocks.

use crate::common::redis::Redis;
use crate::common::*;
use flowgate::flow::ratelimit::{Guess, Limited, RateLimitSettings, RateLimits};
use flowgate::flow::reputation::{ReputationStore, SCORE_MIN};
use flowgate::session::counters::RedisCounters;
use flowgate::session::{ManualClock, SharedClock};
use sha2::Digest;
use std::sync::Arc;
use std::time::Duration;

fn redis_session(r: &Redis) -> String {
    format!(
        "session: {{ ttl: 2h, idle_timeout: 30m, store: redis, redis: {{ url: \"{}\", key_prefix: \"t:\" }} }}\n",
        r.url()
    )
}

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

/// One password attempt in a fresh flow on `gw`; the password step's status.
async fn attempt(gw: &TestGateway, ip: &str, user: &str, password: &str) -> u16 {
    let c = browser_at(ip);
    let url = gw.url("/.flowgate/flow/default-authentication-flow/");
    walk(&c, &url, &[("uid_field", user)]).await;
    walk(&c, &url, &[("password", password)]).await.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_username_password_limit_holds_across_two_replicas() {
    let redis = Redis::start();
    let extra = format!(
        "trusted_proxies: [127.0.0.1]\nrate_limits: {{ password_per_ip: off, password_per_username: 3/1m }}\n{}",
        redis_session(&redis)
    );
    let a = TestGateway::start_with(DEFAULT_APP, &extra).await;
    let b = TestGateway::start_with(DEFAULT_APP, &extra).await;

    // Three wrong passwords for bob, split across A and B and across addresses.
    assert_eq!(attempt(&a, "10.0.0.1", "bob", "guess 1").await, 400);
    assert_eq!(attempt(&b, "10.0.0.2", "bob", "guess 2").await, 400);
    assert_eq!(attempt(&a, "10.0.0.3", "bob", "guess 3").await, 400);
    // The fourth is refused on either replica, even with the right password.
    assert_eq!(attempt(&b, "10.0.0.4", "bob", "guess 4").await, 429);
    assert_eq!(attempt(&a, "10.0.0.5", "bob", "guess 5").await, 429);
    assert_eq!(attempt(&b, "10.0.0.6", "bob", BOB_PASSWORD).await, 429);
    // Another username is not affected.
    assert_eq!(attempt(&b, "10.0.0.6", "alice", ALICE_PASSWORD).await, 302);
    assert_eq!(a.upstream.count() + b.upstream.count(), 0, "nothing reached the app");

    // The key holds a hash of the username, never the name.
    let keys = redis.cmd(&["KEYS", "t:rl:*"]);
    let bob_key = format!("t:rl:password_user:{}", hex::encode(sha2::Sha256::digest(b"bob")));
    assert!(keys.contains(&bob_key), "{keys}");
    assert!(!keys.contains(":bob"), "{keys}");

    // One interval later (20 s of 3/1m, on both injected clocks) one attempt is back.
    a.clock.advance(Duration::from_secs(20));
    b.clock.advance(Duration::from_secs(20));
    assert_eq!(attempt(&b, "10.0.0.7", "bob", BOB_PASSWORD).await, 302);
    assert_eq!(attempt(&a, "10.0.0.8", "bob", BOB_PASSWORD).await, 429);
    a.stop().await;
    b.stop().await;
}

const REPUTATION_FLOWS: &str = r#"
flows:
  - slug: guarded
    designation: authentication
    bindings:
      - { stage: default-authentication-identification, order: 10 }
      - { stage: too-many, order: 15, policies: [{ policy: bad-reputation }] }
      - { stage: default-authentication-password, order: 20 }
      - { stage: default-authentication-login, order: 30 }
stages:
  too-many: { type: deny, deny_message: "Too many failed attempts, try again later." }
policies:
  bad-reputation: { type: reputation, threshold: -3 }
"#;

/// Identification then password in the `guarded` flow; the final status (302 logged in, 400
/// wrong password, 403 denied).
async fn guarded(gw: &TestGateway, user: &str, password: &str) -> u16 {
    let c = client();
    let url = gw.url("/.flowgate/flow/guarded/");
    let r = walk(&c, &url, &[("uid_field", user)]).await;
    if r.status() != 200 {
        return r.status().as_u16();
    }
    let csrf = csrf_of(&r.text().await.unwrap());
    let r = c
        .post(&url)
        .form(&[("csrf_token", csrf.as_str()), ("password", password)])
        .send()
        .await
        .unwrap();
    if r.status() != 302 {
        return r.status().as_u16();
    }
    c.get(&url).send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reputation_recorded_on_one_replica_is_seen_on_another() {
    let redis = Redis::start();
    let extra = format!("{NO_LIMITS}{}", redis_session(&redis));
    let a = TestGateway::start_full(
        DEFAULT_APP,
        &extra,
        Upstream::spawn().await,
        &[("rep.yaml", REPUTATION_FLOWS)],
    )
    .await;
    let b = TestGateway::start_full(
        DEFAULT_APP,
        &extra,
        Upstream::spawn().await,
        &[("rep.yaml", REPUTATION_FLOWS)],
    )
    .await;
    // Three failed passwords on A take the loopback address to -3.
    for _ in 0..3 {
        assert_eq!(guarded(&a, "bob", "wrong").await, 400);
    }
    // B sees the score: its deny stage stops alice's right password.
    assert_eq!(
        guarded(&b, "alice", ALICE_PASSWORD).await,
        403,
        "B denies on A's record"
    );
    let keys = redis.cmd(&["KEYS", "t:rep:*"]);
    assert!(keys.contains("t:rep:ip:") && keys.contains("t:rep:id:"), "{keys}");
    assert!(!keys.contains("127.0.0.1") && !keys.contains("bob"), "{keys}");
    // Scores expire after 24 h (on B's clock, which decides B's reads).
    b.clock.advance(Duration::from_secs(24 * 3600));
    assert_eq!(guarded(&b, "alice", ALICE_PASSWORD).await, 302);
    a.stop().await;
    b.stop().await;
}

fn limits(password_per_username: &str) -> RateLimitSettings {
    let text = format!(
        "listen: {{ http: \"127.0.0.1:0\" }}\nrate_limits: {{ password_per_ip: off, password_per_username: {password_per_username} }}\n"
    );
    flowgate::Config::from_yaml_str(&text, "m.yaml").unwrap().rate_limits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_replicas_take_exactly_the_burst() {
    let redis = Redis::start();
    let clock = ManualClock::new(1_800_000_000_000);
    let shared: SharedClock = Arc::new(clock.clone());
    let settings = limits("5/1m");
    // Four "replicas", each with its own connection, 10 attempts each at once.
    let mut replicas = Vec::new();
    for _ in 0..4 {
        let c = RedisCounters::connect(&redis.url(), "c:").await.unwrap();
        replicas.push(Arc::new(RateLimits::with_store(&settings, &shared, Some(&c))));
    }
    let mut tasks = Vec::new();
    for r in &replicas {
        for _ in 0..10 {
            let r = r.clone();
            tasks.push(tokio::spawn(async move { r.check(Guess::Password, None, "Bob").await }));
        }
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(Limited::Wait(w)) => assert!(w > Duration::ZERO && w <= Duration::from_secs(60), "{w:?}"),
            Err(Limited::Unavailable) => panic!("redis is up"),
        }
    }
    assert_eq!(ok, 5, "40 attempts on 4 replicas, a burst of 5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_refuses_attempts_and_scores_and_recovers() {
    let mut redis = Redis::start();
    let clock = ManualClock::new(1_800_000_000_000);
    let shared: SharedClock = Arc::new(clock.clone());
    let c = RedisCounters::connect(&redis.url(), "c:").await.unwrap();
    let limits = RateLimits::with_store(&limits("3/1m"), &shared, Some(&c));
    let rep = ReputationStore::with_store(shared.clone(), Some(c.clone()));
    let ip = Some("10.9.9.9".parse().unwrap());
    assert_eq!(limits.check(Guess::Password, ip, "bob").await, Ok(()));
    rep.record(ip, "bob", 1).await;
    assert_eq!(rep.scores(ip, "bob").await, (1, 1));

    redis.kill();
    for _ in 0..5 {
        assert_eq!(
            limits.check(Guess::Password, ip, "bob").await,
            Err(Limited::Unavailable),
            "never an unlimited attempt"
        );
        assert_eq!(
            limits.check_mail(ip, "bob@example.test").await,
            Err(Limited::Unavailable)
        );
        assert_eq!(limits.check_signup(ip).await, Err(Limited::Unavailable));
    }
    assert_eq!(
        rep.scores(ip, "bob").await,
        (SCORE_MIN, SCORE_MIN),
        "unknown scores count as the worst"
    );

    // Back (empty, nothing was saved): attempts are counted again without a restart.
    redis.restart();
    let back = async {
        loop {
            if limits.check(Guess::Password, ip, "bob").await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), back)
        .await
        .expect("the limiter recovers without a restart");
    assert_eq!(limits.check(Guess::Password, ip, "bob").await, Ok(()));
    assert_eq!(limits.check(Guess::Password, ip, "bob").await, Ok(()));
    assert!(matches!(
        limits.check(Guess::Password, ip, "bob").await,
        Err(Limited::Wait(_))
    ));
}
