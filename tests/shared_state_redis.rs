//! Shared state's store settings and the redis connection (docs/decisions/0010): bad
//! `session.store` settings are config errors, redis AUTH with the URL from a file, `rediss://`
//! with AUTH through the CLI, and a lost pub/sub message or a reconnect bounded by the near
//! cache's life.

use crate::common::redis::Redis;
use crate::common::*;
use crate::shared_state::{config_in, redis_extra, start_in, within, ALICE_PW};
use flowgate::config::{Config, Source};
use flowgate::Gateway;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

#[test]
fn bad_store_settings_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let check = |session: &str| -> String {
        let text = format!(
            "listen: {{ http: \"127.0.0.1:0\" }}\ndata_dir: \"{}\"\nsession: {session}\napps: []\n",
            dir.path().display()
        );
        match Config::from_sources(vec![Source {
            name: "gw.yaml".into(),
            text,
            base_dir: PathBuf::from(dir.path()),
        }]) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    };
    let e = check("{ store: memcached }");
    assert!(
        e.contains("session.store") && e.contains("expected one of: local, redis"),
        "{e}"
    );
    let e = check("{ store: redis }");
    assert!(e.contains("session.store: redis needs session.redis"), "{e}");
    let e = check("{ store: redis, redis: { key_prefix: \"x\" } }");
    assert!(e.contains("set one of url, url_env, url_file"), "{e}");
    let e = check("{ store: redis, redis: { url: \"http://secretpw@h/\" } }");
    assert!(e.contains("invalid redis URL") && !e.contains("secretpw"), "{e}");
    let e = check("{ store: redis, redis: { url: \"redis://h/\", url_env: X } }");
    assert!(e.contains("set only one of url"), "{e}");
    let e = check("{ store: redis, redis: { url_env: FLOWGATE_TEST_NO_SUCH_VAR } }");
    assert!(e.contains("FLOWGATE_TEST_NO_SUCH_VAR"), "{e}");
    let e = check("{ store: local, redis: { url: \"redis://h/\" } }");
    assert!(e.contains("only used with session.store: redis"), "{e}");
    let e = check("{ store: redis, redis: { url: \"redis://h/\", key_prefix: \"a b\" } }");
    assert!(e.contains("session.redis.key_prefix"), "{e}");
    assert_eq!(check("{ store: redis, redis: { url: \"rediss://:pw@h:6380/0\" } }"), "");
    assert_eq!(check("{ store: local }"), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_auth_with_the_url_from_a_file() {
    let redis = Redis::start_with(|_, port| {
        vec![
            "--port".into(),
            port.to_string(),
            "--requirepass".into(),
            "s3cret-pw".into(),
        ]
    });
    let shared = tempfile::tempdir().unwrap();
    let users_db = shared.path().join("users.db");
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("redis-url"),
        format!("redis://:s3cret-pw@127.0.0.1:{}/\n", redis.port),
    )
    .unwrap();
    let extra = format!(
        "identity: {{ database: \"{}\", seed: seed.yaml }}\nsession: {{ store: redis, redis: {{ url_file: redis-url }} }}\n",
        users_db.display()
    );
    let gw = start_in(d.path(), &extra).await;
    let cookie = session_of(&gw, "alice", ALICE_PW).await;
    assert!(logged_in(&gw, &cookie).await);
    assert!(
        redis.cmd(&["AUTH", "s3cret-pw"]).starts_with("+OK"),
        "the server asks for the password"
    );
    gw.stop().await;

    // A wrong password: the gateway does not start, and the error does not echo the URL.
    std::fs::write(
        d.path().join("redis-url"),
        format!("redis://:wrong-pw@127.0.0.1:{}/\n", redis.port),
    )
    .unwrap();
    let upstream = Upstream::spawn().await;
    let cfg = config_in(d.path(), &extra, upstream.addr);
    let err = match Gateway::start(cfg).await {
        Ok(_) => panic!("started with a wrong Redis password"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("session store"), "{err}");
    assert!(!err.contains("wrong-pw"), "the password is in the error: {err}");
}

#[test]
fn rediss_with_auth_through_the_cli() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = flowgate::tls::write_dev_certificate(certs.path(), &["localhost".into()]).unwrap();
    let (c2, k2) = (cert.clone(), key.clone());
    let redis = Redis::start_with(move |_, port| {
        vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            c2.display().to_string(),
            "--tls-key-file".into(),
            k2.display().to_string(),
            "--tls-ca-cert-file".into(),
            c2.display().to_string(),
            "--tls-auth-clients".into(),
            "no".into(),
            "--requirepass".into(),
            "tls-pw".into(),
        ]
    });
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("seed.yaml"), SEED).unwrap();
    let config = d.path().join("cli.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: {{ http: \"127.0.0.1:0\" }}\ndata_dir: \"{}\"\nidentity: {{ seed: seed.yaml }}\nsession: {{ store: redis, redis: {{ url: \"rediss://:tls-pw@localhost:{}/\" }} }}\napps: []\n",
            d.path().display(),
            redis.port
        ),
    )
    .unwrap();
    let run = |trust: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_flowgate"));
        c.args(["session", "-c", config.to_str().unwrap(), "list"]);
        if trust {
            // rustls-native-certs reads the trust store from here (the server's own certificate).
            c.env("SSL_CERT_FILE", &cert);
        } else {
            c.env("SSL_CERT_FILE", certs.path().join("none.pem"));
        }
        let out = c.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = run(true);
    assert_eq!(code, Some(0), "rediss:// with AUTH failed: {err}");
    let (code, err) = run(false);
    assert_ne!(code, Some(0), "an untrusted certificate was accepted");
    assert!(!err.contains("tls-pw"), "the password is in the error: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_message_is_bounded_by_the_cache_life_and_a_reconnect_drops_the_near_cache() {
    let redis = Redis::start();
    let shared = tempfile::tempdir().unwrap();
    let users_db = shared.path().join("users.db");
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let extra = redis_extra(&redis, &users_db);
    let a = start_in(da.path(), &extra).await;
    let b = start_in(db.path(), &extra).await;
    let first = session_of(&a, "alice", ALICE_PW).await;
    let second = session_of(&a, "bob", "bob's secret 42").await;
    assert!(
        logged_in(&b, &first).await && logged_in(&b, &second).await,
        "B caches both"
    );

    // Deleted behind the gateways' backs: no message is ever sent.
    let key = |id: &str| format!("t:s:{}", flowgate::session::backend::key_of(id));
    assert!(redis.cmd(&["DEL", &key(&first)]).starts_with(":1"));
    assert!(logged_in(&b, &first).await, "the cached copy is still in its life");
    b.clock.advance(flowgate::session::NEAR_CACHE_LIFE);
    assert!(!logged_in(&b, &first).await, "a copy past its life is read again");

    // The invalidation channel drops and comes back: B forgets every cached copy.
    assert!(logged_in(&b, &second).await, "read again, cached afresh");
    assert!(redis.cmd(&["DEL", &key(&second)]).starts_with(":1"));
    assert!(logged_in(&b, &second).await, "still cached");
    assert!(redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]).starts_with(':'));
    let took = within(Duration::from_secs(5), || async { !logged_in(&b, &second).await }).await;
    assert!(took.is_some(), "the near cache survived a reconnect of the channel");
    a.stop().await;
    b.stop().await;
}
