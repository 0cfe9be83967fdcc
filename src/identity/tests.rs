use super::seed::SeedFile;
use super::*;
use std::path::Path;

async fn store(dir: &Path) -> UserStore {
    UserStore::open(&dir.join("sub/users.db"), PasswordHasher::new(HashParams::default()))
        .await
        .unwrap()
}

fn new(username: &str, email: &str, pw: &str, groups: &[&str]) -> NewUser {
    NewUser {
        username: username.into(),
        email: email.into(),
        password: Some(pw.into()),
        groups: groups.iter().map(|s| s.to_string()).collect(),
        is_active: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn create_find_verify_delete() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    assert!(dir.path().join("sub/users.db").exists());
    let u = s
        .create_user(new("Alice", "alice@example.test", "pw1", &[]))
        .await
        .unwrap();
    assert_eq!(u.uid.len(), 32);
    let f = [LookupField::Username, LookupField::Email];
    assert_eq!(s.find_user("alice", &f, true).await.unwrap().unwrap().id, u.id);
    assert_eq!(
        s.find_user("ALICE@EXAMPLE.TEST", &f, true).await.unwrap().unwrap().id,
        u.id
    );
    assert!(s.find_user("alice", &f, false).await.unwrap().is_none());
    assert!(s.find_user("", &f, true).await.unwrap().is_none());
    assert!(matches!(
        s.create_user(new("alice", "", "x", &[])).await,
        Err(StoreError::Duplicate { .. })
    ));
    assert!(matches!(
        s.create_user(new(" bad", "", "x", &[])).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(s.verify_password(&u, "pw1").await.unwrap());
    assert!(!s.verify_password(&u, "pw2").await.unwrap());
    assert!(s.delete_user("Alice").await.unwrap());
    assert!(!s.delete_user("Alice").await.unwrap());
}

#[tokio::test]
async fn inherited_groups_and_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let m = Default::default();
    s.ensure_group("c", None, &m).await.unwrap();
    s.ensure_group("b", Some("c"), &m).await.unwrap();
    s.ensure_group("a", Some("b"), &m).await.unwrap();
    let u = s.create_user(new("u", "", "pw", &["a"])).await.unwrap();
    assert_eq!(u.groups, vec!["a", "b", "c"]);
    s.ensure_group("c", Some("a"), &m).await.unwrap();
    let u = s.get_by_id(u.id).await.unwrap().unwrap();
    assert_eq!(u.groups, vec!["a", "b", "c"], "a cycle terminates");
}

#[tokio::test]
async fn inactive_and_passwordless_users_fail() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let mut n = new("x", "", "pw", &[]);
    n.is_active = false;
    let u = s.create_user(n).await.unwrap();
    assert!(!s.verify_password(&u, "pw").await.unwrap());
    let mut n = new("y", "", "pw", &[]);
    n.password = None;
    let u = s.create_user(n).await.unwrap();
    assert!(!s.verify_password(&u, "").await.unwrap());
}

#[tokio::test]
async fn malformed_hash_is_an_error_and_old_params_are_rehashed() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let mut u = s.create_user(new("m", "", "pw", &[])).await.unwrap();
    u.password_hash = Some("not a hash".into());
    assert!(s.verify_password(&u, "pw").await.is_err());
    let strong = PasswordHasher::new(HashParams {
        memory_kib: 19_456,
        iterations: 3,
        parallelism: 1,
    });
    let h = strong.hash_blocking("pw").unwrap();
    s.set_hash_keep_source(u.id, &h, "user").await.unwrap();
    let u = s.get_by_id(u.id).await.unwrap().unwrap();
    assert!(s.verify_password(&u, "pw").await.unwrap());
    let after = s.get_by_id(u.id).await.unwrap().unwrap().password_hash.unwrap();
    assert_ne!(after, h);
    assert!(after.contains("m=19456,t=2,p=1"), "{after}");
}

#[tokio::test]
async fn seeding_keeps_changed_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let seed1 = SeedFile::from_yaml_str("groups: [{ name: staff }]\nusers:\n  - { username: a, password: one, groups: [staff] }\n  - { username: b, password: one }\n", "s.yaml").unwrap();
    let r = s.seed(&seed1, dir.path()).await.unwrap();
    assert_eq!(r.created, vec!["a", "b"]);
    s.set_password("a", "mine").await.unwrap();
    let seed2 = SeedFile::from_yaml_str(
        "users:\n  - { username: a, password: two, email: a@x.test }\n  - { username: b, password: two }\n",
        "s.yaml",
    )
    .unwrap();
    let r = s.seed(&seed2, dir.path()).await.unwrap();
    assert_eq!(r.password_kept, vec!["a"]);
    let a = s.get_by_username("a").await.unwrap().unwrap();
    assert!(s.verify_password(&a, "mine").await.unwrap());
    assert!(!s.verify_password(&a, "two").await.unwrap());
    assert_eq!(a.email, "a@x.test");
    assert!(a.groups.is_empty(), "memberships follow the seed");
    let b = s.get_by_username("b").await.unwrap().unwrap();
    assert!(
        s.verify_password(&b, "two").await.unwrap(),
        "seed-sourced password follows the seed"
    );
    // Reopening keeps everything.
    s.close().await;
    let s = store(dir.path()).await;
    assert_eq!(s.list_users().await.unwrap().len(), 2);
}

#[tokio::test]
async fn seed_errors_are_clear() {
    let e = SeedFile::from_yaml_str("users:\n  - { username: a, pasword: x }\n", "s.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("s.yaml:2:") && e.contains("pasword"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let seed = SeedFile::from_yaml_str(
        "users:\n  - { username: a, password_env: FLOWGATE_TEST_SURELY_UNSET }\n",
        "s.yaml",
    )
    .unwrap();
    let e = s.seed(&seed, dir.path()).await.unwrap_err().to_string();
    assert!(e.contains("FLOWGATE_TEST_SURELY_UNSET"), "{e}");
    std::fs::write(dir.path().join("pw"), "filepw\n").unwrap();
    let seed = SeedFile::from_yaml_str("users:\n  - { username: f, password_file: pw }\n", "s.yaml").unwrap();
    s.seed(&seed, dir.path()).await.unwrap();
    let f = s.get_by_username("f").await.unwrap().unwrap();
    assert!(s.verify_password(&f, "filepw").await.unwrap());
}
