//! Operations (docs/operations.md, issue 15): the admin listener's `/metrics` scraped and parsed with a
//! real Prometheus text parser after a scripted session; readiness with a store down (a real
//! redis-server killed, a real PostgreSQL stopped); the admin API without, with a wrong and with the right
//! token; a user disabled through the API loses its live session at once; audit events for
//! every action of the session, with no password or code in them or in the log.
#![allow(clippy::disallowed_methods)]

use crate::common::log_buf::LogBuf;
use crate::common::redis::Redis;
use crate::common::*;
use serde_json::Value;

const TOKEN: &str = "t0ken-for-the-admin-api-4f9c2e";
const ALICE_PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "violet tangerine expedition 77";
const TOTP_SETUP: &str = "/.flowgate/flow/default-authenticator-totp-setup/";
const PASSWORD_CHANGE: &str = "/.flowgate/flow/default-password-change-flow/";
const RECOVERY: &str = "/.flowgate/flow/default-recovery-flow/";
const BOB_NEW: &str = "bob's brand new passphrase 9";

/// A gateway with an admin listener (token from a file) and an events file.
struct Ops {
    gw: TestGateway,
    _token_dir: tempfile::TempDir,
}

impl Ops {
    async fn start(extra: &str) -> Self {
        Self::start_on("127.0.0.1:0", extra).await
    }

    async fn start_on(admin: &str, extra: &str) -> Self {
        let (gw, token_dir) = admin::start(DEFAULT_APP, admin, TOKEN, extra).await;
        Self {
            gw,
            _token_dir: token_dir,
        }
    }

    fn admin(&self, path: &str) -> String {
        admin::url(&self.gw, path)
    }

    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        admin::api(&self.gw, TOKEN, method, path, body).await
    }

    async fn scrape(&self) -> prometheus_parse::Scrape {
        let r = bare_client().get(self.admin("/metrics")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        let text = r.text().await.unwrap();
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
    }

    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.gw.dir.path().join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
            .collect()
    }
}

/// The sum of the samples of `name` whose labels include `labels` (counters, gauges, and the
/// `_count`/`_sum` lines of histograms).
fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            _ => 0.0,
        })
        .sum()
}

/// The count in the `+Inf` bucket of histogram `name` with `labels`.
fn histogram_count(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .filter_map(|x| match &x.value {
            prometheus_parse::Value::Histogram(b) => b.iter().find(|c| c.less_than.is_infinite()).map(|c| c.count),
            _ => None,
        })
        .sum()
}

// A current-thread runtime: the gateway's tasks run on this thread, so the thread-local
// subscriber captures their log lines and no other test's.
#[tokio::test]
async fn a_scripted_session_moves_the_metrics_and_writes_audit_events_without_secrets() {
    let (logs, _guard) = LogBuf::capture("debug");
    // Five password checks per username: alice uses four, bob's sixth guess is refused.
    let ops = Ops::start("rate_limits: { password_per_ip: off, password_per_username: 5/1h }\n").await;
    let gw = &ops.gw;
    let before = ops.scrape().await;
    assert_eq!(value(&before, "flowgate_logins_total", &[]), 0.0);
    assert!(
        value(&before, "process_resident_memory_bytes", &[]) > 0.0,
        "process figures"
    );
    assert!(value(&before, "flowgate_runtime", &[("figure", "workers")]) >= 1.0);

    // 1. A wrong password, then the right one.
    let c = client();
    let r = html_login(&c, &gw.url(""), "/", "alice", "not alices password").await;
    assert_eq!(r.status(), 400);
    let c = client();
    let r = html_login(&c, &gw.url(""), "/", "alice", ALICE_PASSWORD).await;
    assert_eq!(r.status(), 302);
    assert_eq!(c.get(gw.url("/x")).send().await.unwrap().status(), 200);
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("alice"));
    let live = ops.scrape().await;
    assert_eq!(value(&live, "flowgate_sessions_live", &[]), 1.0);
    // 2. A second factor.
    let r = reauthenticate(&c, &gw.url(TOTP_SETUP), ALICE_PASSWORD).await;
    let (_, code) = totp_on(gw, &r.text().await.unwrap());
    let r = walk(&c, &gw.url(TOTP_SETUP), &[("code", code.as_str())]).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    let recovery_codes: Vec<String> = regex::Regex::new(r"<li><code>([a-z0-9-]+)</code></li>")
        .unwrap()
        .captures_iter(&html)
        .map(|c| c[1].to_string())
        .collect();
    assert_eq!(recovery_codes.len(), 6, "{html}");
    let r = walk(&c, &gw.url(TOTP_SETUP), &[]).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    // 3. A new password.
    reauthenticate(&c, &gw.url(PASSWORD_CHANGE), ALICE_PASSWORD).await;
    let r = walk(
        &c,
        &gw.url(PASSWORD_CHANGE),
        &[("password", NEW_PASSWORD), ("password_repeat", NEW_PASSWORD)],
    )
    .await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    // 4. Logout.
    assert_eq!(
        c.get(gw.url("/logout")).send().await.unwrap().status(),
        200,
        "the signed-out page"
    );
    // 5. bob recovers his account through a mailed link.
    let rc = client();
    walk(&rc, &gw.url(RECOVERY), &[("uid_field", "bob")]).await;
    let link = mailed_link(gw, "bob@example.test");
    let r = walk(&rc, &link, &[]).await;
    assert!(r.text().await.unwrap().contains("password_repeat"));
    let r = walk(&rc, &link, &[("password", BOB_NEW), ("password_repeat", BOB_NEW)]).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    // 6. bob guesses until the limit locks him out.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = html_login(&client(), &gw.url(""), "/", "bob", "a guess").await;
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    // 7. The admin removes alice's second factor; 8. a reload.
    let (s, _) = ops.api(reqwest::Method::DELETE, "/api/users/alice/mfa", None).await;
    assert_eq!(s, 200);
    let cfg = flowgate::Config::load(&gw.dir.path().join("missing.yaml"));
    assert!(cfg.is_err());
    let running = gw.running.as_ref().unwrap();
    assert!(running.reload(&gw.dir.path().join("missing.yaml")).is_err());

    // The counters moved as the session did.
    let after = ops.scrape().await;
    let flow = "default-authentication-flow";
    assert_eq!(
        value(
            &after,
            "flowgate_logins_total",
            &[("flow", flow), ("result", "success")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            "flowgate_logins_total",
            &[("flow", flow), ("result", "failure")]
        ),
        6.0
    );
    assert_eq!(
        value(
            &after,
            "flowgate_logins_total",
            &[("flow", flow), ("result", "rate_limited")]
        ),
        1.0
    );
    assert_eq!(
        value(&after, "flowgate_rate_limit_hits_total", &[("limit", "password")]),
        1.0
    );
    assert_eq!(value(&after, "flowgate_reloads_total", &[("result", "error")]), 1.0);
    // alice logged out; the recovery logged bob in.
    assert_eq!(value(&after, "flowgate_sessions_live", &[]), 1.0);
    let ok = [("app", "app"), ("route", "app"), ("status", "200")];
    assert_eq!(value(&after, "flowgate_requests_total", &ok), 1.0);
    assert!(
        value(
            &after,
            "flowgate_requests_total",
            &[("route", "app"), ("status", "302")]
        ) >= 7.0
    );
    assert!(value(&after, "flowgate_requests_total", &[("route", "ui"), ("status", "200")]) >= 7.0);
    assert_eq!(
        value(&after, "flowgate_requests_total", &[("route", "ui"), ("status", "429")]),
        1.0
    );
    assert_eq!(
        histogram_count(&after, "flowgate_upstream_response_seconds", &[("app", "app")]),
        1.0
    );
    assert_eq!(
        value(&after, "flowgate_upstream_response_seconds_count", &[("app", "app")]),
        1.0
    );
    assert!(histogram_count(&after, "flowgate_store_operation_seconds", &[("op", "save")]) >= 1.0);
    assert_eq!(
        value(&after, "flowgate_store_errors_total", &[("store", "session")]),
        0.0
    );
    // Every metric the shipped Grafana dashboard queries exists.
    let dashboard = std::fs::read_to_string("docs/grafana/flowgate-dashboard.json").unwrap();
    let names: std::collections::BTreeSet<String> = regex::Regex::new(r"\b(?:flowgate|process)_[a-z_]+")
        .unwrap()
        .find_iter(&dashboard)
        .map(|m| m.as_str().trim_end_matches("_bucket").to_string())
        .collect();
    assert!(names.len() >= 15, "{names:?}");
    for n in &names {
        assert!(
            after.samples.iter().any(|x| &x.metric == n),
            "the dashboard queries {n}, which /metrics lacks"
        );
    }

    // One event per action, in order, each with the common fields.
    let events = ops.events();
    let names: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    let expected_order = [
        "login_failed",
        "login",
        "mfa_added",
        "mfa_added",
        "password_changed",
        "logout",
        "password_changed",
        "recovery",
        "login_failed",
        "lockout",
        "mfa_removed",
        "reload",
    ];
    let mut it = names.iter();
    for want in expected_order {
        assert!(it.any(|n| *n == want), "{want} missing or out of order in {names:?}");
    }
    assert_eq!(names.iter().filter(|n| **n == "login_failed").count(), 6, "{names:?}");
    for e in &events {
        for key in ["time", "event", "user", "client", "flow", "app", "result", "reason"] {
            assert!(e.get(key).is_some(), "{key} missing in {e}");
        }
    }
    let first = &events[0];
    assert_eq!(first["user"], "alice");
    assert_eq!(first["client"], "127.0.0.1");
    assert_eq!(first["flow"], flow);
    assert_eq!(first["app"], "app");
    assert_eq!(first["result"], "failure");
    assert_eq!(first["stage"], "default-authentication-password");
    assert_eq!(first["reason"], "invalid_password");
    assert!(first["time"].as_str().unwrap().starts_with("2027-01-15T"), "{first}");
    let login = events.iter().find(|e| e["event"] == "login").unwrap();
    assert_eq!(
        (login["user"].as_str(), login["result"].as_str()),
        (Some("alice"), Some("success"))
    );
    let lockout = events.iter().find(|e| e["event"] == "lockout").unwrap();
    assert_eq!(
        (lockout["user"].as_str(), lockout["reason"].as_str()),
        (Some("bob"), Some("rate_limited"))
    );

    // The same lines are in the log; no password and no code anywhere.
    let log = logs.text();
    let file = std::fs::read_to_string(gw.dir.path().join("events.jsonl")).unwrap();
    assert!(log.contains("flowgate::flow"), "the capture works");
    let mut secrets = vec![
        ALICE_PASSWORD,
        NEW_PASSWORD,
        BOB_NEW,
        "not alices password",
        "a guess",
        code.as_str(),
        TOKEN,
        link.split("flow_token=").nth(1).unwrap(),
    ];
    secrets.extend(recovery_codes.iter().map(String::as_str));
    for secret in secrets {
        assert!(!log.contains(secret), "{secret:?} in the log");
        assert!(!file.contains(secret), "{secret:?} in the events file");
    }
    drop(_guard);
    ops.gw.stop().await;
}

#[tokio::test]
async fn the_admin_api_needs_the_right_token() {
    let ops = Ops::start(NO_LIMITS).await;
    let url = ops.admin("/api/users");
    let c = bare_client();
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    for wrong in ["", "t0ken", "t0ken-for-the-admin-api-4f9c2f", &format!("{TOKEN}x")] {
        let r = c.get(&url).bearer_auth(wrong).send().await.unwrap();
        assert_eq!(r.status(), 401, "{wrong:?}");
    }
    let r = c
        .get(&url)
        .header("authorization", format!("Basic {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let (s, users) = ops.api(reqwest::Method::GET, "/api/users", None).await;
    assert_eq!(s, 200);
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    assert!(!users.to_string().contains("argon2"), "no hashes: {users}");
    // Metrics and health need no token; the public listener serves none of it.
    assert_eq!(c.get(ops.admin("/metrics")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(ops.admin("/health/live")).send().await.unwrap().status(), 200);
    let r = c.get(ops.admin("/health/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["ready"], true);
    let before = ops.gw.upstream.count();
    for p in ["/metrics", "/api/users"] {
        let r = c.get(ops.gw.url(p)).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(r.status(), 401, "{p} on the public port is an app path needing a login");
    }
    assert_eq!(ops.gw.upstream.count(), before);
    // App passwords (tests/api_clients.rs uses them): none yet.
    let (s, v) = ops.api(reqwest::Method::GET, "/api/tokens", None).await;
    assert_eq!((s, v), (200, serde_json::json!([])));
    ops.gw.stop().await;

    // Without a token configured the API is off; metrics stay.
    let gw = TestGateway::start_with(DEFAULT_APP, "admin: { listen: \"127.0.0.1:0\" }\n").await;
    let admin = gw.running.as_ref().unwrap().admin_addr.unwrap();
    let r = c
        .get(format!("http://{admin}/api/users"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        c.get(format!("http://{admin}/metrics")).send().await.unwrap().status(),
        200
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_user_disabled_through_the_api_loses_its_live_session_at_once() {
    let ops = Ops::start(NO_LIMITS).await;
    let gw = &ops.gw;
    let alice = session_of(gw, "alice", ALICE_PASSWORD).await;
    let bob = session_of(gw, "bob", "bob's secret 42").await;
    let bob2 = session_of(gw, "bob", "bob's secret 42").await;
    assert!(logged_in(gw, &alice).await && logged_in(gw, &bob).await);
    let (s, list) = ops.api(reqwest::Method::GET, "/api/sessions?user=alice", None).await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert!(!list.to_string().contains(&alice), "never the id");

    let (s, v) = ops.api(reqwest::Method::POST, "/api/users/alice/disable", None).await;
    assert_eq!((s, v["is_active"].as_bool()), (200, Some(false)), "{v}");
    let before = gw.upstream.count();
    assert!(
        !logged_in(gw, &alice).await,
        "the disabled user's session ended at once"
    );
    assert_eq!(gw.upstream.count(), before, "nothing reached the app");
    let r = html_login(&client(), &gw.url(""), "/", "alice", ALICE_PASSWORD).await;
    assert_ne!(r.status(), 302, "a disabled user cannot log in again");
    let (s, _) = ops.api(reqwest::Method::POST, "/api/users/alice/enable", None).await;
    assert_eq!(s, 200);
    assert!(logged_in(gw, &session_of(gw, "alice", ALICE_PASSWORD).await).await);

    // One session by its tag, then all of a user's.
    let (_, list) = ops.api(reqwest::Method::GET, "/api/sessions?user=bob", None).await;
    let tags: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["tag"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tags.len(), 2);
    let (s, _) = ops
        .api(reqwest::Method::DELETE, &format!("/api/sessions/{}", tags[0]), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        [logged_in(gw, &bob).await, logged_in(gw, &bob2).await]
            .iter()
            .filter(|l| **l)
            .count(),
        1
    );
    let (s, v) = ops.api(reqwest::Method::DELETE, "/api/sessions?user=bob", None).await;
    assert_eq!(s, 200, "{v}");
    assert!(!logged_in(gw, &bob).await && !logged_in(gw, &bob2).await);

    // Create, delete; invitations.
    let body = serde_json::json!({ "username": "dave", "password": "dave's long passphrase", "groups": ["staff"] });
    let (s, v) = ops.api(reqwest::Method::POST, "/api/users", Some(body.clone())).await;
    assert_eq!(s, 201, "{v}");
    let (s, _) = ops.api(reqwest::Method::POST, "/api/users", Some(body)).await;
    assert_eq!(s, 409);
    let dave = session_of(gw, "dave", "dave's long passphrase").await;
    assert!(logged_in(gw, &dave).await);
    let (s, _) = ops.api(reqwest::Method::DELETE, "/api/users/dave", None).await;
    assert_eq!(s, 200);
    assert!(!logged_in(gw, &dave).await);
    assert!(users(gw).get_by_username("dave").await.unwrap().is_none());
    let (s, v) = ops
        .api(
            reqwest::Method::POST,
            "/api/invitations",
            Some(serde_json::json!({ "name": "newcomer", "expires": "7d", "single_use": true })),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert!(v["token"].as_str().is_some_and(|t| t.len() >= 20));
    let (_, list) = ops.api(reqwest::Method::GET, "/api/invitations", None).await;
    assert_eq!(list[0]["name"], "newcomer");
    assert!(list[0].get("token").is_none(), "tokens are shown once, at creation");
    let (s, _) = ops.api(reqwest::Method::POST, "/api/users/nobody/disable", None).await;
    assert_eq!(s, 404);
    let revoked = ops.events().iter().filter(|e| e["event"] == "session_revoked").count();
    assert_eq!(revoked, 4);
    ops.gw.stop().await;
}

#[tokio::test]
async fn readiness_turns_false_when_the_session_store_is_unreachable() {
    let mut redis = Redis::start();
    let extra = format!(
        "{NO_LIMITS}session: {{ ttl: 2h, idle_timeout: 30m, store: redis, redis: {{ url: \"{}\", key_prefix: \"ops:\" }} }}\n",
        redis.url()
    );
    let ops = Ops::start(&extra).await;
    let c = bare_client();
    let ready = || async {
        let r = c.get(ops.admin("/health/ready")).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    let (s, v) = ready().await;
    assert_eq!((s, v["checks"]["session_store"].as_str()), (200, Some("ok")), "{v}");
    redis.kill();
    let (s, v) = ready().await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["ready"], false);
    assert_eq!(v["checks"]["session_store"], "unreachable");
    assert_eq!(v["checks"]["user_store"], "ok");
    // Live stays true: the process is fine, its store is not.
    assert_eq!(c.get(ops.admin("/health/live")).send().await.unwrap().status(), 200);
    let s = ops.scrape().await;
    assert!(
        value(
            &s,
            "flowgate_store_errors_total",
            &[("store", "session"), ("op", "load")]
        ) >= 1.0
    );
    redis.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (s, _) = ready().await;
        if s == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ready again after redis came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    ops.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_acts_through_the_admin_api_while_the_gateway_runs() {
    let port = unused_port();
    let ops = Ops::start_on(&format!("127.0.0.1:{port}"), NO_LIMITS).await;
    let gw = &ops.gw;
    // The CLI's config names the same database, session store and admin listener.
    let cli_cfg = gw.dir.path().join("cli.yaml");
    std::fs::write(
        &cli_cfg,
        format!(
            "listen: {{ http: \"127.0.0.1:0\" }}\ndata_dir: \"{}\"\nadmin: {{ listen: \"127.0.0.1:{port}\", token_file: \"{}\" }}\n",
            gw.dir.path().display(),
            ops._token_dir.path().join("admin-token").display()
        ),
    )
    .unwrap();
    let cli = move |args: &'static [&'static str]| {
        let cfg = cli_cfg.to_str().unwrap().to_string();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut all = vec![args[0], "-c", cfg.as_str()];
                all.extend_from_slice(&args[1..]);
                run_bin(&all, "")
            })
            .await
            .unwrap()
        }
    };
    let alice = session_of(gw, "alice", ALICE_PASSWORD).await;
    let (code, out, err) = cli(&["session", "list", "--user", "alice"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("through the admin API"), "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("\talice\t") && !out.contains(&alice), "{out}");
    let (code, out, err) = cli(&["user", "disable", "alice"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("disabled alice; ended 1 session(s)"), "{out}");
    assert!(
        !logged_in(gw, &alice).await,
        "the running gateway dropped the session at once"
    );
    let (code, out, _) = cli(&["user", "list"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("alice\talice@example.test\tadmins,staff\tinactive"),
        "{out}"
    );
    let (code, out, err) = cli(&["invitation", "create", "crew", "--expires", "1d"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.trim().len() >= 20 && err.contains("?itoken="), "{err}");
    let events = ops.events();
    assert!(events
        .iter()
        .any(|e| e["event"] == "user_disabled" && e["user"] == "alice"));
    let mut ops = ops;
    ops.gw.running.take().unwrap().shutdown().await;

    // The gateway is gone: the same command works on the database directly.
    let (code, out, err) = cli(&["user", "enable", "alice"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("through the admin API"), "{err}");
    assert!(out.contains("enabled alice"), "{out}");
}

#[tokio::test]
async fn readiness_turns_false_when_the_user_database_is_unreachable() {
    use crate::common::postgres::{Backend, Fresh};
    let mut fresh = Fresh::new(Backend::Postgres).await;
    let ops = Ops::start(&format!("{NO_LIMITS}{}", fresh.identity_yaml())).await;
    let c = bare_client();
    let ready = || async {
        let r = c.get(ops.admin("/health/ready")).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(ready().await.0, 200);
    fresh.pg.as_mut().unwrap().stop();
    let (s, v) = ready().await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["checks"]["user_store"], "unreachable");
    assert_eq!(v["checks"]["session_store"], "ok");
    let s = ops.scrape().await;
    assert!(value(&s, "flowgate_store_errors_total", &[("store", "users")]) >= 1.0);
    fresh.pg.as_mut().unwrap().start_again();
    assert_eq!(ready().await.0, 200, "ready again once PostgreSQL is back");
    ops.gw.stop().await;
}
