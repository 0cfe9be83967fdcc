//! The reputation policy: failed passwords and unknown identifiers lower the scores of the
//! client IP and the identifier; a deny stage bound to "reputation at or below -3" (checked when
//! the stage runs) stops further attempts until the scores expire (24 h on the injected clock).

use crate::common::*;
use std::time::Duration;

const FLOWS: &str = r#"
flows:
  - slug: guarded
    designation: authentication
    bindings:
      - { stage: default-authentication-identification, order: 10 }
      - { stage: too-many, order: 15, policies: [{ policy: bad-reputation }] }
      - { stage: default-authentication-password, order: 20 }
      - { stage: default-authentication-login, order: 30 }
stages:
  too-many: { type: deny, deny_message: "Too many failed attempts, try again later." }
policies:
  bad-reputation: { type: reputation, threshold: -3 }
"#;

async fn attempt(gw: &TestGateway, user: &str, password: &str) -> (u16, String) {
    let c = client();
    let url = gw.url("/.flowgate/flow/guarded/");
    let csrf = csrf_of(&c.get(&url).send().await.unwrap().text().await.unwrap());
    c.post(&url)
        .form(&[("csrf_token", csrf.as_str()), ("uid_field", user)])
        .send()
        .await
        .unwrap();
    let r = c.get(&url).send().await.unwrap();
    if r.status() != 200 {
        return (r.status().as_u16(), r.text().await.unwrap());
    }
    let csrf = csrf_of(&r.text().await.unwrap());
    let r = c
        .post(&url)
        .form(&[("csrf_token", csrf.as_str()), ("password", password)])
        .send()
        .await
        .unwrap();
    if r.status() != 302 {
        return (r.status().as_u16(), r.text().await.unwrap());
    }
    let r = c.get(&url).send().await.unwrap();
    (r.status().as_u16(), location(&r))
}

#[tokio::test]
async fn bad_reputation_switches_on_the_deny_stage_until_it_expires() {
    let upstream = Upstream::spawn().await;
    let gw = TestGateway::start_full(DEFAULT_APP, "", upstream, &[("rep.yaml", FLOWS)]).await;
    assert_eq!(
        attempt(&gw, "alice", ALICE_PASSWORD).await,
        (302, "/".to_string()),
        "good reputation: normal login"
    );
    // Three failed passwords take the IP from +1 to -2; an unknown identifier takes it to -3,
    // so the deny stage (checked when it is reached) stops that very attempt.
    for _ in 0..3 {
        assert_eq!(attempt(&gw, "bob", "wrong").await.0, 400);
    }
    assert_eq!(attempt(&gw, "nobody", "x").await.0, 403);
    let (status, body) = attempt(&gw, "alice", ALICE_PASSWORD).await;
    assert_eq!(status, 403, "the deny stage runs now");
    assert!(body.contains("Too many failed attempts"), "{body}");
    gw.clock.advance(Duration::from_secs(24 * 3600));
    assert_eq!(
        attempt(&gw, "alice", ALICE_PASSWORD).await,
        (302, "/".to_string()),
        "scores expired"
    );
    gw.stop().await;
}
