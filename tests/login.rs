//! Login and logout end to end over real sockets, through the HTML forms and the JSON API,
//! asserting on what the upstream received.

use crate::common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn html_login_forwards_identity_and_rotates_the_session() {
    let gw = TestGateway::start().await;
    let c = client();
    let base = gw.url("");
    // Visit first to get a pre-login session id.
    let r = c
        .get(gw.url("/docs/page?x=1"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let flow = location(&r);
    assert_eq!(
        flow,
        "/.flowgate/flow/default-authentication-flow/?next=%2Fdocs%2Fpage%3Fx%3D1"
    );
    let page = c.get(format!("{base}{flow}")).send().await.unwrap();
    let pre = set_cookie_value(&page, "flowgate_session").expect("pre-login session cookie");
    let html = page.text().await.unwrap();
    assert!(html.contains("Welcome to app"), "title names the app: {html}");

    let done = html_login(&c, &base, "/docs/page?x=1", "alice", ALICE_PASSWORD).await;
    assert_eq!(done.status(), 302);
    assert_eq!(location(&done), "/docs/page?x=1");
    let post = set_cookie_value(&done, "flowgate_session").expect("login sets a new cookie");
    assert_ne!(pre, post, "the session id is rotated at login");
    let sc = done.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(
        sc.contains("HttpOnly") && sc.contains("SameSite=Lax") && sc.contains("Path=/"),
        "{sc}"
    );
    assert!(!sc.contains("Secure"), "no Secure flag on plain HTTP: {sc}");

    let r = c.get(gw.url("/docs/page?x=1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "upstream ok");
    let seen = gw.upstream.last();
    assert_eq!(seen.uri, "/docs/page?x=1");
    assert_eq!(seen.header("x-forwarded-user"), Some("alice"));
    assert_eq!(seen.header("x-forwarded-email"), Some("alice@example.test"));
    assert_eq!(
        seen.header("x-forwarded-groups"),
        Some("admins,staff"),
        "inherited groups included"
    );
    assert_eq!(seen.header("x-forwarded-name"), Some("Alice Example"));
    assert_eq!(seen.header("x-forwarded-uid").map(str::len), Some(32));
    assert!(
        seen.header("cookie").is_none_or(|c| !c.contains("flowgate_session")),
        "the session cookie is not forwarded"
    );

    // The pre-login id is worthless.
    let r = bare_client()
        .get(gw.url("/docs/page"))
        .header("cookie", format!("flowgate_session={pre}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    gw.stop().await;
}

#[tokio::test]
async fn wrong_password_shows_error_and_never_logs_in() {
    let gw = TestGateway::start().await;
    let c = client();
    let r = html_login(&c, &gw.url(""), "/", "alice", "wrong").await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(html.contains("Invalid password"), "{html}");
    let r = c.get(gw.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(gw.upstream.count(), 0);
    gw.stop().await;
}

#[tokio::test]
async fn unknown_user_gets_the_same_password_challenge() {
    let gw = TestGateway::start().await;
    let c = client();
    let r = html_login(&c, &gw.url(""), "/", "nobody", "whatever").await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("Invalid password"));
    gw.stop().await;
}

#[tokio::test]
async fn five_failures_cancel_the_flow() {
    let gw = TestGateway::start().await;
    let c = client();
    let base = gw.url("");
    let r = c
        .get(gw.url("/"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    let flow = format!("{base}{}", location(&r));
    let csrf = csrf_of(&c.get(&flow).send().await.unwrap().text().await.unwrap());
    c.post(&flow)
        .form(&[("csrf_token", csrf.as_str()), ("uid_field", "alice")])
        .send()
        .await
        .unwrap();
    let mut last = None;
    for _ in 0..5 {
        let csrf = csrf_of(&c.get(&flow).send().await.unwrap().text().await.unwrap());
        last = Some(
            c.post(&flow)
                .form(&[("csrf_token", csrf.as_str()), ("password", "nope")])
                .send()
                .await
                .unwrap(),
        );
    }
    let last = last.unwrap();
    assert_eq!(last.status(), 403, "the fifth failure cancels the flow");
    let body = last.text().await.unwrap();
    assert!(body.contains("Invalid password"), "{body}");
    gw.stop().await;
}

#[tokio::test]
async fn inactive_user_cannot_log_in() {
    let gw = TestGateway::start().await;
    let c = client();
    let r = html_login(&c, &gw.url(""), "/", "carol", "carol pw").await;
    assert_ne!(r.status(), 302, "an inactive user is never redirected as logged in");
    assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), 401);
    gw.stop().await;
}

async fn api(c: &reqwest::Client, url: &str, body: Option<Value>) -> (u16, Value, Option<String>) {
    let r = match body {
        None => c.get(url).send().await.unwrap(),
        Some(b) => c.post(url).json(&b).send().await.unwrap(),
    };
    let status = r.status().as_u16();
    let loc = r.headers().get("location").map(|v| v.to_str().unwrap().to_string());
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null), loc)
}

#[tokio::test]
async fn json_api_login_is_authentik_compatible() {
    let gw = TestGateway::start().await;
    let c = client();
    let url = gw.url("/.flowgate/api/v3/flows/executor/default-authentication-flow/?query=next%3D%252Fapi%252Fdata");
    let (s, v, _) = api(&c, &url, None).await;
    assert_eq!(s, 200);
    assert_eq!(v["component"], "ak-stage-identification");
    assert_eq!(v["flow_info"]["title"], "Welcome to app");
    assert_eq!(
        v["flow_info"]["cancel_url"],
        "/.flowgate/flows/-/cancel/?next=%2Fapi%2Fdata"
    );
    assert_eq!(v["user_fields"], json!(["username", "email"]));

    let (s, _, loc) = api(
        &c,
        &url,
        Some(json!({"component": "ak-stage-identification", "uid_field": "ALICE@example.test"})),
    )
    .await;
    assert_eq!(s, 302, "a successful POST answers 302 to the executor itself");
    assert_eq!(
        loc.as_deref(),
        Some("/.flowgate/api/v3/flows/executor/default-authentication-flow/?query=next%3D%252Fapi%252Fdata")
    );
    let (_, v, _) = api(&c, &url, None).await;
    assert_eq!(v["component"], "ak-stage-password");
    // What was typed, never the stored username it matched (ENUM-5).
    assert_eq!(v["pending_user"], "ALICE@example.test");

    let (s, v, _) = api(
        &c,
        &url,
        Some(json!({"component": "ak-stage-password", "password": "bad"})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["response_errors"]["password"][0]["string"], "Invalid password");
    assert_eq!(v["response_errors"]["password"][0]["code"], "invalid");

    let (s, _, _) = api(
        &c,
        &url,
        Some(json!({"component": "ak-stage-password", "password": ALICE_PASSWORD})),
    )
    .await;
    assert_eq!(s, 302);
    let (s, v, _) = api(&c, &url, None).await;
    assert_eq!(s, 200);
    assert_eq!(v, json!({"component": "xak-flow-redirect", "to": "/api/data"}));

    let r = c.get(gw.url("/api/data")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("alice"));
    gw.stop().await;
}

#[tokio::test]
async fn logout_deletes_the_session_server_side() {
    let gw = TestGateway::start().await;
    let c = client();
    let done = html_login(&c, &gw.url(""), "/", "alice", ALICE_PASSWORD).await;
    let id = set_cookie_value(&done, "flowgate_session").unwrap();
    assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), 200);

    let r = c.get(gw.url("/logout?next=%2Fbye")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/bye");
    let sc = r.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(sc.contains("Max-Age=0"), "cookie cleared: {sc}");
    assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), 401);
    // Replaying the old cookie does not work: the session is gone server-side.
    let r = bare_client()
        .get(gw.url("/"))
        .header("cookie", format!("flowgate_session={id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    gw.stop().await;
}

#[tokio::test]
async fn idle_and_absolute_expiry_follow_the_injected_clock() {
    use std::time::Duration;
    let gw = TestGateway::start().await;
    let c = client();
    html_login(&c, &gw.url(""), "/", "alice", ALICE_PASSWORD).await;
    // idle_timeout is 30m: activity every 20 minutes keeps it alive...
    for _ in 0..5 {
        gw.clock.advance(Duration::from_secs(20 * 60));
        assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), 200);
    }
    // ...until the absolute ttl of 2h passes (100 minutes so far).
    gw.clock.advance(Duration::from_secs(21 * 60));
    assert_eq!(
        c.get(gw.url("/")).send().await.unwrap().status(),
        401,
        "absolute expiry"
    );

    let c = client();
    html_login(&c, &gw.url(""), "/", "alice", ALICE_PASSWORD).await;
    assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), 200);
    gw.clock.advance(Duration::from_secs(31 * 60));
    assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), 401, "idle expiry");
    gw.stop().await;
}
