//! Faults of the shared store (issue 12 item 6, docs/decisions/0010): redis-server killed with SIGKILL and
//! started again on the same port while two replicas run. Sessions in the near cache keep
//! being proxied; new logins and unknown sessions get a clear 503 (page and JSON); each
//! replica logs the outage once, not per request; service comes back without a restart.
//!
//! Wall-clock time bounds only the polling for the reconnection; the near cache's life is
//! on the injected clock.
#![allow(clippy::disallowed_methods)]

use crate::common::log_buf::LogBuf;
use crate::common::redis::Redis;
use crate::common::*;
use std::time::Duration;

const STORE_DOWN: &str = "session store failing";
const STORE_BACK: &str = "session store reachable again";

// A current-thread runtime: the gateways' tasks run on this thread and their connection workers
// take this thread's subscriber, so it sees their log lines and no other test's.
#[tokio::test]
async fn redis_killed_and_restarted_under_two_replicas() {
    let (logs, _guard) = LogBuf::capture("flowgate=info");

    let mut redis = Redis::start();
    let extra = format!(
        "{NO_LIMITS}session: {{ ttl: 2h, idle_timeout: 30m, store: redis, redis: {{ url: \"{}\", key_prefix: \"t:\" }} }}\n",
        redis.url()
    );
    let a = TestGateway::start_with(DEFAULT_APP, &extra).await;
    let b = TestGateway::start_with(DEFAULT_APP, &extra).await;
    let cookie = session_of(&a, "alice", ALICE_PASSWORD).await;
    assert!(logged_in(&a, &cookie).await);
    assert!(logged_in(&b, &cookie).await, "B has the session in its near cache now");

    redis.kill();
    // The cached session keeps being proxied on both replicas; the app receives each request.
    for i in 0..10 {
        for gw in [&a, &b] {
            let path = format!("/private/during-outage/{i}");
            let r = with_cookie(gw, reqwest::Method::GET, &path, &cookie, None).await;
            assert_eq!(r.status(), 200, "cached session during the outage");
            let got = gw.upstream.last();
            assert_eq!(got.uri, path);
            assert_eq!(got.header("x-forwarded-user"), Some("alice"));
        }
    }
    let proxied = a.upstream.count() + b.upstream.count();

    // An unknown session: 503, not a login redirect nor the app.
    let unknown = flowgate::session::new_id();
    for _ in 0..10 {
        let r = with_cookie(&a, reqwest::Method::GET, "/private", &unknown, None).await;
        assert_eq!(r.status(), 503);
        assert!(r.text().await.unwrap().contains("Sign-in is unavailable right now"));
    }
    // A new login: 503 page on the flow, 503 JSON on the executor API.
    for _ in 0..10 {
        let r = client()
            .get(b.url("/.flowgate/flow/default-authentication-flow/"))
            .header("accept", BROWSER_ACCEPT)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        assert!(r.text().await.unwrap().contains("Sign-in is unavailable right now"));
    }
    let r = client()
        .get(a.url("/.flowgate/api/v3/flows/executor/default-authentication-flow/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let j: serde_json::Value = r.json().await.unwrap();
    assert_eq!(j["detail"], "Sign-in is unavailable right now. Try again shortly.");
    assert_eq!(
        a.upstream.count() + b.upstream.count(),
        proxied,
        "no refused request reached the app"
    );
    // Once its near-cache life is over, the cached session is not trusted either (fail closed).
    a.clock.advance(flowgate::session::NEAR_CACHE_LIFE);
    let r = with_cookie(&a, reqwest::Method::GET, "/private", &cookie, None).await;
    assert_eq!(r.status(), 503);
    // Two replicas, dozens of refused requests: one line each for the outage.
    assert_eq!(logs.count(STORE_DOWN), 2, "one line per replica per outage");

    // redis-server comes back on the same port (empty: it saved nothing). No restart of the
    // gateways: a new login works on A within a few seconds, and its session on B.
    redis.restart();
    let back_at = std::time::Instant::now();
    let deadline = back_at + Duration::from_secs(10);
    loop {
        let status = client()
            .get(a.url("/.flowgate/flow/default-authentication-flow/"))
            .send()
            .await
            .unwrap()
            .status();
        if status == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no recovery: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "logins served again {:?} after redis-server was back",
        back_at.elapsed()
    );
    let fresh = session_of(&a, "alice", ALICE_PASSWORD).await;
    assert!(logged_in(&a, &fresh).await);
    loop {
        if logged_in(&b, &fresh).await {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "B did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(b.upstream.last().header("x-forwarded-user"), Some("alice"));
    assert!(logs.count(STORE_BACK) >= 1, "recovery logged");
    assert_eq!(logs.count(STORE_DOWN), 2, "still one line per replica");
    a.stop().await;
    b.stop().await;
}

/// A replica dies with SIGKILL between two steps of a login (no shutdown, nothing flushed by
/// it): the browser's next step goes to another replica, which continues the same flow from
/// the state in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_begun_on_a_replica_killed_with_sigkill_continues_on_another() {
    use std::process::{Command, Stdio};
    let redis = Redis::start();
    let session = format!(
        "session: {{ ttl: 2h, idle_timeout: 30m, store: redis, redis: {{ url: \"{}\", key_prefix: \"t:\" }} }}\n",
        redis.url()
    );
    // B in-process, its injected clock at the wall-clock time: A, a separate process, stamps
    // the session with the system clock.
    let b = {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("seed.yaml"), SEED).unwrap();
        let upstream = Upstream::spawn().await;
        let mut sources = vec![flowgate::config::Source {
            name: "test.yaml".into(),
            text: config_text(DEFAULT_APP, &format!("{NO_LIMITS}{session}"), upstream.addr, dir.path()),
            base_dir: dir.path().to_path_buf(),
        }];
        sources.extend(shipped_flow_sources(dir.path()));
        let cfg = flowgate::config::Config::from_sources(sources).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        TestGateway::from_config_at(cfg, dir, upstream, flowgate::session::ManualClock::new(now)).await
    };

    // Replica A: the flowgate binary, its own process.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("seed.yaml"), SEED).unwrap();
    let port = unused_port();
    let flows = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/flows/*.yaml");
    let main = dir.path().join("main.yaml");
    std::fs::write(
        &main,
        format!(
            "listen: {{ http: \"127.0.0.1:{port}\" }}\ndata_dir: \"{}\"\nidentity: {{ seed: seed.yaml }}\nmail: {{ transport: file }}\n{session}apps:\n  - name: app\n    upstream: \"http://{}\"\ninclude: [\"{}\"]\n",
            dir.path().display(),
            b.upstream.addr,
            flows.display()
        ),
    )
    .unwrap();
    let mut a = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["run", "-c", main.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let a_url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "replica A did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Identification answered on A.
    let flow_path = "/.flowgate/flow/default-authentication-flow/";
    let browser = client();
    let r = walk(&browser, &a_url(flow_path), &[("uid_field", "alice")]).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text().await.unwrap().contains("name=\"password\""),
        "A asks for the password"
    );

    a.kill().unwrap(); // SIGKILL
    a.wait().unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "A is gone");

    // The same browser goes on at B: the password step, then logged in.
    let (status, html) = page(&browser, &b.url(flow_path)).await;
    assert_eq!(status, 200);
    assert!(html.contains("name=\"password\""), "B continues A's flow:\n{html}");
    let r = browser
        .post(b.url(flow_path))
        .form(&[("csrf_token", csrf_of(&html).as_str()), ("password", ALICE_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let done = browser.get(b.url(flow_path)).send().await.unwrap();
    assert_eq!(done.status(), 302);
    let cookie = set_cookie_value(&done, "flowgate_session").expect("logged in on B");
    assert!(logged_in(&b, &cookie).await);
    assert_eq!(b.upstream.last().header("x-forwarded-user"), Some("alice"));
    b.stop().await;
}
