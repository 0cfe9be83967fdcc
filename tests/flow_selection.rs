//! Choosing "the" flow of a designation (docs/design.md §2.9): a configured default as is, otherwise
//! the first flow in slug order whose policies pass for the current request; none → 404.

use crate::common::*;

const FLOWS: &str = r#"
flows:
  - slug: a-internal
    designation: authentication
    policies: [{ policy: from-10 }]
    bindings: [{ stage: default-authentication-identification, order: 0 }]
  - slug: b-public
    designation: authentication
    bindings:
      - { stage: default-authentication-identification, order: 0 }
      - { stage: default-authentication-password, order: 1 }
      - { stage: default-authentication-login, order: 2 }
  - slug: signup
    designation: authorization
    policies: [{ policy: from-10 }]
    bindings: [{ stage: default-authentication-identification, order: 0 }]
policies:
  from-10: { type: source_cidr, cidrs: [10.0.0.0/8] }
"#;

#[tokio::test]
async fn first_accessible_flow_in_slug_order_is_used() {
    let upstream = Upstream::spawn().await;
    let gw = TestGateway::start_full(DEFAULT_APP, "", upstream, &[("flows.yaml", FLOWS)]).await;
    let r = bare_client()
        .get(gw.url("/x"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(
        location(&r),
        "/.flowgate/flow/b-public/?next=%2Fx",
        "a-internal is skipped: its policy fails"
    );
    let r = bare_client()
        .get(gw.url("/.flowgate/flows/-/default/authentication/?next=%2Fy"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/.flowgate/flow/b-public/?next=%2Fy");
    // The chosen flow works end to end.
    let c = client();
    let done = html_login(&c, &gw.url(""), "/x", "alice", ALICE_PASSWORD).await;
    assert_eq!(location(&done), "/x");
    // No authorization flow applies from loopback: a clear 404 page.
    let r = bare_client()
        .get(gw.url("/.flowgate/flows/-/default/authorization/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("No flow available"));
    let r = bare_client()
        .get(gw.url("/.flowgate/flows/-/default/nonsense/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Running the inaccessible flow directly is denied with the flow's message.
    let r = bare_client()
        .get(gw.url("/.flowgate/flow/a-internal/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("client address does not match"));
    gw.stop().await;
}

#[tokio::test]
async fn configured_default_is_used_without_policy_checks() {
    let upstream = Upstream::spawn().await;
    let gw = TestGateway::start_full(
        DEFAULT_APP,
        "default_flows: { authentication: a-internal }",
        upstream,
        &[("flows.yaml", FLOWS)],
    )
    .await;
    let r = bare_client()
        .get(gw.url("/x"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(location(&r), "/.flowgate/flow/a-internal/?next=%2Fx");
    gw.stop().await;
}
