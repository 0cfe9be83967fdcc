use super::*;
use crate::flow::policies::Subject;
use serde_json::json;

fn input(context: serde_json::Value, in_flow: bool) -> PolicyInput {
    PolicyInput {
        context: context.as_object().cloned().unwrap_or_default(),
        in_flow,
        client_ip: Some("192.0.2.7".parse().unwrap()),
        ..Default::default()
    }
}

fn run(src: &str, i: &PolicyInput) -> Decision {
    compile(src)
        .unwrap_or_else(|e| panic!("{e}\n{src}"))
        .evaluate(i)
        .unwrap_or_else(|e| panic!("{e:?}\n{src}"))
}

/// Every expression policy in the authentik fixtures compiles.
#[test]
fn fixture_expressions_compile() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/authentik");
    let mut found = 0;
    let mut refused = Vec::new();
    for dir in ["default", "example"] {
        let listing = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("{}: {e} (the authentik fixtures of the repository)", root.display()));
        for entry in listing {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
            for e in doc.get("entries").and_then(|v| v.as_sequence()).into_iter().flatten() {
                if e.get("model").and_then(|m| m.as_str()) != Some("authentik_policies_expression.expressionpolicy") {
                    continue;
                }
                let Some(src) = e
                    .get("attrs")
                    .and_then(|a| a.get("expression"))
                    .and_then(|x| x.as_str())
                else {
                    continue;
                };
                found += 1;
                match compile(src) {
                    Ok(_) => {}
                    // Expressions that write authentik's database through its ORM cannot run in
                    // flowgate; they must be refused with a clear message, never half-run.
                    Err(err) if src.contains("authentik.flows.models") => {
                        assert!(
                            err.contains("imports from \"authentik.flows.models\" are not available"),
                            "{err}"
                        );
                        refused.push(path.display().to_string());
                    }
                    Err(err) => panic!("{}: {err}\n{src}", path.display()),
                }
            }
        }
    }
    assert!(found >= 7, "only {found} expression policies found");
    assert_eq!(
        refused.len(),
        1,
        "only the OOBE flow's ORM update is refused: {refused:?}"
    );
}

#[test]
fn fixture_expressions_give_authentiks_results() {
    // flows-recovery-email-mfa-verification: skip if restored.
    let e = "return bool(request.context.get('is_restored', True))\n";
    assert!(run(e, &input(json!({}), true)).passing);
    assert!(!run(e, &input(json!({"is_restored": false}), true)).passing);
    // flows-login-2fa.
    let e = "return context.get(\"auth_method\") != \"app_password\"\n";
    assert!(run(e, &input(json!({"auth_method": "password"}), true)).passing);
    assert!(!run(e, &input(json!({"auth_method": "app_password"}), true)).passing);
    // default authentication flow: password stage optional.
    let e = "flow_plan = request.context.get(\"flow_plan\")\nif not flow_plan:\n    return True\n# comment\nreturn not hasattr(flow_plan.context.get(\"pending_user\"), \"backend\")\n";
    assert!(run(e, &input(json!({}), false)).passing, "no flow plan");
    assert!(
        run(e, &input(json!({"pending_user": {"username": "a"}}), true)).passing,
        "no backend yet"
    );
    let e = "flow_plan = request.context.get(\"flow_plan\")\nif not flow_plan:\n    return True\nreturn not (flow_plan.context.get(\"auth_method\") == \"auth_webauthn_pwl\")\n";
    assert!(!run(e, &input(json!({"auth_method": "auth_webauthn_pwl"}), true)).passing);
    assert!(run(e, &input(json!({"auth_method": "password"}), true)).passing);
    // default source enrollment.
    let e = "return 'username' not in context.get('prompt_data', {})\n";
    assert!(run(e, &input(json!({}), true)).passing);
    assert!(!run(e, &input(json!({"prompt_data": {"username": "x"}}), true)).passing);
    assert!(!run("return ak_is_sso_flow\n", &input(json!({}), true)).passing);
    // oobe: writes into the flow plan's context.
    let e = "akadmin = ak_user_by(username=\"akadmin\")\ncontext[\"flow_plan\"].context[\"pending_user\"] = akadmin\nreturn True\n";
    assert!(run(e, &input(json!({}), true)).passing);
}

#[test]
fn variables_and_helpers() {
    let mut i = input(json!({}), false);
    i.user = Some(Subject {
        username: "alice".into(),
        groups: vec!["staff".into()],
        is_authenticated_user: true,
        email: "a@x.test".into(),
        ..Default::default()
    });
    assert!(run("return ak_is_group_member(request.user, name=\"staff\")\n", &i).passing);
    assert!(!run("return ak_is_group_member(request.user, name=\"ops\")\n", &i).passing);
    assert!(
        run(
            "return request.user.username == \"alice\" and request.user.email is not None\n",
            &i
        )
        .passing
    );
    assert!(run("return ak_client_ip == \"192.0.2.7\"\n", &i).passing);
    assert!(
        run(
            "return regex_match(request.user.email, \"^a@\") and regex_replace(\"a-b\", \"-\", \"_\") == \"a_b\"\n",
            &i
        )
        .passing
    );
    assert!(
        run("return regex_match(\"xa@y\", \"a@\")\n", &i).passing,
        "re.search semantics"
    );
    let flat =
        "return list_flatten([\"a\", \"b\"]) == \"a\" and list_flatten([]) == None and list_flatten(\"s\") == \"s\"\n";
    assert!(run(flat, &i).passing);
    assert!(run("return http_request.tenant.default_user_change_name\n", &i).passing);
    let d = run("ak_message(\"first\")\nak_message(\"second\")\nreturn False\n", &i);
    assert_eq!(
        d,
        Decision {
            passing: false,
            messages: vec!["first".into(), "second".into()]
        }
    );
    assert!(!run("x = 1\n", &i).passing, "no return is None, which fails");
    // Anonymous: request.user exists but is not authenticated.
    assert!(run("return not request.user.is_authenticated\n", &input(json!({}), false)).passing);
}

#[test]
fn unbounded_expressions_are_stopped() {
    let i = input(json!({}), false);
    let e = compile("n = 0\nfor x in range(100000000):\n    n += x\nreturn True\n").unwrap();
    let err = e.evaluate(&i).unwrap_err();
    assert!(err.0.contains("statements"), "{err:?}");
    let e = compile("l = []\nfor x in range(100000000):\n    l.append(\"x\" * 1000)\nreturn True\n").unwrap();
    assert!(e.evaluate(&i).is_err());
    let e = compile("def f(n):\n    return f(n + 1)\nreturn f(0)\n");
    assert!(e.is_err() || e.unwrap().evaluate(&i).is_err(), "recursion is refused");
}

#[test]
fn compile_errors_name_the_expression_line() {
    let err = compile("x = 1\nreturn x +\n").unwrap_err();
    assert!(err.starts_with("expression line 2:"), "{err}");
    let err = compile("return undefined_name\n").unwrap_err();
    assert!(
        err.starts_with("expression line 1:") && err.contains("undefined_name"),
        "{err}"
    );
    let err = compile("import os\nreturn True\n").unwrap_err();
    assert_eq!(
        err,
        "expression line 1: imports are not available in flowgate expressions"
    );
    assert!(compile("while True:\n    pass\n").is_err(), "no while loops");
}
