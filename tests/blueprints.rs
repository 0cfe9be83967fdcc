//! Blueprint import and export: every authentik fixture is read (flow files import and pass the
//! config check; the others list their unsupported entries), the imported default flows run
//! end to end over HTTP, bad files give errors naming file, line and entry and write nothing,
//! legacy JSON exports import like YAML, and export → import → export is stable.

use crate::common::*;
use flowgate::blueprint::{export, import};
use flowgate::session::clock::Clock;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PW: &str = "violet tangerine expedition 77";

fn fixtures() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/authentik");
    assert!(
        dir.is_dir(),
        "authentik fixtures are missing: expected {} (tests/fixtures/authentik in the repository)",
        dir.display()
    );
    dir
}

fn fixture_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["default", "example"] {
        for e in std::fs::read_dir(fixtures().join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yaml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn import_one(path: &Path) -> Result<import::Imported, Vec<import::ImportError>> {
    let text = std::fs::read_to_string(path).unwrap();
    import::import(&[(path.display().to_string(), text)], &Default::default())
}

/// Imports a fixture and returns its native YAML.
fn native(rel: &str) -> String {
    let path = fixtures().join(rel);
    let imp = import_one(&path).unwrap_or_else(|e| panic!("{rel}: {e:?}"));
    import::to_yaml(&imp.doc, &[rel.to_string()])
}

#[test]
fn every_fixture_is_read() {
    let files = fixture_files();
    assert!(files.len() >= 25, "only {} fixtures", files.len());
    let mut flows = 0;
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let models_flows = text.contains("authentik_flows.flow\n") || text.contains("model: authentik_flows.flow");
        let imp = import_one(&path).unwrap_or_else(|e| panic!("{} must import: {e:?}", path.display()));
        let yaml = import::to_yaml(&imp.doc, &[]);
        if models_flows {
            flows += 1;
            assert!(!imp.doc["flows"].as_array().unwrap().is_empty(), "{}", path.display());
            if let Err(e) = flowgate::loader::check_import(&yaml) {
                panic!("{} imports into an invalid config:\n{e}\n{yaml}", path.display());
            }
        } else {
            assert!(
                !imp.unsupported.is_empty(),
                "{} holds no flow, so its entries must be listed as unsupported",
                path.display()
            );
        }
        for u in &imp.unsupported {
            assert!(u.line > 0 && u.file.ends_with(".yaml") && !u.reason.is_empty(), "{u}");
        }
    }
    assert!(flows >= 20, "only {flows} flow files");
}

#[test]
fn unsupported_entries_are_listed_one_by_one() {
    let imp = import_one(&fixtures().join("example/flows-authenticator-email-setup.yaml")).unwrap();
    let reasons: Vec<String> = imp.unsupported.iter().map(|u| u.to_string()).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("authenticatoremailstage") && r.contains("email authenticators")),
        "{reasons:#?}"
    );
    let imp = import_one(&fixtures().join("default/flow-default-authentication-flow.yaml")).unwrap();
    let reasons: Vec<String> = imp.unsupported.iter().map(|u| u.to_string()).collect();
    assert!(reasons.iter().any(|r| r.contains("metaapplyblueprint")), "{reasons:#?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("device_classes") && r.contains("duo, sms and email")),
        "{reasons:#?}"
    );
}

const APP: &str = "  - name: app\n    upstream: \"http://UPSTREAM\"\n";

#[tokio::test]
async fn imported_default_authentication_and_invalidation_flows_run() {
    let auth = native("default/flow-default-authentication-flow.yaml");
    let logout = native("default/flow-default-invalidation-flow.yaml");
    let gw = TestGateway::start_only(APP, "", &[("auth.yaml", &auth), ("logout.yaml", &logout)]).await;
    let c = client();
    let r = html_login(&c, &gw.url(""), "/page", "alice", "correct horse battery staple").await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert_eq!(location(&r), "/page");
    assert_eq!(c.get(gw.url("/page")).send().await.unwrap().status(), 200);
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("alice"));
    // Wrong password: the page says so and nobody is logged in.
    let other = client();
    let r = html_login(&other, &gw.url(""), "/", "bob", "wrong").await;
    assert_eq!(r.status(), 400);
    // Logout through the imported invalidation flow: a page says what ended.
    let r = c.get(gw.url("/logout")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Signed out"));
    let r = c
        .get(gw.url("/page"))
        .header("accept", BROWSER_ACCEPT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "logged out");
}

#[tokio::test]
async fn imported_login_with_2fa_asks_for_a_code() {
    let login = native("example/flows-login-2fa.yaml");
    let logout = native("default/flow-default-invalidation-flow.yaml");
    let gw = TestGateway::start_only(APP, "", &[("login.yaml", &login), ("logout.yaml", &logout)]).await;
    // Give alice a TOTP device directly in the store.
    let secret = flowgate::identity::mfa::new_totp_secret();
    let alice = users(&gw).get_by_username("alice").await.unwrap().unwrap();
    users(&gw)
        .add_totp_device(alice.id, "phone", &secret, 6, gw.clock.now_ms(), None)
        .await
        .unwrap();
    let c = client();
    let r = html_login(&c, &gw.url(""), "/", "alice", "correct horse battery staple").await;
    assert_eq!(r.status(), 200, "a code is asked after the password");
    let url = gw.url("/.flowgate/flow/default-authentication-flow/?next=%2F");
    gw.clock.advance(Duration::from_secs(30));
    let code = flowgate::identity::mfa::totp_code(&secret, flowgate::identity::mfa::totp_step(gw.clock.now_ms()), 6);
    let r = walk(&c, &url, &[("code", code.as_str())]).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn imported_enrollment_password_change_and_unenrollment_run() {
    let files = [
        ("auth.yaml", native("default/flow-default-authentication-flow.yaml")),
        ("logout.yaml", native("default/flow-default-invalidation-flow.yaml")),
        ("enroll.yaml", native("example/flows-enrollment-2-stage.yaml")),
        ("pw.yaml", native("default/flow-password-change.yaml")),
        ("unenroll.yaml", native("example/flows-unenrollment.yaml")),
    ];
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let gw = TestGateway::start_only(APP, "", &refs).await;
    // Enrollment in two prompt stages.
    let c = client();
    let url = gw.url("/.flowgate/flow/default-enrollment-flow/");
    let r = walk(
        &c,
        &url,
        &[("username", "dora"), ("password", PW), ("password_repeat", PW)],
    )
    .await;
    assert_eq!(r.status(), 200, "second prompt expected");
    let r = walk(&c, &url, &[("name", "Dora"), ("email", "dora@example.test")]).await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let dora = users(&gw).get_by_username("dora").await.unwrap().expect("enrolled");
    assert_eq!(dora.email, "dora@example.test");
    assert!(users(&gw).verify_password(&dora, PW).await.unwrap());
    // Password change.
    let url = gw.url("/.flowgate/flow/default-password-change/");
    let (status, html) = page(&c, &url).await;
    assert_eq!(status, 200, "{html}");
    let r = walk(
        &c,
        &url,
        &[
            ("password", "another long passphrase 9"),
            ("password_repeat", "another long passphrase 9"),
        ],
    )
    .await;
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let dora = users(&gw).get_by_username("dora").await.unwrap().unwrap();
    assert!(users(&gw)
        .verify_password(&dora, "another long passphrase 9")
        .await
        .unwrap());
    // Unenrollment deletes the account.
    let url = gw.url("/.flowgate/flow/default-unenrollment-flow/");
    let mut r = c.get(&url).send().await.unwrap();
    let token_re = regex::Regex::new(r#"name="token" value="([^"]*)""#).unwrap();
    for _ in 0..5 {
        if r.status() != 200 {
            break;
        }
        let html = r.text().await.unwrap();
        let token = token_re.captures(&html).map(|c| c[1].to_string()).unwrap_or_default();
        r = walk(&c, &url, &[("token", token.as_str())]).await;
    }
    assert_eq!(r.status(), 302);
    assert!(users(&gw).get_by_username("dora").await.unwrap().is_none());
}

#[tokio::test]
async fn imported_recovery_by_email_runs() {
    let files = [
        ("auth.yaml", native("default/flow-default-authentication-flow.yaml")),
        ("logout.yaml", native("default/flow-default-invalidation-flow.yaml")),
        (
            "recovery.yaml",
            native("example/flows-recovery-email-verification.yaml"),
        ),
    ];
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let gw = TestGateway::start_only(APP, "", &refs).await;
    let c = client();
    let url = gw.url("/.flowgate/flow/default-recovery-flow/");
    let r = walk(&c, &url, &[("uid_field", "bob")]).await;
    assert_eq!(r.status(), 200);
    wait_for_mail(&gw);
    let mail_dir = gw.dir.path().join("mail");
    let files: Vec<_> = std::fs::read_dir(&mail_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "one mail written");
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
    let browser = client();
    let mut r = walk(&browser, &link, &[]).await;
    // The recovery flow asks for the new password (twice) after the link.
    let mut steps = 0;
    while r.status() == 200 && steps < 4 {
        steps += 1;
        r = walk(&browser, &link, &[("password", PW), ("password_repeat", PW)]).await;
    }
    assert_eq!(r.status(), 302, "{}", r.text().await.unwrap());
    let bob = users(&gw).get_by_username("bob").await.unwrap().unwrap();
    assert!(users(&gw).verify_password(&bob, PW).await.unwrap());
}

fn import_err(name: &str, text: &str) -> Vec<import::ImportError> {
    import::import(&[(name.to_string(), text.to_string())], &Default::default()).expect_err("must fail")
}

#[test]
fn bad_blueprints_name_file_line_and_entry() {
    let e = import_err("bad.yaml", "version: 1\nentries:\n  - model: [unclosed\n");
    assert_eq!(e[0].file, "bad.yaml");
    assert!(e[0].line >= 3, "{e:?}");
    let e = import_err(
        "tag.yaml",
        "version: 1\nentries:\n  - model: authentik_flows.flow\n    identifiers: { slug: x }\n    attrs: { name: !Bogus x, designation: authentication }\n",
    );
    assert_eq!(
        (e[0].line, e[0].place.as_str()),
        (3, "entries[0] (authentik_flows.flow)"),
        "{e:?}"
    );
    assert!(e[0].message.contains("Bogus"), "{e:?}");
    let e = import_err(
        "keyof.yaml",
        "version: 1\nentries:\n  - model: authentik_flows.flow\n    id: flow\n    identifiers: { slug: x }\n    attrs: { designation: authentication }\n  - model: authentik_flows.flowstagebinding\n    identifiers: { target: !KeyOf flow, stage: !KeyOf nowhere, order: 0 }\n",
    );
    assert_eq!(
        (e[0].line, e[0].place.as_str()),
        (7, "entries[1] (authentik_flows.flowstagebinding)"),
        "{e:?}"
    );
    assert!(e[0].message.contains("nowhere"), "{e:?}");
    let e = import_err(
        "cycle.yaml",
        "version: 1\nentries:\n  - model: authentik_stages_identification.identificationstage\n    id: a\n    identifiers: { name: a }\n    attrs: { password_stage: !KeyOf a2 }\n  - model: authentik_stages_password.passwordstage\n    id: a2\n    identifiers: { name: a2 }\n",
    );
    assert!(e[0].message.contains("a later entry, a cycle"), "{e:?}");
    let e = import_err(
        "missing.yaml",
        "version: 1\nentries:\n  - model: authentik_flows.flow\n    id: flow\n    identifiers: { slug: x }\n    attrs: { designation: authentication }\n  - model: authentik_flows.flowstagebinding\n    identifiers: { target: !KeyOf flow, stage: !Find [authentik_stages_deny.denystage, [name, gone]], order: 0 }\n",
    );
    assert!(e[0].message.contains("binding to a missing stage"), "{e:?}");
    assert_eq!(e[0].line, 7);
    let e = import_err("v2.yaml", "version: 2\nentries: []\n");
    assert!(e[0].message.contains("version: 1"));
}

#[test]
fn the_cli_reports_errors_and_leaves_the_output_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "version: 1\nentries:\n  - model: authentik_flows.flow\n    attrs: !Nope x\n",
    )
    .unwrap();
    let out = dir.path().join("out.yaml");
    std::fs::write(&out, "# existing config\n").unwrap();
    let (code, _, err) = run_bin(&["import", bad.to_str().unwrap(), "-o", out.to_str().unwrap()], "");
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("bad.yaml:3: entries[0]"), "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "# existing config\n");
    // --strict refuses a file with unsupported entries; without it the file is written.
    let email = fixtures().join("example/flows-authenticator-email-setup.yaml");
    let (code, _, err) = run_bin(
        &[
            "import",
            "--strict",
            email.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("not imported:"), "{err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "# existing config\n");
    let login = fixtures().join("example/flows-login-2fa.yaml");
    let (code, _, err) = run_bin(&["import", login.to_str().unwrap(), "-o", out.to_str().unwrap()], "");
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .contains("default-authentication-flow"));
}

const LEGACY: &str = r#"{
  "version": 1,
  "entries": [
    {"identifiers": {"pk": "a1b2c3d4-0000-0000-0000-000000000001", "slug": "legacy-login"}, "model": "authentik_flows.flow",
     "attrs": {"name": "Legacy", "title": "Legacy login", "designation": "authentication"}},
    {"identifiers": {"pk": "a1b2c3d4-0000-0000-0000-000000000010"}, "model": "authentik_policies_expression.expressionpolicy",
     "attrs": {"name": "legacy-policy", "expression": "return True", "bound_to": 1}},
    {"identifiers": {"pk": "a1b2c3d4-0000-0000-0000-000000000002", "name": "legacy-identification"}, "model": "authentik_stages_identification.IdentificationStage",
     "attrs": {"user_fields": ["username"], "template": "stages/identification/login.html"}},
    {"identifiers": {"pk": "a1b2c3d4-0000-0000-0000-000000000003", "name": "legacy-password"}, "model": "authentik_stages_password.passwordstage",
     "attrs": {"backends": ["django.contrib.auth.backends.ModelBackend"]}},
    {"identifiers": {"pk": "a1b2c3d4-0000-0000-0000-000000000004", "name": "legacy-login-stage"}, "model": "authentik_stages_user_login.userloginstage",
     "attrs": {"session_duration": "seconds=0"}},
    {"identifiers": {"pk": "a1b2c3d4-0000-0000-0000-000000000005", "target": "a1b2c3d4-0000-0000-0000-000000000001", "stage": "a1b2c3d4-0000-0000-0000-000000000002", "order": 0}, "model": "authentik_flows.flowstagebinding", "attrs": {}},
    {"identifiers": {"pk": "a1b2c3d4-0000-0000-0000-000000000006", "target": "a1b2c3d4-0000-0000-0000-000000000001", "stage": "a1b2c3d4-0000-0000-0000-000000000003", "order": 1}, "model": "authentik_flows.flowstagebinding", "attrs": {}},
    {"identifiers": {"pk": "a1b2c3d4-0000-0000-0000-000000000007", "target": "a1b2c3d4-0000-0000-0000-000000000001", "stage": "a1b2c3d4-0000-0000-0000-000000000004", "order": 2}, "model": "authentik_flows.flowstagebinding", "attrs": {}},
    {"identifiers": {"pk": "a1b2c3d4-0000-0000-0000-000000000020", "policy": "a1b2c3d4-0000-0000-0000-000000000010", "target": "a1b2c3d4-0000-0000-0000-000000000006", "order": 0}, "model": "authentik_policies.policybinding", "attrs": {"negate": false, "timeout": 30}}
  ]
}"#;

#[tokio::test]
async fn legacy_json_exports_import_and_run() {
    let imp = import::import(&[("legacy.akflow".into(), LEGACY.into())], &Default::default()).unwrap();
    let flow = &imp.doc["flows"][0];
    assert_eq!(flow["slug"], "legacy-login");
    let stages: Vec<&str> = flow["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        ["legacy-identification", "legacy-password", "legacy-login-stage"]
    );
    assert_eq!(flow["bindings"][1]["policies"][0]["policy"], "legacy-policy");
    assert_eq!(flow["bindings"][1]["policies"][0]["timeout"], "30s");
    // The obsolete attributes are listed, not dropped silently.
    let notes: Vec<String> = imp.unsupported.iter().map(|u| u.reason.clone()).collect();
    assert!(notes.iter().any(|n| n.contains("bound_to")), "{notes:?}");
    assert!(notes.iter().any(|n| n.contains("template")), "{notes:?}");
    let yaml = import::to_yaml(&imp.doc, &["legacy.akflow".into()]);
    let logout = native("default/flow-default-invalidation-flow.yaml");
    let app = "  - name: app\n    upstream: \"http://UPSTREAM\"\n    authentication_flow: legacy-login\n";
    let gw = TestGateway::start_only(app, "", &[("legacy.yaml", &yaml), ("logout.yaml", &logout)]).await;
    let c = client();
    let r = html_login(&c, &gw.url(""), "/", "bob", "bob's secret 42").await;
    assert_eq!(r.status(), 302);
    assert_eq!(c.get(gw.url("/")).send().await.unwrap().status(), 200);
}

#[test]
fn export_import_export_is_stable() {
    let cfg = flowgate::Config::load(Path::new("config/flowgate.yaml")).unwrap();
    let slugs: Vec<String> = cfg.flows.keys().cloned().collect();
    let native0 = export::native_doc(&cfg.texts, Some(&slugs)).unwrap();
    let bp1 = export::blueprint(&native0, "stable").unwrap();
    let imp = import::import(&[("bp1.yaml".into(), bp1.clone())], &Default::default()).unwrap();
    assert!(imp.unsupported.is_empty(), "{:#?}", imp.unsupported);
    // Native → blueprint → native gives the same flows, stages and policies.
    if imp.doc != native0 {
        std::fs::write("target/rt-left.json", serde_json::to_string_pretty(&imp.doc).unwrap()).unwrap();
        std::fs::write("target/rt-right.json", serde_json::to_string_pretty(&native0).unwrap()).unwrap();
    }
    assert_eq!(imp.doc, native0, "native round trip (see target/rt-*.json)");
    let bp2 = export::blueprint(&imp.doc, "stable").unwrap();
    assert_eq!(bp1, bp2, "blueprint round trip");
    // The blueprint uses authentik's models and references.
    assert!(bp1.contains("model: authentik_stages_authenticator_validate.authenticatorvalidatestage"));
    assert!(bp1.contains("!KeyOf stage-default-authentication-identification"));
    // And the imported document is a valid config of its own.
    flowgate::loader::check_import(&import::to_yaml(&imp.doc, &[])).unwrap();
}

#[test]
fn the_cli_exports_yaml_blueprint_and_mermaid() {
    let (code, out, err) = run_bin(
        &[
            "export",
            "-c",
            "config/flowgate.yaml",
            "--flow",
            "default-recovery-flow",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("slug: default-recovery-flow") && out.contains("default-recovery-email:"),
        "{out}"
    );
    let (code, out, _) = run_bin(
        &[
            "export",
            "-c",
            "config/flowgate.yaml",
            "--flow",
            "default-recovery-flow",
            "--format",
            "blueprint",
        ],
        "",
    );
    assert_eq!(code, 0);
    assert!(out.starts_with("version: 1"), "{out}");
    let (code, out, _) = run_bin(
        &[
            "export",
            "-c",
            "config/flowgate.yaml",
            "--flow",
            "default-recovery-flow",
            "--format",
            "mermaid",
        ],
        "",
    );
    assert_eq!(code, 0);
    assert!(out.contains("flowchart"), "{out}");
    let (code, _, err) = run_bin(&["export", "-c", "config/flowgate.yaml", "--flow", "nope"], "");
    assert_eq!(code, 64);
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn the_config_can_load_blueprints_directly() {
    let dir = tempfile::tempdir().unwrap();
    let fx = fixtures();
    let text = format!(
        "listen: {{ http: \"127.0.0.1:0\" }}\nmail: {{ transport: file }}\nblueprints:\n  - \"{}\"\n  - \"{}\"\napps:\n  - {{ name: a, upstream: \"http://127.0.0.1:9\" }}\n",
        fx.join("default/flow-default-authentication-flow.yaml").display(),
        fx.join("default/flow-default-invalidation-flow.yaml").display()
    );
    let main = dir.path().join("main.yaml");
    std::fs::write(&main, text).unwrap();
    let cfg = flowgate::Config::load(&main).unwrap();
    assert!(cfg.flows.contains_key("default-authentication-flow"));
    assert!(
        cfg.notes.iter().any(|n| n.contains("metaapplyblueprint")),
        "{:?}",
        cfg.notes
    );
    let (code, _, err) = run_bin(&["check", "-c", main.to_str().unwrap()], "");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("warning: not imported:"), "{err}");
}

#[test]
fn users_and_groups_go_to_a_seed_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("invite.yaml");
    let src = fixtures().join("example/flows-invitation-enrollment.yaml");
    let (code, _, err) = run_bin(&["import", src.to_str().unwrap(), "-o", out.to_str().unwrap()], "");
    assert_eq!(code, 0, "{err}");
    let seed = dir.path().join("invite.seed.yaml");
    assert!(err.contains("invite.seed.yaml"), "{err}");
    let (file, _) = flowgate::identity::seed::SeedFile::load(&seed).unwrap();
    assert!(!file.groups.is_empty());
    // The written flows are a valid config of their own.
    flowgate::loader::check_import(&std::fs::read_to_string(&out).unwrap()).unwrap();
}
