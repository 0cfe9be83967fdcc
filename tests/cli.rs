//! Smoke tests of the real binary: `demo` serves a login in front of its echo app, and the
//! `user` and `hash-password` commands work against a real SQLite file.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_flowgate");

fn run(args: &[&str], stdin: &str) -> (i32, String, String) {
    crate::common::run_bin(args, stdin)
}

/// A config naming only a listener and a SQLite file under a fresh temp dir.
fn database_config() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("f.yaml");
    std::fs::write(
        &cfg,
        "listen: { http: \"127.0.0.1:0\" }\nidentity: { database: \"sqlite://db/users.db\" }\n",
    )
    .unwrap();
    (dir, cfg)
}

#[test]
fn user_commands_manage_the_database() {
    let (dir, cfg) = database_config();
    let c = cfg.to_str().unwrap();
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
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("created user dora"));
    assert!(
        dir.path().join("db/users.db").exists(),
        "the database is created on first use"
    );
    let (code, _, err) = run(&["user", "-c", c, "add", "DORA"], "x\n");
    assert_ne!(code, 0);
    assert!(err.contains("already exists"), "{err}");
    let (_, out, _) = run(&["user", "-c", c, "list"], "");
    assert!(out.contains("dora\tdora@example.test\tops\tactive"), "{out}");
    let (code, out, _) = run(&["user", "-c", c, "passwd", "dora"], "pw-two\n");
    assert_eq!(code, 0);
    assert!(out.contains("password changed"));
    let (code, _, err) = run(&["user", "-c", c, "passwd", "nobody"], "pw\n");
    assert_ne!(code, 0);
    assert!(err.contains("nobody"), "{err}");
    let (code, _, err) = run(&["user", "-c", c, "add", "emil"], "");
    assert_ne!(code, 0, "an empty password is refused");
    assert!(err.contains("empty password"), "{err}");
    let (code, out, _) = run(&["user", "-c", c, "delete", "dora"], "");
    assert_eq!(code, 0);
    assert!(out.contains("deleted dora"));
    let (code, _, _) = run(&["user", "-c", c, "delete", "dora"], "");
    assert_ne!(code, 0);
    let (code, out, _) = run(&["hash-password"], "secret\n");
    assert_eq!(code, 0);
    assert!(out.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{out}");
}

#[test]
fn invitation_commands_manage_the_database() {
    let (_dir, cfg) = database_config();
    let c = cfg.to_str().unwrap();
    let inv = |args: &[&str]| {
        let mut all = vec!["invitation", "-c", c];
        all.extend_from_slice(args);
        run(&all, "")
    };
    let (code, out, err) = inv(&[
        "create",
        "team",
        "--expires",
        "7d",
        "--single-use",
        "--fixed-data",
        "{\"email\":\"a@b.test\"}",
    ]);
    assert_eq!(code, 0, "{err}");
    let token = out.trim().to_string();
    assert!(token.len() >= 32, "{out}");
    assert!(err.contains("?itoken="), "{err}");
    let (code, out, _) = inv(&["list"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("team\tflow=*\texpires_ms="), "{out}");
    assert!(out.contains("single_use=true") && !out.contains(&token), "{out}");
    // Bad input: each a usage error, nothing created.
    for (args, why) in [
        (&["create", "x", "--flow", "nope"][..], "unknown flow"),
        (&["create", "x", "--expires", "soon"][..], "--expires"),
        (&["create", "x", "--fixed-data", "[1]"][..], "--fixed-data"),
    ] {
        let (code, _, err) = inv(args);
        assert_eq!(code, 64, "{args:?}");
        assert!(err.contains(why), "{args:?}: {err}");
    }
    let (_, out, _) = inv(&["list"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let (code, _, _) = inv(&["delete", "team"]);
    assert_eq!(code, 0);
    let (code, _, err) = inv(&["delete", "team"]);
    assert_eq!(code, 1);
    assert!(err.contains("no invitation named"), "{err}");
}

#[tokio::test]
async fn demo_serves_a_login_in_front_of_the_echo_app() {
    let mut child = Command::new(BIN)
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut url, mut password) = (String::new(), String::new());
    let start = flowgate::session::clock::instant_now();
    while (url.is_empty() || password.is_empty()) && start.elapsed() < Duration::from_secs(30) {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(u) = line.trim().strip_prefix("Open:") {
            url = u.trim().trim_end_matches('/').to_string();
        }
        if let Some(p) = line.trim().strip_prefix("Password:") {
            password = p.trim().to_string();
        }
    }
    assert!(
        !url.is_empty() && !password.is_empty(),
        "demo printed its URL and password"
    );
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let api = format!("{url}/.flowgate/api/v3/flows/executor/default-authentication-flow/");
    c.get(&api).send().await.unwrap();
    let r = c
        .post(&api)
        .json(&serde_json::json!({"uid_field": "demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let r = c
        .post(&api)
        .json(&serde_json::json!({"password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let v: serde_json::Value = c.get(&api).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["component"], "xak-flow-redirect");
    let page = c
        .get(format!("{url}/hello"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Hello, demo"), "{page}");
    assert!(page.contains("<th>x-forwarded-user</th><td>demo</td>"), "{page}");
    let _ = child.kill();
    let _ = child.wait();
}
