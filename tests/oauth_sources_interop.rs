//! The OpenID Connect source against real-world counterparts (issue 16): a login through npm's
//! oidc-provider with a key rotation, and authentik's source flows and OAuth source imported
//! from a blueprint and run.

use crate::common::log_buf::LogBuf;
use crate::common::oidc::{TestProvider, CLIENT_ID};
use crate::common::*;
use crate::oauth_sources::{alice_claims, gateway_at, gateway_from, walk_source, wall_clock_ms, Outcome, SOURCE_FLOWS};
use serde_json::json;

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
