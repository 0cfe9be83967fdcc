//! The identity headers the upstream trusts: the client's copies never reach it in any spelling
//! (case, `_`, `.`, repeated, under every preset, on skip-auth routes too), a `Connection`
//! header cannot make a hop remove the gateway's own, and hostile user values (group names with
//! separators, CR/LF, non-ASCII) are encoded, never split or dropped. Each request goes over a
//! real socket and the assertions are on what the recording upstream received.

use crate::common::*;
use flowgate::identity::NewUser;
use std::time::Duration;

const SPOOFS: &[&str] = &[
    "X-Forwarded-User",
    "x-forwarded-user",
    "X_FORWARDED_USER",
    "x.forwarded.user",
    "X-Forwarded_User",
    "X-Forwarded-Email",
    "X-Forwarded-Groups",
    "x_forwarded_groups",
    "X-Forwarded-Name",
    "X-Forwarded-Uid",
    "X-authentik-username",
    "X_AUTHENTIK_USERNAME",
    "x.authentik.username",
    "X-Authentik-Groups",
    "X-authentik-jwt",
    "X-authentik-anything",
    "Remote-User",
    "REMOTE_USER",
    "remote.user",
    "Remote-Email",
    "Remote-Groups",
    "Remote-Name",
];

fn spoofed(rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    SPOOFS.iter().fold(rb, |rb, h| rb.header(*h, "mallory"))
}

fn assert_no_spoof(seen: &Recorded) {
    for (k, v) in &seen.headers {
        assert_ne!(v, "mallory", "spoofed header {k} reached the upstream");
    }
}

// Attack ids: HDR-1..4.
#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    let gw = TestGateway::start().await;
    // Skip-auth route, unauthenticated.
    let r = spoofed(bare_client().get(gw.url("/public/a.css")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = gw.upstream.last();
    assert_no_spoof(&seen);
    assert!(seen.header("x-forwarded-user").is_none());

    // Authenticated route: only flowgate's values arrive, once.
    let c = client();
    html_login(&c, &gw.url(""), "/", "bob", BOB_PASSWORD).await;
    let r = spoofed(c.get(gw.url("/private"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = gw.upstream.last();
    assert_no_spoof(&seen);
    assert_eq!(seen.headers_named("x-forwarded-user"), vec!["bob"]);
    assert_eq!(seen.header("x-forwarded-groups"), Some(""));

    // Unauthenticated protected route never reaches the upstream at all.
    let before = gw.upstream.count();
    let r = spoofed(bare_client().get(gw.url("/private"))).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(gw.upstream.count(), before);
    gw.stop().await;
}

// Attack ids: HDR-5.
#[tokio::test]
async fn every_preset_strips_all_spellings() {
    for preset in [
        "authentik",
        "remote-user",
        "{ user: X-Webauth-User, email: X-Webauth-Email }",
    ] {
        let apps = format!(
            "  - name: app\n    upstream: \"http://UPSTREAM\"\n    headers: {preset}\n    skip_auth: [\"^/public/\"]\n"
        );
        let gw = TestGateway::start_with(&apps, "").await;
        let c = client();
        html_login(&c, &gw.url(""), "/", "alice", ALICE_PASSWORD).await;
        let custom = preset.starts_with('{');
        let mut rb = spoofed(c.get(gw.url("/x")));
        if custom {
            rb = rb
                .header("X_Webauth_User", "mallory")
                .header("x.webauth.user", "mallory")
                .header("X-WEBAUTH-EMAIL", "m");
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status(), 200);
        let seen = gw.upstream.last();
        assert_no_spoof(&seen);
        match preset {
            "authentik" => {
                assert_eq!(seen.header("x-authentik-username"), Some("alice"));
                assert_eq!(seen.header("x-authentik-groups"), Some("admins|staff"));
                assert_eq!(seen.header("x-authentik-meta-app"), Some("app"));
                assert!(seen.header("x-forwarded-user").is_none());
            }
            "remote-user" => {
                assert_eq!(seen.header("remote-user"), Some("alice"));
                assert_eq!(seen.header("remote-email"), Some("alice@example.test"));
            }
            _ => assert_eq!(seen.header("x-webauth-user"), Some("alice")),
        }
        // Skip-auth route with the custom names spoofed.
        let mut rb = spoofed(bare_client().get(gw.url("/public/x")));
        if custom {
            rb = rb.header("X-Webauth-User", "mallory");
        }
        rb.send().await.unwrap();
        assert_no_spoof(&gw.upstream.last());
        gw.stop().await;
    }
}

fn app_with(headers: &str) -> String {
    format!(
        "  - name: app\n    upstream: \"http://UPSTREAM\"\n    headers: {headers}\n    skip_auth: [\"^/public/\"]\n"
    )
}

/// Sends one raw request and reads one response (headers, then `Content-Length` bytes), without
/// waiting for the server to close a kept-alive connection.
async fn raw_once(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if out.len() >= end + 4 + len {
                return text;
            }
        }
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&chunk[..n]),
            _ => return String::from_utf8_lossy(&out).into_owned(),
        }
    }
}

fn assert_no_mallory(seen: &Recorded) {
    for (k, v) in &seen.headers {
        assert!(!v.contains("mallory"), "client value reached the upstream in {k}: {v}");
    }
}

// Attack ids: HDR-6.
#[tokio::test]
async fn connection_header_cannot_remove_the_identity_headers() {
    // HDR-6: a hop-by-hop listing of an identity header, for every preset.
    for (preset, user_header) in [
        ("default", "X-Forwarded-User"),
        ("authentik", "X-authentik-username"),
        ("remote-user", "Remote-User"),
    ] {
        let gw = TestGateway::start_with(&app_with(preset), "").await;
        let id = session_of(&gw, "bob", BOB_PASSWORD).await;
        for connection in [
            format!("close, {user_header}"),
            user_header.to_string(),
            format!("keep-alive, {}", user_header.to_ascii_lowercase()),
            "close, X-Forwarded-User, X-Forwarded-Groups, X-authentik-username, Remote-User, X-Forwarded-Email"
                .to_string(),
        ] {
            let before = gw.upstream.count();
            let req = format!(
                "GET /private HTTP/1.1\r\nHost: app.example\r\nCookie: flowgate_session={id}\r\nConnection: {connection}\r\n{user_header}: mallory\r\n\r\n"
            );
            let resp = raw_once(gw.addr, &req).await;
            assert_eq!(raw_status(&resp), "200", "{preset} / {connection}: {resp}");
            assert_eq!(gw.upstream.count(), before + 1);
            let seen = gw.upstream.last();
            assert_no_mallory(&seen);
            assert_eq!(
                seen.headers_named(user_header),
                vec!["bob"],
                "{preset} / Connection: {connection}"
            );
            // Nothing downstream of flowgate is told to drop an identity header either.
            for v in seen.headers_named("connection") {
                let v = v.to_ascii_lowercase();
                for name in [
                    "forwarded-user",
                    "forwarded-groups",
                    "forwarded-email",
                    "authentik",
                    "remote-user",
                ] {
                    assert!(!v.contains(name), "upstream got Connection: {v}");
                }
            }
        }
        gw.stop().await;
    }
}

const NEW_PASSWORD: &str = "violet tangerine expedition 77";

/// A user with `groups`, written through the store.
async fn add_user(gw: &TestGateway, username: &str, email: &str, name: &str, groups: &[&str]) {
    users(gw)
        .create_user(NewUser {
            username: username.into(),
            email: email.into(),
            name: name.into(),
            password: Some(NEW_PASSWORD.into()),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            is_active: true,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("cannot create {username:?}: {e}"));
}

fn decode(v: &str) -> String {
    percent_encoding::percent_decode_str(v)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

// Attack ids: HDR-7.
#[tokio::test]
async fn group_names_with_separators_stay_one_group() {
    // HDR-7: a `,` or `|` inside a group name never splits into extra groups.
    let groups = ["eng,ops", "a|b", "100%", "x%2Cy", "plain"];
    for (preset, header, sep) in [
        ("default", "x-forwarded-groups", ','),
        ("authentik", "x-authentik-groups", '|'),
        ("remote-user", "remote-groups", ','),
    ] {
        let gw = TestGateway::start_with(&app_with(preset), "").await;
        add_user(&gw, "gina", "gina@example.test", "Gina", &groups).await;
        let c = client();
        html_login(&c, &gw.url(""), "/", "gina", NEW_PASSWORD).await;
        assert_eq!(c.get(gw.url("/x")).send().await.unwrap().status(), 200);
        let seen = gw.upstream.last();
        let value = seen.header(header).unwrap_or_else(|| panic!("{preset}: no {header}"));
        let parts: Vec<&str> = value.split(sep).collect();
        assert_eq!(parts.len(), groups.len(), "{preset}: {header}: {value}");
        for p in &parts {
            assert!(!p.contains(',') && !p.contains('|'), "{preset}: {value}");
        }
        let mut got: Vec<String> = parts.iter().map(|p| decode(p)).collect();
        let mut want: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{preset}: each element decodes to exactly one group name");
        // Plain names are sent as they are.
        assert!(parts.contains(&"plain"), "{value}");
        gw.stop().await;
    }
}

// Attack ids: HDR-8 (and HDR-7 for group names from the store).
#[tokio::test]
async fn hostile_user_values_are_encoded_and_still_reach_the_upstream() {
    // HDR-8: CR/LF and non-ASCII in identity values. The store refuses control characters in
    // usernames, so one is planted with SQL, as an import or another tool could.
    let gw = TestGateway::start_with(&app_with("default"), "").await;
    add_user(&gw, "zoë", "zoe@example.test", "Zoë Ünïcode", &["ops"]).await;
    add_user(&gw, "evil", "evil@example.test", "Evil", &[]).await;
    add_user(&gw, "eve", "eve@example.test", "Eve\r\nX-Forwarded-User: root", &[]).await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", gw.dir.path().join("flowgate.db").display()))
        .await
        .unwrap();
    sqlx::query("UPDATE users SET username = ?1 WHERE username = 'eve'")
        .bind("ev\r\nil")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let check = |seen: &Recorded, want_user: &str, want_name: &str| {
        for h in ["x-forwarded-user", "x-forwarded-name"] {
            let v = seen.header(h).unwrap_or_else(|| panic!("no {h}"));
            assert!(
                v.bytes().all(|b| (0x20..0x7f).contains(&b)),
                "{h} is not printable ASCII: {v:?}"
            );
        }
        assert_eq!(seen.headers_named("x-forwarded-user").len(), 1);
        assert_eq!(decode(seen.header("x-forwarded-user").unwrap()), want_user);
        assert_eq!(decode(seen.header("x-forwarded-name").unwrap()), want_name);
        assert!(seen.headers.iter().all(|(_, v)| v != "root"), "a header was injected");
    };
    for (login_as, user, name) in [
        ("zoë", "zoë", "Zoë Ünïcode"),
        // Logged in by e-mail: identification refuses control characters in what is typed.
        ("eve@example.test", "ev\r\nil", "Eve\r\nX-Forwarded-User: root"),
    ] {
        let c = client();
        let done = html_login(&c, &gw.url(""), "/", login_as, NEW_PASSWORD).await;
        assert_eq!(done.status(), 302, "login as {login_as:?}");
        let r = c.get(gw.url("/some/page?q=1")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{login_as:?}");
        assert_eq!(r.text().await.unwrap(), "upstream ok");
        let seen = gw.upstream.last();
        assert_eq!(seen.uri, "/some/page?q=1", "the request reached the upstream intact");
        check(&seen, user, name);
    }
    // The planted user is not the user "evil" to the upstream.
    let c = client();
    html_login(&c, &gw.url(""), "/", "evil", NEW_PASSWORD).await;
    c.get(gw.url("/")).send().await.unwrap();
    let evil = gw.upstream.last();
    let planted = gw.upstream.requests()[gw.upstream.count() - 2].clone();
    assert_eq!(evil.header("x-forwarded-user"), Some("evil"));
    assert_ne!(planted.header("x-forwarded-user"), evil.header("x-forwarded-user"));
    gw.stop().await;
}
