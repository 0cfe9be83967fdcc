//! Proxying behaviour: upstream failures as pages, WebSocket upgrades, app policies, routing by
//! host and prefix, HTTPS cookies, and forwarded-header trust.

use crate::common::*;
use std::time::Duration;

#[tokio::test]
async fn upstream_down_is_a_502_page() {
    // Bind and drop to get a port nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let apps = format!("  - name: app\n    upstream: \"http://{dead}\"\n    skip_auth: [\"^/public/\"]\n");
    let gw = TestGateway::start_with(&apps, "").await;
    let r = bare_client().get(gw.url("/public/x")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(r.text().await.unwrap().contains("Bad gateway"));
    gw.stop().await;
}

#[tokio::test]
async fn upstream_timeout_is_a_504_page() {
    let slow = Upstream::spawn_with_delay(Duration::from_secs(5)).await;
    let apps =
        "  - name: app\n    upstream: \"http://UPSTREAM\"\n    read_timeout: 300ms\n    skip_auth: [\"^/public/\"]\n";
    let gw = TestGateway::start_full(apps, "", slow, &[]).await;
    let r = bare_client().get(gw.url("/public/x")).send().await.unwrap();
    assert_eq!(r.status(), 504);
    assert!(r.text().await.unwrap().contains("Gateway timeout"));
    gw.stop().await;
}

#[tokio::test]
async fn websocket_upgrade_needs_a_session() {
    let gw = TestGateway::start().await;
    let ws = |c: &reqwest::Client, path: &str| {
        c.get(gw.url(path))
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    };
    let r = ws(&bare_client(), "/socket")
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = ws(&bare_client(), "/public/socket").send().await.unwrap();
    assert_eq!(r.status(), 401, "no upgrade on skip-auth routes without a session");
    assert_eq!(gw.upstream.count(), 0);
    let c = client();
    html_login(&c, &gw.url(""), "/", "alice", ALICE_PASSWORD).await;
    let r = ws(&c, "/socket").send().await.unwrap();
    assert_eq!(r.status(), 101);
    let seen = gw.upstream.last();
    assert_eq!(seen.header("upgrade"), Some("websocket"));
    assert_eq!(seen.header("x-forwarded-user"), Some("alice"));
    gw.stop().await;
}

#[tokio::test]
async fn app_policies_deny_with_403() {
    let apps = "  - name: staffonly\n    path_prefix: /staff\n    upstream: \"http://UPSTREAM\"\n    policies: [{ group: staff }]\n  - name: app\n    upstream: \"http://UPSTREAM\"\n";
    let gw = TestGateway::start_with(apps, "").await;
    let alice = client();
    html_login(&alice, &gw.url(""), "/", "alice", ALICE_PASSWORD).await;
    assert_eq!(
        alice.get(gw.url("/staff/x")).send().await.unwrap().status(),
        200,
        "admins inherit staff"
    );
    let bob = client();
    html_login(&bob, &gw.url(""), "/", "bob", BOB_PASSWORD).await;
    let before = gw.upstream.count();
    let r = bob.get(gw.url("/staff/x")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("Access denied"));
    assert_eq!(gw.upstream.count(), before);
    assert_eq!(
        bob.get(gw.url("/staffroom")).send().await.unwrap().status(),
        200,
        "prefix matches on segment boundaries"
    );
    gw.stop().await;
}

#[tokio::test]
async fn routing_by_host_then_longest_prefix() {
    let other = Upstream::spawn().await;
    let apps = format!(
        "  - name: a\n    hosts: [a.test]\n    upstream: \"http://UPSTREAM\"\n    skip_auth: [\".*\"]\n  - name: b\n    hosts: [a.test]\n    path_prefix: /b\n    upstream: \"http://{}\"\n    skip_auth: [\".*\"]\n",
        other.addr
    );
    let gw = TestGateway::start_with(&apps, "").await;
    let c = bare_client();
    assert_eq!(
        c.get(gw.url("/b/x"))
            .header("host", "A.test:80")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(other.count(), 1);
    assert_eq!(
        c.get(gw.url("/x"))
            .header("host", "a.test")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(gw.upstream.count(), 1);
    assert_eq!(
        c.get(gw.url("/x"))
            .header("host", "c.test")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    gw.stop().await;
}

#[tokio::test]
async fn forwarded_headers_are_set_and_untrusted_values_replaced() {
    let gw = TestGateway::start().await;
    bare_client()
        .get(gw.url("/public/x"))
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .send()
        .await
        .unwrap();
    let seen = gw.upstream.last();
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-host"), Some(gw.addr.to_string().as_str()));
    gw.stop().await;

    let gw = TestGateway::start_with(DEFAULT_APP, "trusted_proxies: [127.0.0.0/8]").await;
    bare_client()
        .get(gw.url("/public/x"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let seen = gw.upstream.last();
    assert_eq!(seen.header("x-forwarded-for"), Some("203.0.113.9, 127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    gw.stop().await;
}

#[tokio::test]
async fn https_listener_sets_secure_host_prefixed_cookie() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = flowgate::tls::write_dev_certificate(certs.path(), &["localhost".into()]).unwrap();
    let extra = format!(
        "listen: {{ https: {{ addr: \"127.0.0.1:0\", cert: \"{}\", key: \"{}\" }} }}",
        cert.display(),
        key.display()
    );
    // The harness writes its own listen line first; build this config by hand instead.
    let upstream = Upstream::spawn().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("seed.yaml"), SEED).unwrap();
    let text = format!(
        "{extra}\ndata_dir: \"{}\"\nidentity: {{ seed: seed.yaml }}\nmail: {{ transport: file }}\napps:\n  - name: app\n    upstream: \"http://{}\"\n",
        dir.path().display(),
        upstream.addr
    );
    let mut sources = vec![flowgate::config::Source {
        name: "tls.yaml".into(),
        text,
        base_dir: dir.path().to_path_buf(),
    }];
    sources.extend(shipped_flow_sources(dir.path()));
    let cfg = flowgate::Config::from_sources(sources).unwrap();
    let running = flowgate::Gateway::start(cfg).await.unwrap();
    let addr = running.https_addr.unwrap();
    let base = format!("https://localhost:{}", addr.port());
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .danger_accept_invalid_certs(true)
        .resolve("localhost", addr)
        .build()
        .unwrap();
    let done = html_login(&c, &base, "/", "alice", ALICE_PASSWORD).await;
    assert_eq!(done.status(), 302);
    let sc = done.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(sc.starts_with("__Host-flowgate_session="), "{sc}");
    assert!(
        sc.contains("Secure") && sc.contains("HttpOnly") && sc.contains("SameSite=Lax") && sc.contains("Path=/"),
        "{sc}"
    );
    assert_eq!(c.get(format!("{base}/x")).send().await.unwrap().status(), 200);
    // HTTP/2 is negotiated by ALPN and proxied the same way.
    let r = c.get(format!("{base}/h2")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    let seen = upstream.last();
    assert_eq!(seen.uri, "/h2");
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert_eq!(seen.header("x-forwarded-user"), Some("alice"));
    running.shutdown().await;
}

/// `listen.workers: 3`: connections are spread over three worker threads (ADR 0015); each of
/// several clients, on its own connection, logs in and reaches the app, which sees every request.
#[tokio::test]
async fn connections_on_several_workers_log_in_and_reach_the_app() {
    let gw = TestGateway::start_with(DEFAULT_APP, "listen: { http: \"127.0.0.1:0\", workers: 3 }\n").await;
    for _ in 0..6 {
        let c = client();
        let done = html_login(&c, &gw.url(""), "/private", "alice", ALICE_PASSWORD).await;
        assert_eq!(done.status(), 302);
        let r = c.get(gw.url("/private")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(gw.upstream.count(), 6);
    gw.stop().await;
}
