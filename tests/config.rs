//! Config loading: every invalid fixture produces exactly its recorded errors (file, line,
//! column, field path, what is allowed), shipped configs pass, and `flowgate check` exits 0/64.

use flowgate::Config;
use std::path::Path;
use std::process::Command;

#[test]
fn invalid_fixtures_produce_their_errors() {
    let dir = Path::new("tests/fixtures/invalid");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let expected = std::fs::read_to_string(path.with_extension("err"))
            .unwrap_or_else(|_| panic!("{} has no .err file", path.display()));
        let err = Config::load(&path).expect_err(&format!("{} must not load", path.display()));
        assert_eq!(err.to_string().trim(), expected.trim(), "errors of {}", path.display());
        seen += 1;
    }
    assert!(seen >= 7, "only {seen} fixtures");
}

#[test]
fn all_errors_of_a_file_come_together() {
    let err = Config::load(Path::new("tests/fixtures/invalid/dangling_references.yaml")).unwrap_err();
    assert!(err.0.len() >= 8, "{err}");
    assert!(err.0.iter().all(|e| e.line > 0 && e.column > 0 && !e.path.is_empty()));
}

#[test]
fn errors_from_strings_name_the_source() {
    let err = Config::from_yaml_str(
        "listen: { http: \"127.0.0.1:0\" }\nsession:\n  idle_timeout: 0s\n",
        "inline.yaml",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "inline.yaml:3:3: session.idle_timeout: must be greater than zero"
    );
}

#[test]
fn shipped_config_passes() {
    let cfg = Config::load(Path::new("config/flowgate.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.apps.len(), 1);
    assert!(cfg.flows.contains_key("default-authentication-flow"));
    assert!(cfg.flows.contains_key("default-invalidation-flow"));
    assert_eq!(cfg.logout.flow, None, "chosen per request");
}

#[test]
fn check_command_exit_codes() {
    let bin = env!("CARGO_BIN_EXE_flowgate");
    let ok = Command::new(bin)
        .args(["check", "-c", "config/flowgate.yaml"])
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stderr));
    let bad = Command::new(bin)
        .args(["check", "-c", "tests/fixtures/invalid/unknown_field.yaml"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown_field.yaml:6:5: apps[0].upstrem: unknown field"));
    let missing = Command::new(bin)
        .args(["check", "-c", "tests/fixtures/nope.yaml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(64));
}

#[test]
fn the_shipped_schema_is_what_flowgate_schema_prints() {
    let generated = flowgate::config::schema::json_schema();
    let shipped = std::fs::read_to_string("docs/flowgate.schema.json").unwrap_or_default();
    assert!(
        shipped == generated,
        "docs/flowgate.schema.json is stale: run `flowgate schema > docs/flowgate.schema.json`"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .arg("schema")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), generated);
    // It describes the file: top-level keys, closed objects, the stage tag.
    let v: serde_json::Value = serde_json::from_str(&generated).unwrap();
    for key in ["listen", "session", "apps", "flows", "stages", "admin", "events"] {
        assert!(v["properties"].get(key).is_some(), "{key} missing");
    }
    assert_eq!(v["additionalProperties"], false);
    assert!(generated.contains("\"authenticator_validate\""));
    assert!(v["$defs"]["RawAdmin"]["properties"].get("token_env").is_some());
}
