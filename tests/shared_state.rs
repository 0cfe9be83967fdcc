//! Shared state (docs/decisions/0010, issue 12): sessions, unfinished flows and mailed links in
//! `session.store: local` (SQLite, across a restart) and `session.store: redis` (a real
//! redis-server started here, shared by several gateways); revocation reaching every
//! replica within 100 ms; the identity following the user; unusable flow state. The store's
//! settings and the redis connection itself (AUTH, TLS, lost messages) are in
//! `shared_state_redis.rs`.
//!
//! Wall-clock time is read here only to bound polling for cross-process delivery (pub/sub,
//! the revocation log) and the start of redis-server; expiry uses the injected clock.
#![allow(clippy::disallowed_methods)]

use crate::common::redis::Redis;
use crate::common::*;
use flowgate::config::{Config, Source};
use std::path::Path;
use std::time::{Duration, Instant};

pub(crate) const ALICE_PW: &str = "correct horse battery staple";

/// Starts a gateway on `dir` (kept by the caller, so a restart finds the same files) with
/// the shipped flows, `extra` at the top level of the main file.
pub(crate) async fn start_in(dir: &Path, extra: &str) -> TestGateway {
    let upstream = Upstream::spawn().await;
    if !dir.join("seed.yaml").exists() {
        std::fs::write(dir.join("seed.yaml"), SEED).unwrap();
    }
    // Mail goes to the gateway's own temp dir, where `mailed_link` reads it.
    let own = tempfile::tempdir().unwrap();
    let mail = format!(
        "mail: {{ transport: file, dir: \"{}\" }}\n",
        own.path().join("mail").display()
    );
    let cfg = config_in(dir, &format!("{mail}{extra}"), upstream.addr);
    TestGateway::from_config(cfg, own, upstream).await
}

pub(crate) fn config_in(dir: &Path, extra: &str, upstream: std::net::SocketAddr) -> Config {
    let mut sources = vec![Source {
        name: "test.yaml".into(),
        text: config_text(DEFAULT_APP, &format!("{NO_LIMITS}{extra}"), upstream, dir),
        base_dir: dir.to_path_buf(),
    }];
    for (name, text) in flowgate::demo::SHIPPED_FLOWS {
        sources.push(Source {
            name: name.to_string(),
            text: text.to_string(),
            base_dir: dir.to_path_buf(),
        });
    }
    Config::from_sources(sources).unwrap_or_else(|e| panic!("test config invalid:\n{e}"))
}

pub(crate) fn redis_extra(r: &Redis, users_db: &Path) -> String {
    format!(
        "identity: {{ database: \"{}\", seed: seed.yaml }}\nsession: {{ ttl: 2h, idle_timeout: 30m, store: redis, redis: {{ url: \"{}\", key_prefix: \"t:\" }} }}\n",
        users_db.display(),
        r.url()
    )
}

/// Polls `cond` until it holds or `limit` passed; returns the time it took.
pub(crate) async fn within<F, Fut>(limit: Duration, mut cond: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if cond().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn logout(gw: &TestGateway, cookie: &str) {
    let r = with_cookie(gw, reqwest::Method::GET, "/logout", cookie, None).await;
    assert!(
        r.status().is_redirection() || r.status().is_success(),
        "logout: {}",
        r.status()
    );
    // The logout flow runs on the executor: follow its redirect with the same cookie.
    let mut loc = location(&r);
    for _ in 0..5 {
        if !loc.starts_with("/.flowgate/") {
            break;
        }
        let r = with_cookie(gw, reqwest::Method::GET, &loc, cookie, None).await;
        loc = location(&r);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_sessions_and_revocation_reaches_all_within_100ms() {
    let redis = Redis::start();
    let shared = tempfile::tempdir().unwrap();
    let users_db = shared.path().join("users.db");
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let extra = redis_extra(&redis, &users_db);
    let a = start_in(dirs[0].path(), &extra).await;
    let b = start_in(dirs[1].path(), &extra).await;
    let c = start_in(dirs[2].path(), &extra).await;

    let cookie = session_of(&a, "alice", ALICE_PW).await;
    assert!(logged_in(&a, &cookie).await);
    assert!(logged_in(&b, &cookie).await, "the session made on A works on B");
    assert_eq!(b.upstream.last().header("x-forwarded-user"), Some("alice"));
    assert!(logged_in(&c, &cookie).await);

    logout(&c, &cookie).await;
    assert!(!logged_in(&c, &cookie).await, "C ended the session");
    let took = within(Duration::from_millis(100), || async {
        !logged_in(&a, &cookie).await && !logged_in(&b, &cookie).await
    })
    .await;
    assert!(
        took.is_some(),
        "A and B still accept the cookie 100 ms after the logout on C"
    );
    println!("revocation reached A and B in {:?}", took.unwrap());

    for gw in [a, b, c] {
        gw.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_begun_on_one_replica_finishes_on_another_and_a_restart_keeps_users_logged_in() {
    let redis = Redis::start();
    let shared = tempfile::tempdir().unwrap();
    let users_db = shared.path().join("users.db");
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let extra = redis_extra(&redis, &users_db);
    let a = start_in(da.path(), &extra).await;
    let b = start_in(db.path(), &extra).await;

    // Identification on A, password on B (one browser: the jar holds the cookie for both).
    let browser = client();
    let r = browser
        .get(a.url("/private"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    let flow_path = location(&r);
    let (status, html) = page(&browser, &a.url(&flow_path)).await;
    assert_eq!(status, 200);
    let r = browser
        .post(a.url(&flow_path))
        .form(&[("csrf_token", csrf_of(&html).as_str()), ("uid_field", "alice")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let (_, html) = page(&browser, &b.url(&flow_path)).await;
    assert!(
        html.contains("name=\"password\""),
        "B continues A's flow at the password:\n{html}"
    );
    let r = browser
        .post(b.url(&flow_path))
        .form(&[("csrf_token", csrf_of(&html).as_str()), ("password", ALICE_PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let done = browser.get(b.url(&flow_path)).send().await.unwrap();
    assert_eq!(done.status(), 302);
    let cookie = set_cookie_value(&done, "flowgate_session").expect("logged in on B");
    assert!(logged_in(&a, &cookie).await, "the login finished on B works on A");

    // A restarted replica keeps its users logged in.
    a.stop().await;
    let a2 = start_in(da.path(), &extra).await;
    assert!(logged_in(&a2, &cookie).await);
    assert_eq!(a2.upstream.last().header("x-forwarded-user"), Some("alice"));
    a2.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_dump_holds_no_usable_session_id_nor_secret() {
    let redis = Redis::start();
    let shared = tempfile::tempdir().unwrap();
    let d = tempfile::tempdir().unwrap();
    let gw = start_in(d.path(), &redis_extra(&redis, &shared.path().join("users.db"))).await;
    let cookie = session_of(&gw, "alice", ALICE_PW).await;
    // An unfinished flow too (a typed username parked in an anonymous session).
    let browser = bare_client();
    let r = browser
        .get(gw.url("/private"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    let flow_path = location(&r);
    let r = browser.get(gw.url(&flow_path)).send().await.unwrap();
    let anon = set_cookie_value(&r, "flowgate_session").expect("a flow session");
    let html = r.text().await.unwrap();
    let r = browser
        .post(gw.url(&flow_path))
        .header("cookie", format!("flowgate_session={anon}"))
        .form(&[("csrf_token", csrf_of(&html).as_str()), ("uid_field", "bob")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(redis.cmd(&["SAVE"]).starts_with("+OK"));
    let dump = std::fs::read(redis.dir.path().join("dump.rdb")).unwrap();
    let text = String::from_utf8_lossy(&dump);
    assert!(text.contains("t:s:"), "the dump holds the sessions");
    assert!(!text.contains(&cookie), "a session id is in the Redis dump");
    let csrf = csrf_of(&html);
    assert!(!text.contains(&csrf), "a CSRF token is in the dump");
    assert!(!text.contains(&anon), "the anonymous session id is in the dump");
    assert!(
        !text.contains(ALICE_PW) && !text.contains("argon2"),
        "a password or hash is in the dump"
    );
    assert!(!text.contains("\"bob\""), "the parked flow is readable in the dump");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_store_keeps_sessions_and_unfinished_flows_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start_in(dir.path(), "").await;
    let cookie = session_of(&gw, "alice", ALICE_PW).await;
    // An unfinished flow: identification done, password pending.
    let browser = client();
    let r = browser
        .get(gw.url("/private"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    let flow_path = location(&r);
    let (_, html) = page(&browser, &gw.url(&flow_path)).await;
    browser
        .post(gw.url(&flow_path))
        .form(&[("csrf_token", csrf_of(&html).as_str()), ("uid_field", "alice")])
        .send()
        .await
        .unwrap();
    gw.stop().await;

    let gw = start_in(dir.path(), "").await;
    assert!(logged_in(&gw, &cookie).await, "the restart logged alice out");
    let (_, html) = page(&browser, &gw.url(&flow_path)).await;
    assert!(
        html.contains("name=\"password\""),
        "the unfinished flow restarted:\n{html}"
    );
    let r = browser
        .post(gw.url(&flow_path))
        .form(&[("csrf_token", csrf_of(&html).as_str()), ("password", ALICE_PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let done = browser.get(gw.url(&flow_path)).send().await.unwrap();
    assert!(
        set_cookie_value(&done, "flowgate_session").is_some(),
        "the resumed flow logs in"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_store_keeps_a_pending_mailed_link_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start_in(dir.path(), "").await;
    let browser = client();
    let (status, _) = page(&browser, &gw.url("/.flowgate/flow/default-recovery-flow/")).await;
    assert_eq!(status, 200, "the shipped recovery flow");
    let r = walk(
        &browser,
        &gw.url("/.flowgate/flow/default-recovery-flow/"),
        &[("uid_field", "alice")],
    )
    .await;
    assert!(r.status().is_success() || r.status().is_redirection());
    let link = mailed_link(&gw, "alice@example.test");
    gw.stop().await;

    let gw = start_in(dir.path(), "").await;
    let url = link.replace(&link[..link.find("/.flowgate/").unwrap()], &gw.url(""));
    let (status, html) = page(&browser, &url).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        !html.contains("expired or was already used"),
        "the link died with the restart:\n{html}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_revoke_user_ends_a_running_gateways_session_within_100ms() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start_in(dir.path(), "").await;
    let cookie = session_of(&gw, "alice", ALICE_PW).await;
    let other = session_of(&gw, "bob", "bob's secret 42").await;
    assert!(logged_in(&gw, &cookie).await);

    // The CLI's own code path, on its own connection to the store (another process's view).
    let cfg = config_in(dir.path(), "", gw.upstream.addr);
    let backend = flowgate::session::revoke::open_backend(&cfg).await.unwrap();
    let listed = flowgate::session::revoke::list(backend.as_ref(), None, flowgate::session::Clock::now_ms(&gw.clock))
        .await
        .unwrap();
    assert_eq!(listed.len(), 2, "two logged-in sessions listed");
    for l in &listed {
        assert!(!cookie.contains(&l.tag) && !other.contains(&l.tag), "list prints ids");
    }
    let alice_id = users(&gw).get_by_username("alice").await.unwrap().unwrap().id;
    let n = flowgate::session::revoke::revoke_user(backend.as_ref(), alice_id)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let took = within(Duration::from_millis(100), || async { !logged_in(&gw, &cookie).await }).await;
    assert!(
        took.is_some(),
        "the gateway still accepts a revoked session after 100 ms"
    );
    assert!(logged_in(&gw, &other).await, "bob's session is untouched");

    // Revoke one session by the tag `session list` prints.
    let tag = listed
        .iter()
        .find(|l| l.session.user.as_ref().is_some_and(|u| u.username == "bob"))
        .unwrap()
        .tag
        .clone();
    flowgate::session::revoke::revoke_one(backend.as_ref(), &tag, 0)
        .await
        .unwrap();
    let took = within(Duration::from_millis(100), || async { !logged_in(&gw, &other).await }).await;
    assert!(took.is_some(), "revoke by tag did not reach the gateway within 100 ms");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_lists_and_revokes_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start_in(dir.path(), "").await;
    let cookie = session_of(&gw, "alice", ALICE_PW).await;
    let config = dir.path().join("cli.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: {{ http: \"127.0.0.1:0\" }}\ndata_dir: \"{}\"\nidentity: {{ seed: seed.yaml }}\napps: []\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let (code, out, err) = run_bin(&["session", "-c", cfg, "list", "--user", "alice"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("alice") && !out.contains(&cookie), "{out}");
    let (code, out, err) = run_bin(&["session", "-c", cfg, "revoke", "--user", "alice"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("revoked 1"), "{out}");
    let took = within(Duration::from_millis(100), || async { !logged_in(&gw, &cookie).await }).await;
    assert!(
        took.is_some(),
        "the CLI's revocation did not reach the gateway within 100 ms"
    );

    // `flowgate user passwd` ends the user's sessions in the running gateway too.
    let bob = session_of(&gw, "bob", "bob's secret 42").await;
    assert!(logged_in(&gw, &bob).await);
    let (code, _, err) = run_bin(&["user", "-c", cfg, "passwd", "bob"], "a new passphrase for bob\n");
    assert_eq!(code, 0, "{err}");
    let took = within(Duration::from_millis(100), || async { !logged_in(&gw, &bob).await }).await;
    assert!(
        took.is_some(),
        "a password changed from the CLI left bob's session working"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_changes_and_disabling_apply_on_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start_in(dir.path(), "").await;
    let cookie = session_of(&gw, "alice", ALICE_PW).await;
    assert!(logged_in(&gw, &cookie).await);
    let before = gw.upstream.last().header("x-forwarded-groups").map(str::to_string);
    assert!(
        before
            .as_deref()
            .is_some_and(|g| g.contains("admins") && !g.contains("auditors")),
        "{before:?}"
    );

    // Another process (the CLI, an admin tool) changes the user, then announces it.
    let cfg = config_in(dir.path(), "", gw.upstream.addr);
    let store = flowgate::identity::UserStore::connect(
        &cfg.identity.database,
        flowgate::identity::PasswordHasher::new(flowgate::identity::HashParams::from(cfg.identity.argon2)),
    )
    .await
    .unwrap();
    let alice = store.get_by_username("alice").await.unwrap().unwrap();
    store
        .update_user(
            alice.id,
            flowgate::identity::UserUpdate {
                add_groups: vec!["auditors".into()],
                name: Some("Alice Renamed".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let backend = flowgate::session::revoke::open_backend(&cfg).await.unwrap();
    flowgate::session::revoke::user_changed(backend.as_ref(), alice.id)
        .await
        .unwrap();
    let took = within(Duration::from_millis(100), || async {
        logged_in(&gw, &cookie).await
            && gw
                .upstream
                .last()
                .header("x-forwarded-groups")
                .is_some_and(|g| g.contains("auditors"))
    })
    .await;
    assert!(took.is_some(), "the new group did not reach the upstream");

    store
        .update_user(
            alice.id,
            flowgate::identity::UserUpdate {
                is_active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    flowgate::session::revoke::user_changed(backend.as_ref(), alice.id)
        .await
        .unwrap();
    let took = within(Duration::from_millis(100), || async { !logged_in(&gw, &cookie).await }).await;
    assert!(took.is_some(), "a disabled user's session still works");
    store.close().await;
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_flow_state_restarts_the_flow_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start_in(dir.path(), "").await;
    let browser = bare_client();
    let r = browser
        .get(gw.url("/private"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    let flow_path = location(&r);
    let r = browser.get(gw.url(&flow_path)).send().await.unwrap();
    let id = set_cookie_value(&r, "flowgate_session").expect("a flow session");
    let html = r.text().await.unwrap();
    let r = browser
        .post(gw.url(&flow_path))
        .header("cookie", format!("flowgate_session={id}"))
        .form(&[("csrf_token", csrf_of(&html).as_str()), ("uid_field", "alice")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);

    // A record written by a future version.
    let sessions = &gw.running.as_ref().unwrap().sessions;
    let s = sessions.lookup(&id).await.expect("the flow session");
    sessions
        .save_flow(&s, Some(br#"{"v":999,"state":{"flow":"x"}}"#))
        .await
        .unwrap();
    let r = browser
        .get(gw.url(&flow_path))
        .header("cookie", format!("flowgate_session={id}"))
        .send()
        .await
        .unwrap();
    assert!(
        !r.status().is_server_error(),
        "unusable state must not be a server error"
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("could not be resumed"), "no message:\n{html}");
    assert!(
        html.contains("uid_field"),
        "the flow did not restart at its first stage:\n{html}"
    );

    // Garbage in place of the sealed record: the same.
    sessions.save_flow(&s, Some(b"\xff not json")).await.unwrap();
    let r = browser
        .get(gw.url(&flow_path))
        .header("cookie", format!("flowgate_session={id}"))
        .send()
        .await
        .unwrap();
    assert!(!r.status().is_server_error());
    assert!(r.text().await.unwrap().contains("could not be resumed"));
    gw.stop().await;
}
