//! Directory users on the paths that never send their password to the directory: an app
//! password (API client) and a passkey login. Each asks the directory first whether the entry
//! still stands (same DN, still matched by the user filter, not disabled); a user disabled,
//! moved or deleted there is refused at the next uncached check or login, and a directory that
//! is down refuses too (never lets through). The upstream never sees a refused request.

use crate::common::ldap::*;
use crate::common::*;
use crate::ldap::{login, start};
use crate::passkeys::{register, webauthn_challenge, Api, SoftKey, PASSWORDLESS};
use serde_json::{json, Value};

const APPS: &str = "  - name: app\n    upstream: \"http://UPSTREAM\"\n    basic_auth: true\n";

fn disable(name: &str) -> String {
    format!("dn: uid={name},ou=people,{BASE_DN}\nchangetype: modify\nadd: employeeType\nemployeeType: disabled\n")
}

fn enable(name: &str) -> String {
    format!("dn: uid={name},ou=people,{BASE_DN}\nchangetype: modify\ndelete: employeeType\n")
}

async fn bearer(gw: &TestGateway, token: &str) -> reqwest::Response {
    bare_client()
        .get(gw.url("/dav/file.txt"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
}

async fn new_token(gw: &TestGateway, user: &str) -> String {
    users(gw).create_app_password(user, "app", None, 0).await.unwrap().1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_passwords_of_directory_users_need_the_directory() {
    let mut dir = Slapd::start();
    let gw = start(&dir, false, "", APPS).await;
    // The mirrors exist after a password login each.
    login(&gw, "dave", DAVE_PW).await.expect("dave logs in");
    login(&gw, "frank", "frank pw").await.expect("frank logs in");
    let cached = new_token(&gw, "dave").await;
    let r = bearer(&gw, &cached).await;
    assert_eq!(r.status(), 200);
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("dave"));

    // Disabled in the directory (filtered out by `user_object_filter`): a token never checked
    // before is refused, and so is the remembered one (the refusal ended dave's sessions and
    // dropped his cached identity, so its remembered check no longer counts).
    dir.modify(&disable("dave"));
    let before = gw.upstream.count();
    let fresh = new_token(&gw, "dave").await;
    assert_eq!(bearer(&gw, &fresh).await.status(), 401);
    assert_eq!(bearer(&gw, &cached).await.status(), 401);
    assert_eq!(gw.upstream.count(), before, "the upstream received a refused request");
    // The mirror itself stays active: enabled again in the directory, the tokens work again.
    assert!(users(&gw).get_by_username("dave").await.unwrap().unwrap().is_active);
    dir.modify(&enable("dave"));
    assert_eq!(bearer(&gw, &fresh).await.status(), 200);
    assert_eq!(gw.upstream.last().header("x-forwarded-user"), Some("dave"));

    // Moved to another DN (still under the user base, same uid): not the mirrored entry.
    let frank = new_token(&gw, "frank").await;
    dir.modify(&format!(
        "dn: ou=moved,ou=people,{BASE_DN}\nchangetype: add\nobjectClass: organizationalUnit\nou: moved\n\n\
dn: uid=frank,ou=people,{BASE_DN}\nchangetype: moddn\nnewrdn: uid=frank\ndeleteoldrdn: 1\nnewsuperior: ou=moved,ou=people,{BASE_DN}\n"
    ));
    let before = gw.upstream.count();
    assert_eq!(bearer(&gw, &frank).await.status(), 401);
    // Deleted from the directory.
    dir.modify(&format!(
        "dn: uid=frank,ou=moved,ou=people,{BASE_DN}\nchangetype: delete\n"
    ));
    assert_eq!(bearer(&gw, &new_token(&gw, "frank").await).await.status(), 401);
    assert_eq!(gw.upstream.count(), before);

    // The directory is down: an uncached check fails closed (503), the upstream sees nothing.
    dir.stop();
    let down = new_token(&gw, "dave").await;
    assert_eq!(bearer(&gw, &down).await.status(), 503);
    assert_eq!(gw.upstream.count(), before);
    dir.start_again();
    assert_eq!(bearer(&gw, &down).await.status(), 200);
    gw.stop().await;
}

/// A passwordless login with `key` on `api`'s client; the flow's last answer.
async fn passkey_login(api: &Api, key: &mut SoftKey) -> Value {
    let c = api.get(PASSWORDLESS).await;
    assert_eq!(c["component"], "ak-stage-authenticator-validate", "{c}");
    let options = webauthn_challenge(&c);
    let a = key.sign(options["challenge"].as_str().unwrap(), &api.origin, "localhost");
    api.post(PASSWORDLESS, json!({"webauthn": a})).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_logins_of_directory_users_need_the_directory() {
    let mut dir = Slapd::start();
    let gw = start(&dir, false, "", DEFAULT_APP).await;
    let mut key = SoftKey::new();
    // dave logs in with his directory password and registers a passkey.
    let api = Api::new(&gw);
    let done = api.password_login("dave", DAVE_PW).await;
    assert_eq!(done["component"], "xak-flow-redirect", "{done}");
    let done = register(&api, &mut key).await;
    assert_eq!(done["component"], "xak-flow-redirect", "{done}");

    // The passkey logs him in while the directory has him.
    let by_passkey = Api::new(&gw);
    let done = passkey_login(&by_passkey, &mut key).await;
    assert_eq!(done["component"], "xak-flow-redirect", "{done}");
    assert_eq!(by_passkey.who(&gw).await.as_deref(), Some("dave"));

    // Disabled in the directory: the passkey no longer logs him in, and the attempt ended
    // the sessions he had (the directory said he is gone).
    dir.modify(&disable("dave"));
    let before = gw.upstream.count();
    let api = Api::new(&gw);
    let c = passkey_login(&api, &mut key).await;
    assert_eq!(c["component"], "ak-stage-access-denied", "{c}");
    assert_eq!(api.who(&gw).await, None);
    assert_eq!(
        by_passkey.who(&gw).await,
        None,
        "the earlier passkey session still works"
    );
    assert_eq!(gw.upstream.count(), before, "the upstream received a refused request");

    // Enabled again, then the directory goes down: the passkey login fails with the
    // directory's message, never logs in.
    dir.modify(&enable("dave"));
    let api = Api::new(&gw);
    assert_eq!(passkey_login(&api, &mut key).await["component"], "xak-flow-redirect");
    dir.stop();
    let api = Api::new(&gw);
    let c = passkey_login(&api, &mut key).await;
    assert_eq!(c["component"], "ak-stage-access-denied", "{c}");
    assert!(c.to_string().contains("directory cannot be reached"), "{c}");
    let before = gw.upstream.count();
    assert_eq!(api.who(&gw).await, None);
    assert_eq!(gw.upstream.count(), before);
    gw.stop().await;
}
