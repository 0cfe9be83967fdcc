//! Directory logins against a real OpenLDAP (`common::ldap`): over LDAPS and over StartTLS,
//! the user and groups mirrored so that the app receives them in the identity headers; a wrong
//! password, an account disabled in the directory or in flowgate, filter injection and an
//! empty password are refused; a directory that stops mid-test fails its logins with a clear
//! message (local users still log in), and comes back. API clients of an app with
//! `basic_auth_user_passwords` have a directory user's password checked by the directory.

use crate::common::ldap::*;
use crate::common::*;

/// The shipped authentication flow with the password stage's `backends` set.
fn flow_with_backends(backends: &str) -> String {
    let shipped = flowgate::demo::SHIPPED_FLOWS
        .iter()
        .find(|(n, _)| *n == "default-authentication.yaml")
        .map(|(_, t)| t.to_string())
        .unwrap();
    let from = "    failed_attempts_before_cancel: 5\n";
    assert!(shipped.contains(from));
    shipped.replace(from, &format!("{from}    backends: {backends}\n"))
}

pub(crate) async fn start(dir: &Slapd, starttls: bool, source_extra: &str, apps: &str) -> TestGateway {
    let extra = format!(
        "{NO_LIMITS}sources:\n{}",
        dir.source_yaml("corp", starttls, source_extra)
    );
    let flow = flow_with_backends("[local, corp]");
    TestGateway::start_full(
        apps,
        &extra,
        Upstream::spawn().await,
        &[("default-authentication.yaml", &flow)],
    )
    .await
}

/// Logs in through the HTML forms; `Ok(cookie)` or `Err(final page)`.
pub(crate) async fn login(gw: &TestGateway, user: &str, password: &str) -> Result<String, String> {
    let r = html_login(&client(), &gw.url(""), "/", user, password).await;
    if r.status() == 302 {
        if let Some(c) = set_cookie_value(&r, "flowgate_session") {
            return Ok(c);
        }
    }
    Err(r.text().await.unwrap_or_default())
}

fn groups_of(seen: &Recorded) -> Vec<String> {
    let mut g: Vec<String> = seen
        .header("x-forwarded-groups")
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    g.sort();
    g
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_logins_over_ldaps() {
    let mut dir = Slapd::start();
    let gw = start(&dir, false, "", DEFAULT_APP).await;

    // dave exists only in the directory: his login creates the mirror with his groups.
    let cookie = login(&gw, "dave", DAVE_PW).await.expect("dave logs in");
    let r = with_cookie(&gw, reqwest::Method::GET, "/reports", &cookie, None).await;
    assert_eq!(r.status(), 200);
    let seen = gw.upstream.last();
    assert_eq!(seen.header("x-forwarded-user"), Some("dave"));
    assert_eq!(seen.header("x-forwarded-email"), Some("dave@example.test"));
    assert_eq!(seen.header("x-forwarded-name"), Some("Dave Directory"));
    assert_eq!(groups_of(&seen), ["engineers", "ops"]);
    let mirrored = users(&gw).get_by_username("dave").await.unwrap().unwrap();
    assert_eq!(mirrored.attributes["ldap_source"], "corp");
    assert!(
        mirrored.password_hash.is_none(),
        "no password is stored for a directory user"
    );

    // A local user still logs in (local comes first), and a directory password never opens a
    // local account of the same name.
    assert!(login(&gw, "alice", ALICE_PASSWORD).await.is_ok());

    // Wrong password, no groups, disabled in the directory, injection, empty password.
    let page = login(&gw, "dave", "not dave's").await.unwrap_err();
    assert!(page.contains("Invalid password"), "{page}");
    assert!(
        login(&gw, "frank", "frank pw").await.is_ok(),
        "a user without groups logs in"
    );
    assert!(login(&gw, "erin", ERIN_PW).await.is_err(), "disabled in the directory");
    assert!(users(&gw).get_by_username("erin").await.unwrap().is_none());
    for name in ["*)(uid=*", "*", "dave)(|(uid=*", "dave*", "*)(objectClass=*"] {
        assert!(login(&gw, name, DAVE_PW).await.is_err(), "{name:?} must match nobody");
    }
    assert!(
        login(&gw, "dave", "").await.is_err(),
        "an empty password is never a bind"
    );

    // Disabled in flowgate: the directory's yes is not enough.
    users(&gw)
        .update_user(
            mirrored.id,
            flowgate::identity::UserUpdate {
                is_active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(login(&gw, "dave", DAVE_PW).await.is_err());
    users(&gw)
        .update_user(
            mirrored.id,
            flowgate::identity::UserUpdate {
                is_active: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    // The directory stops: a clear error, never a login; local users are unaffected.
    dir.stop();
    let page = login(&gw, "dave", DAVE_PW).await.unwrap_err();
    assert!(page.contains("directory cannot be reached"), "{page}");
    // A local user's name with a wrong password answers as an unknown name does.
    let local = login(&gw, "alice", "not-her-password").await.unwrap_err();
    let unknown = login(&gw, "nobody-at-all", "not-a-password").await.unwrap_err();
    assert!(local.contains("directory cannot be reached"), "{local}");
    assert!(unknown.contains("directory cannot be reached"), "{unknown}");
    assert!(login(&gw, "alice", ALICE_PASSWORD).await.is_ok());
    dir.start_again();
    let cookie = login(&gw, "dave", DAVE_PW).await.expect("back with the directory");
    assert_eq!(
        with_cookie(&gw, reqwest::Method::GET, "/x", &cookie, None)
            .await
            .status(),
        200
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_logins_over_starttls_with_member_of() {
    let dir = Slapd::start();
    let gw = start(&dir, true, "    lookup_groups_from_user: true\n", DEFAULT_APP).await;
    // A group outside the group base (anyone allowed to make entries somewhere in the tree
    // can make one) is not one of the user's groups.
    dir.modify(&format!(
        "dn: cn=admins,ou=services,{BASE_DN}\nchangetype: add\nobjectClass: groupOfNames\ncn: admins\nmember: uid=dave,ou=people,{BASE_DN}\n"
    ));
    let cookie = login(&gw, "dave", DAVE_PW).await.expect("dave logs in over StartTLS");
    let r = with_cookie(&gw, reqwest::Method::GET, "/", &cookie, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(groups_of(&gw.upstream.last()), ["engineers", "ops"]);
    assert!(login(&gw, "dave", "wrong").await.is_err());
    // The directory changes: the next login mirrors the new groups and email.
    dir.modify(&format!(
        "dn: cn=ops,ou=groups,{BASE_DN}\nchangetype: modify\ndelete: member\nmember: uid=dave,ou=people,{BASE_DN}\n\n\
dn: uid=dave,ou=people,{BASE_DN}\nchangetype: modify\nreplace: mail\nmail: dave@new.example.test\n"
    ));
    let cookie = login(&gw, "dave", DAVE_PW).await.expect("dave logs in again");
    let r = with_cookie(&gw, reqwest::Method::GET, "/", &cookie, None).await;
    assert_eq!(r.status(), 200);
    let seen = gw.upstream.last();
    assert_eq!(groups_of(&seen), ["engineers"]);
    assert_eq!(seen.header("x-forwarded-email"), Some("dave@new.example.test"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_with_an_untrusted_certificate_is_unavailable() {
    let dir = Slapd::start();
    // Another CA than the server's: the TLS handshake fails, and so does the login.
    let other = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(other.path().join("ca.pem"), p.self_signed(&key).unwrap().pem()).unwrap();
    std::fs::copy(other.path().join("ca.pem"), dir.ca_file()).unwrap();
    let gw = start(&dir, false, "", DEFAULT_APP).await;
    let page = login(&gw, "dave", DAVE_PW).await.unwrap_err();
    assert!(page.contains("directory cannot be reached"), "{page}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_clients_with_directory_passwords() {
    let mut dir = Slapd::start();
    let apps =
        "  - name: app\n    upstream: \"http://UPSTREAM\"\n    basic_auth: true\n    basic_auth_user_passwords: true\n";
    let gw = start(&dir, false, "", apps).await;
    // The mirror exists after a first login.
    login(&gw, "dave", DAVE_PW).await.unwrap();
    let basic = |u: &str, p: &str| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    };
    let get = |auth: String| {
        let url = gw.url("/dav/");
        async move {
            bare_client()
                .get(url)
                .header("authorization", auth)
                .send()
                .await
                .unwrap()
        }
    };
    let r = get(basic("dave", DAVE_PW)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("dave"));
    assert_eq!(groups_of(&gw.upstream.last()), ["engineers", "ops"]);
    assert_eq!(get(basic("dave", "wrong")).await.status(), 401);
    assert_eq!(get(basic("dave", "")).await.status(), 401);
    // The directory is asked (not a local hash): with it down, a fresh check fails closed.
    dir.stop();
    assert_eq!(get(basic("dave", "another guess")).await.status(), 503);
    gw.stop().await;
}

#[test]
fn plain_ldap_to_a_remote_host_is_a_config_error() {
    let text = "listen: { http: \"127.0.0.1:0\" }\nsources:\n  corp:\n    type: ldap\n    server_uri: \"ldap://ldap.example.test\"\n    bind_cn: cn=x\n    bind_password: pw\n    base_dn: dc=example\n    user_object_filter: objectClass=person\napps:\n  - name: app\n    upstream: \"http://127.0.0.1:9\"\n";
    let err = flowgate::Config::from_yaml_str(text, "t.yaml").unwrap_err().to_string();
    assert!(
        err.contains("sources.corp.server_uri") && err.contains("in the clear"),
        "{err}"
    );
    assert!(err.contains("sources.corp.user_object_filter"), "{err}");
}

/// A directory user's password is the directory's alone: a local password written for the
/// mirror (by a recovery or password-change flow) never logs in, so an account the
/// directory disabled, or whose directory password changed, stays out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_password_never_opens_a_directory_user() {
    let dir = Slapd::start();
    let gw = start(&dir, false, "", DEFAULT_APP).await;
    login(&gw, "dave", DAVE_PW).await.expect("dave logs in");
    let mirrored = users(&gw).get_by_username("dave").await.unwrap().unwrap();
    const LOCAL: &str = "a local password for the mirror 42";
    users(&gw)
        .update_user(
            mirrored.id,
            flowgate::identity::UserUpdate {
                password: Some(LOCAL.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let before = gw.upstream.count();
    assert!(
        login(&gw, "dave", LOCAL).await.is_err(),
        "the local password opened a directory user"
    );
    assert_eq!(gw.upstream.count(), before);
    assert!(
        login(&gw, "dave", DAVE_PW).await.is_ok(),
        "the directory's password still does"
    );
    gw.stop().await;
}

/// Two API clients of one directory user (the same password at two apps) keep their
/// remembered checks: a directory login that changed nothing does not announce the user as
/// changed, so neither client is sent to the directory (and the login limits) on every request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_directory_password_clients_keep_their_remembered_checks() {
    let dir = Slapd::start();
    let apps = "  - name: app\n    upstream: \"http://UPSTREAM\"\n    basic_auth: true\n    basic_auth_user_passwords: true\n\
\x20 - name: other\n    hosts: [other.test]\n    upstream: \"http://UPSTREAM\"\n    basic_auth: true\n    basic_auth_user_passwords: true\n";
    let extra = format!(
        "rate_limits: {{ password_per_ip: off, password_per_username: 4/1m }}\nsources:\n{}",
        dir.source_yaml("corp", false, "")
    );
    let flow = flow_with_backends("[local, corp]");
    let gw = TestGateway::start_full(
        apps,
        &extra,
        Upstream::spawn().await,
        &[("default-authentication.yaml", &flow)],
    )
    .await;
    login(&gw, "dave", DAVE_PW).await.unwrap();
    let auth = {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("dave:{DAVE_PW}"))
        )
    };
    for i in 0..6 {
        for host in [None, Some("other.test")] {
            let mut rb = bare_client().get(gw.url("/dav/")).header("authorization", &auth);
            if let Some(h) = host {
                rb = rb.header("host", h);
            }
            let r = rb.send().await.unwrap();
            assert_eq!(r.status(), 200, "request {i} at {host:?}");
        }
    }
    gw.stop().await;
}
