//! The gateway on both user-database backends: a login forwards the same identity from SQLite
//! and from a real PostgreSQL (`common::postgres`); with PostgreSQL stopped, logins answer 503
//! while sessions already made keep being proxied, until the server is back; and the `user`
//! commands of the binary work on PostgreSQL.

use crate::common::postgres::{Backend, Fresh, PG_PASSWORD};
use crate::common::*;
use flowgate::config::UserDatabase;
use serde_json::json;

async fn gateway_login(backend: Backend) {
    let fresh = Fresh::new(backend).await;
    let gw = TestGateway::start_with(DEFAULT_APP, &fresh.identity_yaml()).await;
    let c = client();
    let done = html_login(&c, &gw.url(""), "/docs?x=1", "alice", ALICE_PASSWORD).await;
    assert_eq!(done.status(), 302, "{backend:?}");
    assert_eq!(location(&done), "/docs?x=1");
    let r = c.get(gw.url("/docs?x=1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = gw.upstream.last();
    assert_eq!(seen.header("x-forwarded-user"), Some("alice"));
    assert_eq!(seen.header("x-forwarded-email"), Some("alice@example.test"));
    assert_eq!(seen.header("x-forwarded-groups"), Some("admins,staff"));
    assert_eq!(seen.header("x-forwarded-name"), Some("Alice Example"));
    // A wrong password and an inactive user fail alike on both.
    let r = html_login(&client(), &gw.url(""), "/", "bob", "wrong").await;
    assert_eq!(r.status(), 400);
    let r = html_login(&client(), &gw.url(""), "/", "carol", "carol pw").await;
    assert_ne!(r.status(), 302, "{backend:?}: inactive carol cannot log in");
    // The gateway seeded the database the config names.
    let store = fresh.open().await;
    let names: Vec<String> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
    store.close().await;
    gw.stop().await;
}

#[tokio::test]
async fn gateway_login_sqlite() {
    gateway_login(Backend::Sqlite).await;
}

#[tokio::test]
async fn gateway_login_postgres() {
    gateway_login(Backend::Postgres).await;
}

/// Identification's POST (the first stage that reads the database) for `user`: its status and
/// body, as a page or as the executor API's JSON.
async fn identify(gw: &TestGateway, user: &str, json_api: bool) -> (u16, String) {
    identify_full(gw, user, json_api).await.0
}

/// [`identify`] with the `Retry-After` header.
async fn identify_full(gw: &TestGateway, user: &str, json_api: bool) -> ((u16, String), Option<String>) {
    let c = client();
    let flow = gw.url("/.flowgate/flow/default-authentication-flow/");
    let page = c.get(&flow).header("accept", BROWSER_ACCEPT).send().await.unwrap();
    assert_eq!(page.status(), 200, "the login page needs no database");
    let csrf = csrf_of(&page.text().await.unwrap());
    let r = if json_api {
        c.post(gw.url("/.flowgate/api/v3/flows/executor/default-authentication-flow/"))
            .json(&json!({ "uid_field": user }))
            .send()
            .await
            .unwrap()
    } else {
        c.post(&flow)
            .form(&[("csrf_token", csrf.as_str()), ("uid_field", user)])
            .send()
            .await
            .unwrap()
    };
    let status = r.status().as_u16();
    let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    ((status, r.text().await.unwrap()), retry_after)
}

#[tokio::test]
async fn postgres_down_logins_503_sessions_proxied_recovers() {
    let mut fresh = Fresh::new(Backend::Postgres).await;
    let gw = TestGateway::start_with(DEFAULT_APP, &fresh.identity_yaml()).await;
    let alice = session_of(&gw, "alice", ALICE_PASSWORD).await;
    assert!(users(&gw).is_postgres());

    fresh.pg.as_mut().unwrap().stop();
    // The answer comes once the pool gives up waiting for a connection, not much later.
    let started = tokio::time::Instant::now();
    let (status, body) = identify(&gw, "bob", false).await;
    let waited = started.elapsed();
    eprintln!("identification answered 503 after {waited:?} with PostgreSQL stopped");
    assert_eq!(status, 503, "{body}");
    assert!(
        waited < flowgate::identity::PG_ACQUIRE_TIMEOUT * 3,
        "the 503 took {waited:?}"
    );
    assert!(body.contains("unavailable right now"), "{body}");
    let ((status, body), retry_after) = identify_full(&gw, "bob", true).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("5"));
    let detail: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(detail["detail"].as_str().unwrap().contains("unavailable"), "{body}");
    assert!(users(&gw).is_unavailable());

    // The session made before the outage is in the session store, not the user database.
    let before = gw.upstream.count();
    let r = with_cookie(&gw, reqwest::Method::GET, "/during-outage", &alice, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(gw.upstream.count(), before + 1);
    let seen = gw.upstream.last();
    assert_eq!(seen.uri, "/during-outage");
    assert_eq!(seen.header("x-forwarded-user"), Some("alice"));

    // The server returns; the gateway reconnects by itself.
    fresh.pg.as_mut().unwrap().start_again();
    let bob = session_of(&gw, "bob", BOB_PASSWORD).await;
    assert!(logged_in(&gw, &bob).await);
    assert!(!users(&gw).is_unavailable());
    assert!(logged_in(&gw, &alice).await);
    gw.stop().await;
}

/// The `user` commands of the binary work on a PostgreSQL database, with the password given by
/// environment variable, and see what the gateway's store sees.
#[tokio::test]
async fn cli_user_commands_on_postgres() {
    let fresh = Fresh::new(Backend::Postgres).await;
    let UserDatabase::Postgres(pg) = &fresh.db else {
        unreachable!()
    };
    let cfg = fresh.dir.path().join("f.yaml");
    std::fs::write(
        &cfg,
        format!(
            "listen: {{ http: \"127.0.0.1:0\" }}\nidentity: {{ database: \"{}\", password_env: FLOWGATE_TEST_PG_PASSWORD }}\n",
            pg.url
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let run = |args: &[&str], stdin: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_flowgate"))
            .args(args)
            .env("FLOWGATE_TEST_PG_PASSWORD", PG_PASSWORD)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(stdin.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    };
    let (code, out, err) = run(
        &[
            "user",
            "-c",
            c,
            "add",
            "dora",
            "--email",
            "dora@example.test",
            "--group",
            "ops",
        ],
        "pw-one\n",
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = run(&["user", "-c", c, "add", "DORA"], "x\n");
    assert_ne!(code, 0);
    assert!(err.contains("already exists"), "{err}");
    assert!(!err.contains(PG_PASSWORD));
    let (_, out, _) = run(&["user", "-c", c, "list"], "");
    assert!(out.contains("dora\tdora@example.test\tops\tactive"), "{out}");
    let store = fresh.open().await;
    let dora = store.get_by_username("dora").await.unwrap().unwrap();
    assert!(store.verify_password(&dora, "pw-one").await.unwrap());
    store.close().await;
    // A wrong password is refused by the server, and the message does not repeat it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["user", "-c", c, "list"])
        .env("FLOWGATE_TEST_PG_PASSWORD", "not-the-password-31")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("not-the-password-31"), "{err}");
}
