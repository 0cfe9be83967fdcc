//! API clients (`apps[].basic_auth`): curl-style clients with `Authorization: Basic` and
//! `Bearer` against a protected app. App passwords are made through the admin API and the CLI
//! (`flowgate token`), shown once and stored hashed; the user's own password only where the
//! operator allows it; a refusal is a 401 with `WWW-Authenticate`, never the login redirect;
//! revocation, disabling and deleting take effect at once although checks are cached;
//! attempts count against the login rate limits; the app never sees the credentials.

use crate::common::*;
use serde_json::{json, Value};

const TOKEN: &str = "admin-token-for-api-clients-0123";

struct Gw {
    gw: TestGateway,
    token_dir: tempfile::TempDir,
}

const APPS: &str =
    "  - name: app\n    upstream: \"http://UPSTREAM\"\n    basic_auth: true\n    basic_auth_user_passwords: true\n\
\x20 - name: other\n    hosts: [other.test]\n    upstream: \"http://UPSTREAM\"\n    basic_auth: true\n";

impl Gw {
    async fn start_on(admin: &str, extra: &str) -> Self {
        let (gw, token_dir) = admin::start(APPS, admin, TOKEN, extra).await;
        Self { gw, token_dir }
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        admin::api(&self.gw, TOKEN, method, path, body).await
    }

    async fn new_token(&self, user: &str, app: &str) -> (String, String) {
        let (s, v) = self
            .admin(
                reqwest::Method::POST,
                "/api/tokens",
                Some(json!({ "user": user, "app": app })),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        (
            v["key"].as_str().unwrap().to_string(),
            v["token"].as_str().unwrap().to_string(),
        )
    }

    fn events(&self) -> String {
        std::fs::read_to_string(self.gw.dir.path().join("events.jsonl")).unwrap_or_default()
    }
}

/// A curl-style request: `auth` is the whole `Authorization` value.
async fn call(gw: &TestGateway, host: Option<&str>, auth: Option<&str>) -> reqwest::Response {
    let mut rb = bare_client().get(gw.url("/dav/file.txt"));
    if let Some(h) = host {
        rb = rb.header("host", h);
    }
    if let Some(a) = auth {
        rb = rb.header("authorization", a);
    }
    rb.header("X-Forwarded-User", "admin").send().await.unwrap()
}

fn basic(user: &str, secret: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
    )
}

fn challenged(r: &reqwest::Response, realm: &str) {
    assert_eq!(r.status(), 401);
    let c = r.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        c.contains(&format!("Basic realm=\"{realm}\"")) && c.contains("Bearer"),
        "{c}"
    );
    assert!(r.headers().get("location").is_none(), "never the login redirect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_and_bearer_clients_reach_the_app_with_app_passwords() {
    let g = Gw::start_on("127.0.0.1:0", NO_LIMITS).await;
    let gw = &g.gw;
    let (key, token) = g.new_token("alice", "app").await;

    // Basic with the username and the app password.
    let r = call(gw, None, Some(&basic("alice", &token))).await;
    assert_eq!(r.status(), 200);
    let seen = gw.upstream.last();
    assert_eq!(
        seen.header("x-forwarded-user"),
        Some("alice"),
        "the client's copy is replaced"
    );
    assert_eq!(seen.header("x-forwarded-groups"), Some("admins,staff"));
    assert!(
        seen.header("authorization").is_none(),
        "the app never sees the credentials"
    );
    let before = gw.upstream.count();
    // Bearer with the same token.
    let r = call(gw, None, Some(&format!("Bearer {token}"))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("alice"));
    assert_eq!(gw.upstream.count(), before + 1);

    // The user's own password, which the operator allowed for `app` only.
    let r = call(gw, None, Some(&basic("alice", ALICE_PASSWORD))).await;
    assert_eq!(r.status(), 200);
    let r = call(gw, Some("other.test"), Some(&basic("alice", ALICE_PASSWORD))).await;
    challenged(&r, "other");
    // The token opens its own app only, and only as its owner.
    challenged(
        &call(gw, Some("other.test"), Some(&format!("Bearer {token}"))).await,
        "other",
    );
    challenged(&call(gw, None, Some(&basic("bob", &token))).await, "app");

    // Refusals are 401 with a challenge, for curl and for a browser sending credentials.
    let before = gw.upstream.count();
    challenged(&call(gw, None, None).await, "app");
    challenged(&call(gw, None, Some(&basic("alice", "wrong"))).await, "app");
    challenged(
        &call(
            gw,
            None,
            Some("Bearer fgp_000000000000_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
        )
        .await,
        "app",
    );
    for bad in [
        "Basic !!!",
        "Basic",
        "Bearer",
        "Digest x",
        "Basic YWxpY2U=",
        "Basic OnNlY3JldA==",
    ] {
        challenged(&call(gw, None, Some(bad)).await, "app");
    }
    let r = bare_client()
        .get(gw.url("/dav"))
        .header("accept", BROWSER_ACCEPT)
        .header("authorization", basic("alice", "wrong"))
        .send()
        .await
        .unwrap();
    challenged(&r, "app");
    let r = bare_client()
        .get(gw.url("/dav"))
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", "Bearer other")
        .send()
        .await
        .unwrap();
    challenged(&r, "app");
    assert_eq!(gw.upstream.count(), before, "no refused request reached the app");
    // A browser without credentials still gets the login page.
    let r = bare_client()
        .get(gw.url("/dav"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);

    // The list shows handles, never the token or its hash.
    let (s, list) = g.admin(reqwest::Method::GET, "/api/tokens?user=alice", None).await;
    assert_eq!(s, 200);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["key"], key.as_str());
    assert_eq!(list[0]["app"], "app");
    // `fgp_<hex key>_<secret>`: the secret itself may contain '_'.
    let secret = token.strip_prefix("fgp_").and_then(|t| t.split_once('_')).unwrap().1;
    assert!(!list.to_string().contains(secret));
    let stored = flowgate_hash_count(gw, secret).await;
    assert_eq!(stored, 0, "the secret is not stored in the clear");

    // Revocation and disabling take effect at once, although the positive check is cached.
    let (_, bob_token) = g.new_token("bob", "app").await;
    assert_eq!(call(gw, None, Some(&format!("Bearer {bob_token}"))).await.status(), 200);
    let (s, _) = g
        .admin(reqwest::Method::DELETE, &format!("/api/tokens/{key}"), None)
        .await;
    assert_eq!(s, 200);
    challenged(&call(gw, None, Some(&format!("Bearer {token}"))).await, "app");
    challenged(&call(gw, None, Some(&basic("alice", &token))).await, "app");
    let (s, _) = g
        .admin(reqwest::Method::DELETE, &format!("/api/tokens/{key}"), None)
        .await;
    assert_eq!(s, 404);
    let (s, _) = g.admin(reqwest::Method::POST, "/api/users/bob/disable", None).await;
    assert_eq!(s, 200);
    challenged(&call(gw, None, Some(&format!("Bearer {bob_token}"))).await, "app");
    let (s, _) = g.admin(reqwest::Method::POST, "/api/users/bob/enable", None).await;
    assert_eq!(s, 200);
    assert_eq!(call(gw, None, Some(&format!("Bearer {bob_token}"))).await.status(), 200);
    let (s, _) = g.admin(reqwest::Method::DELETE, "/api/users/bob", None).await;
    assert_eq!(s, 200);
    challenged(&call(gw, None, Some(&format!("Bearer {bob_token}"))).await, "app");

    // Bad requests to the tokens API.
    let (s, _) = g
        .admin(
            reqwest::Method::POST,
            "/api/tokens",
            Some(json!({ "user": "nobody", "app": "app" })),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = g
        .admin(
            reqwest::Method::POST,
            "/api/tokens",
            Some(json!({ "user": "alice", "app": "app", "expires": "soon" })),
        )
        .await;
    assert_eq!(s, 400);

    // Failures are audited, and no credential is in the events.
    let events = g.events();
    assert!(events.contains("invalid_api_credentials"), "{events}");
    assert!(events.contains("token_revoked"), "{events}");
    assert!(!events.contains(secret) && !events.contains(ALICE_PASSWORD) && !events.contains("wrong"));
    g.gw.stop().await;
}

/// How many stored app-password hashes equal `secret` itself (none may).
async fn flowgate_hash_count(gw: &TestGateway, secret: &str) -> usize {
    let db = gw.dir.path().join("flowgate.db");
    let bytes = std::fs::read(&db).unwrap_or_default();
    let wal = std::fs::read(gw.dir.path().join("flowgate.db-wal")).unwrap_or_default();
    assert!(!bytes.is_empty(), "the database file is at {}", db.display());
    [bytes, wal]
        .iter()
        .filter(|b| b.windows(secret.len()).any(|w| w == secret.as_bytes()))
        .count()
}

#[tokio::test]
async fn api_clients_are_rate_limited_like_logins() {
    let g = Gw::start_on(
        "127.0.0.1:0",
        "rate_limits: { password_per_ip: off, password_per_username: 3/1m }\n",
    )
    .await;
    let gw = &g.gw;
    for _ in 0..3 {
        challenged(&call(gw, None, Some(&basic("alice", "guess"))).await, "app");
    }
    let r = call(gw, None, Some(&basic("alice", ALICE_PASSWORD))).await;
    assert_eq!(r.status(), 429, "the right password waits too");
    assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    // The clock moves on: the limit lets attempts through again.
    gw.clock.advance(std::time::Duration::from_secs(61));
    assert_eq!(
        call(gw, None, Some(&basic("alice", ALICE_PASSWORD))).await.status(),
        200
    );
    // A positive check is cached: repeated requests cost no attempt.
    for _ in 0..5 {
        assert_eq!(
            call(gw, None, Some(&basic("alice", ALICE_PASSWORD))).await.status(),
            200
        );
    }
    g.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_cli_uses_the_admin_api_while_the_gateway_runs() {
    let port = unused_port();
    let g = Gw::start_on(&format!("127.0.0.1:{port}"), NO_LIMITS).await;
    let cli_cfg = g.gw.dir.path().join("cli.yaml");
    std::fs::write(
        &cli_cfg,
        format!(
            "listen: {{ http: \"127.0.0.1:0\" }}\nmail: {{ transport: file, dir: mail }}\ndata_dir: \"{}\"\nadmin: {{ listen: \"127.0.0.1:{port}\", token_file: \"{}\" }}\napps:\n{}",
            g.gw.dir.path().display(),
            g.token_dir.path().join("admin-token").display(),
            APPS.replace("UPSTREAM", "127.0.0.1:9")
        ),
    )
    .unwrap();
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/flows/*.yaml");
    let text = std::fs::read_to_string(&cli_cfg).unwrap();
    std::fs::write(&cli_cfg, format!("include: [\"{}\"]\n{text}", shipped.display())).unwrap();
    let cli = |args: Vec<String>| {
        let cfg = cli_cfg.to_str().unwrap().to_string();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut all = vec!["token".to_string(), "-c".into(), cfg];
                all.extend(args);
                let refs: Vec<&str> = all.iter().map(String::as_str).collect();
                run_bin(&refs, "")
            })
            .await
            .unwrap()
        }
    };
    let v = |s: &[&str]| s.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let (code, out, err) = cli(v(&["create", "--user", "alice", "--app", "app", "--expires", "30d"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("through the admin API"), "{err}");
    let token = out.trim().to_string();
    assert!(token.starts_with("fgp_"), "{out}");
    assert_eq!(call(&g.gw, None, Some(&format!("Bearer {token}"))).await.status(), 200);
    let (code, out, _) = cli(v(&["list"])).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("\talice\tapp\texpires_ms=") && !out.contains(&token),
        "{out}"
    );
    let key = out.split('\t').next().unwrap().to_string();
    let (code, _, err) = cli(v(&["create", "--user", "alice", "--app", "nope"])).await;
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("unknown app \"nope\""), "{err}");
    let (code, out, err) = cli(v(&["revoke", &key])).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("revoked"));
    challenged(&call(&g.gw, None, Some(&format!("Bearer {token}"))).await, "app");

    // The gateway is gone: the same commands work on the database directly.
    let mut g = g;
    g.gw.running.take().unwrap().shutdown().await;
    let (code, out, err) = cli(v(&["create", "--user", "bob", "--app", "other"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("through the admin API"), "{err}");
    assert!(out.trim().starts_with("fgp_"));
    let (code, out, _) = cli(v(&["list", "--user", "bob"])).await;
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1, "{out}");
    let key = out.split('\t').next().unwrap().to_string();
    let (code, _, _) = cli(v(&["revoke", &key])).await;
    assert_eq!(code, 0);
    let (code, out, _) = cli(v(&["list"])).await;
    assert_eq!(code, 0);
    assert!(out.trim().is_empty(), "{out}");
}

/// A browser that answered the `Basic` challenge keeps sending `Authorization` after it logged
/// in with a session: the app still never sees the credentials (the session decides, the
/// header is flowgate's on an app with `basic_auth`).
#[tokio::test]
async fn credentials_beside_a_session_never_reach_the_app() {
    let g = Gw::start_on("127.0.0.1:0", NO_LIMITS).await;
    let gw = &g.gw;
    let (_, token) = g.new_token("alice", "app").await;
    let sid = session_of(gw, "alice", ALICE_PASSWORD).await;
    for auth in [
        basic("alice", ALICE_PASSWORD),
        basic("alice", &token),
        format!("Bearer {token}"),
        "Basic !!!".to_string(),
    ] {
        let r = bare_client()
            .get(gw.url("/dav/file.txt"))
            .header("cookie", format!("flowgate_session={sid}"))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{auth}");
        let seen = gw.upstream.last();
        assert_eq!(seen.header("x-forwarded-user"), Some("alice"));
        assert!(
            seen.header("authorization").is_none(),
            "the app saw the client's credentials {auth:?}"
        );
    }
    g.gw.stop().await;
}

/// A positive check of the user's own password is not reused once the password changed: the
/// old password is refused on the next request although it was checked seconds before.
#[tokio::test]
async fn a_changed_password_is_refused_at_once_although_checked_before() {
    let g = Gw::start_on("127.0.0.1:0", NO_LIMITS).await;
    let gw = &g.gw;
    const NEW: &str = "violet tangerine expedition 77";
    assert_eq!(
        call(gw, None, Some(&basic("alice", ALICE_PASSWORD))).await.status(),
        200
    );
    assert_eq!(
        call(gw, None, Some(&basic("alice", ALICE_PASSWORD))).await.status(),
        200
    );
    let owner = client();
    html_login(&owner, &gw.url(""), "/", "alice", ALICE_PASSWORD).await;
    let url = gw.url("/.flowgate/flow/default-password-change-flow/");
    reauthenticate(&owner, &url, ALICE_PASSWORD).await;
    let r = walk(&owner, &url, &[("password", NEW), ("password_repeat", NEW)]).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let before = gw.upstream.count();
    challenged(&call(gw, None, Some(&basic("alice", ALICE_PASSWORD))).await, "app");
    assert_eq!(gw.upstream.count(), before, "the old password did not reach the app");
    assert_eq!(call(gw, None, Some(&basic("alice", NEW))).await.status(), 200);
    g.gw.stop().await;
}

/// `flowgate token revoke` on the database while the gateway runs without reaching its admin
/// API: the gateway's cached positive check of that token is dropped too.
#[tokio::test]
async fn a_token_revoked_on_the_database_is_refused_by_a_running_gateway() {
    let g = Gw::start_on("127.0.0.1:0", NO_LIMITS).await;
    let (_, token) = g.new_token("alice", "app").await;
    assert_eq!(call(&g.gw, None, Some(&format!("Bearer {token}"))).await.status(), 200);
    assert_eq!(call(&g.gw, None, Some(&format!("Bearer {token}"))).await.status(), 200);
    // The CLI's config names no admin API it can reach: it works on the database.
    let cli_cfg = g.gw.dir.path().join("cli.yaml");
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/flows/*.yaml");
    std::fs::write(
        &cli_cfg,
        format!(
            "include: [\"{}\"]\nlisten: {{ http: \"127.0.0.1:0\" }}\nmail: {{ transport: file, dir: mail }}\ndata_dir: \"{}\"\napps:\n{}",
            shipped.display(),
            g.gw.dir.path().display(),
            APPS.replace("UPSTREAM", "127.0.0.1:9")
        ),
    )
    .unwrap();
    let cfg = cli_cfg.to_str().unwrap().to_string();
    let list = {
        let cfg = cfg.clone();
        tokio::task::spawn_blocking(move || run_bin(&["token", "-c", &cfg, "list"], ""))
            .await
            .unwrap()
    };
    assert_eq!(list.0, 0, "{}", list.2);
    assert!(!list.2.contains("through the admin API"), "{}", list.2);
    let key = list.1.split('\t').next().unwrap().to_string();
    let (code, out, err) = tokio::task::spawn_blocking(move || run_bin(&["token", "-c", &cfg, "revoke", &key], ""))
        .await
        .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("revoked"), "{out}");
    let mut refused = false;
    // The announcement travels through the session store's channel: allow it a moment.
    for _ in 0..50 {
        let r = call(&g.gw, None, Some(&format!("Bearer {token}"))).await;
        if r.status() == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(refused, "the revoked token was still accepted from the cache");
    g.gw.stop().await;
}
