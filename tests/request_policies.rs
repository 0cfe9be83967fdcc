//! flowgate's request-matcher policies decide per-app access after login: path, method, source
//! CIDR, header and weekday/time (UTC, read from the injected clock).

use crate::common::*;
use std::time::Duration;

const POLICIES: &str = r#"
policies:
  loopback: { type: source_cidr, cidrs: [127.0.0.0/8] }
  internal-only: { type: source_cidr, cidrs: [10.0.0.0/8, "192.168.1.7"] }
  read-only: { type: method, methods: [get, HEAD] }
  api-paths: { type: path, regex: "^/api/" }
  has-client: { type: header, name: X-Client, regex: "^mobile-[0-9]+$" }
  office-hours: { type: time, weekdays: [mon, tue, wed, thu, fri], from: "08:00", to: "08:30" }
"#;

const APPS: &str = r#"  - { name: lan, path_prefix: /lan, upstream: "http://UPSTREAM", policies: [{ policy: loopback }] }
  - { name: vpn, path_prefix: /vpn, upstream: "http://UPSTREAM", policies: [{ policy: internal-only }] }
  - { name: ro, path_prefix: /ro, upstream: "http://UPSTREAM", policies: [{ policy: read-only }] }
  - { name: mobile, path_prefix: /mobile, upstream: "http://UPSTREAM", policies: [{ policy: has-client }] }
  - { name: office, path_prefix: /office, upstream: "http://UPSTREAM", policies: [{ policy: office-hours }] }
  - name: either
    path_prefix: /either
    upstream: "http://UPSTREAM"
    policy_engine_mode: any
    policies: [{ policy: internal-only }, { group: staff }]
  - name: both
    path_prefix: /both
    upstream: "http://UPSTREAM"
    policy_engine_mode: all
    policies: [{ policy: loopback }, { policy: read-only, negate: true }]
  - { name: app, upstream: "http://UPSTREAM" }
"#;

#[tokio::test]
async fn request_matchers_gate_apps() {
    let gw = TestGateway::start_with(APPS, POLICIES).await;
    let c = client();
    html_login(&c, &gw.url(""), "/", "alice", ALICE_PASSWORD).await;
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(c.get(gw.url("/lan/x")).send().await.unwrap()),
        200,
        "loopback client"
    );
    let r = c.get(gw.url("/vpn/x")).send().await.unwrap();
    assert_eq!(r.status(), 403, "not from 10/8");
    assert!(
        r.text().await.unwrap().contains("client address does not match"),
        "the policy message is shown"
    );
    assert_eq!(status(c.get(gw.url("/ro/x")).send().await.unwrap()), 200);
    assert_eq!(
        status(c.post(gw.url("/ro/x")).body("x").send().await.unwrap()),
        403,
        "POST is not read-only"
    );
    assert_eq!(
        status(c.get(gw.url("/mobile/x")).send().await.unwrap()),
        403,
        "header missing"
    );
    assert_eq!(
        status(
            c.get(gw.url("/mobile/x"))
                .header("x-client", "mobile-12")
                .send()
                .await
                .unwrap()
        ),
        200
    );
    assert_eq!(
        status(
            c.get(gw.url("/mobile/x"))
                .header("x-client", "desktop")
                .send()
                .await
                .unwrap()
        ),
        403
    );
    assert_eq!(
        status(c.get(gw.url("/either/x")).send().await.unwrap()),
        200,
        "any: the staff group suffices"
    );
    assert_eq!(
        status(c.get(gw.url("/both/x")).send().await.unwrap()),
        403,
        "all: GET is read-only, negated"
    );
    assert_eq!(
        status(c.delete(gw.url("/both/x")).send().await.unwrap()),
        200,
        "all: loopback and not read-only"
    );
    // The test clock starts on Friday 2027-01-15 08:00 UTC; the window is 08:00-08:30.
    assert_eq!(
        status(c.get(gw.url("/office/x")).send().await.unwrap()),
        200,
        "Friday 08:00"
    );
    gw.clock.advance(Duration::from_secs(20 * 60));
    assert_eq!(
        status(c.get(gw.url("/office/x")).send().await.unwrap()),
        200,
        "Friday 08:20"
    );
    gw.clock.advance(Duration::from_secs(20 * 60));
    assert_eq!(
        status(c.get(gw.url("/office/x")).send().await.unwrap()),
        403,
        "Friday 08:40 is outside"
    );
    gw.stop().await;
}

#[tokio::test]
async fn path_policy_and_bad_definitions() {
    let apps = "  - name: app\n    upstream: \"http://UPSTREAM\"\n    policies: [{ policy: api-paths }]\n";
    let gw = TestGateway::start_with(apps, POLICIES).await;
    let c = client();
    html_login(&c, &gw.url(""), "/api/v1", "alice", ALICE_PASSWORD).await;
    assert_eq!(c.get(gw.url("/api/v1")).send().await.unwrap().status(), 200);
    assert_eq!(c.get(gw.url("/other")).send().await.unwrap().status(), 403);
    gw.stop().await;

    let bad = "listen: { http: \"127.0.0.1:0\" }\npolicies:\n  a: { type: time, weekdays: [funday], from: \"25:00\" }\n  b: { type: source_cidr, cidrs: [\"10.0.0.0/40\"] }\n  c: { type: path, regex: \"(\" }\n  d: { type: method, methods: [\"GE T\"] }\n";
    let err = flowgate::Config::from_yaml_str(bad, "p.yaml").unwrap_err().to_string();
    for want in [
        "p.yaml:3:31: policies.a.weekdays[0]: unknown weekday \"funday\"",
        "p.yaml:3:40: policies.a.from: invalid time \"25:00\"",
        "p.yaml:4:35: policies.b.cidrs[0]: invalid address or CIDR",
        "p.yaml:5:20: policies.c.regex: invalid regular expression",
        "p.yaml:6:32: policies.d.methods[0]: invalid method",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}
