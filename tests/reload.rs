//! Hot reload (CONF-1): a changed config replaces the running one atomically, sessions survive,
//! a bad file keeps the old config and reports every error, requests in flight finish, and the
//! file watcher notices changes.

use crate::common::*;
use std::path::Path;
use std::time::Duration;

fn config_file(dir: &Path, upstream: std::net::SocketAddr, preset: &str) -> String {
    let flows = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/flows/*.yaml");
    format!(
        "listen: {{ http: \"127.0.0.1:0\" }}\ndata_dir: \"{}\"\nidentity: {{ seed: seed.yaml }}\nmail: {{ transport: file }}\napps:\n  - name: app\n    upstream: \"http://{upstream}\"\n    headers: {preset}\ninclude: [\"{}\"]\n",
        dir.display(),
        flows.display()
    )
}

async fn start(dir: &Path, upstream: &Upstream) -> flowgate::Running {
    std::fs::write(dir.join("seed.yaml"), SEED).unwrap();
    std::fs::write(dir.join("main.yaml"), config_file(dir, upstream.addr, "default")).unwrap();
    let cfg = flowgate::Config::load(&dir.join("main.yaml")).unwrap();
    flowgate::Gateway::start(cfg).await.unwrap()
}

#[tokio::test]
async fn reload_swaps_the_config_and_keeps_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::spawn().await;
    let running = start(dir.path(), &upstream).await;
    let base = format!("http://{}", running.http_addr.unwrap());
    let c = client();
    let r = html_login(&c, &base, "/x", "alice", "correct horse battery staple").await;
    assert_eq!(r.status(), 302);
    assert_eq!(c.get(format!("{base}/x")).send().await.unwrap().status(), 200);
    assert_eq!(upstream.last().header("x-forwarded-user"), Some("alice"));

    let main = dir.path().join("main.yaml");
    std::fs::write(&main, config_file(dir.path(), upstream.addr, "remote-user")).unwrap();
    running.reload(&main).unwrap();
    assert_eq!(
        c.get(format!("{base}/x")).send().await.unwrap().status(),
        200,
        "the session survived"
    );
    let seen = upstream.last();
    assert_eq!(seen.header("remote-user"), Some("alice"), "new header preset in effect");
    assert_eq!(seen.header("x-forwarded-user"), None);

    // A broken file: every error is returned and the running config stays.
    std::fs::write(
        &main,
        "listen: { http: \"127.0.0.1:0\" }\napps:\n  - name: app\n    upstream: 12\n    bogus: 1\n",
    )
    .unwrap();
    let err = running.reload(&main).unwrap_err().to_string();
    assert!(err.contains("main.yaml:5:5: apps[0]"), "{err}");
    assert_eq!(c.get(format!("{base}/x")).send().await.unwrap().status(), 200);
    assert_eq!(
        upstream.last().header("remote-user"),
        Some("alice"),
        "old config still serving"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn requests_in_flight_finish_across_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::spawn_with_delay(Duration::from_millis(1500)).await;
    let running = start(dir.path(), &upstream).await;
    let base = format!("http://{}", running.http_addr.unwrap());
    let c = client();
    html_login(&c, &base, "/x", "alice", "correct horse battery staple").await;
    let slow = tokio::spawn({
        let c = c.clone();
        let url = format!("{base}/slow");
        async move { c.get(url).send().await.map(|r| r.status().as_u16()) }
    });
    // Reload while the request waits for the upstream.
    while upstream.count() == 0 {
        tokio::task::yield_now().await;
    }
    let main = dir.path().join("main.yaml");
    std::fs::write(&main, config_file(dir.path(), upstream.addr, "remote-user")).unwrap();
    running.reload(&main).unwrap();
    assert_eq!(slow.await.unwrap().unwrap(), 200, "the request in flight completed");
    assert_eq!(
        upstream.last().header("x-forwarded-user"),
        Some("alice"),
        "its headers came from the old config"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn the_watcher_reloads_changed_files_once() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::spawn().await;
    let running = start(dir.path(), &upstream).await;
    let main = dir.path().join("main.yaml");
    let mut seen = flowgate::ConfigFingerprint::default();
    assert!(
        running.reload_if_changed(&main, &mut seen).is_none(),
        "first look only records"
    );
    assert!(running.reload_if_changed(&main, &mut seen).is_none(), "nothing changed");
    std::fs::write(&main, config_file(dir.path(), upstream.addr, "authentik")).unwrap();
    assert!(matches!(running.reload_if_changed(&main, &mut seen), Some(Ok(()))));
    assert!(running.reload_if_changed(&main, &mut seen).is_none(), "reloaded once");
    std::fs::write(&main, "not: [valid").unwrap();
    assert!(matches!(running.reload_if_changed(&main, &mut seen), Some(Err(_))));
    assert!(
        running.reload_if_changed(&main, &mut seen).is_none(),
        "a broken file is reported once"
    );
    running.shutdown().await;
}

#[test]
fn sighup_reloads_the_running_binary() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("seed.yaml"), SEED).unwrap();
    let main = dir.path().join("main.yaml");
    std::fs::write(
        &main,
        config_file(dir.path(), "127.0.0.1:9".parse().unwrap(), "default"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["run", "-c", main.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait_for = |needle: &str| loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) if l.contains(needle) => return l,
            Ok(_) => {}
            Err(_) => panic!("no log line containing {needle:?}"),
        }
    };
    wait_for("flowgate started");
    std::fs::write(&main, "listen: [broken").unwrap();
    Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    let line = wait_for("reload refused");
    assert!(line.contains("main.yaml"), "{line}");
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "still running after the bad reload, then stopped cleanly: {status}"
    );
}

/// A reload that withdraws `basic_auth_user_passwords` (or gives the app its own
/// `authentication_flow`) refuses the user's password at once, although a check of it was
/// remembered just before; app passwords keep working.
#[tokio::test]
async fn a_reload_withdrawing_user_passwords_refuses_a_remembered_check() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let upstream = Upstream::spawn().await;
    let running = start(dir.path(), &upstream).await;
    let main = dir.path().join("main.yaml");
    let with = |extra: &str| {
        config_file(dir.path(), upstream.addr, "default").replace(
            "    headers: default\n",
            &format!("    headers: default\n    basic_auth: true\n{extra}"),
        )
    };
    std::fs::write(&main, with("    basic_auth_user_passwords: true\n")).unwrap();
    running.reload(&main).unwrap();
    let base = format!("http://{}", running.http_addr.unwrap());
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:correct horse battery staple")
    );
    let call = || async {
        bare_client()
            .get(format!("{base}/x"))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(call().await, 200);
    assert_eq!(call().await, 200);
    std::fs::write(&main, with("")).unwrap();
    running.reload(&main).unwrap();
    assert_eq!(call().await, 401, "the user's password is no longer an API credential");
    std::fs::write(&main, with("    basic_auth_user_passwords: true\n")).unwrap();
    running.reload(&main).unwrap();
    assert_eq!(call().await, 200);
    std::fs::write(
        &main,
        with("    basic_auth_user_passwords: true\n    authentication_flow: default-authentication-flow\n"),
    )
    .unwrap();
    running.reload(&main).unwrap();
    assert_eq!(
        call().await,
        401,
        "an app with its own flow never takes the user's password"
    );
    running.shutdown().await;
}
