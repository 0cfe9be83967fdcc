//! Secrets never reach the logs: a login at TRACE level leaves no password, session id or
//! cookie value in the captured output.

mod common;
use common::*;
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn login_logs_no_secrets() {
    let buf = Buf::default();
    let writer = buf.clone();
    {
        use tracing_subscriber::filter::{filter_fn, FilterExt};
        use tracing_subscriber::prelude::*;
        // Everything the gateway process logs at TRACE, through flowgate's own record filter; the
        // test's HTTP client is left out.
        let env = tracing_subscriber::EnvFilter::new(
            "flowgate=trace,pingora=trace,pingora_core=trace,pingora_proxy=trace,sqlx=trace,moka=trace,rustls=trace",
        );
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .with_ansi(false);
        tracing_subscriber::registry()
            .with(layer.with_filter(env.and(filter_fn(flowgate::log_record_allowed))))
            .init();
    }
    let _ = tracing_log::LogTracer::init();
    let gw = TestGateway::start().await;
    let c = client();
    // A failed attempt with a planted secret, then the real login.
    let planted = "PLANTED-secret-Zx9!";
    html_login(&c, &gw.url(""), "/", "alice", planted).await;
    let c = client();
    let done = html_login(&c, &gw.url(""), "/", "alice", ALICE_PASSWORD).await;
    let id = set_cookie_value(&done, "flowgate_session").unwrap();
    assert_eq!(c.get(gw.url("/x")).send().await.unwrap().status(), 200);
    c.get(gw.url("/logout")).send().await.unwrap();
    gw.stop().await;
    let logs = String::from_utf8_lossy(&buf.0.lock().unwrap()).into_owned();
    assert!(logs.contains("login"), "the capture works: {logs}");
    for secret in [planted, ALICE_PASSWORD, id.as_str()] {
        if let Some(i) = logs.find(secret) {
            panic!(
                "{secret:?} appeared in the logs: ...{}...",
                &logs[i.saturating_sub(600)..(i + 100).min(logs.len())]
            );
        }
    }
    assert!(!logs.contains("$argon2id$"), "a password hash appeared in the logs");
}
