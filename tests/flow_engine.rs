//! Flow engine semantics over real sockets (docs/design.md §2, §4): denied_action with and without
//! `next`, a policy that times out, failure_result, a binding re-evaluated and skipped at run
//! time, evaluate_on_plan, invalid_response_action restart, anonymous users against user and
//! group bindings, and titles.

use crate::common::*;

const FLOWS: &str = r#"
flows:
  - { slug: deny-mc, designation: authentication, denied_action: message_continue, policies: [{ policy: never }], bindings: [{ stage: default-authentication-identification, order: 0 }] }
  - { slug: deny-m, designation: authentication, denied_action: message, policies: [{ policy: never }], bindings: [{ stage: default-authentication-identification, order: 0 }] }
  - { slug: deny-c, designation: authentication, denied_action: continue, policies: [{ policy: never }], bindings: [{ stage: default-authentication-identification, order: 0 }] }
  - { slug: slow, designation: authentication, denied_action: message, policies: [{ policy: sleepy, timeout: 200ms }], bindings: [{ stage: default-authentication-identification, order: 0 }] }
  - { slug: slow-ok, designation: authentication, denied_action: message, policies: [{ policy: sleepy, timeout: 200ms, failure_result: true }], bindings: [{ stage: default-authentication-identification, order: 0 }] }
  - { slug: undefined-ok, designation: authentication, denied_action: message, policies: [{ group: nobody-group, negate: true }], bindings: [{ stage: default-authentication-identification, order: 0 }] }
  - { slug: staff-only, designation: authentication, denied_action: message, policies: [{ group: staff }], bindings: [{ stage: default-authentication-identification, order: 0 }] }
  - { slug: alice-only, designation: authentication, denied_action: message, policies: [{ user: alice }], bindings: [{ stage: default-authentication-identification, order: 0 }] }
  - slug: conditional
    title: Hello %(user)s at %(app)s
    designation: authentication
    bindings:
      - { stage: default-authentication-identification, order: 10 }
      - { stage: blocker, order: 20, re_evaluate_policies: true, policies: [{ group: staff }] }
      - { stage: default-authentication-password, order: 30 }
      - { stage: default-authentication-login, order: 40 }
  - slug: planned
    designation: authentication
    bindings:
      - { stage: blocker, order: 10, evaluate_on_plan: true, re_evaluate_policies: false, policies: [{ policy: never }] }
      - { stage: default-authentication-identification, order: 20 }
  - slug: restart
    designation: authentication
    bindings:
      - { stage: default-authentication-identification, order: 10, invalid_response_action: restart }
  - { slug: broken-false, designation: authentication, denied_action: message, policies: [{ policy: raises }], bindings: [{ stage: default-authentication-identification, order: 0 }] }
  - { slug: broken-true, designation: authentication, denied_action: message, policies: [{ policy: raises, failure_result: true }], bindings: [{ stage: default-authentication-identification, order: 0 }] }
  - slug: empty
    designation: authentication
    bindings: [{ stage: blocker, order: 10, evaluate_on_plan: true, re_evaluate_policies: false, policies: [{ policy: never }] }]
  - slug: restart-ctx
    designation: authentication
    bindings:
      - { stage: default-authentication-identification, order: 10 }
      - { stage: default-authentication-password, order: 20, invalid_response_action: restart_with_context }
stages:
  blocker: { type: deny, deny_message: "staff may not log in here" }
policies:
  raises: { type: expression, expression: "return 1 // 0\n" }
  never: { type: dummy, result: false }
  sleepy: { type: dummy, result: true, wait_min: 5s }
"#;

async fn gw() -> TestGateway {
    let upstream = Upstream::spawn().await;
    TestGateway::start_full(
        DEFAULT_APP,
        "default_flows: { authentication: default-authentication-flow }",
        upstream,
        &[("engine.yaml", FLOWS)],
    )
    .await
}

#[tokio::test]
async fn denied_actions_with_and_without_next() {
    let gw = gw().await;
    let get = |path: &str| bare_client().get(gw.url(path)).send();
    // message_continue: next → redirect there; no next → message.
    let r = get("/.flowgate/flow/deny-mc/?next=%2Fhere").await.unwrap();
    assert_eq!((r.status().as_u16(), location(&r)), (302, "/here".to_string()));
    let r = get("/.flowgate/flow/deny-mc/").await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("dummy policy result: false"));
    // message: always the message.
    let r = get("/.flowgate/flow/deny-m/?next=%2Fhere").await.unwrap();
    assert_eq!(r.status(), 403);
    // continue: next, else /.
    let r = get("/.flowgate/flow/deny-c/?next=%2Fhere").await.unwrap();
    assert_eq!(location(&r), "/here");
    let r = get("/.flowgate/flow/deny-c/").await.unwrap();
    assert_eq!(location(&r), "/");
    // An unsafe next is ignored in the denial case too.
    let r = get("/.flowgate/flow/deny-c/?next=%2F%2Fevil.com").await.unwrap();
    assert_eq!(location(&r), "/");
    let r = get("/.flowgate/flow/deny-mc/?next=https%3A%2F%2Fevil.com")
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The JSON API reads next from the wrapped query as well.
    let r = get("/.flowgate/api/v3/flows/executor/deny-mc/?query=next%3D%252Fhere")
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v, serde_json::json!({"component": "xak-flow-redirect", "to": "/here"}));
    let r = get("/.flowgate/api/v3/flows/executor/deny-m/").await.unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["component"], "ak-stage-access-denied");
    assert_eq!(v["error_message"], "dummy policy result: false");
    gw.stop().await;
}

#[tokio::test]
async fn policy_timeout_yields_failure_result() {
    let gw = gw().await;
    let started = flowgate::session::clock::instant_now();
    let r = bare_client().get(gw.url("/.flowgate/flow/slow/")).send().await.unwrap();
    assert_eq!(r.status(), 403, "timed out with failure_result false");
    assert!(r.text().await.unwrap().contains("Timed out"));
    let r = bare_client()
        .get(gw.url("/.flowgate/flow/slow-ok/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "timed out with failure_result true");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "the timeout is a hard deadline"
    );
    gw.stop().await;
}

#[tokio::test]
async fn anonymous_users_fail_user_and_group_bindings() {
    let gw = gw().await;
    for flow in ["staff-only", "alice-only"] {
        let r = bare_client()
            .get(gw.url(&format!("/.flowgate/flow/{flow}/")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{flow}");
    }
    let r = bare_client()
        .get(gw.url("/.flowgate/flow/undefined-ok/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a negated group binding passes for anonymous users");
    gw.stop().await;
}

#[tokio::test]
async fn re_evaluated_binding_is_skipped_for_non_members_only() {
    let gw = gw().await;
    let flow = "/.flowgate/flow/conditional/?next=%2Fin";
    // bob is not staff: the blocker is skipped at run time, login succeeds.
    let c = client();
    let url = gw.url(flow);
    let html = c.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(
        html.contains("Hello %(user)s at %(app)s"),
        "no pending user yet: the raw title, as authentik: {html}"
    );
    let csrf = csrf_of(&html);
    c.post(&url)
        .form(&[("csrf_token", csrf.as_str()), ("uid_field", "bob")])
        .send()
        .await
        .unwrap();
    let html = c.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(
        html.contains("Hello bob at app"),
        "the title names the pending user: {html}"
    );
    let csrf = csrf_of(&html);
    c.post(&url)
        .form(&[("csrf_token", csrf.as_str()), ("password", BOB_PASSWORD)])
        .send()
        .await
        .unwrap();
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(location(&r), "/in");
    // alice is staff (through admins): the blocker runs and denies.
    let c = client();
    let csrf = csrf_of(&c.get(&url).send().await.unwrap().text().await.unwrap());
    c.post(&url)
        .form(&[("csrf_token", csrf.as_str()), ("uid_field", "alice")])
        .send()
        .await
        .unwrap();
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("staff may not log in here"));
    gw.stop().await;
}

#[tokio::test]
async fn evaluate_on_plan_drops_the_stage() {
    let gw = gw().await;
    let r = bare_client()
        .get(gw.url("/.flowgate/api/v3/flows/executor/planned/"))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        v["component"], "ak-stage-identification",
        "the deny stage was left out of the plan"
    );
    gw.stop().await;
}

#[tokio::test]
async fn restart_replans_after_an_invalid_response() {
    let gw = gw().await;
    let c = client();
    let api = gw.url("/.flowgate/api/v3/flows/executor/restart/");
    c.get(&api).send().await.unwrap();
    let r = c
        .post(&api)
        .json(&serde_json::json!({"uid_field": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        302,
        "restart answers with a redirect to the executor, not the errors"
    );
    let v: serde_json::Value = c.get(&api).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["component"], "ak-stage-identification");
    assert!(v.get("response_errors").is_none());
    gw.stop().await;
}

#[tokio::test]
async fn a_policy_error_yields_failure_result() {
    let gw = gw().await;
    let r = bare_client()
        .get(gw.url("/.flowgate/flow/broken-false/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "error with failure_result false denies");
    let body = r.text().await.unwrap();
    assert!(
        body.to_lowercase().contains("division") || body.to_lowercase().contains("zero"),
        "the error is shown: {body}"
    );
    let r = bare_client()
        .get(gw.url("/.flowgate/flow/broken-true/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "error with failure_result true passes");
    gw.stop().await;
}

#[tokio::test]
async fn an_empty_plan_finishes_the_flow() {
    let gw = gw().await;
    let r = bare_client()
        .get(gw.url("/.flowgate/flow/empty/?next=%2Fdone"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/done");
    gw.stop().await;
}

#[tokio::test]
async fn restart_with_context_keeps_the_pending_user() {
    let gw = gw().await;
    let c = client();
    let api = gw.url("/.flowgate/api/v3/flows/executor/restart-ctx/");
    c.get(&api).send().await.unwrap();
    c.post(&api)
        .json(&serde_json::json!({"uid_field": "bob"}))
        .send()
        .await
        .unwrap();
    let r = c
        .post(&api)
        .json(&serde_json::json!({"password": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "the invalid answer restarts the plan");
    let v: serde_json::Value = c.get(&api).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        v["component"], "ak-stage-identification",
        "planned again from the first stage"
    );
    assert_eq!(v["pending_user_identifier"], serde_json::Value::Null);
    c.post(&api)
        .json(&serde_json::json!({"uid_field": "bob"}))
        .send()
        .await
        .unwrap();
    let r = c
        .post(&api)
        .json(&serde_json::json!({"password": BOB_PASSWORD}))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        v["component"], "xak-flow-redirect",
        "the last stage's answer finishes the flow"
    );
    gw.stop().await;
}
