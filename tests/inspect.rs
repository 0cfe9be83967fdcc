//! The flow inspector through the real binary: `flowgate plan` shows the plan, every policy
//! result with messages and timing; `flowgate export --format mermaid` draws the flow.

const CONFIG: &str = r#"
listen: { http: "127.0.0.1:0" }
identity: { database: "sqlite://users.db" }
flows:
  - slug: login
    title: Log in to %(app)s
    designation: authentication
    policies: [{ policy: office }]
    bindings:
      - { stage: ident, order: 10 }
      - { stage: pw, order: 20, evaluate_on_plan: true, re_evaluate_policies: false, policies: [{ group: staff }] }
      - { stage: nope, order: 30, re_evaluate_policies: true, policies: [{ policy: lan, negate: true }] }
      - { stage: done, order: 100 }
  - slug: bye
    designation: invalidation
    bindings: [{ stage: out, order: 0 }]
stages:
  ident: { type: identification, user_fields: [username] }
  pw: { type: password }
  nope: { type: deny, deny_message: "not from the LAN" }
  done: { type: user_login }
  out: { type: user_logout }
policies:
  office: { type: source_cidr, cidrs: [10.0.0.0/8, 127.0.0.1] }
  lan: { type: source_cidr, cidrs: [192.168.0.0/16] }
"#;

fn run(args: &[&str], stdin: &str) -> (i32, String, String) {
    crate::common::run_bin(args, stdin)
}

#[test]
fn plan_reports_each_decision() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("f.yaml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let c = cfg.to_str().unwrap();
    assert_eq!(run(&["user", "-c", c, "add", "sam", "--group", "staff"], "pw\n").0, 0);

    let (code, out, err) = run(&["plan", "-c", c, "--flow", "login", "--ip", "127.0.0.1"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("flow login (authentication) for anonymous"), "{out}");
    assert!(out.contains("flow policies (mode any): pass"), "{out}");
    assert!(out.contains("- policy office: pass ("), "{out}");
    assert!(out.contains("[20] pw (password): dropped at plan time"), "{out}");
    assert!(out.contains("- group staff: FAIL"), "{out}");
    assert!(
        out.contains("[30] nope (deny): planned, policies re-checked when the stage runs"),
        "{out}"
    );
    assert!(out.contains("result: ident -> nope -> done"), "{out}");

    let (_, out, _) = run(
        &["plan", "-c", c, "--flow", "login", "--ip", "127.0.0.1", "--user", "sam"],
        "",
    );
    assert!(
        out.contains("for sam") && out.contains("[20] pw (password): planned"),
        "{out}"
    );
    assert!(out.contains("result: ident -> pw -> nope -> done"), "{out}");

    let (_, out, _) = run(&["plan", "-c", c, "--flow", "login", "--ip", "192.168.1.1"], "");
    assert!(out.contains("client address does not match"), "{out}");
    assert!(
        out.contains("result: flow does not apply: client address does not match (denied_action message_continue)"),
        "{out}"
    );

    let (code, _, err) = run(&["plan", "-c", c, "--flow", "nosuch"], "");
    assert_eq!(code, 64);
    assert!(err.contains("unknown flow \"nosuch\" (known: bye, login)"), "{err}");
    let (code, _, err) = run(&["plan", "-c", c, "--flow", "login", "--user", "ghost"], "");
    assert_eq!(code, 64);
    assert!(err.contains("no user named \"ghost\""), "{err}");
}

#[test]
fn mermaid_export_draws_conditions() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("f.yaml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let c = cfg.to_str().unwrap();
    let (code, out, err) = run(&["export", "-c", c, "--flow", "login", "--format", "mermaid"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("flowchart TD\n"));
    assert!(out.contains("start([\"Log in to %(app)s (authentication)\"])"), "{out}");
    assert!(out.contains("start -. \"fails: policy office\" .-> denied"), "{out}");
    assert!(out.contains("s1[\"20 · password<br/>pw\"]"), "{out}");
    assert!(
        out.contains("s0 -. \"skip unless group staff (at plan)\" .-> s2"),
        "{out}"
    );
    assert!(
        out.contains("s1 -. \"skip unless not policy lan (at run)\" .-> s3"),
        "{out}"
    );
    assert!(out.contains("s3 --> done"), "{out}");
    let (code, out, err) = run(&["export", "-c", c, "--flow", "login", "--format", "yaml"], "");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("slug: login"), "{out}");
}
