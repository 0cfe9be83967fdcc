//! Forwarding headers, each sent once from an untrusted peer and once from a peer in
//! `trusted_proxies`: garbage in `X-Forwarded-For` never makes a stage or an app policy skip its
//! check, nor reaches the upstream as the client; `X-Forwarded-Host` never reaches a redirect or a
//! mailed link; a Host no app is configured for is a 404 and is never echoed;
//! `X-Forwarded-Proto: https` over plain HTTP never makes the session cookie `Secure` or
//! `__Host-`; client-address, rewrite and method-override headers from an untrusted peer never
//! reach the app. Over real sockets, asserting on what the app received.

use crate::common::*;

const LOGIN: &str = "/.flowgate/flow/default-authentication-flow/";

const TRUSTED: &str = "trusted_proxies: [127.0.0.1/32]\n";

/// The two ways the test client can be seen: a plain client, or a proxy flowgate trusts.
const PEERS: [(&str, &str); 2] = [("untrusted peer", ""), ("trusted peer", TRUSTED)];

/// A cookie-keeping client (redirects off) that sends `headers` on every request; a name given
/// twice becomes two header lines.
fn client_with(headers: &[(&str, &str)]) -> reqwest::Client {
    let mut map = reqwest::header::HeaderMap::new();
    for (k, v) in headers {
        map.append(
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            reqwest::header::HeaderValue::from_str(v).unwrap(),
        );
    }
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .default_headers(map)
        .build()
        .unwrap()
}

/// `X-Forwarded-For` values that are not a list of addresses, each as the header lines sent.
fn garbage_forwarded_for() -> Vec<Vec<String>> {
    let mut v: Vec<Vec<String>> = [
        "garbage",
        "1.2.3.4, garbage",
        "",
        " , ,",
        "unknown",
        "127.0.0.1 garbage",
        "1.2.3.4,,",
        "::ffff:999.1.1.1",
        "[::1]",
        "fe80::1%eth0",
        "2001:db8::g",
        ":::",
        "[2001:db8::1]:443",
        "1.2.3.4:80",
        "10.0.0.1/8",
        "gärbage",
        "1.2.3.4, ünknown",
    ]
    .iter()
    .map(|s| vec![s.to_string()])
    .collect();
    v.push(vec!["A".repeat(10 * 1024)]);
    v.push(vec![format!("{}junk", "9.9.9.9, ".repeat(1200))]);
    // Two header lines: a forged address first, garbage last.
    v.push(vec!["6.6.6.6".into(), "garbage".into()]);
    v
}

fn xff_headers(lines: &[String]) -> Vec<(&str, &str)> {
    lines.iter().map(|l| ("x-forwarded-for", l.as_str())).collect()
}

fn short(lines: &[String]) -> String {
    let s = lines.join(" | ");
    if s.len() > 40 {
        format!("{}... ({} bytes)", &s[..40], s.len())
    } else {
        s
    }
}

/// Flows with a stage meant to stop loopback clients (the test client's real address), gated
/// by a source CIDR, an expression on `ak_client_ip` and the IP's reputation, each evaluated
/// when planning and when the stage runs.
const GUARDED_FLOWS: &str = r#"
flows:
  - slug: cidr-on-plan
    designation: authentication
    bindings:
      - { stage: default-authentication-identification, order: 10 }
      - { stage: stop-here, order: 15, evaluate_on_plan: true, re_evaluate_policies: false, policies: [{ policy: from-loopback }] }
      - { stage: default-authentication-password, order: 20 }
  - slug: cidr-at-run
    designation: authentication
    bindings:
      - { stage: default-authentication-identification, order: 10 }
      - { stage: stop-here, order: 15, evaluate_on_plan: false, re_evaluate_policies: true, policies: [{ policy: from-loopback }] }
      - { stage: default-authentication-password, order: 20 }
  - slug: expression-at-run
    designation: authentication
    bindings:
      - { stage: default-authentication-identification, order: 10 }
      - { stage: stop-here, order: 15, evaluate_on_plan: false, re_evaluate_policies: true, policies: [{ policy: loopback-expression }] }
      - { stage: default-authentication-password, order: 20 }
  - slug: reputation-at-run
    designation: authentication
    bindings:
      - { stage: default-authentication-identification, order: 10 }
      - { stage: stop-here, order: 15, evaluate_on_plan: false, re_evaluate_policies: true, policies: [{ policy: bad-ip-reputation }] }
      - { stage: default-authentication-password, order: 20 }
stages:
  stop-here: { type: deny, deny_message: "stopped by the client address check" }
policies:
  from-loopback: { type: source_cidr, cidrs: [127.0.0.0/8] }
  from-ten: { type: source_cidr, cidrs: [10.0.0.0/8] }
  bad-ip-reputation: { type: reputation, threshold: -3, check_username: false }
  loopback-expression:
    type: expression
    expression: |
      return ak_client_ip.startswith("127.")
"#;

const GUARDED_APPS: &str = "  - name: internal\n    path_prefix: /internal\n    upstream: \"http://UPSTREAM\"\n    authentication_flow: default-authentication-flow\n    policies: [{ policy: from-ten }]\n  - name: app\n    upstream: \"http://UPSTREAM\"\n    authentication_flow: default-authentication-flow\n";

/// Whether the guarding stage of `slug` ran for alice, with `headers` on every request.
async fn guard_ran(gw: &TestGateway, slug: &str, headers: &[(&str, &str)]) -> bool {
    let c = client_with(headers);
    let r = walk(
        &c,
        &gw.url(&format!("/.flowgate/flow/{slug}/")),
        &[("uid_field", "alice")],
    )
    .await;
    let status = r.status();
    let html = r.text().await.unwrap();
    if html.contains("stopped by the client address check") {
        assert_eq!(status, 403, "{slug}");
        return true;
    }
    assert!(
        status == 200 && html.contains("name=\"password\""),
        "{slug}: neither the guard nor the password stage ({status}):\n{html}"
    );
    false
}

// Attack ids: FWD-2.
#[tokio::test]
async fn garbage_forwarded_for_never_skips_a_stage_or_an_app_policy() {
    // FWD-2 (CVE-2024-47070): garbage cannot become "no address" or a made-up address, so a
    // binding's policy sees the real client and its stage runs.
    let slugs = ["cidr-on-plan", "cidr-at-run", "expression-at-run", "reputation-at-run"];
    for (peer, trust) in PEERS {
        let extra = format!("{NO_LIMITS}{trust}");
        let gw = TestGateway::start_full(
            GUARDED_APPS,
            &extra,
            Upstream::spawn().await,
            &[("guarded.yaml", GUARDED_FLOWS)],
        )
        .await;
        // Three unknown usernames from the real address take its reputation to -3.
        for who in ["nobody1", "nobody2", "nobody3"] {
            walk(&client(), &gw.url(LOGIN), &[("uid_field", who)]).await;
        }
        for slug in slugs {
            assert!(guard_ran(&gw, slug, &[]).await, "{peer}: {slug} without the header");
            for lines in garbage_forwarded_for() {
                assert!(
                    guard_ran(&gw, slug, &xff_headers(&lines)).await,
                    "{peer}: {slug} skipped its stage for X-Forwarded-For {}",
                    short(&lines)
                );
            }
            // A real address: only a trusted peer may name it, and then the policies see it.
            let named = guard_ran(&gw, slug, &[("x-forwarded-for", "198.51.100.7")]).await;
            assert_eq!(named, trust.is_empty(), "{peer}: {slug} with a well-formed address");
        }

        // The app policy (only 10.0.0.0/8) sees the same client.
        let id = session_of(&gw, "alice", ALICE_PASSWORD).await;
        let get = |lines: Vec<String>| {
            let mut rb = bare_client()
                .get(gw.url("/internal/x"))
                .header("cookie", format!("flowgate_session={id}"));
            for l in lines {
                rb = rb.header("x-forwarded-for", l);
            }
            async move { rb.send().await.unwrap().status().as_u16() }
        };
        let before = gw.upstream.count();
        for lines in garbage_forwarded_for() {
            let mut spoofed = lines.clone();
            spoofed.insert(0, "10.1.2.3".into());
            for l in [lines, spoofed] {
                assert_eq!(get(l.clone()).await, 403, "{peer}: X-Forwarded-For {}", short(&l));
            }
        }
        assert_eq!(
            gw.upstream.count(),
            before,
            "{peer}: a denied request reached the upstream"
        );
        let named = get(vec!["10.1.2.3".into()]).await;
        assert_eq!(named, if trust.is_empty() { 403 } else { 200 }, "{peer}: 10.1.2.3");
        gw.stop().await;
    }
}

// Attack ids: FWD-2.
#[tokio::test]
async fn upstream_sees_the_real_peer_appended_never_garbage_as_client() {
    // FWD-2, upstream side: from an untrusted peer the header is replaced by the peer; from a
    // trusted one every line the proxy sent is kept, in order, and the peer is appended, so the
    // upstream's right-most entry is the real hop and a forged first line never sits next to it.
    for (peer, trust) in PEERS {
        let gw = TestGateway::start_with(DEFAULT_APP, trust).await;
        let id = session_of(&gw, "bob", BOB_PASSWORD).await;
        let mut cases = garbage_forwarded_for();
        cases.push(vec!["203.0.113.5".into(), "198.51.100.7".into()]);
        for lines in cases {
            let mut rb = bare_client()
                .get(gw.url("/x"))
                .header("cookie", format!("flowgate_session={id}"));
            for l in &lines {
                rb = rb.header("x-forwarded-for", l.as_str());
            }
            let r = rb.send().await.unwrap();
            assert_eq!(r.status(), 200, "{peer}: {}", short(&lines));
            let seen = gw.upstream.last();
            let got = seen.headers_named("x-forwarded-for");
            assert_eq!(got.len(), 1, "{peer}: {}: {got:?}", short(&lines));
            let got = got[0];
            if trust.is_empty() {
                assert_eq!(got, "127.0.0.1", "{peer}: {}", short(&lines));
            } else {
                let mut want: Vec<&str> = lines.iter().map(|l| l.trim()).filter(|l| !l.is_empty()).collect();
                want.push("127.0.0.1");
                assert_eq!(got, want.join(", "), "{peer}: {}", short(&lines));
            }
            assert_eq!(seen.header("x-forwarded-user"), Some("bob"));
        }
        gw.stop().await;
    }
}

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

/// Client-address, forwarding, rewrite and method-override headers in several spellings.
const SPOOFED: &[(&str, &str)] = &[
    ("Forwarded", "for=1.2.3.4;host=evil.example;proto=https"),
    ("X-Real-IP", "1.2.3.4"),
    ("X_Real_IP", "1.2.3.4"),
    ("True-Client-IP", "1.2.3.4"),
    ("X-Client-IP", "1.2.3.4"),
    ("CF-Connecting-IP", "1.2.3.4"),
    ("Fastly-Client-IP", "1.2.3.4"),
    ("X-Cluster-Client-IP", "1.2.3.4"),
    ("X-Forwarded-Server", "evil.example"),
    ("X-Forwarded-Port", "443"),
    ("X-Forwarded-Prefix", "/admin"),
    ("X-Host", "evil.example"),
    ("X-Original-Host", "evil.example"),
    ("X_Forwarded_For", "1.2.3.4"),
    ("X.Forwarded.Host", "evil.example"),
    ("X-Original-URL", "/admin"),
    ("X-Rewrite-URL", "/admin"),
    ("X_Original_URL", "/admin"),
    ("X-Original-URI", "/admin"),
    ("X-Forwarded-Uri", "/admin"),
    ("X-HTTP-Method-Override", "DELETE"),
    ("X-HTTP-Method", "DELETE"),
    ("X-Method-Override", "DELETE"),
    ("X-Custom-Client", "1.2.3.4"),
];

/// Names the app may see only from a trusted proxy (the rest never).
const REWRITES: &[&str] = &[
    "x-original-url",
    "x-rewrite-url",
    "x_original_url",
    "x-original-uri",
    "x-forwarded-uri",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

// Attack ids: FWD-6.
#[tokio::test]
async fn client_forwarding_and_rewrite_headers_never_reach_the_app_from_untrusted_peers() {
    for (who, extra) in [("untrusted", ""), ("trusted", "trusted_proxies: [127.0.0.1/32]\n")] {
        let gw = TestGateway::start_with(
            DEFAULT_APP,
            &format!("{NO_LIMITS}{extra}strip_headers: [X-Custom-Client]\n"),
        )
        .await;
        let alice = session_of(&gw, "alice", ALICE_PASSWORD).await;
        for (path, cookie) in [
            ("/public/x", String::new()),
            ("/private", format!("flowgate_session={alice}")),
        ] {
            let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n");
            for (k, v) in SPOOFED {
                req.push_str(&format!("{k}: {v}\r\n"));
            }
            req.push_str("Connection: close\r\n\r\n");
            let resp = raw_http(gw.addr, req.as_bytes()).await;
            assert_eq!(raw_status(&resp), "200", "{who} {path}: {resp}");
            let seen = gw.upstream.last();
            assert_eq!(seen.uri, path);
            assert_eq!(seen.method, "GET");
            for (k, v) in SPOOFED {
                let got = seen.headers_named(k);
                let rewrite = REWRITES.contains(&k.to_ascii_lowercase().as_str());
                if who == "untrusted" || rewrite {
                    assert!(got.is_empty(), "{who} {path}: {k} reached the app: {got:?}");
                } else {
                    assert_eq!(got, vec![*v], "{who} {path}: a trusted proxy's {k} is kept");
                }
            }
            // flowgate's own forwarding headers, one of each.
            assert_eq!(seen.headers_named("x-forwarded-for").len(), 1);
            assert_eq!(seen.headers_named("x-forwarded-host").len(), 1);
            if who == "untrusted" {
                assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
                assert_eq!(seen.header("x-forwarded-host"), Some("127.0.0.1"));
            }
        }
        gw.stop().await;
    }
}
