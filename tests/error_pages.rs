//! Error pages: every error the proxy, pingora's parser, the UI and the flows answer with
//! (including a broken upstream, a slow one, an SMTP server that is down and a user store that
//! fails) names no file, no internal address and nothing of Rust's internals, in the body or in a
//! header. Over real sockets.

use crate::common::*;
use std::time::Duration;

const LOGIN: &str = "/.flowgate/flow/default-authentication-flow/";

const ENROLL: &str = "/.flowgate/flow/default-enrollment-flow/";

const RECOVERY: &str = "/.flowgate/flow/default-recovery-flow/";

const UNENROLL: &str = "/.flowgate/flow/default-unenrollment-flow/";

const NEW_PASSWORD: &str = "violet tangerine expedition 77";

/// A response as text: status line, headers, body.
async fn text_of(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let mut out = format!("{status}\n");
    for (k, v) in r.headers() {
        out.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
    }
    out.push('\n');
    out.push_str(&r.text().await.unwrap_or_default());
    (status, out)
}

// Attack ids: CONF-4.
#[tokio::test]
async fn error_pages_show_no_internals() {
    // CONF-4.
    let slow = Upstream::spawn_with_delay(Duration::from_secs(5)).await;
    let (dead, smtp_dead) = (unused_port(), unused_port());
    let apps = format!(
        "  - name: dead\n    path_prefix: /dead\n    upstream: \"http://127.0.0.1:{dead}\"\n    skip_auth: [\"^/\"]\n  - name: slow\n    path_prefix: /slow\n    upstream: \"http://{}\"\n    read_timeout: 300ms\n    skip_auth: [\"^/\"]\n  - name: small\n    path_prefix: /small\n    upstream: \"http://UPSTREAM\"\n    max_body_bytes: 100\n    skip_auth: [\"^/\"]\n  - name: guarded\n    path_prefix: /guarded\n    upstream: \"http://UPSTREAM\"\n    authentication_flow: default-authentication-flow\n    policies: [{{ group: nobody-is-in-this-group }}]\n",
        slow.addr
    );
    let extra = format!(
        "rate_limits: {{ password_per_ip: off, password_per_username: 2/1m }}\nmail: {{ transport: smtp, host: 127.0.0.1, port: {smtp_dead}, security: none, timeout: 2s }}\n"
    );
    let gw = TestGateway::start_with(&apps, &extra).await;
    let dir = gw.dir.path().display().to_string();
    let mut needles: Vec<String> = [
        dir.as_str(),
        "test.yaml",
        "seed.yaml",
        "flowgate.db",
        "sqlite",
        "panicked",
        "backtrace",
        "RUST_",
        "src/",
        ".rs",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for port in [gw.upstream.addr.port(), slow.addr.port(), dead, smtp_dead] {
        needles.push(format!("127.0.0.1:{port}"));
        needles.push(format!(":{port}"));
    }
    let mut seen: Vec<(String, u16, String)> = Vec::new();
    let c = client();
    let get = |path: &str| c.get(gw.url(path)).header("accept", BROWSER_ACCEPT).send();

    // Proxy and UI.
    for (path, want) in [
        ("/nothing/here", 404),
        ("/.flowgate/nothing", 404),
        ("/.flowgate/flow/no-such-flow/", 404),
        ("/.flowgate/api/v3/flows/executor/no-such-flow/", 404),
        ("/dead/x", 502),
        ("/slow/x", 504),
        (UNENROLL, 403),
    ] {
        let (status, text) = text_of(get(path).await.unwrap()).await;
        assert_eq!(status, want, "{path}: {text}");
        seen.push((path.into(), status, text));
    }
    let r = c.put(gw.url(LOGIN)).send().await.unwrap();
    let (status, text) = text_of(r).await;
    assert_eq!(status, 405);
    seen.push(("PUT flow".into(), status, text));
    let r = c.post(gw.url("/small/x")).body("b".repeat(1000)).send().await.unwrap();
    let (status, text) = text_of(r).await;
    assert_eq!(status, 413);
    seen.push(("proxied body".into(), status, text));

    // Raw requests: bad paths, sizes, and what pingora refuses before flowgate sees it.
    let big_header = format!("X-Big: {}\r\n", "h".repeat(40 * 1024));
    let form = "a".repeat(100 * 1024);
    for (what, req, want) in [
        ("NUL in path", "GET /guarded/a%00b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_string(), "400"),
        ("disguised reserved path", "GET /x/../.flowgate/flow/x/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_string(), "400"),
        ("long target", format!("GET /{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "a".repeat(9 * 1024)), "414"),
        ("large headers", format!("GET / HTTP/1.1\r\nHost: x\r\n{big_header}Connection: close\r\n\r\n"), "431"),
        ("CL and TE", "POST /small/x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n".to_string(), "400"),
        ("malformed header", "GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\nConnection: close\r\n\r\n".to_string(), ""),
        ("malformed request line", "GET\r\n\r\n".to_string(), ""),
        ("large form", format!("POST {LOGIN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}", form.len()), "413"),
    ] {
        let resp = raw_http(gw.addr, req.as_bytes()).await;
        if !want.is_empty() {
            assert_eq!(raw_status(&resp), want, "{what}: {resp}");
        }
        seen.push((what.into(), raw_status(&resp).parse().unwrap_or(0), resp));
    }

    // Flows: a bad form body, CSRF refusal, app policy denial, rate limit, SMTP down.
    let f = client();
    let (_, html) = page(&f, &gw.url(LOGIN)).await;
    let csrf = csrf_of(&html);
    let r = f
        .post(gw.url(LOGIN))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf_token={csrf}&uid_field=%FF%FE"))
        .send()
        .await
        .unwrap();
    let (status, text) = text_of(r).await;
    assert_eq!(status, 400, "{text}");
    seen.push(("invalid UTF-8".into(), status, text));
    let r = f
        .post(gw.url(LOGIN))
        .form(&[("csrf_token", "forged"), ("uid_field", "alice")])
        .send()
        .await
        .unwrap();
    let (status, text) = text_of(r).await;
    assert_eq!(status, 403);
    seen.push(("CSRF".into(), status, text));
    let r = bare_client()
        .post(gw.url("/.flowgate/api/v3/flows/executor/default-authentication-flow/"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let (status, text) = text_of(r).await;
    assert_eq!(status, 400, "{text}");
    seen.push(("bad JSON".into(), status, text));

    let alice = client();
    html_login(&alice, &gw.url(""), "/guarded/x", "alice", ALICE_PASSWORD).await;
    let (status, text) = text_of(alice.get(gw.url("/guarded/x")).send().await.unwrap()).await;
    assert_eq!(status, 403, "{text}");
    seen.push(("app policy".into(), status, text));

    let b = client();
    walk(&b, &gw.url(LOGIN), &[("uid_field", "bob")]).await;
    let mut limited = None;
    for _ in 0..6 {
        let r = walk(&b, &gw.url(LOGIN), &[("password", "wrong password")]).await;
        if r.status() == 429 {
            limited = Some(text_of(r).await);
            break;
        }
    }
    let (status, text) = limited.expect("the username limit answers 429");
    seen.push(("rate limit".into(), status, text));

    // Mail leaves off the request path (ENUM-4): the relay being down shows nowhere.
    let r = walk(&client(), &gw.url(RECOVERY), &[("uid_field", "bob")]).await;
    let (status, text) = text_of(r).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("Check your email"), "{text}");
    seen.push(("SMTP down".into(), status, text));

    // The user store fails under the flows: the users table is gone.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", gw.dir.path().join("flowgate.db").display()))
        .await
        .unwrap();
    sqlx::query("ALTER TABLE users RENAME TO users_gone")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let r = walk(&client(), &gw.url(LOGIN), &[("uid_field", "alice")]).await;
    let (status, text) = text_of(r).await;
    assert!(status >= 400, "a failing store still let identification pass: {text}");
    seen.push(("store down: identification".into(), status, text));
    let r = walk(
        &client(),
        &gw.url(ENROLL),
        &[
            ("username", "newuser"),
            ("name", "N"),
            ("email", "n@example.test"),
            ("password", NEW_PASSWORD),
            ("password_repeat", NEW_PASSWORD),
        ],
    )
    .await;
    let (status, text) = text_of(r).await;
    seen.push(("store down: enrollment".into(), status, text));
    let (status, text) = text_of(alice.get(gw.url("/guarded/x")).send().await.unwrap()).await;
    seen.push(("store down: proxied".into(), status, text));

    for (what, status, text) in &seen {
        for n in &needles {
            assert!(
                !text.to_ascii_lowercase().contains(&n.to_ascii_lowercase()),
                "{what} ({status}) shows {n:?}:\n{text}"
            );
        }
        // Library names in a body would be error text passed through. (pingora's own parser
        // errors carry `Server: Pingora`, a header, and no body.)
        let body = text
            .split_once("\r\n\r\n")
            .or_else(|| text.split_once("\n\n"))
            .map_or("", |(_, b)| b)
            .to_ascii_lowercase();
        for n in ["pingora", "hyper", "tokio", "sqlx", "error:"] {
            assert!(!body.contains(n), "{what} ({status}) body shows {n:?}:\n{text}");
        }
    }
    gw.stop().await;
}
