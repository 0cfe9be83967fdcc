//! Where the gateway sends a browser: an unauthenticated browser is redirected to the login
//! flow with its address in `next` while an API client gets 401 JSON naming the same login URL,
//! and neither the end of a flow nor a denial ever redirects off-site, whatever `next` holds
//! (every spelling of `common::OFF_SITE_NEXT`, through login, cancel, logout and each
//! `denied_action`). Over real sockets with a recording upstream.

use crate::common::*;

// No attack id: the unauthenticated branch of the request lifecycle (docs/design.md §1).
#[tokio::test]
async fn browsers_get_302_and_api_clients_get_401() {
    let gw = TestGateway::start().await;
    let r = bare_client()
        .get(gw.url("/a?b=c"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let r = bare_client()
        .get(gw.url("/a?b=c"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        v["login_url"],
        "/.flowgate/flow/default-authentication-flow/?next=%2Fa%3Fb%3Dc"
    );
    assert!(v["error"].is_string());
    assert_eq!(gw.upstream.count(), 0);
    gw.stop().await;
}

// Attack ids: RED-1..9.
#[tokio::test]
async fn next_never_redirects_off_site() {
    // Many logins of one user in a row: the brute-force limits are not what is tested here.
    let gw = TestGateway::start_with(
        DEFAULT_APP,
        "rate_limits: { password_per_ip: off, password_per_username: off }\n",
    )
    .await;
    for evil in OFF_SITE_NEXT {
        let c = client();
        let q = form_urlencoded::Serializer::new(String::new())
            .append_pair("next", evil)
            .finish();
        let flow = gw.url(&format!("/.flowgate/flow/default-authentication-flow/?{q}"));
        let html = c.get(&flow).send().await.unwrap().text().await.unwrap();
        let csrf = csrf_of(&html);
        c.post(&flow)
            .form(&[("csrf_token", csrf.as_str()), ("uid_field", "alice")])
            .send()
            .await
            .unwrap();
        let csrf = csrf_of(&c.get(&flow).send().await.unwrap().text().await.unwrap());
        c.post(&flow)
            .form(&[("csrf_token", csrf.as_str()), ("password", ALICE_PASSWORD)])
            .send()
            .await
            .unwrap();
        let done = c.get(&flow).send().await.unwrap();
        assert_eq!(done.status(), 302, "{evil}");
        assert_eq!(location(&done), "/", "next={evil:?} must fall back to /");
        // Cancel and logout ignore it too.
        let r = c
            .get(gw.url(&format!("/.flowgate/flows/-/cancel/?{q}")))
            .send()
            .await
            .unwrap();
        assert_eq!(location(&r), "/", "cancel with {evil:?}");
        // Logout without a usable `next` ends on its own page (what was ended), no redirect.
        let r = c.get(gw.url(&format!("/logout?{q}"))).send().await.unwrap();
        assert_eq!(r.status(), 200, "logout with {evil:?}");
        assert_eq!(location(&r), "", "logout with {evil:?}");
    }
    gw.stop().await;
}

const LOGIN: &str = "/.flowgate/flow/default-authentication-flow/";

const DENY_FLOWS: &str = r#"
flows:
  - { slug: deny-c, designation: authentication, denied_action: continue, policies: [{ policy: never }], bindings: [{ stage: default-authentication-identification, order: 0 }] }
  - { slug: deny-mc, designation: authentication, denied_action: message_continue, policies: [{ policy: never }], bindings: [{ stage: default-authentication-identification, order: 0 }] }
policies:
  never: { type: dummy, result: false }
"#;

/// The Location header resolved against the gateway stays on the gateway; no header carries
/// an off-site value or an injected cookie.
fn assert_on_site(gw: &TestGateway, r: &reqwest::Response, what: &str) {
    for (k, v) in r.headers() {
        let v = String::from_utf8_lossy(v.as_bytes());
        assert!(what == "/@evil.example" || !v.contains("evil"), "{what}: {k}: {v}");
        assert!(
            !(k == "set-cookie" && v.starts_with("x=")),
            "{what}: header injection: {v}"
        );
    }
    let loc = location(r);
    if !loc.is_empty() {
        let base = reqwest::Url::parse(&gw.url("/")).unwrap();
        let to = base.join(&loc).unwrap();
        assert_eq!(to.origin(), base.origin(), "{what}: Location {loc}");
    }
}

// Attack ids: RED-10.
#[tokio::test]
async fn denial_never_redirects_off_site() {
    // RED-10: every RED value under denied_action continue and message_continue, HTML and JSON,
    // and an authentication flow opened by a logged-in user (the other `denied` branch).
    let gw = TestGateway::start_full(
        DEFAULT_APP,
        NO_LIMITS,
        Upstream::spawn().await,
        &[("deny.yaml", DENY_FLOWS)],
    )
    .await;
    let alice = client();
    html_login(&alice, &gw.url(""), "/", "alice", ALICE_PASSWORD).await;
    let mut values: Vec<&str> = OFF_SITE_NEXT.to_vec();
    values.push("/@evil.example");
    for evil in values {
        let off_site = evil != "/@evil.example";
        let next = form_urlencoded::Serializer::new(String::new())
            .append_pair("next", evil)
            .finish();
        let r = bare_client()
            .get(gw.url(&format!("/.flowgate/flow/deny-c/?{next}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "continue {evil:?}");
        assert_on_site(&gw, &r, evil);
        if off_site {
            assert_eq!(location(&r), "/", "continue {evil:?}");
        }
        let r = bare_client()
            .get(gw.url(&format!("/.flowgate/flow/deny-mc/?{next}")))
            .send()
            .await
            .unwrap();
        assert_on_site(&gw, &r, evil);
        if off_site {
            assert_eq!(r.status(), 403, "message_continue {evil:?} shows the message");
        }
        let r = alice.get(gw.url(&format!("{LOGIN}?{next}"))).send().await.unwrap();
        assert_eq!(r.status(), 302);
        assert_on_site(&gw, &r, evil);
        if off_site {
            assert_eq!(location(&r), "/", "logged in, {evil:?}");
        }
        // The JSON executor reads `next` from the wrapped query.
        let wrapped = form_urlencoded::Serializer::new(String::new())
            .append_pair("query", &next)
            .finish();
        for slug in ["deny-c", "deny-mc"] {
            let r = bare_client()
                .get(gw.url(&format!("/.flowgate/api/v3/flows/executor/{slug}/?{wrapped}")))
                .send()
                .await
                .unwrap();
            assert_on_site(&gw, &r, evil);
            let v: serde_json::Value = r.json().await.unwrap();
            if let Some(to) = v.get("to").and_then(|t| t.as_str()) {
                let base = reqwest::Url::parse(&gw.url("/")).unwrap();
                assert_eq!(base.join(to).unwrap().origin(), base.origin(), "{slug} {evil:?}: {v}");
                if off_site {
                    assert_eq!(to, "/", "{slug} {evil:?}");
                }
            }
        }
    }
    gw.stop().await;
}
