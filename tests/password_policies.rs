//! Password expiry over real sockets (the injected clock moves past the limit), and config
//! errors for the password policy's unsupported or out-of-range settings.

mod common;
use common::*;
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
    let src = "listen: { http: \"127.0.0.1:0\" }\npolicies:\n  p: { type: password, check_have_i_been_pwned: true, zxcvbn_score_threshold: 7 }\n  e: { type: password_expiry, days: 0 }\n";
    let err = flowgate::Config::from_yaml_str(src, "p.yaml").unwrap_err().to_string();
    assert!(
        err.contains("policies.p.check_have_i_been_pwned: the Have I Been Pwned check is not implemented yet"),
        "{err}"
    );
    assert!(
        err.contains("policies.p.zxcvbn_score_threshold: 7 is out of range"),
        "{err}"
    );
    assert!(err.contains("policies.e.days: must be at least 1"), "{err}");
}
