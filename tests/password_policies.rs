//! Password expiry over real sockets (the injected clock moves past the limit), and config
//! errors for the password policy's unsupported or out-of-range settings.

use crate::common::*;
use std::time::Duration;

const FLOWS: &str = r#"
flows:
  - slug: expiring
    designation: authentication
    bindings:
      - { stage: default-authentication-identification, order: 10 }
      - { stage: default-authentication-password, order: 20 }
      - { stage: expired, order: 25, policies: [{ policy: max-age, negate: true }] }
      - { stage: default-authentication-login, order: 30 }
stages:
  expired: { type: deny, deny_message: "Your password has expired; ask for a reset." }
policies:
  max-age: { type: password_expiry, days: 400, deny_only: true }
"#;

const DISABLING: &str = r#"
flows:
  - slug: expiring
    designation: authentication
    bindings:
      - { stage: default-authentication-identification, order: 10 }
      - { stage: default-authentication-password, order: 20 }
      - { stage: expired, order: 25, policies: [{ policy: max-age, negate: true }] }
      - { stage: default-authentication-login, order: 30 }
stages:
  expired: { type: deny, deny_message: "Your password has expired." }
policies:
  max-age: { type: password_expiry, days: 400 }
"#;

#[tokio::test]
async fn without_deny_only_the_password_is_made_unusable() {
    let upstream = Upstream::spawn().await;
    let gw = TestGateway::start_full(DEFAULT_APP, "", upstream, &[("exp.yaml", DISABLING)]).await;
    gw.clock.advance(Duration::from_secs(400 * 86_400));
    assert_eq!(login(&gw).await, 403);
    let users = &gw.running.as_ref().unwrap().users;
    let alice = users.get_by_username("alice").await.unwrap().unwrap();
    assert!(
        alice.password_hash.is_none(),
        "the expired password can no longer be used"
    );
    assert!(!users.verify_password(&alice, ALICE_PASSWORD).await.unwrap());
    gw.stop().await;
}

async fn login(gw: &TestGateway) -> u16 {
    let c = client();
    let url = gw.url("/.flowgate/flow/expiring/");
    let csrf = csrf_of(&c.get(&url).send().await.unwrap().text().await.unwrap());
    c.post(&url)
        .form(&[("csrf_token", csrf.as_str()), ("uid_field", "alice")])
        .send()
        .await
        .unwrap();
    let csrf = csrf_of(&c.get(&url).send().await.unwrap().text().await.unwrap());
    c.post(&url)
        .form(&[("csrf_token", csrf.as_str()), ("password", ALICE_PASSWORD)])
        .send()
        .await
        .unwrap();
    c.get(&url).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn an_old_password_is_refused() {
    let upstream = Upstream::spawn().await;
    let gw = TestGateway::start_full(DEFAULT_APP, "", upstream, &[("exp.yaml", FLOWS)]).await;
    assert_eq!(login(&gw).await, 302, "a fresh password passes");
    gw.clock.advance(Duration::from_secs(400 * 86_400));
    assert_eq!(login(&gw).await, 403, "400 days later it has expired");
    gw.stop().await;
}

#[test]
fn password_policy_settings_are_checked() {
    let src = "listen: { http: \"127.0.0.1:0\" }\npolicies:\n  p: { type: password, check_have_i_been_pwned: true, hibp_url: \"ftp://x/\", zxcvbn_score_threshold: 7 }\n  e: { type: password_expiry, days: 0 }\n";
    let err = flowgate::Config::from_yaml_str(src, "p.yaml").unwrap_err().to_string();
    assert!(err.contains("policies.p.hibp_url: invalid URL \"ftp://x/\""), "{err}");
    assert!(
        err.contains("policies.p.zxcvbn_score_threshold: 7 is out of range"),
        "{err}"
    );
    assert!(err.contains("policies.e.days: must be at least 1"), "{err}");
}

/// A local range API: answers `/range/<prefix>` with the suffixes it knows.
async fn range_api(delay: Duration) -> std::net::SocketAddr {
    use bytes::Bytes;
    use http_body_util::Full;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| async move {
                    tokio::time::sleep(delay).await;
                    // SHA-1("password1") = E38AD214943DAAD1D64C102FAEC29DE4AFE9DA3D
                    let body = if req.uri().path() == "/range/E38AD" {
                        "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n214943DAAD1D64C102FAEC29DE4AFE9DA3D:2413945\r\n"
                    } else {
                        "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n"
                    };
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                        body.as_bytes(),
                    ))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn have_i_been_pwned_range_check() {
    use flowgate::config::{BindingTarget, EngineMode, PolicyBinding};
    use flowgate::flow::policies::{evaluate, PolicyInput};
    let addr = range_api(Duration::ZERO).await;
    let slow = range_api(Duration::from_secs(5)).await;
    let src = format!(
        "listen: {{ http: \"127.0.0.1:0\" }}\npolicies:\n  pwned: {{ type: password, check_have_i_been_pwned: true, hibp_url: \"http://{addr}/range/\", hibp_allowed_count: 10 }}\n  slow: {{ type: password, check_have_i_been_pwned: true, hibp_url: \"http://{slow}/range/\", hibp_timeout: 200ms }}\n"
    );
    let cfg = flowgate::Config::from_yaml_str(&src, "h.yaml").unwrap();
    let bind = |name: &str, failure_result: bool| PolicyBinding {
        target: BindingTarget::Policy(name.into()),
        negate: false,
        enabled: true,
        order: 0,
        timeout: Duration::from_secs(30),
        failure_result,
    };
    let with = |pw: &str| PolicyInput {
        context: serde_json::json!({"prompt_data": {"password": pw}})
            .as_object()
            .cloned()
            .unwrap(),
        ..Default::default()
    };
    let r = evaluate(
        &[bind("pwned", false)],
        EngineMode::All,
        &cfg.policies,
        &with("password1"),
    )
    .await;
    assert!(!r.passing);
    assert_eq!(r.messages, vec!["Password exists on 2413945 online lists.".to_string()]);
    let r = evaluate(
        &[bind("pwned", false)],
        EngineMode::All,
        &cfg.policies,
        &with("a rarely used passphrase 9"),
    )
    .await;
    assert!(r.passing, "{:?}", r.messages);
    // An unreachable or slow range API is an error: the binding's failure_result decides.
    let r = evaluate(&[bind("slow", false)], EngineMode::All, &cfg.policies, &with("x")).await;
    assert!(!r.passing);
    assert_eq!(r.messages, vec!["range API timed out".to_string()]);
    let r = evaluate(&[bind("slow", true)], EngineMode::All, &cfg.policies, &with("x")).await;
    assert!(r.passing);
}
