//! Smoke tests of the real binary: `demo` serves a login in front of its echo app, and the
//! `user` and `hash-password` commands work against a real SQLite file.

mod common;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_flowgate");

fn run(args: &[&str], stdin: &str) -> (i32, String, String) {
    common::run_bin(args, stdin)
}

#[test]
fn user_commands_manage_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("f.yaml");
    std::fs::write(
        &cfg,
        "listen: { http: \"127.0.0.1:0\" }\nidentity: { database: \"sqlite://db/users.db\" }\n",
    )
    .unwrap();
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
