//! The `webauthn_devices` table on both backends, SQLite and a real PostgreSQL
//! (`common::postgres`): saving, listing, ownership of rename and delete, the conditional
//! counter update (eight concurrent uses of one assertion: one passes), unique credential ids,
//! and removal with the user's other second factors.

use crate::common::postgres::{Backend, Fresh};
use flowgate::identity::passkeys::NewPasskey;
use flowgate::identity::{NewUser, StoreError};

const NOW_MS: u64 = 1_700_000_000_000;

fn user(name: &str) -> NewUser {
    NewUser {
        username: name.into(),
        is_active: true,
        ..Default::default()
    }
}

fn key<'a>(id: &'a str, name: &'a str) -> NewPasskey<'a> {
    NewPasskey {
        name,
        credential_id: id,
        public_key: b"\xa5\x01\x02",
        sign_count: 0,
        aaguid: "00000000000000000000000000000000",
    }
}

async fn passkeys(backend: Backend) {
    let fresh = Fresh::new(backend).await;
    let s = fresh.open().await;
    let alice = s.create_user(user("alice")).await.unwrap().id;
    let bob = s.create_user(user("bob")).await.unwrap().id;
    let a1 = s.add_passkey(alice, &key("cred-a1", "Laptop"), NOW_MS).await.unwrap();
    let b1 = s.add_passkey(bob, &key("cred-b1", "Phone"), NOW_MS).await.unwrap();
    // A credential id is unique across users.
    assert!(matches!(
        s.add_passkey(bob, &key("cred-a1", "Stolen"), NOW_MS).await,
        Err(StoreError::Duplicate { .. })
    ));
    assert!(matches!(
        s.add_passkey(bob, &key("cred-x", "\u{7}"), NOW_MS).await,
        Err(StoreError::Invalid(_))
    ));
    let list = s.passkeys(alice).await.unwrap();
    assert_eq!(list.len(), 1, "{backend:?}");
    assert_eq!(
        (list[0].name.as_str(), list[0].public_key.as_slice()),
        ("Laptop", &b"\xa5\x01\x02"[..])
    );
    let found = s.passkey_by_credential("cred-b1").await.unwrap().unwrap();
    assert_eq!((found.id, found.user_id), (b1, bob));
    assert!(s.passkey_by_credential("nope").await.unwrap().is_none());

    // Only the owner renames or deletes.
    assert!(!s.rename_passkey(bob, a1, "mine").await.unwrap());
    assert!(!s.delete_passkey(bob, a1).await.unwrap());
    assert!(s.rename_passkey(alice, a1, "Work laptop").await.unwrap());
    assert_eq!(s.passkeys(alice).await.unwrap()[0].name, "Work laptop");

    // The counter moves only from the value read: eight concurrent uses, one passes.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.use_passkey(alice, a1, 0, 1, NOW_MS + 1).await.unwrap() })
        })
        .collect();
    let mut passed = 0;
    for t in tasks {
        passed += usize::from(t.await.unwrap());
    }
    assert_eq!(passed, 1, "{backend:?}");
    assert!(!s.use_passkey(bob, a1, 1, 2, NOW_MS).await.unwrap(), "not bob's");
    let now = s.passkeys(alice).await.unwrap();
    assert_eq!((now[0].sign_count, now[0].last_used_ms), (1, Some(NOW_MS as i64 + 1)));

    // Deleting: gone at once; removing all second factors takes passkeys too.
    assert!(s.delete_passkey(alice, a1).await.unwrap());
    assert!(s.passkey_by_credential("cred-a1").await.unwrap().is_none());
    assert!(!s.use_passkey(alice, a1, 1, 2, NOW_MS).await.unwrap());
    s.delete_mfa(bob).await.unwrap();
    assert!(s.passkeys(bob).await.unwrap().is_empty());
    s.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn passkey_store_sqlite() {
    passkeys(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn passkey_store_postgres() {
    passkeys(Backend::Postgres).await;
}
