//! How long does building a plan take: a 5-stage flow with flow policies, an evaluate_on_plan
//! binding and re-evaluation markers, for an anonymous and for a logged-in user? One expression
//! policy (authentik's default-flow expression) and one request-matcher policy evaluation?

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use flowgate::config::Config;
use flowgate::flow::planner::{plan, PlanFacts};
use flowgate::flow::policies::{evaluate, PolicyInput, Subject};
use flowgate::flow::FlowRegistry;

const CONFIG: &str = r#"
listen: { http: "127.0.0.1:0" }
flows:
  - slug: five
    designation: authentication
    policies: [{ policy: lan }, { policy: weekdays }]
    bindings:
      - { stage: ident, order: 10 }
      - { stage: pw, order: 20, evaluate_on_plan: true, policies: [{ group: staff }, { policy: lan }] }
      - { stage: deny, order: 30, policies: [{ policy: lan, negate: true }] }
      - { stage: login, order: 40 }
      - { stage: deny2, order: 50, evaluate_on_plan: true, re_evaluate_policies: false, policies: [{ user: mallory }] }
stages:
  ident: { type: identification, user_fields: [username, email] }
  pw: { type: password }
  deny: { type: deny }
  deny2: { type: deny }
  login: { type: user_login }
policies:
  lan: { type: source_cidr, cidrs: [10.0.0.0/8, 192.168.0.0/16, 127.0.0.0/8] }
  weekdays: { type: time }
"#;

fn benches(c: &mut Criterion) {
    let cfg = Config::from_yaml_str(CONFIG, "bench.yaml").expect("bench config");
    let reg = FlowRegistry::from_config(&cfg);
    let flow = &reg.flows["five"];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let anon = PlanFacts {
        input: PolicyInput {
            client_ip: Some("127.0.0.1".parse().unwrap()),
            ..Default::default()
        },
        ..Default::default()
    };
    let user = Subject {
        username: "alice".into(),
        groups: vec!["staff".into()],
        is_superuser: false,
        is_authenticated_user: true,
        ..Default::default()
    };
    let logged = PlanFacts {
        request_user: None,
        input: PolicyInput {
            user: Some(user),
            client_ip: Some("127.0.0.1".parse().unwrap()),
            ..Default::default()
        },
        is_redirected: false,
        step_up: false,
    };
    assert_eq!(rt.block_on(plan(&reg, flow, &anon)).expect("plan").len(), 4);
    c.bench_function("plan_5_stages_anonymous", |b| {
        b.iter(|| rt.block_on(plan(&reg, flow, black_box(&anon))))
    });
    c.bench_function("plan_5_stages_user", |b| {
        b.iter(|| rt.block_on(plan(&reg, flow, black_box(&logged))))
    });
    let lan = &flow.bindings[2].policies;
    let expr = flowgate::flow::policies::expression::compile(
        "flow_plan = request.context.get(\"flow_plan\")\nif not flow_plan:\n    return True\nreturn not (flow_plan.context.get(\"auth_method\") == \"auth_webauthn_pwl\")\n",
    )
    .expect("expression compiles");
    let mut in_flow = anon.input.clone();
    in_flow.in_flow = true;
    in_flow
        .context
        .insert("auth_method".into(), serde_json::json!("password"));
    c.bench_function("expression_policy", |b| b.iter(|| expr.evaluate(black_box(&in_flow))));
    c.bench_function("policy_source_cidr", |b| {
        b.iter(|| {
            rt.block_on(evaluate(
                lan,
                flowgate::config::EngineMode::Any,
                &reg.policies,
                black_box(&anon.input),
            ))
        })
    });
}

criterion_group!(plan_benches, benches);
criterion_main!(plan_benches);
