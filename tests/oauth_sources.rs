//! Logins through an OpenID Connect source (issue 16): the authorization code flow with PKCE
//! against a provider the test starts (`common/oidc.rs`), the source's enrollment and
//! authentication flows, the user-source connection, `user_matching_mode`, and every forged
//! or faulty answer the gateway must refuse with a clear page, no session, no user and a log
//! line. Assertions are on what the app behind the gateway received.

use crate::common::log_buf::LogBuf;
use crate::common::oidc::{Forge, TestProvider, CLIENT_ID, CLIENT_SECRET};
use crate::common::*;
use serde_json::json;
use std::time::Duration;

/// The login flow with the source's button, and authentik's source flows in native form.
pub(crate) const SOURCE_FLOWS: &str = r#"
flows:
  - slug: default-authentication-flow
    name: Welcome
    title: Welcome
    designation: authentication
    authentication: require_unauthenticated
    bindings:
      - { stage: ident, order: 10 }
      - { stage: pw, order: 20 }
      - { stage: login, order: 100 }
  - slug: default-source-authentication
    name: Welcome
    title: Welcome
    designation: authentication
    authentication: require_unauthenticated
    policies: [{ policy: source-if-sso }]
    bindings:
      - { stage: source-login, order: 0 }
  - slug: default-source-enrollment
    name: Pick a username
    title: Pick a username
    designation: enrollment
    authentication: none
    policies: [{ policy: source-if-sso }]
    bindings:
      - { stage: source-prompt, order: 0, re_evaluate_policies: true, policies: [{ policy: source-if-no-username }] }
      - { stage: source-write, order: 1 }
      - { stage: source-login, order: 2 }
stages:
  ident: { type: identification, user_fields: [username, email], sources: [corp] }
  pw: { type: password }
  login: { type: user_login }
  source-login: { type: user_login }
  source-prompt:
    type: prompt
    fields: [{ field_key: username, label: Username, type: username, order: 0 }]
  source-write: { type: user_write, user_creation_mode: always_create }
policies:
  source-if-sso: { type: expression, expression: "return ak_is_sso_flow" }
  source-if-no-username: { type: expression, expression: "return 'username' not in context.get('prompt_data', {})" }
"#;

/// The `sources:` block for `provider` with `mode`.
pub fn source_yaml(well_known: &str, mode: &str, provider_type: &str) -> String {
    format!(
        "sources:\n  corp:\n    type: oauth\n    name: Corp SSO\n    provider_type: {provider_type}\n    oidc_well_known_url: \"{well_known}\"\n    consumer_key: {CLIENT_ID}\n    consumer_secret_file: client-secret\n    additional_scopes: [groups]\n    user_matching_mode: {mode}\n    authentication_flow: default-source-authentication\n    enrollment_flow: default-source-enrollment\n    timeout: 2s\n"
    )
}

/// A gateway whose `corp` source is `provider`'s (or any well-known URL).
async fn gateway(well_known: &str, mode: &str, provider_type: &str) -> TestGateway {
    gateway_with(well_known, mode, provider_type, SOURCE_FLOWS).await
}

/// [`gateway`] with other source flows.
async fn gateway_with(well_known: &str, mode: &str, provider_type: &str, flows: &str) -> TestGateway {
    gateway_at(well_known, mode, provider_type, flows, 1_800_000_000_000).await
}

/// [`gateway_with`] with the injected clock at `clock_ms`.
pub(crate) async fn gateway_at(
    well_known: &str,
    mode: &str,
    provider_type: &str,
    flows: &str,
    clock_ms: u64,
) -> TestGateway {
    let main = source_yaml(well_known, mode, provider_type);
    gateway_from(&main, &[("source-flows.yaml", flows.to_string())], clock_ms).await
}

/// A gateway with `main` in its main file and `files` as included sources, in a directory
/// holding the seed and the client secret (as `client-secret` and `secrets/source-corp.secret`).
async fn gateway_from(main: &str, files: &[(&str, String)], clock_ms: u64) -> TestGateway {
    gateway_with_apps(DEFAULT_APP, main, files, clock_ms).await
}

/// [`gateway_from`] with `apps` as the `apps:` list.
async fn gateway_with_apps(apps: &str, main: &str, files: &[(&str, String)], clock_ms: u64) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("seed.yaml"), SEED).unwrap();
    std::fs::write(dir.path().join("client-secret"), format!("{CLIENT_SECRET}\n")).unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/source-corp.secret"), CLIENT_SECRET).unwrap();
    let upstream = Upstream::spawn().await;
    let mut sources = vec![flowgate::config::Source {
        name: "test.yaml".into(),
        text: config_text(
            apps,
            &format!("{NO_LIMITS}events: {{ file: events.jsonl }}\n{main}"),
            upstream.addr,
            dir.path(),
        ),
        base_dir: dir.path().to_path_buf(),
    }];
    for (name, text) in flowgate::demo::SHIPPED_FLOWS {
        if *name == "default-invalidation.yaml" {
            sources.push(flowgate::config::Source {
                name: name.to_string(),
                text: text.to_string(),
                base_dir: dir.path().to_path_buf(),
            });
        }
    }
    for (name, text) in files {
        sources.push(flowgate::config::Source {
            name: name.to_string(),
            text: text.clone(),
            base_dir: dir.path().to_path_buf(),
        });
    }
    let cfg = flowgate::config::Config::from_sources(sources).unwrap_or_else(|e| panic!("config:\n{e}"));
    TestGateway::from_config_at(cfg, dir, upstream, flowgate::session::ManualClock::new(clock_ms)).await
}

fn alice_claims() -> serde_json::Value {
    json!({ "sub": "corp-0001", "preferred_username": "ann", "email": "ann@corp.example", "email_verified": true, "name": "Ann Corp", "groups": ["engineering"] })
}

/// How a walk through the source ended.
struct Outcome {
    /// The last answer's status (the callback's refusal page, or the app).
    status: u16,
    /// Its body.
    body: String,
}

/// Walks a browser from a protected path through the button, the provider and the callback,
/// following flowgate's redirects, and returns the first answer that is not a redirect.
async fn walk_source(gw: &TestGateway, c: &reqwest::Client, path: &str) -> Outcome {
    let r = c
        .get(gw.url(path))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let flow = gw.url(&location(&r));
    let page = c.get(&flow).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Log in with Corp SSO"), "button missing:\n{html}");
    let start = html
        .split("href=\"")
        .map(|s| {
            s.split('"')
                .next()
                .unwrap_or("")
                .replace("&#x2f;", "/")
                .replace("&#x3d;", "=")
                .replace("&#x3f;", "?")
                .replace("&amp;", "&")
        })
        .find(|h| h.starts_with("/.flowgate/source/oauth/login/corp/"))
        .expect("source link");
    let mut url = gw.url(&start);
    for _ in 0..12 {
        let r = c.get(&url).header("accept", BROWSER_ACCEPT).send().await.unwrap();
        if r.status() != 302 {
            let status = r.status().as_u16();
            return Outcome {
                status,
                body: r.text().await.unwrap(),
            };
        }
        let to = location(&r);
        url = if to.starts_with('/') { gw.url(&to) } else { to };
    }
    panic!("too many redirects");
}

/// Whether the browser `c` has a logged-in session at the gateway (the app is reached).
async fn reaches_app(gw: &TestGateway, c: &reqwest::Client) -> bool {
    let before = gw.upstream.count();
    let r = c
        .get(gw.url("/private/check"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    r.status() == 200 && gw.upstream.count() == before + 1
}

#[tokio::test]
async fn first_login_enrolls_then_the_subject_finds_the_same_user() {
    let (provider, gw) = pair("identifier", alice_claims()).await;

    let users_before = users(&gw).list_users().await.unwrap().len();
    let c = client();
    let out = walk_source(&gw, &c, "/private/reports?x=1").await;
    assert_eq!(out.status, 200, "{}", out.body);
    let seen = gw.upstream.last();
    assert_eq!(seen.uri, "/private/reports?x=1", "back where the user started");
    assert_eq!(seen.header("x-forwarded-user"), Some("ann"));
    assert_eq!(seen.header("x-forwarded-email"), Some("ann@corp.example"));
    assert!(seen.header("x-forwarded-groups").unwrap_or("").contains("engineering"));

    // What the provider was sent: PKCE S256, state, nonce, our client and callback.
    let auth = &provider.authorized()[0].params;
    assert_eq!(auth["client_id"], CLIENT_ID);
    assert_eq!(auth["code_challenge_method"], "S256");
    assert!(auth["state"].len() >= 40 && auth["nonce"].len() >= 40);
    assert_eq!(auth["redirect_uri"], gw.url("/.flowgate/source/oauth/callback/corp/"));
    assert!(auth["scope"].split(' ').any(|s| s == "groups"));

    let ann = users(&gw).get_by_username("ann").await.unwrap().expect("enrolled");
    assert!(ann.email_verified, "the provider verified the address");
    assert_eq!(users(&gw).list_users().await.unwrap().len(), users_before + 1);
    let links = users(&gw).source_connections_of(ann.id).await.unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(
        (links[0].source.as_str(), links[0].identifier.as_str()),
        ("corp", "corp-0001")
    );

    // The email changes at the provider: the subject still finds ann, no second user.
    provider.set_user(json!({ "sub": "corp-0001", "preferred_username": "ann", "email": "ann.new@corp.example", "email_verified": true }));
    let c2 = client();
    let out = walk_source(&gw, &c2, "/private/again").await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("ann"));
    assert_eq!(users(&gw).list_users().await.unwrap().len(), users_before + 1);

    // The JSON executor lists the source the way authentik's UI expects.
    let j: serde_json::Value = client()
        .get(gw.url("/.flowgate/api/v3/flows/executor/default-authentication-flow/?query=next%3D%252Fx"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let s = &j["sources"][0];
    assert_eq!(s["name"], "Corp SSO");
    assert_eq!(s["challenge"]["component"], "xak-flow-redirect");
    assert!(s["challenge"]["to"]
        .as_str()
        .unwrap()
        .starts_with("/.flowgate/source/oauth/login/corp/?"));
    gw.stop().await;
}

/// A provider at the gateway's clock and a gateway pointed at it.
async fn pair(mode: &str, claims: serde_json::Value) -> (TestProvider, TestGateway) {
    // TestGateway::from_config's clock, in seconds: the provider issues tokens at it.
    let provider = TestProvider::spawn(1_800_000_000, claims).await;
    let gw = gateway(&provider.well_known(), mode, "openidconnect").await;
    (provider, gw)
}

#[tokio::test]
async fn email_link_links_a_verified_address_and_refuses_an_unverified_one() {
    // alice exists (seed) with alice@example.test.
    let (provider, gw) = pair(
        "email_link",
        json!({ "sub": "x-1", "preferred_username": "alice-corp", "email": "alice@example.test", "email_verified": false }),
    )
    .await;
    let n = users(&gw).list_users().await.unwrap().len();
    let out = walk_source(&gw, &client(), "/private").await;
    assert_eq!(out.status, 403);
    assert!(out.body.contains("already exists"), "{}", out.body);
    assert_eq!(users(&gw).list_users().await.unwrap().len(), n, "no user created");

    provider.set_user(json!({ "sub": "x-1", "preferred_username": "alice-corp", "email": "ALICE@example.test", "email_verified": true }));
    let c = client();
    let out = walk_source(&gw, &c, "/private").await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("alice"));
    assert_eq!(users(&gw).list_users().await.unwrap().len(), n);
    gw.stop().await;
}

#[tokio::test]
async fn email_deny_and_a_missing_email_are_refused_with_nothing_created() {
    // Captured from before the gateway starts: its tasks take this thread's subscriber.
    let (logs, _guard) = LogBuf::capture("flowgate=info");
    let (provider, gw) = pair(
        "email_deny",
        json!({ "sub": "x-2", "preferred_username": "someone", "email": "bob@example.test", "email_verified": true }),
    )
    .await;
    let n = users(&gw).list_users().await.unwrap().len();
    let c = client();
    let out = walk_source(&gw, &c, "/private").await;
    assert_eq!(out.status, 403);
    assert!(out.body.contains("A user with this email address already exists."));
    assert!(!reaches_app(&gw, &c).await, "no session");

    provider.set_user(json!({ "sub": "x-3", "preferred_username": "noemail" }));
    let out = walk_source(&gw, &c, "/private").await;
    assert_eq!(out.status, 403);
    assert!(out.body.contains("did not return an email address"), "{}", out.body);
    assert!(!reaches_app(&gw, &c).await);
    assert_eq!(users(&gw).list_users().await.unwrap().len(), n, "no user created");
    let text = logs.text();
    assert!(text.contains("email_deny: the email is taken"), "{text}");
    assert!(text.contains("no email claim under an email matching mode"), "{text}");
    let events = std::fs::read_to_string(gw.dir.path().join("events.jsonl")).unwrap_or_default();
    let refused = events
        .lines()
        .filter(|l| l.contains("\"login_failed\"") && l.contains("\"source_refused\""))
        .count();
    assert_eq!(refused, 2, "an audit event per refusal:\n{events}");
    gw.stop().await;
}

#[tokio::test]
async fn forged_tokens_are_refused_with_a_reason_in_the_log() {
    let (logs, _guard) = LogBuf::capture("flowgate=info");
    let (provider, gw) = pair("identifier", alice_claims()).await;
    let n = users(&gw).list_users().await.unwrap().len();
    let cases = [
        (Forge::OtherAudience, "Invalid audiences"),
        (Forge::OtherAzp, "azp"),
        (Forge::Expired, "expired"),
        (Forge::Future, "issued in the future"),
        (Forge::UnknownKey, "key the provider does not publish"),
        (Forge::AlgNone, "algorithm \\\"none\\\" is not one"),
        (Forge::Hs256PublicKey, "algorithm \\\"HS256\\\" is not one"),
        (Forge::WrongNonce, "nonce mismatch"),
        (Forge::WrongIssuer, "expected"),
        (Forge::Tampered, "ID token refused"),
    ];
    for (forge, reason) in cases {
        provider.set_forge(forge);
        let c = client();
        let out = walk_source(&gw, &c, "/private").await;
        assert_eq!(out.status, 403, "{forge:?}: {}", out.body);
        assert!(out.body.contains("could not be verified"), "{forge:?}: {}", out.body);
        assert!(!reaches_app(&gw, &c).await, "{forge:?}: no session");
        let text = logs.text();
        let last = text.lines().rfind(|l| l.contains("source login refused")).unwrap_or("");
        assert!(last.contains(reason), "{forge:?}: expected {reason:?} in {last}");
    }
    assert_eq!(users(&gw).list_users().await.unwrap().len(), n, "no user created");
    assert_eq!(gw.upstream.count(), 0, "the app saw nothing");
    // Neither the client secret nor a code or token reaches the log.
    let text = logs.text();
    for secret in [CLIENT_SECRET, "code-1", "access-1", "eyJ"] {
        assert!(!text.contains(secret), "{secret:?} logged:\n{text}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_rotated_key_is_fetched_again_and_a_reused_state_or_code_is_refused() {
    let (provider, gw) = pair("identifier", alice_claims()).await;
    let out = walk_source(&gw, &client(), "/private").await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(provider.jwks_fetches(), 1);
    // The cached key set is used for the next login.
    let out = walk_source(&gw, &client(), "/private").await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(provider.jwks_fetches(), 1, "key set cached");
    provider.rotate();
    let out = walk_source(&gw, &client(), "/private").await;
    assert_eq!(out.status, 200, "after rotation: {}", out.body);
    assert_eq!(provider.jwks_fetches(), 2, "unknown kid: key set fetched again");

    // Replay: the same callback URL (state and code) a second time in the same browser.
    let c = client();
    let r = c
        .get(gw.url("/private"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    let flow = gw.url(&location(&r));
    let _ = c.get(&flow).send().await.unwrap();
    let r = c
        .get(gw.url("/.flowgate/source/oauth/login/corp/?next=%2Fprivate"))
        .send()
        .await
        .unwrap();
    let r = c.get(location(&r)).send().await.unwrap();
    let callback = location(&r);
    let first = c.get(&callback).send().await.unwrap();
    assert_eq!(first.status(), 302);
    let again = c.get(&callback).send().await.unwrap();
    assert_eq!(again.status(), 400);
    assert!(again.text().await.unwrap().contains("not valid any more"));

    // A replayed code with a fresh state of this browser: the provider refuses the code (used,
    // and bound to another PKCE verifier), so nobody is logged in.
    let old_code = callback
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("code="))
        .unwrap()
        .to_string();
    let c2 = client();
    let r = c2
        .get(gw.url("/.flowgate/source/oauth/login/corp/"))
        .send()
        .await
        .unwrap();
    let authorize = location(&r);
    let fresh_state = authorize
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("state="))
        .unwrap()
        .to_string();
    let forged = format!(
        "{}?code={old_code}&state={fresh_state}",
        gw.url("/.flowgate/source/oauth/callback/corp/")
    );
    let r = c2.get(&forged).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("could not be verified"));
    assert!(!reaches_app(&gw, &c2).await);

    // A callback whose state is not the session's (another browser's, or made up).
    let c = client();
    let r = c
        .get(gw.url("/.flowgate/source/oauth/login/corp/"))
        .send()
        .await
        .unwrap();
    let r = c.get(location(&r)).send().await.unwrap();
    let cb = location(&r);
    let forged = cb.replace("state=", "state=x");
    let r = c.get(&forged).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // The started login is used up by the failed attempt too.
    let r = c.get(&cb).send().await.unwrap();
    assert_eq!(r.status(), 400);
    // Without the session cookie at all.
    let r = client().get(&cb).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("expired or was started in another browser"));
    gw.stop().await;
}

// Wall-clock time only bounds the wait for the provider's timeout.
#[allow(clippy::disallowed_methods)]
#[tokio::test]
async fn provider_down_or_slow_gives_a_clear_page_and_nothing_else() {
    let (logs, _guard) = LogBuf::capture("flowgate=info");
    // Down: nothing listens at the discovery address.
    let port = unused_port();
    let gw = gateway(
        &format!("http://127.0.0.1:{port}/.well-known/openid-configuration"),
        "identifier",
        "openidconnect",
    )
    .await;
    let c = client();
    let r = c
        .get(gw.url("/.flowgate/source/oauth/login/corp/?next=%2Fprivate"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(r.text().await.unwrap().contains("not reachable right now"));
    assert!(logs.text().contains("source login not started"));
    assert!(!reaches_app(&gw, &c).await);
    gw.stop().await;

    // Slow: every answer takes longer than the source's 2 s timeout.
    let (provider, gw) = pair("identifier", alice_claims()).await;
    provider.set_delay(Duration::from_secs(4));
    let started = std::time::Instant::now();
    let r = c
        .get(gw.url("/.flowgate/source/oauth/login/corp/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert!(started.elapsed() < Duration::from_secs(4), "the timeout cut the wait");
    assert!(logs.text().contains("timed out"), "{}", logs.text());
    assert_eq!(users(&gw).list_users().await.unwrap().len(), 3);
    gw.stop().await;
}

#[tokio::test]
async fn an_identification_stage_may_offer_only_sources() {
    let provider = TestProvider::spawn(1_800_000_000, alice_claims()).await;
    let flows = SOURCE_FLOWS.replace(
        "ident: { type: identification, user_fields: [username, email], sources: [corp] }",
        "ident: { type: identification, sources: [corp] }",
    );
    let gw = gateway_with(&provider.well_known(), "identifier", "openidconnect", &flows).await;
    let (status, html) = page(&client(), &gw.url("/.flowgate/flow/default-authentication-flow/")).await;
    assert_eq!(status, 200);
    assert!(html.contains("Log in with Corp SSO"));
    assert!(!html.contains("uid_field"), "no identifier field:\n{html}");
    gw.stop().await;
}

#[tokio::test]
async fn username_link_and_username_deny() {
    // bob exists (seed); the provider calls its user bob too.
    let claims =
        json!({ "sub": "u-9", "preferred_username": "bob", "email": "bob@corp.example", "email_verified": true });
    let (_provider, gw) = pair("username_link", claims.clone()).await;
    let out = walk_source(&gw, &client(), "/private").await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("bob"));
    let bob = users(&gw).get_by_username("bob").await.unwrap().unwrap();
    assert_eq!(users(&gw).source_connections_of(bob.id).await.unwrap().len(), 1);
    gw.stop().await;

    // A deactivated user (carol) matched by username is refused (CVE-2025-53942's lesson).
    let (_provider, gw) = pair(
        "username_link",
        json!({ "sub": "u-10", "preferred_username": "carol", "email": "carol@corp.example" }),
    )
    .await;
    let c = client();
    let out = walk_source(&gw, &c, "/private").await;
    assert_eq!(out.status, 403);
    assert!(out.body.contains("User is not active."), "{}", out.body);
    assert!(!reaches_app(&gw, &c).await);
    gw.stop().await;

    let (_provider, gw) = pair("username_deny", claims).await;
    let n = users(&gw).list_users().await.unwrap().len();
    let c = client();
    let out = walk_source(&gw, &c, "/private").await;
    assert_eq!(out.status, 403);
    assert!(out.body.contains("A user with this username already exists."));
    assert!(!reaches_app(&gw, &c).await);
    assert_eq!(users(&gw).list_users().await.unwrap().len(), n);
    gw.stop().await;
}

// === against npm's oidc-provider ===

/// Follows a browser through redirects from `url`; the identity provider's login form is filled
/// with `login`/`password`. Returns the first answer that is neither a redirect nor that form.
async fn follow_with_login(gw: &TestGateway, c: &reqwest::Client, url: &str, login: &str, password: &str) -> Outcome {
    let mut url = url.to_string();
    let mut logged_in = false;
    for _ in 0..20 {
        let r = c.get(&url).header("accept", BROWSER_ACCEPT).send().await.unwrap();
        let status = r.status().as_u16();
        if (300..400).contains(&status) {
            let to = location(&r);
            url = if to.starts_with('/') {
                // Relative to whichever server answered.
                let origin = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
                format!("{origin}{to}")
            } else {
                to
            };
            continue;
        }
        let body = r.text().await.unwrap();
        if body.contains("Test IdP login") && !logged_in {
            logged_in = true;
            let r = c
                .post(&url)
                .form(&[("login", login), ("password", password)])
                .send()
                .await
                .unwrap();
            assert!(r.status().is_redirection(), "IdP login refused: {}", r.status());
            url = location(&r);
            continue;
        }
        return Outcome { status, body };
    }
    let _ = gw;
    panic!("too many redirects");
}

#[allow(clippy::disallowed_methods)]
pub(crate) fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test]
async fn login_through_oidc_provider_with_a_key_rotation() {
    use crate::common::oidc::NodeProvider;
    let (logs, _guard) = LogBuf::capture("flowgate=info");
    let port = unused_port();
    let well_known = format!("http://127.0.0.1:{port}/.well-known/openid-configuration");
    // Tokens carry the real time: the gateway's clock starts at it.
    // Tokens carry the real time: the gateway's clock starts at it.
    let gw = gateway_at(
        &well_known,
        "identifier",
        "openidconnect",
        SOURCE_FLOWS,
        wall_clock_ms(),
    )
    .await;
    let user = json!({ "sub": "idp-42", "preferred_username": "dora", "email": "dora@idp.example", "email_verified": true, "name": "Dora", "groups": ["ops"] });
    let callback = gw.url("/.flowgate/source/oauth/callback/corp/");
    let idp = NodeProvider::start(port, "k1", &callback, &user, "dora's pw");

    let c = client();
    let r = c
        .get(gw.url("/private/dash"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    let flow = gw.url(&location(&r));
    let html = c.get(&flow).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Log in with Corp SSO"));
    let start = gw.url("/.flowgate/source/oauth/login/corp/?next=%2Fprivate%2Fdash");
    let out = follow_with_login(&gw, &c, &start, "dora", "dora's pw").await;
    assert_eq!(out.status, 200, "{}", out.body);
    let seen = gw.upstream.last();
    assert_eq!(seen.uri, "/private/dash");
    assert_eq!(seen.header("x-forwarded-user"), Some("dora"));
    assert_eq!(seen.header("x-forwarded-email"), Some("dora@idp.example"));
    assert!(
        seen.header("x-forwarded-groups").unwrap_or("").contains("ops"),
        "{:?}",
        seen.headers
    );

    // Key rotation: the provider restarts with a new key; the next login still works and the
    // gateway fetched the key set again for the unknown kid.
    drop(idp);
    let _idp = NodeProvider::start(port, "k2", &callback, &user, "dora's pw");
    let c = client();
    let out = follow_with_login(&gw, &c, &start, "dora", "dora's pw").await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("dora"));
    assert!(logs.text().contains("fetching the key set again"), "{}", logs.text());
    assert_eq!(
        users(&gw)
            .list_users()
            .await
            .unwrap()
            .iter()
            .filter(|u| u.username == "dora")
            .count(),
        1
    );
    gw.stop().await;
}

// === import of authentik's sources and source flows ===

/// An authentik blueprint with an OAuth source (its flows are authentik's default source
/// flows, imported with it) and a login flow whose identification stage offers it.
fn authentik_source_blueprint(well_known: &str) -> String {
    format!(
        r#"version: 1
metadata: {{ name: OAuth source for the tests }}
entries:
- model: authentik_sources_oauth.oauthsource
  id: corp
  identifiers: {{ slug: corp }}
  attrs:
    name: Corp SSO
    provider_type: openidconnect
    oidc_well_known_url: "{well_known}"
    consumer_key: {CLIENT_ID}
    consumer_secret: never-written-into-the-config
    additional_scopes: "groups offline_access"
    user_matching_mode: identifier
    authentication_flow: !Find [authentik_flows.flow, [slug, default-source-authentication]]
    enrollment_flow: !Find [authentik_flows.flow, [slug, default-source-enrollment]]
    pre_authentication_flow: !Find [authentik_flows.flow, [slug, default-source-pre-authentication]]
    user_path_template: goauthentik.io/sources/%(slug)s
    oidc_jwks: {{ keys: [] }}
    group_matching_mode: name_link
- model: authentik_flows.flow
  id: login
  identifiers: {{ slug: default-authentication-flow }}
  attrs: {{ name: Login, title: Login, designation: authentication, authentication: require_unauthenticated }}
- model: authentik_stages_identification.identificationstage
  id: ident
  identifiers: {{ name: login-identification }}
  attrs: {{ user_fields: [username], sources: [!KeyOf corp], show_source_labels: true }}
- model: authentik_stages_user_login.userloginstage
  id: login-stage
  identifiers: {{ name: login-login }}
- model: authentik_flows.flowstagebinding
  identifiers: {{ order: 10, stage: !KeyOf ident, target: !KeyOf login }}
- model: authentik_flows.flowstagebinding
  identifiers: {{ order: 20, stage: !KeyOf login-stage, target: !KeyOf login }}
- model: authentik_sources_oauth.useroauthsourceconnection
  identifiers: {{ identifier: "1" }}
"#
    )
}

#[tokio::test]
async fn authentik_source_flows_and_oauth_source_import_and_run() {
    use flowgate::blueprint::import;
    let provider = TestProvider::spawn(1_800_000_000, alice_claims()).await;
    let fixture = |rel: &str| {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/authentik/default")
            .join(rel);
        (p.display().to_string(), std::fs::read_to_string(&p).unwrap())
    };
    let files = vec![
        fixture("flow-default-source-authentication.yaml"),
        fixture("flow-default-source-enrollment.yaml"),
        fixture("flow-default-source-pre-authentication.yaml"),
        (
            "source.yaml".to_string(),
            authentik_source_blueprint(&provider.well_known()),
        ),
    ];
    let imp = import::import(&files, &Default::default()).unwrap_or_else(|e| panic!("{e:?}"));
    let reasons: Vec<String> = imp.unsupported.iter().map(|u| u.to_string()).collect();
    for want in [
        "secrets/source-corp.secret",
        "oidc_jwks",
        "group_matching_mode",
        "useroauthsourceconnection",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(want)),
            "{want} not reported: {reasons:#?}"
        );
    }
    let yaml = import::to_yaml(&imp.doc, &[]);
    assert!(
        !yaml.contains("never-written-into-the-config"),
        "the secret is not written:\n{yaml}"
    );
    flowgate::loader::check_import(&yaml).ok();
    let src = &imp.doc["sources"]["corp"];
    assert_eq!(src["provider_type"], "openidconnect");
    assert_eq!(src["additional_scopes"], json!(["groups", "offline_access"]));
    assert_eq!(src["authentication_flow"], "default-source-authentication");
    assert_eq!(imp.doc["stages"]["login-identification"]["sources"], json!(["corp"]));

    let gw = gateway_from("", &[("imported.yaml", yaml)], 1_800_000_000_000).await;
    let n = users(&gw).list_users().await.unwrap().len();
    let c = client();
    let out = walk_source(&gw, &c, "/private/imported").await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("ann"));
    assert_eq!(
        users(&gw).list_users().await.unwrap().len(),
        n + 1,
        "enrolled by the imported flow"
    );
    // Second time: the imported authentication flow (the connection finds ann).
    let out = walk_source(&gw, &client(), "/private/imported").await;
    assert_eq!(out.status, 200, "{}", out.body);
    assert_eq!(users(&gw).list_users().await.unwrap().len(), n + 1);
    // The source flows refuse to run outside a source login (their ak_is_sso_flow policy).
    let (status, body) = page(&client(), &gw.url("/.flowgate/flow/default-source-enrollment/")).await;
    assert_ne!(status, 200, "{body}");
    gw.stop().await;
}

#[tokio::test]
async fn github_preset_uses_the_verified_primary_address() {
    let provider = TestProvider::spawn(
        1_800_000_000,
        json!({ "id": 583231, "login": "octo", "name": "Octo Cat",
                "emails": [ { "email": "octo@old.example", "primary": false, "verified": true },
                            { "email": "octo@github.example", "primary": true, "verified": true } ] }),
    )
    .await;
    let base = provider.issuer();
    let main = format!(
        "sources:\n  corp:\n    type: oauth\n    name: Corp SSO\n    provider_type: github\n    authorization_url: \"{base}/authorize\"\n    access_token_url: \"{base}/token\"\n    profile_url: \"{base}/user\"\n    consumer_key: {CLIENT_ID}\n    consumer_secret_file: client-secret\n    user_matching_mode: email_link\n    authentication_flow: default-source-authentication\n    enrollment_flow: default-source-enrollment\n"
    );
    let gw = gateway_from(
        &main,
        &[("source-flows.yaml", SOURCE_FLOWS.to_string())],
        1_800_000_000_000,
    )
    .await;
    let out = walk_source(&gw, &client(), "/private/gh").await;
    assert_eq!(out.status, 200, "{}", out.body);
    let seen = gw.upstream.last();
    assert_eq!(seen.header("x-forwarded-user"), Some("octo"));
    assert_eq!(seen.header("x-forwarded-email"), Some("octo@github.example"));
    let auth = &provider.authorized()[0].params;
    assert_eq!(auth["scope"], "read:user user:email");
    assert!(!auth.contains_key("nonce"), "GitHub is not OpenID Connect");
    assert_eq!(auth["code_challenge_method"], "S256");
    let token = &provider.token_requests()[0];
    assert!(
        token.iter().any(|(k, v)| k == "client_secret" && v == CLIENT_SECRET),
        "client_secret_post"
    );
    let octo = users(&gw).get_by_username("octo").await.unwrap().unwrap();
    let links = users(&gw).source_connections_of(octo.id).await.unwrap();
    assert_eq!(links[0].identifier, "583231", "GitHub's numeric id is the subject");

    // An unverified primary address does not link to the existing user with that address.
    provider.set_user(json!({ "id": 99, "login": "mallory", "emails": [ { "email": "alice@example.test", "primary": true, "verified": false } ] }));
    let n = users(&gw).list_users().await.unwrap().len();
    let c = client();
    let out = walk_source(&gw, &c, "/private/gh").await;
    assert_eq!(out.status, 403, "{}", out.body);
    assert!(!reaches_app(&gw, &c).await);
    assert_eq!(users(&gw).list_users().await.unwrap().len(), n);
    gw.stop().await;
}

#[tokio::test]
async fn a_callback_after_the_login_expired_is_refused() {
    let (_provider, gw) = pair("identifier", alice_claims()).await;
    let c = client();
    let r = c
        .get(gw.url("/.flowgate/source/oauth/login/corp/"))
        .send()
        .await
        .unwrap();
    let r = c.get(location(&r)).send().await.unwrap();
    let callback = location(&r);
    gw.clock.advance(std::time::Duration::from_secs(11 * 60));
    let r = c.get(&callback).send().await.unwrap();
    // The flow session itself may have ended with the clock: either way a clear refusal.
    assert!(r.status() == 400 || r.status() == 403, "{}", r.status());
    let body = r.text().await.unwrap();
    assert!(body.contains("took too long") || body.contains("has expired"), "{body}");
    assert!(!reaches_app(&gw, &c).await);
    gw.stop().await;
}

#[tokio::test]
async fn a_logged_in_browser_keeps_its_session_at_the_login_link() {
    let (_provider, gw) = pair("identifier", alice_claims()).await;
    let cookie = session_of(&gw, "alice", ALICE_PASSWORD).await;
    let r = with_cookie(
        &gw,
        reqwest::Method::GET,
        "/.flowgate/source/oauth/login/corp/?next=%2Fprivate",
        &cookie,
        None,
    )
    .await;
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/private");
    assert!(
        r.headers().get("set-cookie").is_none(),
        "the session cookie is left alone"
    );
    assert!(logged_in(&gw, &cookie).await);
    gw.stop().await;
}

#[tokio::test]
async fn a_login_started_on_one_replica_finishes_on_another() {
    let redis = crate::common::redis::Redis::start();
    let provider = TestProvider::spawn(1_800_000_000, alice_claims()).await;
    let shared = tempfile::tempdir().unwrap();
    let main = format!(
        "{}session: {{ ttl: 2h, idle_timeout: 30m, store: redis, redis: {{ url: \"{}\", key_prefix: \"t:\" }} }}\nidentity: {{ database: \"{}\", seed: seed.yaml }}\n",
        source_yaml(&provider.well_known(), "identifier", "openidconnect"),
        redis.url(),
        shared.path().join("flowgate.db").display()
    );
    let files = [("source-flows.yaml", SOURCE_FLOWS.to_string())];
    let a = gateway_from(&main, &files, 1_800_000_000_000).await;
    let b = gateway_from(&main, &files, 1_800_000_000_000).await;
    let c = client();
    let r = c
        .get(a.url("/.flowgate/source/oauth/login/corp/?next=%2Fprivate%2Fb"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let r = c.get(location(&r)).send().await.unwrap();
    let callback = location(&r);
    assert!(callback.starts_with(&a.url("/.flowgate/source/oauth/callback/corp/")));
    // The browser's next request lands on replica B (same cookie: it ignores ports).
    let on_b = callback.replace(&a.addr.to_string(), &b.addr.to_string());
    let mut url = on_b;
    let mut last = None;
    for _ in 0..8 {
        let r = c.get(&url).header("accept", BROWSER_ACCEPT).send().await.unwrap();
        if r.status() != 302 {
            last = Some(r.status().as_u16());
            break;
        }
        url = b.url(&location(&r));
    }
    assert_eq!(last, Some(200));
    assert_eq!(b.upstream.last().uri, "/private/b");
    assert_eq!(b.upstream.last().header("x-forwarded-user"), Some("ann"));
    // Used up on A too: the same callback there finds nothing.
    let r = c.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 400);
    a.stop().await;
    b.stop().await;
}

#[test]
fn presets_fill_endpoints_scopes_and_claims() {
    use flowgate::config::{ProviderType, SourceDef};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s"), "secret\n").unwrap();
    let yaml = r#"
sources:
  g: { type: oauth, provider_type: google, consumer_key: k, consumer_secret_file: s }
  l: { type: oauth, provider_type: gitlab, consumer_key: k, consumer_secret_file: s, additional_scopes: ["read_user  groups"] }
  h: { type: oauth, provider_type: github, consumer_key: k, consumer_secret_file: s, user_matching_mode: email_link }
  e: { type: oauth, provider_type: azuread, consumer_key: k, consumer_secret_file: s, user_matching_mode: email_deny,
       oidc_well_known_url: "https://login.microsoftonline.com/t1/v2.0/.well-known/openid-configuration" }
"#;
    let cfg = flowgate::config::Config::from_sources(vec![flowgate::config::Source {
        name: "presets.yaml".into(),
        text: yaml.into(),
        base_dir: dir.path().to_path_buf(),
    }])
    .unwrap_or_else(|e| panic!("{e}"));
    let get = |k: &str| match &cfg.sources[k] {
        SourceDef::OAuth(o) => o.clone(),
    };
    let g = get("g");
    assert_eq!(g.provider, ProviderType::Google);
    assert_eq!(
        g.well_known.as_ref().unwrap().to_string(),
        "https://accounts.google.com/.well-known/openid-configuration"
    );
    assert_eq!(g.claims.username, ["email"]);
    assert_eq!(g.client_secret.expose(), "secret", "trailing newline removed");
    let l = get("l");
    assert_eq!(l.scopes, ["openid", "email", "profile", "read_user", "groups"]);
    assert!(l
        .well_known
        .as_ref()
        .unwrap()
        .to_string()
        .starts_with("https://gitlab.com/"));
    let h = get("h");
    assert_eq!(h.scopes, ["read:user", "user:email"]);
    assert_eq!(
        h.profile_url.as_ref().unwrap().to_string(),
        "https://api.github.com/user"
    );
    assert_eq!(h.claims.username, ["login"]);
    assert!(h.well_known.is_none());
    assert_eq!(get("e").provider, ProviderType::EntraId, "azuread is entraid");
    assert_eq!(format!("{:?}", g.client_secret), "***");
}

#[tokio::test]
async fn the_callback_address_is_built_only_from_our_own_hosts() {
    let provider = TestProvider::spawn(1_800_000_000, alice_claims()).await;
    let apps = "  - name: app\n    hosts: [app.test]\n    upstream: \"http://UPSTREAM\"\n";
    let main = source_yaml(&provider.well_known(), "identifier", "openidconnect");
    let gw = gateway_with_apps(
        apps,
        &main,
        &[("source-flows.yaml", SOURCE_FLOWS.to_string())],
        1_800_000_000_000,
    )
    .await;
    let login = gw.url("/.flowgate/source/oauth/login/corp/");
    let r = client()
        .get(&login)
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a Host that is not ours");
    assert!(provider.authorized().is_empty());
    let r = client().get(&login).header("host", "app.test").send().await.unwrap();
    assert_eq!(r.status(), 302);
    let to = location(&r);
    let q: std::collections::HashMap<String, String> = form_urlencoded::parse(to.split_once('?').unwrap().1.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(
        q["redirect_uri"],
        "http://app.test/.flowgate/source/oauth/callback/corp/"
    );
    gw.stop().await;
}
