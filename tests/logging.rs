//! Secrets never reach the logs: a login at TRACE level leaves no password, session id or
//! cookie value in the captured output. And every log line of a request carries its request id
//! (the `request{id=…}` span): the proxy's decision, the flow's and stages' lines, an outbound
//! call's (the recovery mail), the request line, and the id the app received as `X-Request-Id`.

mod common;
use common::log_buf::LogBuf;
use common::*;

#[tokio::test]
async fn login_logs_no_secrets() {
    let buf = LogBuf::default();
    let writer = buf.clone();
    {
        use tracing_subscriber::filter::{filter_fn, FilterExt};
        use tracing_subscriber::prelude::*;
        // Everything the gateway process logs at TRACE, through flowgate's own record filter; the
        // test's HTTP client is left out.
        let env = tracing_subscriber::EnvFilter::new(
            "flowgate=trace,pingora=trace,pingora_core=trace,pingora_proxy=trace,sqlx=trace,moka=trace,rustls=trace",
        );
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .with_ansi(false);
        tracing_subscriber::registry()
            .with(layer.with_filter(env.and(filter_fn(flowgate::log_record_allowed))))
            .init();
    }
    let _ = tracing_log::LogTracer::init();
    // The app also takes API clients (app passwords, the user's password) and gets a JWT.
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("jwt.pem");
    std::fs::write(&key, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let apps = format!(
        "{DEFAULT_APP}    basic_auth: true\n    basic_auth_user_passwords: true\n    jwt: {{ key_file: \"{}\" }}\n",
        key.display()
    );
    let gw = TestGateway::start_with(&apps, "").await;
    let c = client();
    // A failed attempt with a planted secret, then the real login.
    let planted = "PLANTED-secret-Zx9!";
    html_login(&c, &gw.url(""), "/", "alice", planted).await;
    let c = client();
    let done = html_login(&c, &gw.url(""), "/", "alice", ALICE_PASSWORD).await;
    let id = set_cookie_value(&done, "flowgate_session").unwrap();
    assert_eq!(c.get(gw.url("/x")).send().await.unwrap().status(), 200);
    let forwarded_id = gw
        .upstream
        .last()
        .header("x-request-id")
        .expect("the app receives X-Request-Id")
        .to_string();
    c.get(gw.url("/logout")).send().await.unwrap();
    // A recovery mail: the outbound call logs under the request that asked for it.
    let r = walk(
        &client(),
        &gw.url("/.flowgate/flow/default-recovery-flow/"),
        &[("uid_field", "alice")],
    )
    .await;
    assert_eq!(all_mail(&gw).len(), 1, "the recovery mail is sent ({})", r.status());
    // A login with a second factor: the OTP code must not reach the log either.
    let code = {
        use flowgate::identity::mfa;
        use flowgate::session::clock::Clock;
        let bob = users(&gw).get_by_username("bob").await.unwrap().unwrap();
        let secret = mfa::new_totp_secret();
        users(&gw)
            .add_totp_device(bob.id, "app", &secret, 6, gw.clock.now_ms(), None)
            .await
            .unwrap();
        mfa::totp_code(&secret, mfa::totp_step(gw.clock.now_ms()), 6)
    };
    let c = client();
    let flow = gw.url("/.flowgate/flow/default-authentication-flow/");
    walk(&c, &flow, &[("uid_field", "bob")]).await;
    walk(&c, &flow, &[("password", BOB_PASSWORD)]).await;
    let r = walk(&c, &flow, &[("code", code.as_str())]).await;
    assert_eq!(r.status(), 302, "the code is accepted: {}", r.text().await.unwrap());
    // API clients: a planted Basic password (refused), an app password as Bearer and as Basic.
    let planted_api = "PLANTED-api-secret-Qw7";
    let (_, token) = {
        use flowgate::session::clock::Clock;
        users(&gw)
            .create_app_password("alice", "app", None, gw.clock.now_ms())
            .await
            .unwrap()
    };
    let basic = |u: &str, p: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
    };
    let api = |auth: String| bare_client().get(gw.url("/api/x")).header("authorization", auth).send();
    assert_eq!(
        api(format!("Basic {}", basic("alice", planted_api)))
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(api(format!("Bearer {token}")).await.unwrap().status(), 200);
    let jwt = gw.upstream.last().header("x-flowgate-jwt").unwrap().to_string();
    assert_eq!(
        api(format!("Basic {}", basic("alice", &token))).await.unwrap().status(),
        200
    );
    gw.stop().await;
    let logs = buf.text();
    assert!(logs.contains("login"), "the capture works: {logs}");
    // The audit events (docs/operations.md) are in the log as JSON lines under their own target.
    let audit: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| l.split_once(" flowgate::audit: "))
        .map(|(_, json)| serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}")))
        .collect();
    let events: Vec<&str> = audit.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        ["login_failed", "login", "logout", "login", "login_failed"],
        "{audit:?}"
    );
    assert_eq!(audit[4]["reason"], "invalid_api_credentials");
    assert_eq!(audit[0]["reason"], "invalid_password");
    assert_eq!(audit[3]["user"], "bob");
    let basic_planted = basic("alice", planted_api);
    let basic_token = basic("alice", &token);
    // `fgp_<hex key>_<secret>`: the secret itself may contain '_'.
    let token_secret = token.strip_prefix("fgp_").and_then(|t| t.split_once('_')).unwrap().1;
    for secret in [
        planted,
        ALICE_PASSWORD,
        BOB_PASSWORD,
        id.as_str(),
        code.as_str(),
        planted_api,
        token_secret,
        basic_planted.as_str(),
        basic_token.as_str(),
        jwt.as_str(),
    ] {
        if let Some(i) = logs.find(secret) {
            panic!(
                "{secret:?} appeared in the logs: ...{}...",
                &logs[i.saturating_sub(600)..(i + 100).min(logs.len())]
            );
        }
    }
    assert!(!logs.contains("$argon2id$"), "a password hash appeared in the logs");
    request_ids_tie_lines_together(&logs, &forwarded_id);
}

/// The value of `name=` in a log line (a span or an event field), quotes removed.
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=");
    let at = line
        .match_indices(&key)
        .find(|(i, _)| *i == 0 || !line.as_bytes()[i - 1].is_ascii_alphanumeric())?
        .0;
    let rest = &line[at + key.len()..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next(),
        None => rest.split([' ', '}', ':']).next(),
    }
}

/// The request id of a log line (the `request{id=…}` span), if it was logged inside a request.
fn id_of(line: &str) -> Option<&str> {
    field(&line[line.find("request{")?..], "id")
}

fn request_ids_tie_lines_together(logs: &str, forwarded_id: &str) {
    let lines: Vec<&str> = logs.lines().collect();
    let with_id = |id: &str| -> Vec<&str> { lines.iter().copied().filter(|l| id_of(l) == Some(id)).collect() };
    let decision = |l: &str, d: &str| l.contains("proxy decision") && field(l, "decision") == Some(d);
    // The login: the executor's line and the proxy's decision (to the UI) share an id.
    let login = lines
        .iter()
        .find(|l| l.contains("flowgate::flow::executor") && l.contains(": login "))
        .unwrap_or_else(|| panic!("no login line from the flow executor:\n{logs}"));
    let id = id_of(login).unwrap_or_else(|| panic!("the login line has no request id: {login}"));
    assert_eq!(id.len(), 32, "{login}");
    let same = with_id(id);
    assert!(
        same.iter().any(|l| decision(l, "ui")),
        "no proxy decision for the login request {id}:\n{}",
        same.join("\n")
    );
    // The mail written by the email stage: logged under the request whose decision sent it to
    // the UI.
    let mail = lines
        .iter()
        .find(|l| l.contains("flowgate::outbound::mail") && l.contains("mail written"))
        .unwrap_or_else(|| panic!("no mail line:\n{logs}"));
    let mail_id = id_of(mail).unwrap_or_else(|| panic!("the mail line has no request id: {mail}"));
    assert!(with_id(mail_id).iter().any(|l| decision(l, "ui")), "{mail}");
    assert!(
        with_id(mail_id).iter().any(|l| l.contains("flowgate::flow::stages")),
        "the email stage logs under the same id:\n{}",
        with_id(mail_id).join("\n")
    );
    // Other requests have other ids.
    let ids: std::collections::BTreeSet<&str> = lines.iter().filter_map(|l| id_of(l)).collect();
    assert!(ids.len() > 3, "one id for everything? {ids:?}");
    // The proxied request: the decision (request_filter), the request line (logging phase) and
    // what the app received share one id, and the span names the user, not the session.
    let proxied = with_id(forwarded_id);
    let allowed = proxied
        .iter()
        .find(|l| decision(l, "allow"))
        .unwrap_or_else(|| panic!("no decision logged under the id the app received ({forwarded_id}):\n{logs}"));
    assert_eq!(field(allowed, "user"), Some("alice"), "{allowed}");
    assert_eq!(field(allowed, "app"), Some("app"), "{allowed}");
    assert_eq!(field(allowed, "route"), Some("app"), "{allowed}");
    assert!(
        proxied
            .iter()
            .any(|l| l.contains("flowgate::proxy") && l.contains(": request ") && field(l, "status") == Some("200")),
        "no request line under {forwarded_id}:\n{}",
        proxied.join("\n")
    );
}
