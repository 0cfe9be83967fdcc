//! FLOOD-1 and FLOOD-2 of docs/security.md over real sockets: recovery mail is limited per
//! recipient address and per client, the same way for known and unknown addresses (no
//! enumeration), sign-ups per client; anonymous flow starts live in their own bounded space and
//! never log a user out.

use crate::common::*;
use std::time::Duration;

const RECOVERY: &str = "/.flowgate/flow/default-recovery-flow/";
const ENROLL: &str = "/.flowgate/flow/default-enrollment-flow/";
const LOGIN: &str = "/.flowgate/flow/default-authentication-flow/";

/// Starts a recovery for `who` in a fresh browser; returns the status, the page with the
/// identifier and CSRF tokens blanked, and `Retry-After`.
async fn recover(gw: &TestGateway, who: &str) -> (u16, String, Option<String>) {
    let c = client();
    let r = walk(&c, &gw.url(RECOVERY), &[("uid_field", who)]).await;
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let body = r.text().await.unwrap().replace(who, "WHO");
    let body = regex::Regex::new(r#"value="[A-Za-z0-9_-]{43}""#)
        .unwrap()
        .replace_all(&body, "value=\"CSRF\"")
        .into_owned();
    (status, body, retry)
}

#[tokio::test]
async fn recovery_mail_is_limited_per_address_alike_for_known_and_unknown() {
    // FLOOD-1: 3 mails an hour per address; the client limit is off here.
    let extra = "rate_limits: { mail_per_address: 3/1h, mail_per_ip: off }\n";
    let gw = TestGateway::start_with(DEFAULT_APP, extra).await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..6 {
        known.push(recover(&gw, "alice@example.test").await);
        unknown.push(recover(&gw, "nobody@example.test").await);
    }
    let statuses = |v: &[(u16, String, Option<String>)]| v.iter().map(|x| x.0).collect::<Vec<_>>();
    assert_eq!(statuses(&known), [200, 200, 200, 429, 429, 429]);
    assert_eq!(statuses(&known), statuses(&unknown));
    for (k, u) in known.iter().zip(&unknown) {
        assert_eq!(k.1, u.1, "known and unknown addresses get the same page");
        assert_eq!(k.2, u.2, "and the same Retry-After");
    }
    assert_eq!(known[3].2.as_deref(), Some("1200"), "one mail refills every 20 minutes");
    assert_eq!(mailed_links(&gw, "alice@example.test").len(), 3, "three mails went out");
    // A username reaching the same mailbox is limited by the address too.
    assert_eq!(recover(&gw, "alice").await.0, 429);
    assert_eq!(mailed_links(&gw, "alice@example.test").len(), 3);
    // Other addresses are not affected; the limit refills with time.
    assert_eq!(recover(&gw, "bob@example.test").await.0, 200);
    assert_eq!(mailed_links(&gw, "bob@example.test").len(), 1);
    gw.clock.advance(Duration::from_secs(20 * 60));
    assert_eq!(recover(&gw, "alice@example.test").await.0, 200);
    assert_eq!(mailed_links(&gw, "alice@example.test").len(), 4);
    gw.stop().await;
}

#[tokio::test]
async fn recovery_mail_is_limited_per_client_and_by_default() {
    // FLOOD-1: the client limit counts mails to any address, known or not.
    let extra = "rate_limits: { mail_per_address: off, mail_per_ip: 4/1h }\n";
    let gw = TestGateway::start_with(DEFAULT_APP, extra).await;
    let who = ["a@example.test", "alice@example.test", "b@example.test", "bob"];
    for w in who {
        assert_eq!(recover(&gw, w).await.0, 200, "{w}");
    }
    for w in ["c@example.test", "bob@example.test", "alice"] {
        assert_eq!(recover(&gw, w).await.0, 429, "{w}");
    }
    assert_eq!(all_mail(&gw).len(), 2, "only the two real accounts got mail");
    gw.stop().await;

    // The tester's flood (50 mails to one address) with the default limits: 5 get through.
    let gw = TestGateway::start().await;
    let mut limited = 0;
    for _ in 0..50 {
        if recover(&gw, "alice@example.test").await.0 == 429 {
            limited += 1;
        }
    }
    assert_eq!(limited, 45);
    assert_eq!(mailed_links(&gw, "alice@example.test").len(), 5);
    gw.stop().await;
}

async fn sign_up(gw: &TestGateway, name: &str) -> u16 {
    let c = client();
    let pw = "violet tangerine expedition 77";
    let r = walk(
        &c,
        &gw.url(ENROLL),
        &[
            ("username", name),
            ("name", name),
            ("email", &format!("{name}@example.test")),
            ("password", pw),
            ("password_repeat", pw),
        ],
    )
    .await;
    r.status().as_u16()
}

#[tokio::test]
async fn sign_ups_are_limited_per_client() {
    // FLOOD-1: 3 sign-ups an hour per client address.
    let gw = TestGateway::start_with(DEFAULT_APP, "rate_limits: { signup_per_ip: 3/1h }\n").await;
    for i in 0..3 {
        assert_eq!(sign_up(&gw, &format!("user{i}")).await, 302, "sign-up {i}");
    }
    let before = users(&gw).list_users().await.unwrap().len();
    for i in 3..6 {
        assert_eq!(sign_up(&gw, &format!("user{i}")).await, 429, "sign-up {i}");
    }
    assert_eq!(
        users(&gw).list_users().await.unwrap().len(),
        before,
        "no user was created"
    );
    assert!(users(&gw).get_by_username("user3").await.unwrap().is_none());
    gw.clock.advance(Duration::from_secs(20 * 60));
    assert_eq!(sign_up(&gw, "user9").await, 302, "the limit refills");
    gw.stop().await;
}

#[tokio::test]
async fn anonymous_flow_starts_never_log_users_out() {
    // FLOOD-2: the tester's flood (600 flow starts against max_sessions: 300) with the pending
    // space bounded to 200: every logged-in session survives, the pending space stays bounded.
    let extra =
        format!("{NO_LIMITS}session: {{ ttl: 2h, idle_timeout: 30m, max_sessions: 300, max_pending_flows: 200 }}\n");
    let gw = TestGateway::start_with(DEFAULT_APP, &extra).await;
    let sessions = gw.running.as_ref().unwrap().sessions.clone();
    let mut logins = Vec::new();
    for user in ["alice", "bob", "alice"] {
        let pw = if user == "bob" { BOB_PASSWORD } else { ALICE_PASSWORD };
        logins.push(session_of(&gw, user, pw).await);
    }
    let mut flows = Vec::new();
    for i in 0..600 {
        let r = bare_client().get(gw.url(LOGIN)).send().await.unwrap();
        flows.push(set_cookie_value(&r, "flowgate_session").unwrap());
        if i % 100 == 99 {
            assert!(
                sessions.pending_len() <= 200,
                "{} pending after {}",
                sessions.pending_len(),
                i + 1
            );
        }
    }
    for id in &logins {
        assert!(
            logged_in(&gw, id).await,
            "a logged-in session was evicted by flow starts"
        );
    }
    assert_eq!(sessions.len(), 3);
    assert!(sessions.pending_len() <= 200);
    let oldest_alive = flows[..200].iter().filter(|id| sessions.get(id).is_some()).count();
    assert_eq!(oldest_alive, 0, "the oldest unfinished flows made room");
    // A login started during the flood still finishes (its flow is among the newest).
    let late = session_of(&gw, "bob", BOB_PASSWORD).await;
    assert!(logged_in(&gw, &late).await);
    gw.stop().await;
}
