//! The smaller stages over real sockets: invitation (single use, expiry, bound to its flow,
//! fixed data wins), consent (always, permanent, expiring), redirect (static and flow mode),
//! dummy, user_login's remember-me and terminate_other_sessions, enrollment and recovery links
//! on the login page, and templates overridden from the configured directory.

use crate::common::*;
use flowgate::session::clock::Clock;
use std::time::Duration;

const PW: &str = "violet tangerine expedition 77";

const INVITE_FLOWS: &str = r#"
flows:
  - slug: invited-signup
    designation: enrollment
    bindings:
      - { stage: invite-required, order: 0 }
      - { stage: invite-prompt, order: 10 }
      - { stage: invite-write, order: 20 }
      - { stage: default-authentication-login, order: 30 }
  - slug: other-signup
    designation: enrollment
    bindings:
      - { stage: invite-required, order: 0 }
      - { stage: invite-prompt, order: 10 }
stages:
  invite-required: { type: invitation }
  invite-prompt:
    type: prompt
    fields:
      - { field_key: username, label: Username, type: username }
      - { field_key: email, label: Email, type: email }
      - { field_key: password, label: Password, type: password }
  invite-write: { type: user_write, create_users_group: invited }
"#;

#[tokio::test]
async fn invitations_are_single_use_expire_and_stay_bound_to_their_flow() {
    let gw = TestGateway::start_full(
        DEFAULT_APP,
        "",
        Upstream::spawn().await,
        &[("invite.yaml", INVITE_FLOWS)],
    )
    .await;
    let now = gw.clock.now_ms();
    let fixed = serde_json::json!({"email": "invited@example.test"});
    let inv = users(&gw)
        .create_invitation(
            "one",
            Some("invited-signup"),
            Some(now as i64 + 3_600_000),
            true,
            fixed.as_object().unwrap().clone(),
            now,
        )
        .await
        .unwrap();
    // Without a token: denied, nothing stored.
    let (status, html) = page(&client(), &gw.url("/.flowgate/flow/invited-signup/")).await;
    assert_eq!(status, 403);
    assert!(html.contains("Invalid invite&#x2f;invite not found"), "{html}");
    // The token does not open another flow.
    let (status, _) = page(
        &client(),
        &gw.url(&format!("/.flowgate/flow/other-signup/?itoken={}", inv.token)),
    )
    .await;
    assert_eq!(status, 403);
    // With the token: the fixed email wins over what the user types.
    let c = client();
    let url = gw.url(&format!("/.flowgate/flow/invited-signup/?itoken={}", inv.token));
    let r = walk(
        &c,
        &url,
        &[("username", "ivy"), ("email", "typed@example.test"), ("password", PW)],
    )
    .await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let ivy = users(&gw).get_by_username("ivy").await.unwrap().unwrap();
    assert_eq!(ivy.email, "invited@example.test");
    assert_eq!(ivy.groups, vec!["invited".to_string()]);
    // Single use.
    let (status, _) = page(&client(), &url).await;
    assert_eq!(status, 403);
    assert!(users(&gw).list_invitations().await.unwrap().is_empty());
    // An expired invitation is refused.
    let old = users(&gw)
        .create_invitation("old", None, Some(now as i64 + 1000), false, Default::default(), now)
        .await
        .unwrap();
    gw.clock.advance(Duration::from_secs(2));
    let (status, _) = page(
        &client(),
        &gw.url(&format!("/.flowgate/flow/invited-signup/?itoken={}", old.token)),
    )
    .await;
    assert_eq!(status, 403);
}

const CONSENT_FLOWS: &str = r#"
flows:
  - slug: with-consent
    designation: authentication
    bindings:
      - { stage: default-authentication-identification, order: 10 }
      - { stage: default-authentication-password, order: 20 }
      - { stage: terms, order: 30 }
      - { stage: default-authentication-login, order: 40 }
stages:
  terms: { type: consent, mode: expiring, consent_expire_in: 1h }
"#;

/// Logs bob in through `with-consent`; returns the page after the password.
async fn to_consent(gw: &TestGateway, c: &reqwest::Client) -> reqwest::Response {
    let url = gw.url("/.flowgate/flow/with-consent/?next=%2Fapp%2F");
    walk(c, &url, &[("uid_field", "bob")]).await;
    walk(c, &url, &[("password", "bob's secret 42")]).await
}

#[tokio::test]
async fn expiring_consent_is_asked_once_per_period() {
    let app = "  - name: app\n    upstream: \"http://UPSTREAM\"\n    authentication_flow: with-consent\n";
    let gw = TestGateway::start_full(app, "", Upstream::spawn().await, &[("consent.yaml", CONSENT_FLOWS)]).await;
    let c = client();
    let r = to_consent(&gw, &c).await;
    let html = r.text().await.unwrap();
    assert!(html.contains("app would like to use your account."), "{html}");
    let token = regex::Regex::new(r#"name="token" value="([^"]+)""#)
        .unwrap()
        .captures(&html)
        .unwrap()[1]
        .to_string();
    let url = gw.url("/.flowgate/flow/with-consent/?next=%2Fapp%2F");
    let r = walk(&c, &url, &[("token", token.as_str())]).await;
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/app/");
    // Within the hour: no prompt.
    let r = to_consent(&gw, &client()).await;
    assert_eq!(r.status(), 302, "consent remembered");
    // After it expires: asked again.
    gw.clock.advance(Duration::from_secs(3601));
    let r = to_consent(&gw, &client()).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("name=\"token\""));
}

const REDIRECT_FLOWS: &str = r#"
flows:
  - slug: hop
    designation: authentication
    bindings:
      - { stage: identify-then-hop, order: 0 }
      - { stage: go-to-finish, order: 10 }
  - slug: finish
    designation: authentication
    bindings:
      - { stage: default-authentication-password, order: 10 }
      - { stage: default-authentication-login, order: 20 }
  - slug: to-docs
    designation: stage_configuration
    bindings:
      - { stage: show-dummy, order: 0 }
      - { stage: go-to-docs, order: 10 }
stages:
  identify-then-hop: { type: identification, user_fields: [username] }
  go-to-finish: { type: redirect, mode: flow, target_flow: finish, keep_context: true }
  go-to-docs: { type: redirect, mode: static, target_static: "/docs/" }
  show-dummy: { type: dummy }
"#;

#[tokio::test]
async fn redirect_static_and_flow_mode() {
    let gw = TestGateway::start_full(
        DEFAULT_APP,
        "",
        Upstream::spawn().await,
        &[("redirect.yaml", REDIRECT_FLOWS)],
    )
    .await;
    // Static: the dummy page, then off to the target.
    let c = client();
    let (status, html) = page(&c, &gw.url("/.flowgate/flow/to-docs/")).await;
    assert_eq!(status, 200);
    assert!(html.contains("Stage show-dummy."));
    let r = walk(&c, &gw.url("/.flowgate/flow/to-docs/"), &[]).await;
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/docs/");
    // Flow mode: identification in `hop`, password in `finish` with the context carried over.
    let c = client();
    let hop = gw.url("/.flowgate/flow/hop/?next=%2Fz");
    let r = walk(&c, &hop, &[("uid_field", "alice")]).await;
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/.flowgate/flow/finish/?next=%2Fz");
    let finish = gw.url("/.flowgate/flow/finish/?next=%2Fz");
    let (_, html) = page(&c, &finish).await;
    assert!(html.contains("alice"), "the pending user came along:\n{html}");
    let r = walk(&c, &finish, &[("password", "correct horse battery staple")]).await;
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/z");
}

const LOGIN_FLOWS: &str = r#"
flows:
  - slug: remembering
    designation: authentication
    bindings:
      - { stage: default-authentication-identification, order: 10 }
      - { stage: default-authentication-password, order: 20 }
      - { stage: login-remember, order: 30 }
stages:
  login-remember: { type: user_login, session_duration: 1h, remember_me_offset: 7d, terminate_other_sessions: true }
"#;

#[tokio::test]
async fn remember_me_extends_the_session_and_other_sessions_end() {
    let gw = TestGateway::start_full(DEFAULT_APP, "", Upstream::spawn().await, &[("login.yaml", LOGIN_FLOWS)]).await;
    let url = gw.url("/.flowgate/flow/remembering/");
    let first = client();
    walk(&first, &url, &[("uid_field", "bob")]).await;
    walk(&first, &url, &[("password", "bob's secret 42")]).await;
    let r = walk(&first, &url, &[]).await;
    assert_eq!(r.status(), 302);
    let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(cookie.contains("Max-Age=3600"), "{cookie}");
    assert_eq!(first.get(gw.url("/x")).send().await.unwrap().status(), 200);

    let second = client();
    walk(&second, &url, &[("uid_field", "bob")]).await;
    walk(&second, &url, &[("password", "bob's secret 42")]).await;
    let r = walk(&second, &url, &[("remember_me", "on")]).await;
    let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(cookie.contains(&format!("Max-Age={}", 3600 + 7 * 86400)), "{cookie}");
    // terminate_other_sessions: the first browser is logged out.
    let r = first
        .get(gw.url("/x"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(second.get(gw.url("/x")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn login_page_links_to_sign_up_and_recovery() {
    let gw = TestGateway::start().await;
    let (_, html) = page(
        &client(),
        &gw.url("/.flowgate/flow/default-authentication-flow/?next=%2Fa"),
    )
    .await;
    assert!(
        html.contains("href=\"&#x2f;.flowgate&#x2f;flow&#x2f;default-enrollment-flow&#x2f;?next=%2Fa\""),
        "{html}"
    );
    assert!(html.contains("default-recovery-flow"));
}

#[tokio::test]
async fn templates_are_overridden_from_the_configured_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ak-stage-identification.html"),
        "{% extends \"base.html\" %}{% block body %}<h1 id=\"heading\">Custom login for {{ flow_info.title }}</h1><form method=\"post\"><input type=\"hidden\" name=\"csrf_token\" value=\"{{ csrf_token }}\"><input name=\"uid_field\"></form>{% endblock %}",
    )
    .unwrap();
    let extra = format!("ui: {{ title: Acme, templates: \"{}\" }}\n", dir.path().display());
    let gw = TestGateway::start_with(DEFAULT_APP, &extra).await;
    let (status, html) = page(&client(), &gw.url("/.flowgate/flow/default-authentication-flow/")).await;
    assert_eq!(status, 200);
    assert!(html.contains("Custom login for"), "{html}");
    // Pages that were not overridden keep the built-in template.
    let c = client();
    let r = walk(
        &c,
        &gw.url("/.flowgate/flow/default-authentication-flow/"),
        &[("uid_field", "bob")],
    )
    .await;
    assert!(r.text().await.unwrap().contains("name=\"password\""));
}

#[tokio::test]
async fn a_broken_override_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ak-stage-prompt.html"), "{% if %}").unwrap();
    let cfg_dir = tempfile::tempdir().unwrap();
    let text = format!(
        "listen: {{ http: \"127.0.0.1:0\" }}\ndata_dir: \"{}\"\nmail: {{ transport: file }}\nui: {{ templates: \"{}\" }}\napps:\n  - {{ name: a, upstream: \"http://127.0.0.1:9\" }}\n",
        cfg_dir.path().display(),
        dir.path().display()
    );
    let mut sources = vec![flowgate::config::Source {
        name: "t.yaml".into(),
        text,
        base_dir: cfg_dir.path().to_path_buf(),
    }];
    sources.extend(shipped_flow_sources(cfg_dir.path()));
    let cfg = flowgate::Config::from_sources(sources).unwrap();
    let err = flowgate::Gateway::start(cfg).await.err().expect("must not start");
    assert!(err.to_string().contains("ak-stage-prompt.html"), "{err}");
}

const MFA_REQUIRED: &str = r#"
flows:
  - slug: mfa-required
    designation: authentication
    bindings:
      - { stage: default-authentication-identification, order: 10 }
      - { stage: default-authentication-password, order: 20 }
      - { stage: must-have-mfa, order: 30 }
      - { stage: default-authentication-login, order: 40 }
  - slug: mfa-or-nothing
    designation: authentication
    bindings:
      - { stage: default-authentication-identification, order: 10 }
      - { stage: default-authentication-password, order: 20 }
      - { stage: mfa-deny, order: 30 }
      - { stage: default-authentication-login, order: 40 }
stages:
  must-have-mfa:
    type: authenticator_validate
    not_configured_action: configure
    configuration_stages: [default-authenticator-totp-setup]
  mfa-deny: { type: authenticator_validate, not_configured_action: deny }
"#;

#[tokio::test]
async fn validate_without_a_device_denies_or_runs_the_setup_stage() {
    let gw = TestGateway::start_full(DEFAULT_APP, "", Upstream::spawn().await, &[("mfa.yaml", MFA_REQUIRED)]).await;
    let deny = gw.url("/.flowgate/flow/mfa-or-nothing/");
    let c = client();
    walk(&c, &deny, &[("uid_field", "bob")]).await;
    let r = walk(&c, &deny, &[("password", "bob's secret 42")]).await;
    assert_eq!(r.status(), 403);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("No (allowed) MFA authenticator configured."));

    let url = gw.url("/.flowgate/flow/mfa-required/");
    let c = client();
    walk(&c, &url, &[("uid_field", "bob")]).await;
    let r = walk(&c, &url, &[("password", "bob's secret 42")]).await;
    let html = r.text().await.unwrap();
    let secret = regex::Regex::new(r#"<code id="totp-secret">([A-Z2-7]+)</code>"#)
        .unwrap()
        .captures(&html)
        .unwrap_or_else(|| panic!("TOTP setup expected:\n{html}"))[1]
        .to_string();
    let key = data_encoding::BASE32_NOPAD.decode(secret.as_bytes()).unwrap();
    let code = flowgate::identity::mfa::totp_code(&key, flowgate::identity::mfa::totp_step(gw.clock.now_ms()), 6);
    let r = walk(&c, &url, &[("code", code.as_str())]).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let bob = users(&gw).get_by_username("bob").await.unwrap().unwrap();
    assert_eq!(users(&gw).totp_devices(bob.id).await.unwrap().len(), 1);
    assert_eq!(c.get(gw.url("/x")).send().await.unwrap().status(), 200);
}

const ACTIVATION: &str = r#"
flows:
  - slug: signup-activate
    designation: enrollment
    bindings:
      - { stage: act-prompt, order: 10 }
      - { stage: act-write, order: 20 }
      - { stage: act-email, order: 30 }
      - { stage: default-authentication-login, order: 40 }
stages:
  act-prompt:
    type: prompt
    fields:
      - { field_key: username, label: Username, type: username }
      - { field_key: email, label: Email, type: email }
      - { field_key: password, label: Password, type: password }
  act-write: { type: user_write, create_users_as_inactive: true }
  act-email: { type: email, template: account_confirmation, activate_user_on_success: true }
"#;

#[tokio::test]
async fn inactive_users_are_activated_by_the_mailed_link() {
    let gw = TestGateway::start_full(DEFAULT_APP, "", Upstream::spawn().await, &[("act.yaml", ACTIVATION)]).await;
    let c = client();
    let url = gw.url("/.flowgate/flow/signup-activate/");
    let r = walk(
        &c,
        &url,
        &[("username", "hal"), ("email", "hal@example.test"), ("password", PW)],
    )
    .await;
    assert!(r.text().await.unwrap().contains("Check your email"));
    let hal = users(&gw).get_by_username("hal").await.unwrap().unwrap();
    assert!(!hal.is_active, "written inactive");
    // The file transport wrote one .eml; its link resumes the flow.
    wait_for_mail(&gw);
    let mail_dir = gw.dir.path().join("mail");
    let files: Vec<_> = std::fs::read_dir(&mail_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let eml = std::fs::read_to_string(&files[0])
        .unwrap()
        .replace("=\r\n", "")
        .replace("=3D", "=");
    let link = regex::Regex::new(r"http://[^\s<>]+flow_token=[A-Za-z0-9_-]+")
        .unwrap()
        .find(&eml)
        .unwrap()
        .as_str()
        .to_string();
    let r = walk(&client(), &link, &[]).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert!(users(&gw).get_by_username("hal").await.unwrap().unwrap().is_active);
}

const ALL_TYPES: &str = r#"
flows:
  - slug: every-type
    designation: stage_configuration
    bindings:
      - { stage: every-type-prompt, order: 10 }
      - stage: every-type-deny
        order: 20
        evaluate_on_plan: false
        re_evaluate_policies: true
        policies: [{ policy: stored-as-expected }]
policies:
  stored-as-expected:
    type: expression
    expression: |
      d = context["prompt_data"]
      return d["ro"] == "fixed" and d["h"] == "secret-value" and d["st"] == "shown" and d["n"] == 12 and d["cb"] == True and d["dd"] == "green" and "sep" not in d
stages:
  every-type-deny: { type: deny, deny_message: done }
  every-type-prompt:
    type: prompt
    fields:
      - { field_key: t, type: text }
      - { field_key: ta, type: text_area, required: false }
      - { field_key: ro, type: text_read_only, initial_value: fixed }
      - { field_key: n, type: number }
      - { field_key: cb, type: checkbox }
      - { field_key: dd, type: dropdown, choices: [red, green] }
      - { field_key: rb, type: radio-button-group, choices: [a, b] }
      - { field_key: d, type: date }
      - { field_key: dt, type: date-time }
      - { field_key: f, type: file, required: false }
      - { field_key: sep, type: separator, label: More }
      - { field_key: h, type: hidden, placeholder: secret-value }
      - { field_key: st, type: static, placeholder: shown }
      - { field_key: loc, type: ak-locale, required: false }
"#;

#[tokio::test]
async fn prompt_checks_every_field_type() {
    let gw = TestGateway::start_full(DEFAULT_APP, "", Upstream::spawn().await, &[("types.yaml", ALL_TYPES)]).await;
    let c = client();
    let url = gw.url("/.flowgate/api/v3/flows/executor/every-type/");
    let v: serde_json::Value = c.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["fields"].as_array().unwrap().len(), 14);
    let bad = serde_json::json!({
        "t": "", "n": "twelve", "dd": "blue", "rb": "c", "d": "2023-02-30", "dt": "2023-01-01T25:00",
        "f": "data:text/plain,plain", "loc": "de DE"
    });
    let v: serde_json::Value = c.post(&url).json(&bad).send().await.unwrap().json().await.unwrap();
    let errors = v["response_errors"].as_object().unwrap();
    let mut keys: Vec<&str> = errors.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["d", "dd", "dt", "f", "loc", "n", "rb", "t"], "{v}");
    let good = serde_json::json!({
        "t": "x", "ro": "changed", "n": "12", "cb": true, "dd": "green", "rb": "b", "d": "2024-02-29",
        "dt": "2024-02-29T10:30", "f": "data:text/plain;base64,aGk=", "h": "tampered", "st": "tampered", "loc": "de-DE"
    });
    let r = c.post(&url).json(&good).send().await.unwrap();
    assert_eq!(r.status(), 302, "stage done: {}", r.text().await.unwrap());
    // The deny stage after the prompt runs only when its policy finds the stored values as
    // expected: read-only, hidden and static values forced, the number and checkbox typed.
    let v: serde_json::Value = c.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["component"], "ak-stage-access-denied", "{v}");
    assert_eq!(v["error_message"], "done");
}
