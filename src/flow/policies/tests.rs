use super::*;
use crate::config::DEFAULT_POLICY_TIMEOUT;
use std::time::Duration;

fn b(target: BindingTarget) -> PolicyBinding {
    PolicyBinding {
        target,
        negate: false,
        enabled: true,
        order: 0,
        timeout: DEFAULT_POLICY_TIMEOUT,
        failure_result: false,
    }
}

fn alice() -> PolicyInput {
    PolicyInput {
        user: Some(Subject {
            username: "alice".into(),
            groups: vec!["staff".into()],
            is_superuser: false,
            is_authenticated_user: true,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn policies() -> BTreeMap<String, PolicyDef> {
    let mut m = BTreeMap::new();
    m.insert(
        "yes".into(),
        PolicyDef::Dummy {
            result: true,
            wait: Duration::ZERO,
        },
    );
    m.insert(
        "no".into(),
        PolicyDef::Dummy {
            result: false,
            wait: Duration::ZERO,
        },
    );
    m.insert(
        "slow".into(),
        PolicyDef::Dummy {
            result: true,
            wait: Duration::from_secs(5),
        },
    );
    m
}

#[tokio::test]
async fn empty_passes_and_disabled_ignored() {
    let r = evaluate(&[], EngineMode::All, &policies(), &alice()).await;
    assert!(r.passing);
    let mut no = b(BindingTarget::Policy("no".into()));
    no.enabled = false;
    assert!(evaluate(&[no], EngineMode::All, &policies(), &alice()).await.passing);
}

#[tokio::test]
async fn groups_and_anonymous() {
    let g = [b(BindingTarget::Group("staff".into()))];
    assert!(evaluate(&g, EngineMode::Any, &policies(), &alice()).await.passing);
    assert!(
        !evaluate(&g, EngineMode::Any, &policies(), &PolicyInput::default())
            .await
            .passing
    );
    let mut neg = b(BindingTarget::Group("staff".into()));
    neg.negate = true;
    assert!(!evaluate(&[neg], EngineMode::Any, &policies(), &alice()).await.passing);
}

#[tokio::test]
async fn any_versus_all() {
    let both = [
        b(BindingTarget::Policy("yes".into())),
        b(BindingTarget::Policy("no".into())),
    ];
    assert!(evaluate(&both, EngineMode::Any, &policies(), &alice()).await.passing);
    assert!(!evaluate(&both, EngineMode::All, &policies(), &alice()).await.passing);
}

#[tokio::test(start_paused = true)]
async fn timeout_yields_failure_result() {
    let mut slow = b(BindingTarget::Policy("slow".into()));
    slow.timeout = Duration::from_millis(50);
    let r = evaluate(std::slice::from_ref(&slow), EngineMode::All, &policies(), &alice()).await;
    assert!(!r.passing);
    assert_eq!(r.messages, vec!["Timed out".to_string()]);
    slow.failure_result = true;
    assert!(evaluate(&[slow], EngineMode::All, &policies(), &alice()).await.passing);
}
