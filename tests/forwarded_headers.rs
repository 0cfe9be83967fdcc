//! Forwarding headers, each sent once from an untrusted peer and once from a peer in
//! `trusted_proxies`: garbage in `X-Forwarded-For` never makes a stage or an app policy skip its
//! check, nor reaches the upstream as the client; client-address, rewrite and method-override
//! headers from an untrusted peer never reach the app. Over real sockets, asserting on what the
//! app received. Host and scheme (`X-Forwarded-Host`, unknown Hosts, `X-Forwarded-Proto`) are in
//! `forwarded_headers_host.rs`.

use crate::common::*;

pub(crate) const LOGIN: &str = "/.flowgate/flow/default-authentication-flow/";

pub(crate) const TRUSTED: &str = "trusted_proxies: [127.0.0.1/32]\n";

/// The two ways the test client can be seen: a plain client, or a proxy flowgate trusts.
pub(crate) const PEERS: [(&str, &str); 2] = [("untrusted peer", ""), ("trusted peer", TRUSTED)];

/// A cookie-keeping client (redirects off) that sends `headers` on every request; a name given
/// twice becomes two header lines.
pub(crate) fn client_with(headers: &[(&str, &str)]) -> reqwest::Client {
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
