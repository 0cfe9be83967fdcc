//! A gateway with an admin listener (its bearer token read from a file) and an events file, and
//! calls to its admin API: what the operations and API-client tests share.

use super::{bare_client, TestGateway};
use serde_json::Value;

/// Starts a gateway serving `apps` with the admin listener on `admin` (`127.0.0.1:0` for any
/// port) guarded by `token`, events written to `events.jsonl`; `extra` is appended to the
/// config. The returned directory holds the token file: keep it as long as the gateway.
pub async fn start(apps: &str, admin: &str, token: &str, extra: &str) -> (TestGateway, tempfile::TempDir) {
    let token_dir = tempfile::tempdir().unwrap();
    let file = token_dir.path().join("admin-token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let extra = format!(
        "{extra}admin: {{ listen: \"{admin}\", token_file: \"{}\" }}\nevents: {{ file: events.jsonl }}\n",
        file.display()
    );
    (TestGateway::start_with(apps, &extra).await, token_dir)
}

/// The admin listener's URL of `path`.
pub fn url(gw: &TestGateway, path: &str) -> String {
    let addr = gw.running.as_ref().unwrap().admin_addr.expect("admin listener");
    format!("http://{addr}{path}")
}

/// One admin API call with `token`: the status and the JSON answer (`Null` when none).
pub async fn api(
    gw: &TestGateway,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rb = bare_client().request(method, url(gw, path)).bearer_auth(token);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}
