//! Availability and durability: an upstream that resets mid-response gives the client a closed
//! connection or a 502 and the gateway keeps serving; the session cache stays within
//! `max_sessions` under a flood of logins; `kill -9` in the middle of enrollments loses no
//! committed user and leaves the SQLite database intact. Timing figures (ENUM-2, AVAIL-4,
//! PASS-4) come from scripts in `benches/`, not from here.

use crate::common::*;
use std::time::Duration;

/// An upstream that, by path, sends part of a response and then resets the connection
/// (SO_LINGER 0, so the kernel sends RST instead of FIN).
async fn resetting_upstream() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else { continue };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).into_owned();
                let part: Vec<u8> = if head.starts_with("GET /flaky/head") {
                    b"HTTP/1.1 200 OK\r\nContent-Le".to_vec()
                } else if head.starts_with("GET /flaky/chunked") {
                    let mut v = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n".to_vec();
                    v.extend(std::iter::repeat_n(b'c', 100));
                    v
                } else {
                    let mut v = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
                    v.extend(std::iter::repeat_n(b'b', 1000));
                    v
                };
                let _ = s.write_all(&part).await;
                let _ = s.flush().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = s.set_zero_linger();
                drop(s);
            });
        }
    });
    addr
}

// Attack ids: AVAIL-2.
#[tokio::test]
async fn upstream_reset_mid_response_is_a_closed_connection_or_502() {
    // AVAIL-2.
    let flaky = resetting_upstream().await;
    let apps = format!(
        "  - name: flaky\n    path_prefix: /flaky\n    upstream: \"http://{flaky}\"\n    skip_auth: [\"^/\"]\n  - name: app\n    upstream: \"http://UPSTREAM\"\n    skip_auth: [\"^/\"]\n"
    );
    let gw = TestGateway::start_with(&apps, "").await;
    for round in 0..10 {
        for path in ["/flaky/head", "/flaky/body", "/flaky/chunked"] {
            let what = format!("{path} round {round}");
            match bare_client().get(gw.url(path)).send().await {
                Err(_) => {}
                Ok(r) => {
                    let status = r.status().as_u16();
                    let body = r.bytes().await;
                    match status {
                        502 => {}
                        // Headers were already on their way: the body must not end cleanly.
                        200 => assert!(body.is_err(), "{what}: a truncated body looked complete"),
                        s => panic!("{what}: answered {s}"),
                    }
                }
            }
            let r = bare_client().get(gw.url("/ok")).send().await.unwrap();
            assert_eq!(r.status(), 200, "after {what}");
            assert_eq!(r.text().await.unwrap(), "upstream ok");
        }
    }
    // The same over one kept-alive client connection.
    let c = client();
    for _ in 0..5 {
        let _ = c.get(gw.url("/flaky/body")).send().await.map(|r| r.bytes());
        assert_eq!(c.get(gw.url("/ok")).send().await.unwrap().status(), 200);
    }
    gw.stop().await;
}

const LOGIN: &str = "/.flowgate/flow/default-authentication-flow/";

// Attack ids: AVAIL-3.
#[tokio::test]
async fn session_cache_stays_within_max_sessions() {
    // AVAIL-3: a flood of flow starts and logins against max_sessions: 50 and
    // max_pending_flows: 50 (unfinished flows have their own space since FLOOD-2).
    let extra =
        format!("{NO_LIMITS}session: {{ ttl: 2h, idle_timeout: 30m, max_sessions: 50, max_pending_flows: 50 }}\n");
    let gw = TestGateway::start_with(DEFAULT_APP, &extra).await;
    let sessions = gw.running.as_ref().unwrap().sessions.clone();
    let mut flow_ids = Vec::new();
    for i in 0..200 {
        let r = bare_client().get(gw.url(LOGIN)).send().await.unwrap();
        flow_ids.push(set_cookie_value(&r, "flowgate_session").unwrap());
        if i % 40 == 39 {
            assert!(
                sessions.pending_len() <= 50,
                "{} unfinished flows after {} flow starts",
                sessions.pending_len(),
                i + 1
            );
        }
    }
    let mut logins = Vec::new();
    for _ in 0..5 {
        logins.push(session_of(&gw, "alice", ALICE_PASSWORD).await);
        for _ in 0..30 {
            bare_client().get(gw.url(LOGIN)).send().await.unwrap();
        }
        assert!(sessions.len() <= 50, "{} sessions", sessions.len());
        assert!(
            sessions.pending_len() <= 50,
            "{} unfinished flows",
            sessions.pending_len()
        );
    }
    assert!(sessions.len() <= 50, "{} sessions", sessions.len());
    // Every login was admitted and works; the oldest flow sessions were evicted.
    for id in &logins {
        assert!(
            logged_in(&gw, id).await,
            "a login must not be refused or evicted by flow starts"
        );
    }
    let oldest_alive = flow_ids[..50].iter().filter(|id| sessions.get(id).is_some()).count();
    assert_eq!(oldest_alive, 0, "the oldest sessions are evicted first");
    gw.stop().await;
}

/// Enrolls `name` through the JSON executor; true when the flow finished (user committed).
async fn enroll(c: &reqwest::Client, base: &str, name: &str) -> bool {
    let url = format!("{base}/.flowgate/api/v3/flows/executor/default-enrollment-flow/");
    let pw = "violet tangerine expedition 77";
    let Ok(r) = c.get(&url).send().await else { return false };
    if r.status() != 200 {
        return false;
    }
    let body = serde_json::json!({
        "username": name, "name": name, "email": format!("{name}@example.test"),
        "password": pw, "password_repeat": pw,
    });
    match c.post(&url).json(&body).send().await {
        Ok(r) if r.status() == 302 => {}
        _ => return false,
    }
    match c.get(&url).send().await {
        Ok(r) => r
            .json::<serde_json::Value>()
            .await
            .is_ok_and(|v| v["component"] == "xak-flow-redirect"),
        Err(_) => false,
    }
}

// No attack id: durability of committed writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_enrollment_loses_no_committed_user() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let flows = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/flows/*.yaml");
    let main = dir.path().join("main.yaml");
    std::fs::write(
        &main,
        format!(
            "listen: {{ http: \"127.0.0.1:{port}\" }}\ndata_dir: \"{}\"\nmail: {{ transport: file }}\nidentity: {{ argon2: {{ memory_kib: 19456, iterations: 2, parallelism: 1 }} }}\napps:\n  - {{ name: app, upstream: \"http://127.0.0.1:9\" }}\ninclude: [\"{}\"]\n",
            dir.path().display(),
            flows.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["run", "-c", main.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let probe = bare_client();
    let mut up = false;
    for _ in 0..200 {
        if probe.get(format!("{base}/.flowgate/health")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "flowgate did not start");
    // Four clients enroll users concurrently; the process is killed while they run.
    let committed = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (base, committed) = (base.clone(), committed.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..1000 {
                let name = format!("user-{w}-{i}");
                if enroll(&client(), &base, &name).await {
                    committed.lock().unwrap().push(name);
                } else {
                    break;
                }
            }
        }));
    }
    while committed.lock().unwrap().len() < 12 {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let committed = committed.lock().unwrap().clone();
    // Reopen the database the way flowgate does and check it.
    let store = flowgate::identity::UserStore::open(
        &dir.path().join("flowgate.db"),
        flowgate::identity::PasswordHasher::new(flowgate::identity::HashParams {
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
        }),
    )
    .await
    .unwrap();
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    for name in &committed {
        let u = store.get_by_username(name).await.unwrap();
        assert!(u.is_some(), "{name} was acknowledged but is missing after kill -9");
    }
    let stored = store.list_users().await.unwrap().len();
    assert!(
        stored >= committed.len(),
        "{stored} stored, {} acknowledged",
        committed.len()
    );
    store.close().await;
}
