//! Logins through an OpenID Connect source (issue 16): the authorization code flow with PKCE
//! against a provider the test starts (`common/oidc.rs`), the source's enrollment and
//! authentication flows, the user-source connection, `user_matching_mode` and the provider
//! presets; the helpers here start the gateway and walk a browser through the source. Forged or
//! faulty answers, which the gateway must refuse with a clear page, no session, no user and a log
//! line, are in `oauth_sources_callback.rs`; npm's oidc-provider and authentik's imported source
//! flows in `oauth_sources_interop.rs`. Assertions are on what the app behind the gateway received.

use crate::common::log_buf::LogBuf;
use crate::common::oidc::{TestProvider, CLIENT_ID, CLIENT_SECRET};
use crate::common::*;
use serde_json::json;

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
pub(crate) async fn gateway(well_known: &str, mode: &str, provider_type: &str) -> TestGateway {
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
pub(crate) async fn gateway_from(main: &str, files: &[(&str, String)], clock_ms: u64) -> TestGateway {
    gateway_with_apps(DEFAULT_APP, main, files, clock_ms).await
}

/// [`gateway_from`] with `apps` as the `apps:` list.
pub(crate) async fn gateway_with_apps(apps: &str, main: &str, files: &[(&str, String)], clock_ms: u64) -> TestGateway {
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

pub(crate) fn alice_claims() -> serde_json::Value {
    json!({ "sub": "corp-0001", "preferred_username": "ann", "email": "ann@corp.example", "email_verified": true, "name": "Ann Corp", "groups": ["engineering"] })
}

/// How a walk through the source ended.
pub(crate) struct Outcome {
    /// The last answer's status (the callback's refusal page, or the app).
    pub(crate) status: u16,
    /// Its body.
    pub(crate) body: String,
}

/// Walks a browser from a protected path through the button, the provider and the callback,
/// following flowgate's redirects, and returns the first answer that is not a redirect.
pub(crate) async fn walk_source(gw: &TestGateway, c: &reqwest::Client, path: &str) -> Outcome {
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
pub(crate) async fn reaches_app(gw: &TestGateway, c: &reqwest::Client) -> bool {
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
pub(crate) async fn pair(mode: &str, claims: serde_json::Value) -> (TestProvider, TestGateway) {
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

#[allow(clippy::disallowed_methods)]
pub(crate) fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
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
