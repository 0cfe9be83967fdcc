//! Expression policies over real sockets: a stage gated by an authentik expression that reads
//! the flow context, an app gated by group membership through `ak_is_group_member`, and a config
//! error for an expression that does not compile.

use crate::common::*;

const FLOWS: &str = r#"
flows:
  - slug: needs-bob
    designation: authentication
    denied_action: message
    policies: [{ policy: bob-exists }]
    bindings: [{ stage: default-authentication-identification, order: 10 }]
  - slug: expr-login
    designation: authentication
    bindings:
      - { stage: default-authentication-identification, order: 10 }
      - { stage: only-bob, order: 15, policies: [{ policy: not-bob }] }
      - { stage: default-authentication-password, order: 20 }
      - { stage: default-authentication-login, order: 30 }
stages:
  only-bob: { type: deny, deny_message: "this flow is for bob" }
policies:
  not-bob:
    type: expression
    expression: |
      pending = request.context.get("pending_user")
      if pending is None:
          return True
      ak_message("checked " + pending["username"])
      return pending["username"] != "bob"
  bob-exists:
    type: expression
    expression: |
      u = ak_user_by(username="bob")
      nobody = ak_user_by(email="nobody@example.test")
      return u != None and u.email == "bob@example.test" and nobody == None and u.has_usable_password()
  staff-member:
    type: expression
    expression: |
      return ak_is_group_member(request.user, name="staff")
"#;

#[tokio::test]
async fn expressions_gate_stages_and_apps() {
    let apps = "  - name: app\n    upstream: \"http://UPSTREAM\"\n    policies: [{ policy: staff-member }]\n";
    let upstream = Upstream::spawn().await;
    let gw = TestGateway::start_full(apps, "", upstream, &[("expr.yaml", FLOWS)]).await;
    let url = gw.url("/.flowgate/flow/expr-login/?next=%2Fdash");
    // alice: the deny stage's expression says "not for you" only for non-bob users.
    let c = client();
    let csrf = csrf_of(&c.get(&url).send().await.unwrap().text().await.unwrap());
    c.post(&url)
        .form(&[("csrf_token", csrf.as_str()), ("uid_field", "alice")])
        .send()
        .await
        .unwrap();
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("this flow is for bob"));
    // bob: the stage is skipped; he logs in, but the app requires staff.
    let c = client();
    let csrf = csrf_of(&c.get(&url).send().await.unwrap().text().await.unwrap());
    c.post(&url)
        .form(&[("csrf_token", csrf.as_str()), ("uid_field", "bob")])
        .send()
        .await
        .unwrap();
    let csrf = csrf_of(&c.get(&url).send().await.unwrap().text().await.unwrap());
    c.post(&url)
        .form(&[("csrf_token", csrf.as_str()), ("password", BOB_PASSWORD)])
        .send()
        .await
        .unwrap();
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(location(&r), "/dash");
    assert_eq!(
        c.get(gw.url("/dash")).send().await.unwrap().status(),
        403,
        "bob is not staff"
    );
    // ak_user_by reads the user store.
    let r = bare_client()
        .get(gw.url("/.flowgate/flow/needs-bob/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // alice through the default flow: staff via admins, the app lets her in.
    let a = client();
    html_login(&a, &gw.url(""), "/dash", "alice", ALICE_PASSWORD).await;
    assert_eq!(a.get(gw.url("/dash")).send().await.unwrap().status(), 200);
    gw.stop().await;
}

#[test]
fn an_expression_that_does_not_compile_is_a_config_error() {
    let src = "listen: { http: \"127.0.0.1:0\" }\npolicies:\n  broken:\n    type: expression\n    expression: |\n      x = 1\n      return x +\n";
    let err = flowgate::Config::from_yaml_str(src, "e.yaml").unwrap_err().to_string();
    assert!(
        err.starts_with("e.yaml:5:5: policies.broken.expression: expression line 2:"),
        "{err}"
    );
}
