//! Host and scheme from forwarding headers: `X-Forwarded-Host` never reaches a redirect or a
//! mailed link; a Host no app is configured for is a 404 and is never echoed;
//! `X-Forwarded-Proto: https` over plain HTTP never makes the session cookie `Secure` or
//! `__Host-`, while from a trusted proxy it does. Over real sockets.

use crate::common::*;
use crate::forwarded_headers::{client_with, LOGIN, PEERS, TRUSTED};

const RECOVERY: &str = "/.flowgate/flow/default-recovery-flow/";

const ENROLL_EMAIL: &str = "/.flowgate/flow/default-enrollment-email-flow/";

const NEW_PASSWORD: &str = "violet tangerine expedition 77";

/// The forwarding headers an attacker would use to move links to their own host.
const EVIL_FORWARDING: &[(&str, &str)] = &[
    ("x-forwarded-host", "evil.example"),
    ("x-forwarded-proto", "https"),
    ("x-forwarded-port", "8443"),
    ("x-forwarded-server", "evil.example"),
    ("x-host", "evil.example"),
    ("x-original-host", "evil.example"),
    ("forwarded", "for=1.2.3.4;host=evil.example;proto=https"),
];

const TWO_HOST_APPS: &str = "  - name: named\n    hosts: [app.example]\n    upstream: \"http://UPSTREAM\"\n  - name: app\n    upstream: \"http://UPSTREAM\"\n";

fn no_evil(what: &str, text: &str) {
    assert!(
        !text.to_ascii_lowercase().contains("evil"),
        "{what} mentions the forged host:\n{text}"
    );
}

// Attack ids: FWD-3.
#[tokio::test]
async fn forwarded_host_never_reaches_redirects_or_mailed_links() {
    // FWD-3: login redirects are relative paths; mail links come from mail.public_url or a Host
    // that is an app's configured host or loopback, and X-Forwarded-Host is never read for
    // either, from untrusted and trusted peers alike. Only the upstream's X-Forwarded-Host
    // differs: replaced by the real Host for an untrusted peer, passed on from a trusted one.
    for (peer, trust) in PEERS {
        let extra = format!("{NO_LIMITS}{trust}");
        let gw = TestGateway::start_with(TWO_HOST_APPS, &extra).await;
        let real = gw.addr.to_string();
        for host in [real.as_str(), "app.example"] {
            let mut headers = EVIL_FORWARDING.to_vec();
            headers.push(("host", host));
            let what = format!("{peer}, Host {host}");

            // Login: the redirect to the flow, the flow page, and the redirect back.
            let c = client_with(&headers);
            let r = c
                .get(gw.url("/private?a=1"))
                .header("accept", BROWSER_ACCEPT)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 302, "{what}");
            let to = location(&r);
            assert!(to.starts_with("/.flowgate/flow/"), "{what}: {to}");
            no_evil(&what, &to);
            let (_, html) = page(&c, &gw.url(&to)).await;
            no_evil(&what, &html);
            let done = html_login(&c, &gw.url(""), "/private?a=1", "alice", ALICE_PASSWORD).await;
            assert_eq!(
                (done.status().as_u16(), location(&done)),
                (302, "/private?a=1".into()),
                "{what}"
            );
            let r = c.get(gw.url("/private?a=1")).send().await.unwrap();
            assert_eq!(r.status(), 200, "{what}");
            let seen = gw.upstream.last();
            let forwarded_host = if trust.is_empty() { host } else { "evil.example" };
            assert_eq!(seen.header("x-forwarded-host"), Some(forwarded_host), "{what}");
            let r = c.get(gw.url("/logout")).send().await.unwrap();
            no_evil(&what, &location(&r));

            // Recovery and enrollment mails: links to the real Host only.
            let before = all_mail(&gw).len();
            let r = walk(&c, &gw.url(RECOVERY), &[("uid_field", "bob")]).await;
            assert_eq!(r.status(), 200, "{what}");
            no_evil(&what, &r.text().await.unwrap());
            let user = format!("newuser{before}");
            let email = format!("{user}@example.test");
            let r = walk(
                &client_with(&headers),
                &gw.url(ENROLL_EMAIL),
                &[
                    ("username", user.as_str()),
                    ("name", "U"),
                    ("email", email.as_str()),
                    ("password", NEW_PASSWORD),
                    ("password_repeat", NEW_PASSWORD),
                ],
            )
            .await;
            assert!(r.text().await.unwrap().contains("Check your email"), "{what}");
            let mails = all_mail(&gw);
            assert_eq!(mails.len(), before + 2, "{what}");
            for m in &mails {
                no_evil(&what, m);
            }
            for (to, flow) in [("bob@example.test", RECOVERY), (email.as_str(), ENROLL_EMAIL)] {
                // A trusted proxy's `X-Forwarded-Proto: https` makes the links https (FWD-5);
                // the host stays the real one.
                let scheme = if trust.is_empty() { "http" } else { "https" };
                let want = format!("{scheme}://{host}{flow}?");
                let links = mailed_links(&gw, to);
                assert!(
                    links.iter().any(|l| l.starts_with(&want)),
                    "{what}: no link to {want} in {links:?}"
                );
            }
        }
        gw.stop().await;
    }
}

// Attack ids: FWD-4.
#[tokio::test]
async fn unknown_host_is_404_never_routed_and_never_echoed() {
    // FWD-4: only host-bound apps, so a Host nobody configured matches nothing. (An app without
    // `hosts` is a catch-all and takes every Host by design.)
    let apps = "  - name: app\n    hosts: [app.example]\n    upstream: \"http://UPSTREAM\"\n    skip_auth: [\"^/public/\"]\n  - name: other\n    hosts: [other.example]\n    path_prefix: /other\n    upstream: \"http://UPSTREAM\"\n    skip_auth: [\"^/\"]\n";
    let gw = TestGateway::start_with(apps, NO_LIMITS).await;
    let app = client_with(&[("host", "app.example")]);
    let done = html_login(&app, &gw.url(""), "/", "alice", ALICE_PASSWORD).await;
    let id = set_cookie_value(&done, "flowgate_session").unwrap();
    // Control: the configured host is routed.
    assert_eq!(app.get(gw.url("/x")).send().await.unwrap().status(), 200);
    let routed = gw.upstream.count();

    let hosts: Vec<Option<&str>> = vec![
        Some("evil.example"),
        Some("EVIL.example:80"),
        Some("evil.example."),
        Some("app.example.evil.example"),
        Some("evil.example:app.example"),
        Some("app.example@evil.example"),
        Some("other.evil.example"),
        Some(""),
        None,
    ];
    for host in &hosts {
        for path in ["/", "/private", "/public/a.css", "/other/x"] {
            for cookie in [None, Some(id.as_str())] {
                let mut req = format!("GET {path} HTTP/1.1\r\n");
                if let Some(h) = host {
                    req.push_str(&format!("Host: {h}\r\n"));
                }
                if let Some(c) = cookie {
                    req.push_str(&format!("Cookie: flowgate_session={c}\r\n"));
                }
                req.push_str("Accept: text/html\r\nConnection: close\r\n\r\n");
                let resp = raw_http(gw.addr, req.as_bytes()).await;
                let what = format!("Host {host:?} {path} cookie {}", cookie.is_some());
                assert!(matches!(raw_status(&resp), "404" | "421" | "400"), "{what}: {resp}");
                no_evil(&what, &resp);
            }
        }
        // The absolute form names the same unknown host.
        if let Some(h) = host.filter(|h| !h.is_empty() && !h.contains('@')) {
            let req = format!("GET http://{h}/public/a.css HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n\r\n");
            let resp = raw_http(gw.addr, req.as_bytes()).await;
            assert!(matches!(raw_status(&resp), "404" | "421" | "400"), "{h}: {resp}");
            no_evil(h, &resp);
        }
    }
    assert_eq!(gw.upstream.count(), routed, "an unknown host reached the upstream");

    // Flowgate's own pages answer any Host, but never repeat it nor redirect to it.
    let evil = client_with(&[("host", "evil.example")]);
    for path in [
        format!("{LOGIN}?next=%2Fprivate"),
        "/.flowgate/flows/-/default/authentication/?next=%2Fx".to_string(),
        "/.flowgate/flows/-/cancel/?next=%2Fx".to_string(),
        "/.flowgate/nothing".to_string(),
        "/logout".to_string(),
    ] {
        let r = evil.get(gw.url(&path)).send().await.unwrap();
        let to = location(&r);
        assert!(
            to.is_empty() || (to.starts_with('/') && !to.starts_with("//")),
            "{path}: {to}"
        );
        no_evil(&path, &to);
        no_evil(&path, &r.text().await.unwrap());
    }
    let r = walk(&evil, &gw.url(LOGIN), &[("uid_field", "alice")]).await;
    no_evil("identification", &r.text().await.unwrap());
    let r = walk(&evil, &gw.url(LOGIN), &[("password", ALICE_PASSWORD)]).await;
    assert_eq!(r.status(), 302);
    no_evil("login redirect", &location(&r));
    // A mail link cannot be built from an unknown Host: no mail, a generic error.
    let r = walk(
        &client_with(&[("host", "evil.example")]),
        &gw.url(RECOVERY),
        &[("uid_field", "bob")],
    )
    .await;
    let (status, html) = (r.status(), r.text().await.unwrap());
    assert!(status.is_client_error(), "{status}: {html}");
    assert!(html.contains("Email links cannot be built"), "{html}");
    no_evil("recovery", &html);
    assert!(all_mail(&gw).is_empty(), "a mail went out for an unknown Host");
    gw.stop().await;
}

// Attack ids: FWD-5.
#[tokio::test]
async fn forwarded_proto_never_makes_a_plain_http_cookie_secure() {
    // FWD-5: from an untrusted peer, cookie name and flags follow the listener that accepted
    // the connection, whatever scheme headers the client sends; the upstream's
    // X-Forwarded-Proto is `http`. (From a trusted proxy, `X-Forwarded-Proto: https` counts:
    // `trusted_proxy_forwarded_proto_https_gives_secure_cookies_and_https_origins`.)
    let headers: &[(&str, &str)] = &[
        ("x-forwarded-proto", "https"),
        ("x-forwarded-ssl", "on"),
        ("x-forwarded-scheme", "https"),
        ("front-end-https", "on"),
        ("x-url-scheme", "https"),
        ("forwarded", "proto=https"),
    ];
    {
        let (peer, trust) = PEERS[0];
        let gw = TestGateway::start_with(DEFAULT_APP, trust).await;
        let check = |r: &reqwest::Response, what: &str| {
            let cookies: Vec<String> = r
                .headers()
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect();
            assert!(!cookies.is_empty(), "{peer}: {what}: no cookie");
            for c in cookies {
                assert!(c.starts_with("flowgate_session="), "{peer}: {what}: {c}");
                assert!(!c.to_ascii_lowercase().contains("secure"), "{peer}: {what}: {c}");
                assert!(!c.contains("__Host-"), "{peer}: {what}: {c}");
            }
        };
        let c = client_with(headers);
        let r = c.get(gw.url(LOGIN)).send().await.unwrap();
        check(&r, "flow start");
        let done = html_login(&c, &gw.url(""), "/", "bob", BOB_PASSWORD).await;
        assert_eq!(done.status(), 302);
        check(&done, "login");
        let r = c.get(gw.url("/x")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{peer}: the plain cookie is the session");
        let seen = gw.upstream.last();
        assert_eq!(seen.headers_named("x-forwarded-proto"), vec!["http"], "{peer}");
        // The same session id under the HTTPS name is not a session on this listener.
        let id = set_cookie_value(&done, "flowgate_session").unwrap();
        let r = bare_client()
            .get(gw.url("/x"))
            .header("cookie", format!("__Host-flowgate_session={id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{peer}");
        // A form posted with an https Origin is cross-origin to this plain listener.
        let (_, html) = page(&c, &gw.url("/.flowgate/flow/default-password-change-flow/")).await;
        let r = c
            .post(gw.url("/.flowgate/flow/default-password-change-flow/"))
            .header("origin", format!("https://{}", gw.addr))
            .form(&[
                ("csrf_token", csrf_of(&html).as_str()),
                ("password", NEW_PASSWORD),
                ("password_repeat", NEW_PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{peer}");
        let bob = users(&gw).get_by_username("bob").await.unwrap().unwrap();
        assert!(users(&gw).verify_password(&bob, BOB_PASSWORD).await.unwrap());
        gw.stop().await;
    }
}

/// Sends `req` with the cookie `jar` holds (reqwest's own jar would not send a `Secure` cookie
/// over plain HTTP, which is what a TLS-terminating proxy in front does), keeping any new value.
async fn send_with(jar: &mut Option<(String, String)>, req: reqwest::RequestBuilder) -> reqwest::Response {
    let req = match jar {
        Some((name, value)) => req.header("cookie", format!("{name}={value}")),
        None => req,
    };
    let r = req.send().await.unwrap();
    for v in r.headers().get_all("set-cookie") {
        let v = v.to_str().unwrap();
        let (pair, _) = v.split_once(';').unwrap_or((v, ""));
        let (name, value) = pair.split_once('=').unwrap();
        *jar = Some((name.to_string(), value.to_string()));
    }
    r
}

// Attack ids: FWD-5 (the trusted side).
#[tokio::test]
async fn trusted_proxy_forwarded_proto_https_gives_secure_cookies_and_https_origins() {
    // FWD-5 from the other side: behind a TLS-terminating proxy (a trusted peer sending
    // `X-Forwarded-Proto: https`), the browser is on HTTPS, so the cookie is `__Host-` and
    // `Secure`, and a form posted with an `https://` Origin is same-origin.
    let gw = TestGateway::start_with(DEFAULT_APP, TRUSTED).await;
    let c = bare_client();
    let origin = format!("https://{}", gw.addr);
    let mut jar = None;
    let get = |path: &str| c.get(gw.url(path)).header("x-forwarded-proto", "https");
    let post = |path: &str| {
        c.post(gw.url(path))
            .header("x-forwarded-proto", "https")
            .header("origin", origin.as_str())
    };
    let r = send_with(&mut jar, get(LOGIN)).await;
    assert_eq!(r.status(), 200);
    let set = r.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(set.starts_with("__Host-flowgate_session="), "{set}");
    assert!(set.contains("; Secure"), "{set}");
    let csrf = csrf_of(&r.text().await.unwrap());
    let r = send_with(
        &mut jar,
        post(LOGIN).form(&[("csrf_token", csrf.as_str()), ("uid_field", "bob")]),
    )
    .await;
    assert_eq!(
        r.status(),
        302,
        "an https Origin is same-origin behind the trusted proxy"
    );
    let r = send_with(&mut jar, get(LOGIN)).await;
    let csrf = csrf_of(&r.text().await.unwrap());
    let r = send_with(
        &mut jar,
        post(LOGIN).form(&[("csrf_token", csrf.as_str()), ("password", BOB_PASSWORD)]),
    )
    .await;
    assert_eq!(r.status(), 302);
    let r = send_with(&mut jar, get(LOGIN)).await;
    assert_eq!(r.status(), 302, "login finished");
    let (name, _) = jar.clone().unwrap();
    assert_eq!(name, "__Host-flowgate_session");
    let r = send_with(&mut jar, get("/x")).await;
    assert_eq!(r.status(), 200);
    let seen = gw.upstream.last();
    assert_eq!(seen.header("x-forwarded-user"), Some("bob"));
    assert_eq!(seen.headers_named("x-forwarded-proto"), vec!["https"]);
    // The same request without the header (the proxy reached over another path) is plain HTTP:
    // the `__Host-` cookie is not this listener's session.
    let r = send_with(&mut jar, c.get(gw.url("/x"))).await;
    assert_eq!(r.status(), 401);
    gw.stop().await;
}
