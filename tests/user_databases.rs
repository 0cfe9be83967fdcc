//! The user store on both backends, SQLite and a real PostgreSQL (`common::postgres`): one
//! test body per concern, run against each. The identity operations (users, groups, passwords,
//! seeding, TOTP and recovery codes, invitations, consents) must give the same answers. The
//! gateway on both is `user_database_gateway.rs`.

use crate::common::postgres::{Backend, Fresh};
use flowgate::identity::mfa::{generate_static_codes, totp_code, totp_step};
use flowgate::identity::seed::SeedFile;
use flowgate::identity::{HashParams, LookupField, NewUser, PasswordHasher, StoreError, UserUpdate};
use serde_json::{json, Map};

fn new_user(username: &str, email: &str, pw: Option<&str>, groups: &[&str]) -> NewUser {
    NewUser {
        username: username.into(),
        email: email.into(),
        password: pw.map(str::to_string),
        groups: groups.iter().map(|s| s.to_string()).collect(),
        is_active: true,
        ..Default::default()
    }
}

// === identity operations ===

async fn users_groups_and_passwords(backend: Backend) {
    let fresh = Fresh::new(backend).await;
    let s = fresh.open().await;
    let m = Map::new();
    s.ensure_group("c", None, &m).await.unwrap();
    s.ensure_group("b", Some("c"), &m).await.unwrap();
    s.ensure_group("a", Some("b"), &m).await.unwrap();
    let alice = s
        .create_user(new_user("Alice", "Alice@Example.Test", Some("pw1"), &["a"]))
        .await
        .unwrap();
    assert_eq!(alice.uid.len(), 32);
    assert_eq!(alice.groups, ["a", "b", "c"], "{backend:?}: inherited groups");
    assert!(alice.is_active && !alice.is_superuser && !alice.email_verified);
    assert!(alice.password_changed_at.is_some_and(|t| t > 1_600_000_000));
    s.ensure_group("c", Some("a"), &m).await.unwrap();
    assert_eq!(
        s.get_by_id(alice.id).await.unwrap().unwrap().groups,
        ["a", "b", "c"],
        "a cycle ends"
    );

    // Lookups: case-insensitive by username and by address key, exact otherwise.
    let both = [LookupField::Username, LookupField::Email];
    let found = |id: &str, ci: bool| {
        let s = s.clone();
        let id = id.to_string();
        async move { s.find_user(&id, &both, ci).await.unwrap().map(|u| u.username) }
    };
    assert_eq!(found("alice", true).await.as_deref(), Some("Alice"));
    assert_eq!(found("ALICE@example.test", true).await.as_deref(), Some("Alice"));
    assert_eq!(found("alice", false).await, None);
    assert_eq!(found("Alice@Example.Test", false).await.as_deref(), Some("Alice"));
    assert_eq!(found("", true).await, None);
    assert_eq!(found("nobody", true).await, None);

    // Duplicates: the same name in another case or with a look-alike letter, the same address.
    for (u, e) in [("alice", ""), ("аlice", ""), ("other", "alice@EXAMPLE.test")] {
        assert!(
            matches!(
                s.create_user(new_user(u, e, None, &[])).await,
                Err(StoreError::Duplicate { .. })
            ),
            "{backend:?}: {u} {e}"
        );
    }
    assert!(matches!(
        s.create_user(new_user(" bad", "", None, &[])).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(s.username_taken("ALICE", None).await.unwrap());
    assert!(!s.username_taken("alice", Some(alice.id)).await.unwrap());
    assert!(s.email_taken("alice@example.test", None).await.unwrap());

    // Passwords: verify, change, unusable; inactive users fail.
    assert!(s.verify_password(&alice, "pw1").await.unwrap());
    assert!(!s.verify_password(&alice, "pw2").await.unwrap());
    s.set_password("Alice", "pw2").await.unwrap();
    let alice = s.get_by_username("Alice").await.unwrap().unwrap();
    assert!(s.verify_password(&alice, "pw2").await.unwrap());
    assert!(matches!(
        s.set_password("ghost", "x").await,
        Err(StoreError::NotFound { .. })
    ));

    // Updates: rename, new address (unverified), merged attributes, joined group, deactivation.
    let bob = s
        .create_user(new_user("bob", "bob@example.test", Some("b"), &[]))
        .await
        .unwrap();
    let mut attrs = Map::new();
    attrs.insert("team".into(), json!("blue"));
    let up = UserUpdate {
        username: Some("robert".into()),
        email: Some("robert@example.test".into()),
        name: Some("Robert".into()),
        attributes: attrs,
        add_groups: vec!["c".into(), "new".into()],
        ..Default::default()
    };
    let robert = s.update_user(bob.id, up).await.unwrap();
    assert_eq!(
        (robert.username.as_str(), robert.email.as_str(), robert.name.as_str()),
        ("robert", "robert@example.test", "Robert")
    );
    assert!(!robert.email_verified);
    assert_eq!(robert.attributes.get("team"), Some(&json!("blue")));
    assert_eq!(robert.groups, ["a", "b", "c", "new"], "c is in a cycle with a and b");
    assert_eq!(found("ROBERT", true).await.as_deref(), Some("robert"));
    let verified = s
        .update_user(
            bob.id,
            UserUpdate {
                email_verified: Some(true),
                is_active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(verified.email_verified && !verified.is_active);
    assert!(!s.verify_password(&verified, "b").await.unwrap(), "inactive");
    assert!(matches!(
        s.update_user(
            bob.id,
            UserUpdate {
                username: Some("ALICE".into()),
                ..Default::default()
            }
        )
        .await,
        Err(StoreError::Duplicate { .. })
    ));
    assert!(matches!(
        s.update_user(9999, UserUpdate::default()).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(s.set_password_unusable("robert").await.unwrap());
    assert!(s
        .get_by_username("robert")
        .await
        .unwrap()
        .unwrap()
        .password_hash
        .is_none());

    let names: Vec<String> = s.list_users().await.unwrap().into_iter().map(|u| u.username).collect();
    assert_eq!(names, ["Alice", "robert"]);
    assert!(s.delete_user("Alice").await.unwrap());
    assert!(!s.delete_user("Alice").await.unwrap());
    assert!(s.delete_user_by_id(bob.id).await.unwrap());
    assert!(s.list_users().await.unwrap().is_empty());
    s.close().await;
}

async fn seeding_and_rehash(backend: Backend) {
    let fresh = Fresh::new(backend).await;
    let s = fresh.open().await;
    let base = fresh.dir.path();
    // A hash made with other parameters than the store's: verifying it rehashes.
    let old = PasswordHasher::new(HashParams {
        memory_kib: 16,
        iterations: 2,
        parallelism: 1,
    })
    .hash_blocking("seeded")
    .unwrap();
    let seed = format!(
        "groups: [{{ name: staff }}, {{ name: admins, parent: staff }}]\nusers:\n  - {{ username: a, password: one, groups: [admins], email: a@x.test }}\n  - {{ username: h, password_hash: \"{old}\" }}\n"
    );
    let r = s
        .seed(&SeedFile::from_yaml_str(&seed, "s.yaml").unwrap(), base)
        .await
        .unwrap();
    assert_eq!(r.created, ["a", "h"]);
    let a = s.get_by_username("a").await.unwrap().unwrap();
    assert_eq!(a.groups, ["admins", "staff"]);
    assert!(a.email_verified, "{backend:?}: the seed's address is verified");
    let h = s.get_by_username("h").await.unwrap().unwrap();
    assert!(s.verify_password(&h, "seeded").await.unwrap());
    let rehashed = s.get_by_username("h").await.unwrap().unwrap().password_hash.unwrap();
    assert_ne!(rehashed, old, "{backend:?}: rehashed with current parameters");
    assert!(rehashed.contains("m=8,t=1,p=1"), "{rehashed}");

    s.set_password("a", "mine").await.unwrap();
    let seed2 = "users:\n  - { username: a, password: two, email: A2@x.test }\n  - { username: h, password: new }\n";
    let r = s
        .seed(&SeedFile::from_yaml_str(seed2, "s.yaml").unwrap(), base)
        .await
        .unwrap();
    assert_eq!(r.password_kept, ["a"]);
    let a = s.get_by_username("a").await.unwrap().unwrap();
    assert!(s.verify_password(&a, "mine").await.unwrap());
    assert_eq!(a.email, "A2@x.test");
    assert!(a.groups.is_empty(), "memberships follow the seed");
    let h = s.get_by_username("h").await.unwrap().unwrap();
    assert!(
        s.verify_password(&h, "new").await.unwrap(),
        "seed-sourced password follows the seed"
    );

    // Reopening (migrations run again) keeps everything.
    s.close().await;
    let s = fresh.open().await;
    assert_eq!(s.list_users().await.unwrap().len(), 2);
    s.close().await;
}

const SECRET: &[u8] = b"12345678901234567890";
const NOW_MS: u64 = 1_700_000_000_000;

async fn second_factors(backend: Backend) {
    let fresh = Fresh::new(backend).await;
    let s = fresh.open().await;
    let alice = s.create_user(new_user("alice", "", None, &[])).await.unwrap().id;
    let bob = s.create_user(new_user("bob", "", None, &[])).await.unwrap().id;
    let now = totp_step(NOW_MS);
    let dev = s
        .add_totp_device(alice, "phone", SECRET, 6, NOW_MS, Some(now))
        .await
        .unwrap();
    assert_eq!(
        s.verify_totp(alice, &totp_code(SECRET, now, 6), NOW_MS).await.unwrap(),
        None,
        "{backend:?}: the enrolment code is spent"
    );
    let later = NOW_MS + 30_000;
    let next = totp_code(SECRET, now + 1, 6);
    assert_eq!(s.verify_totp(alice, &next, later).await.unwrap(), Some(dev));
    assert_eq!(s.verify_totp(alice, &next, later).await.unwrap(), None, "no reuse");
    assert_eq!(s.verify_totp(bob, &next, later).await.unwrap(), None);
    let devices = s.totp_devices(alice).await.unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!((devices[0].digits, devices[0].created_ms), (6, NOW_MS as i64));
    assert_eq!(devices[0].last_used_ms, Some(later as i64));
    assert!(matches!(
        s.add_totp_device(alice, "phone", SECRET, 6, NOW_MS, None).await,
        Err(StoreError::Duplicate { .. })
    ));

    // Eight concurrent submissions of one fresh code: exactly one passes.
    let code = totp_code(SECRET, now + 2, 6);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (s, code) = (s.clone(), code.clone());
            tokio::spawn(async move { s.verify_totp(alice, &code, later + 30_000).await.unwrap() })
        })
        .collect();
    let mut passed = 0;
    for t in tasks {
        passed += usize::from(t.await.unwrap().is_some());
    }
    assert_eq!(passed, 1, "{backend:?}");

    let codes = generate_static_codes(3);
    s.set_static_codes(alice, &codes, NOW_MS).await.unwrap();
    assert_eq!(s.static_code_count(alice).await.unwrap(), 3);
    assert!(!s.use_static_code(bob, &codes[0], NOW_MS).await.unwrap());
    assert!(s
        .use_static_code(alice, &codes[0].to_uppercase(), NOW_MS)
        .await
        .unwrap());
    assert!(!s.use_static_code(alice, &codes[0], NOW_MS).await.unwrap());
    assert_eq!(s.static_code_count(alice).await.unwrap(), 2);
    let dup = vec![codes[1].clone(), codes[1].clone()];
    assert!(matches!(
        s.set_static_codes(alice, &dup, NOW_MS).await,
        Err(StoreError::Invalid(_))
    ));
    // Deleting the user takes the devices and codes with it.
    s.delete_mfa(alice).await.unwrap();
    assert!(s.totp_devices(alice).await.unwrap().is_empty());
    assert_eq!(s.static_code_count(alice).await.unwrap(), 0);
    s.close().await;
}

async fn invitations_and_consents(backend: Backend) {
    let fresh = Fresh::new(backend).await;
    let s = fresh.open().await;
    let mut data = Map::new();
    data.insert("email".into(), json!("new@example.test"));
    let once = s
        .create_invitation("once", Some("enroll"), Some(2_000), true, data.clone(), 1_000)
        .await
        .unwrap();
    let open = s
        .create_invitation("open", None, None, false, Map::new(), 1_000)
        .await
        .unwrap();
    assert!(matches!(
        s.create_invitation("once", None, None, false, Map::new(), 1_000).await,
        Err(StoreError::Duplicate { .. })
    ));
    let names: Vec<String> = s
        .list_invitations()
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["once", "open"]);
    assert_eq!(
        s.take_invitation(&once.token, "other", 1_500).await.unwrap(),
        None,
        "bound flow"
    );
    assert_eq!(
        s.take_invitation(&once.token, "enroll", 2_000).await.unwrap(),
        None,
        "expired"
    );
    let taken = s.take_invitation(&once.token, "enroll", 1_500).await.unwrap().unwrap();
    assert_eq!((taken.single_use, taken.fixed_data), (true, data));
    assert_eq!(
        s.take_invitation(&once.token, "enroll", 1_500).await.unwrap(),
        None,
        "single use"
    );
    for _ in 0..2 {
        assert!(s.take_invitation(&open.token, "any", 5_000).await.unwrap().is_some());
    }
    assert!(s.delete_invitation("open").await.unwrap());
    assert!(!s.delete_invitation("open").await.unwrap());

    let u = s.create_user(new_user("c", "", None, &[])).await.unwrap().id;
    assert!(!s.has_consent(u, "app", 1_000).await.unwrap());
    s.save_consent(u, "app", Some(2_000)).await.unwrap();
    assert!(s.has_consent(u, "app", 1_000).await.unwrap());
    assert!(!s.has_consent(u, "app", 2_000).await.unwrap());
    s.save_consent(u, "app", None).await.unwrap();
    assert!(s.has_consent(u, "app", 9_000).await.unwrap(), "{backend:?}: replaced");
    s.close().await;
}

/// The user-source connections (OAuth sources): one user per (source, subject), never moved
/// to another user, gone with the user.
async fn source_connections(backend: Backend) {
    let fresh = Fresh::new(backend).await;
    let s = fresh.open().await;
    let a = s
        .create_user(new_user("a", "a@example.test", None, &[]))
        .await
        .unwrap()
        .id;
    let b = s
        .create_user(new_user("b", "b@example.test", None, &[]))
        .await
        .unwrap()
        .id;
    assert_eq!(s.source_user("corp", "sub-1").await.unwrap(), None);
    s.link_source("corp", "sub-1", a, 1_000).await.unwrap();
    s.link_source("corp", "sub-1", a, 2_000).await.unwrap();
    assert_eq!(s.source_user("corp", "sub-1").await.unwrap().map(|u| u.id), Some(a));
    assert!(
        matches!(
            s.link_source("corp", "sub-1", b, 3_000).await,
            Err(StoreError::Duplicate { .. })
        ),
        "{backend:?}: a subject is never moved to another user"
    );
    s.link_source("hub", "sub-1", b, 3_000).await.unwrap();
    s.link_source("corp", "sub-2", b, 3_000).await.unwrap();
    let links: Vec<(String, String)> = s
        .source_connections_of(b)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.source, c.identifier))
        .collect();
    assert_eq!(links, [("corp".into(), "sub-2".into()), ("hub".into(), "sub-1".into())]);
    assert!(s.delete_user_by_id(b).await.unwrap());
    assert_eq!(
        s.source_user("hub", "sub-1").await.unwrap(),
        None,
        "{backend:?}: gone with the user"
    );
    s.close().await;
}

async fn app_passwords(backend: Backend) {
    let fresh = Fresh::new(backend).await;
    let s = fresh.open().await;
    let alice = s.create_user(new_user("alice", "", None, &[])).await.unwrap().id;
    s.create_user(new_user("bob", "", None, &[])).await.unwrap();
    let (a, token) = s.create_app_password("alice", "dav", Some(5_000), 1_000).await.unwrap();
    let (_, forever) = s.create_app_password("bob", "dav", None, 1_000).await.unwrap();
    assert!(token.starts_with("fgp_") && token.contains(&a.key));
    let ok = s.check_app_password(&token, "dav", 4_999).await.unwrap().unwrap();
    assert_eq!((ok.user_id, ok.expires_ms), (alice, Some(5_000)));
    assert_eq!(
        s.check_app_password(&token, "dav", 5_000).await.unwrap(),
        None,
        "{backend:?}: expired"
    );
    assert_eq!(
        s.check_app_password(&token, "wiki", 2_000).await.unwrap(),
        None,
        "{backend:?}: other app"
    );
    let mut wrong = token.clone();
    wrong.pop();
    wrong.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(
        s.check_app_password(&wrong, "dav", 2_000).await.unwrap(),
        None,
        "{backend:?}: wrong secret"
    );
    assert!(s
        .check_app_password(&forever, "dav", i64::MAX as u64)
        .await
        .unwrap()
        .is_some());
    let all = s.list_app_passwords(None).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(s.list_app_passwords(Some("alice")).await.unwrap(), vec![a.clone()]);
    assert!(matches!(
        s.create_app_password("nobody", "dav", None, 1).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(s.revoke_app_password(&a.key).await.unwrap());
    assert!(!s.revoke_app_password(&a.key).await.unwrap());
    assert_eq!(
        s.check_app_password(&token, "dav", 2_000).await.unwrap(),
        None,
        "{backend:?}: revoked"
    );
    // Deleting the user deletes its app passwords.
    s.delete_user("bob").await.unwrap();
    assert!(s.list_app_passwords(None).await.unwrap().is_empty(), "{backend:?}");
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identity_operations_sqlite() {
    users_groups_and_passwords(Backend::Sqlite).await;
    seeding_and_rehash(Backend::Sqlite).await;
    second_factors(Backend::Sqlite).await;
    invitations_and_consents(Backend::Sqlite).await;
    source_connections(Backend::Sqlite).await;
    app_passwords(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identity_operations_postgres() {
    users_groups_and_passwords(Backend::Postgres).await;
    seeding_and_rehash(Backend::Postgres).await;
    second_factors(Backend::Postgres).await;
    invitations_and_consents(Backend::Postgres).await;
    source_connections(Backend::Postgres).await;
    app_passwords(Backend::Postgres).await;
}

/// Replicas starting together on one new PostgreSQL database: the migrations run one at a time
/// (advisory lock), so every start succeeds and the schema is made once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_starts_on_postgres_migrate_once() {
    let fresh = Fresh::new(Backend::Postgres).await;
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let db = fresh.db.clone();
            tokio::spawn(async move {
                let cheap = HashParams {
                    memory_kib: 8,
                    iterations: 1,
                    parallelism: 1,
                };
                flowgate::identity::UserStore::connect(&db, PasswordHasher::new(cheap)).await
            })
        })
        .collect();
    let mut stores = Vec::new();
    for s in starts {
        stores.push(
            s.await
                .unwrap()
                .unwrap_or_else(|e| panic!("a concurrent start failed: {e}")),
        );
    }
    stores[0].create_user(new_user("x", "", None, &[])).await.unwrap();
    for s in &stores {
        assert_eq!(s.list_users().await.unwrap().len(), 1);
        s.close().await;
    }
}
