use super::*;
use crate::identity::{HashParams, NewUser, PasswordHasher};
use std::path::Path;

const RFC_SECRET: &[u8] = b"12345678901234567890";
/// A time well inside a step (step 56_666_666 starts at 1_699_999_980 s).
const NOW_MS: u64 = 1_700_000_000_000;
const STEP_MS: u64 = TOTP_PERIOD_SECS * 1000;

async fn store(dir: &Path) -> UserStore {
    let cheap = HashParams {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };
    UserStore::open(&dir.join("sub/users.db"), PasswordHasher::new(cheap))
        .await
        .unwrap()
}

async fn user(s: &UserStore, name: &str) -> i64 {
    s.create_user(NewUser {
        username: name.into(),
        is_active: true,
        ..Default::default()
    })
    .await
    .unwrap()
    .id
}

#[test]
fn rfc6238_sha1_vectors() {
    let vectors: &[(u64, &str)] = &[
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];
    for &(secs, want) in vectors {
        let step = totp_step(secs * 1000);
        assert_eq!(totp_code(RFC_SECRET, step, 8), want, "time {secs}");
        assert_eq!(match_totp(RFC_SECRET, 8, want, secs * 1000), Some(step), "time {secs}");
    }
    // Six digits are the low six of the same value (RFC 4226 appendix D, counter 1).
    assert_eq!(totp_code(RFC_SECRET, 1, 6), "287082");
}

#[test]
fn drift_of_one_step_only() {
    let now = totp_step(NOW_MS);
    for (step, ok) in [
        (now - 2, false),
        (now - 1, true),
        (now, true),
        (now + 1, true),
        (now + 2, false),
    ] {
        let code = totp_code(RFC_SECRET, step, 6);
        assert_eq!(
            match_totp(RFC_SECRET, 6, &code, NOW_MS).is_some(),
            ok,
            "step offset {}",
            step as i64 - now as i64
        );
    }
    assert_eq!(
        match_totp(RFC_SECRET, 6, &totp_code(RFC_SECRET, now - 1, 6), NOW_MS),
        Some(now - 1)
    );
    // Step 0 has no predecessor and must not underflow.
    assert_eq!(match_totp(RFC_SECRET, 6, &totp_code(RFC_SECRET, 0, 6), 0), Some(0));
}

#[test]
fn malformed_codes_never_match() {
    let code = totp_code(RFC_SECRET, totp_step(NOW_MS), 6);
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    assert!(match_totp(RFC_SECRET, 6, &spaced, NOW_MS).is_some());
    for bad in [
        "",
        "12345",
        "1234567",
        "abcdef",
        "١٢٣٤٥٦",
        "+12345",
        "-12345",
        &format!("{code}0"),
    ] {
        assert_eq!(match_totp(RFC_SECRET, 6, bad, NOW_MS), None, "{bad:?}");
    }
    // The right digits with the wrong length setting, and unsupported lengths.
    assert_eq!(match_totp(RFC_SECRET, 8, &code, NOW_MS), None);
    assert_eq!(
        match_totp(RFC_SECRET, 7, &totp_code(RFC_SECRET, totp_step(NOW_MS), 7), NOW_MS),
        None
    );
}

#[test]
fn secrets_and_uri() {
    let a = new_totp_secret();
    assert_eq!(a.len(), 20);
    assert_ne!(a, new_totp_secret());
    assert_eq!(secret_base32(RFC_SECRET), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    assert_eq!(
        otpauth_uri("Flow Gate", "alice@example.test", RFC_SECRET, 6),
        "otpauth://totp/Flow%20Gate:alice%40example.test?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
         &issuer=Flow%20Gate&digits=6&period=30&algorithm=SHA1"
    );
    // Separators inside issuer or account cannot split the label or the query.
    let uri = otpauth_uri("a:b&c=d", "x?y#z/é", RFC_SECRET, 8);
    assert!(
        uri.starts_with("otpauth://totp/a%3Ab%26c%3Dd:x%3Fy%23z%2F%C3%A9?secret="),
        "{uri}"
    );
    assert!(uri.contains("&issuer=a%3Ab%26c%3Dd&digits=8&"), "{uri}");
}

#[test]
fn qr_code_is_svg_with_title() {
    let svg = qr_svg(&otpauth_uri("flowgate", "alice", RFC_SECRET, 6)).unwrap();
    assert!(svg.starts_with("<svg") || svg.starts_with("<?xml"), "{}", &svg[..40]);
    assert!(svg.contains("<title>"));
    assert!(svg.ends_with("</svg>"));
    assert!(!svg.to_ascii_lowercase().contains("<script"));
    assert!(matches!(qr_svg(&"x".repeat(8000)), Err(StoreError::Invalid(_))));
}

#[test]
fn static_code_format() {
    let codes = generate_static_codes(10);
    assert_eq!(codes.len(), 10);
    for c in &codes {
        assert_eq!(c.len(), 14, "{c}");
        let parts: Vec<&str> = c.split('-').collect();
        assert_eq!(parts.len(), 3, "{c}");
        assert!(
            parts
                .iter()
                .all(|p| p.len() == 4 && p.bytes().all(|b| STATIC_ALPHABET.contains(&b))),
            "{c}"
        );
    }
    let mut unique = codes.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 10);
}

#[tokio::test]
async fn totp_devices_reuse_and_later_step() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let alice = user(&s, "alice").await;
    let bob = user(&s, "bob").await;
    let now = totp_step(NOW_MS);

    // Enrolment confirmed with the current code: that code is already spent.
    let dev = s
        .add_totp_device(alice, "phone", RFC_SECRET, 6, NOW_MS, Some(now))
        .await
        .unwrap();
    let code_now = totp_code(RFC_SECRET, now, 6);
    assert_eq!(s.verify_totp(alice, &code_now, NOW_MS).await.unwrap(), None);
    // The earlier step is refused as well.
    assert_eq!(
        s.verify_totp(alice, &totp_code(RFC_SECRET, now - 1, 6), NOW_MS)
            .await
            .unwrap(),
        None
    );

    // The next step's code passes once, then not again.
    let later = NOW_MS + STEP_MS;
    let code_next = totp_code(RFC_SECRET, now + 1, 6);
    assert_eq!(s.verify_totp(alice, &code_next, later).await.unwrap(), Some(dev));
    assert_eq!(s.verify_totp(alice, &code_next, later).await.unwrap(), None);
    assert_eq!(s.verify_totp(alice, &code_next, later + STEP_MS).await.unwrap(), None);
    // A step after it is accepted.
    let code_after = totp_code(RFC_SECRET, now + 2, 6);
    assert_eq!(s.verify_totp(alice, &code_after, later).await.unwrap(), Some(dev));

    // Another user's code does not work for alice, and bob has no devices.
    assert_eq!(s.verify_totp(bob, &code_after, later).await.unwrap(), None);

    let list = s.totp_devices(alice).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].id, list[0].user_id, list[0].name.as_str(), list[0].digits),
        (dev, alice, "phone", 6)
    );
    assert_eq!(list[0].created_ms, NOW_MS as i64);
    assert_eq!(list[0].last_used_ms, Some(later as i64));
    assert!(s.totp_devices(bob).await.unwrap().is_empty());

    // A second device (8 digits) is found among several.
    let other = b"abcdefghijklmnopqrst";
    let dev2 = s.add_totp_device(alice, "key", other, 8, NOW_MS, None).await.unwrap();
    let c8 = totp_code(other, now, 8);
    assert_eq!(s.verify_totp(alice, &c8, NOW_MS).await.unwrap(), Some(dev2));

    // Validation.
    assert!(matches!(
        s.add_totp_device(alice, "phone", RFC_SECRET, 6, NOW_MS, None).await,
        Err(StoreError::Duplicate { .. })
    ));
    assert!(matches!(
        s.add_totp_device(alice, "", RFC_SECRET, 6, NOW_MS, None).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.add_totp_device(alice, "x", b"short", 6, NOW_MS, None).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.add_totp_device(alice, "x", RFC_SECRET, 7, NOW_MS, None).await,
        Err(StoreError::Invalid(_))
    ));

    s.delete_mfa(alice).await.unwrap();
    assert!(s.totp_devices(alice).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_submissions_of_one_code_pass_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let alice = user(&s, "alice").await;
    s.add_totp_device(alice, "phone", RFC_SECRET, 6, NOW_MS, None)
        .await
        .unwrap();
    let code = totp_code(RFC_SECRET, totp_step(NOW_MS), 6);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (s, code) = (s.clone(), code.clone());
            tokio::spawn(async move { s.verify_totp(alice, &code, NOW_MS).await.unwrap() })
        })
        .collect();
    let mut passed = 0;
    for t in tasks {
        passed += usize::from(t.await.unwrap().is_some());
    }
    assert_eq!(passed, 1);
}

#[tokio::test]
async fn static_codes_single_use_and_normalised() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let alice = user(&s, "alice").await;
    let bob = user(&s, "bob").await;
    let codes = generate_static_codes(3);
    s.set_static_codes(alice, &codes, NOW_MS).await.unwrap();
    assert_eq!(s.static_code_count(alice).await.unwrap(), 3);
    assert_eq!(s.static_code_count(bob).await.unwrap(), 0);

    // Never stored in clear.
    let stored: Vec<String> = s
        .db()
        .fetch_all("SELECT code_hash FROM static_codes", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.at(0).unwrap())
        .collect();
    assert_eq!(stored.len(), 3);
    for c in &codes {
        let normalised = c.replace('-', "");
        assert!(stored.contains(&static_hash(&normalised)));
        assert!(!stored.iter().any(|h| h.contains(&normalised)));
    }

    // Not bob's; and case, spaces and dashes do not matter.
    assert!(!s.use_static_code(bob, &codes[0], NOW_MS).await.unwrap());
    let messy = format!("  {} ", codes[0].to_uppercase().replace('-', " - "));
    assert!(s.use_static_code(alice, &messy, NOW_MS).await.unwrap());
    assert!(!s.use_static_code(alice, &codes[0], NOW_MS).await.unwrap());
    assert_eq!(s.static_code_count(alice).await.unwrap(), 2);
    assert!(s
        .use_static_code(alice, &codes[1].replace('-', ""), NOW_MS)
        .await
        .unwrap());
    for bad in ["", "----", "not a code", "xxxx-xxxx-xxxx", &"a".repeat(1000)] {
        assert!(!s.use_static_code(alice, bad, NOW_MS).await.unwrap(), "{bad:?}");
    }
    assert_eq!(s.static_code_count(alice).await.unwrap(), 1);

    // Replacing resets; duplicates and junk are refused without changing anything.
    let fresh = generate_static_codes(5);
    s.set_static_codes(alice, &fresh, NOW_MS).await.unwrap();
    assert_eq!(s.static_code_count(alice).await.unwrap(), 5);
    assert!(!s.use_static_code(alice, &codes[2], NOW_MS).await.unwrap());
    let dup = vec![fresh[0].clone(), fresh[0].to_uppercase()];
    assert!(matches!(
        s.set_static_codes(alice, &dup, NOW_MS).await,
        Err(StoreError::Invalid(_))
    ));
    let junk = vec!["--".to_string()];
    assert!(matches!(
        s.set_static_codes(alice, &junk, NOW_MS).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(s.static_code_count(alice).await.unwrap(), 5);

    s.delete_mfa(alice).await.unwrap();
    assert_eq!(s.static_code_count(alice).await.unwrap(), 0);
}
