//! The directory sources the password checks use (`sources:` of `type: ldap`), built once per
//! config, and a directory login: the bind ([`crate::outbound::ldap`]) and, when it succeeds,
//! the user and groups mirrored into the user store ([`crate::identity::directory_users`]).
//! Logins that do not send the password to the directory (passkeys, mailed links, sources,
//! app passwords) ask it first whether a mirrored user still stands ([`confirm`]).

use crate::config::ldap_model::LdapSourceDef;
use crate::identity::directory_users::{directory_of, DirectoryEntry, DN_ATTRIBUTE};
use crate::identity::{User, UserStore};
use crate::outbound::ldap::{Authenticated, Directory, DirectoryError};
use crate::session::SessionStore;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The configured directories, by source key.
#[derive(Debug, Default)]
pub struct Directories(BTreeMap<String, Directory>);

/// The outcome of a directory login.
pub(crate) enum DirectoryLogin {
    /// The password is right: the mirrored user, active.
    Ok(User),
    /// Wrong password, unknown or disabled user (in the directory or in flowgate), a name
    /// that belongs to a local user, or the source is disabled.
    Failed,
    /// The directory cannot be used: the login fails with a clear message.
    Down(DirectoryError),
    /// The user store failed while mirroring.
    StoreFailed,
}

impl Directories {
    /// The directories of `sources`.
    pub fn from_config(sources: &BTreeMap<String, Arc<LdapSourceDef>>) -> Result<Self, String> {
        let mut m = BTreeMap::new();
        for (k, d) in sources {
            m.insert(
                k.clone(),
                Directory::new(d.clone()).map_err(|e| format!("sources.{k}: {e}"))?,
            );
        }
        Ok(Self(m))
    }

    /// The directory with key `slug`.
    pub fn get(&self, slug: &str) -> Option<&Directory> {
        self.0.get(slug)
    }
}

/// Checks `password` for `username` in `dir`, mirroring the user on success (see the module doc).
pub(crate) async fn login(
    dir: &Directory,
    users: &UserStore,
    sessions: &SessionStore,
    username: &str,
    password: &str,
) -> DirectoryLogin {
    let def = dir.def();
    if !def.enabled {
        return DirectoryLogin::Failed;
    }
    let du = match dir.authenticate(username, password).await {
        Ok(Authenticated::Yes(du)) => du,
        Ok(other) => {
            tracing::debug!(source = %def.slug, outcome = ?std::mem::discriminant(&other), "directory login refused");
            return DirectoryLogin::Failed;
        }
        Err(e) => {
            tracing::error!(error = %e, "directory unavailable");
            return DirectoryLogin::Down(e);
        }
    };
    let entry = DirectoryEntry {
        source: &def.slug,
        dn: &du.dn,
        username: &du.username,
        email: &du.email,
        name: &du.name,
        groups: &du.groups,
    };
    // The mirror as it was, to announce the user as changed only when the directory changed
    // it (an announcement makes every replica re-read the user and re-check API clients'
    // remembered credentials).
    let before = users.get_by_username(&du.username).await.ok().flatten();
    match users.mirror_directory_user(&entry).await {
        Ok(Some(u)) => {
            if before.as_ref() != Some(&u) {
                sessions.user_changed(u.id).await;
            }
            if u.is_active {
                DirectoryLogin::Ok(u)
            } else {
                tracing::info!(user = %u.username, "directory user is disabled in flowgate");
                DirectoryLogin::Failed
            }
        }
        Ok(None) => DirectoryLogin::Failed,
        Err(e) => {
            tracing::error!(error = %e, source = %def.slug, "mirroring a directory user failed");
            DirectoryLogin::StoreFailed
        }
    }
}

/// A mirrored user's standing in its directory, for a login that did not check its password
/// there (docs/decisions/0021).
#[derive(Debug)]
pub(crate) enum Standing {
    /// Not a directory user, or the directory confirmed the entry.
    Active,
    /// The user's source is disabled or no longer configured, or the mirror has no DN.
    Refused,
    /// The directory no longer has the entry (gone, moved, filtered out or disabled).
    Gone,
    /// The directory cannot be asked: the login fails (never succeeds) with a clear message.
    Down(DirectoryError),
}

/// What `dirs` say about `u`, without side effects.
pub(crate) async fn standing(dirs: &Directories, u: &User) -> Standing {
    let Some(slug) = directory_of(u) else {
        return Standing::Active;
    };
    let dn = u.attributes.get(DN_ATTRIBUTE).and_then(Value::as_str).unwrap_or("");
    let Some(dir) = dirs.get(slug).filter(|d| d.def().enabled) else {
        return Standing::Refused;
    };
    if dn.trim().is_empty() {
        return Standing::Refused;
    }
    match dir.still_active(&u.username, dn).await {
        Ok(true) => Standing::Active,
        Ok(false) => Standing::Gone,
        Err(e) => Standing::Down(e),
    }
}

/// [`standing`], and when the directory says the user is gone, their sessions end on every
/// replica (which also drops their cached identity and so every remembered API-client check).
/// The mirror itself is left active: the directory, not flowgate, decides, and a user enabled
/// there again logs in again.
pub(crate) async fn confirm(dirs: &Directories, sessions: &SessionStore, u: &User) -> Standing {
    let s = standing(dirs, u).await;
    match &s {
        Standing::Active => {}
        Standing::Refused => {
            tracing::info!(user = %u.username, "directory user's source is disabled or gone; refused");
        }
        Standing::Gone => {
            let n = sessions.end_user_sessions(u.id, None).await;
            tracing::warn!(user = %u.username, ended = n, "directory user no longer active in the directory; refused, sessions ended");
        }
        Standing::Down(e) => tracing::error!(error = %e, user = %u.username, "directory unavailable"),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::{standing, Directories, Standing};
    use crate::identity::User;
    use serde_json::{json, Map};

    fn user(attrs: serde_json::Value) -> User {
        let attributes: Map<_, _> = attrs.as_object().cloned().unwrap_or_default();
        User {
            id: 1,
            uid: "0".repeat(32),
            username: "dave".into(),
            email: String::new(),
            name: String::new(),
            email_verified: false,
            is_active: true,
            is_superuser: false,
            groups: vec![],
            attributes,
            password_hash: None,
            password_changed_at: None,
        }
    }

    #[tokio::test]
    async fn local_users_pass_and_unknown_sources_refuse() {
        let none = Directories::default();
        assert!(matches!(standing(&none, &user(json!({}))).await, Standing::Active));
        // A source removed from the config (or never there) never lets its users in.
        let mirrored = user(json!({"ldap_source": "corp", "ldap_dn": "uid=dave,dc=x"}));
        assert!(matches!(standing(&none, &mirrored).await, Standing::Refused));
        let no_dn = user(json!({"ldap_source": "corp"}));
        assert!(matches!(standing(&none, &no_dn).await, Standing::Refused));
    }

    fn source(enabled: bool, port: u16) -> Directories {
        use crate::config::ldap_model::{LdapSourceDef, LdapTls};
        let def = LdapSourceDef {
            slug: "corp".into(),
            name: "corp".into(),
            enabled,
            server_uri: format!("ldap://127.0.0.1:{port}"),
            tls: LdapTls::PlainLoopback,
            ca_pem: None,
            bind_cn: "cn=svc".into(),
            bind_password: "pw".into(),
            user_base: "dc=x".into(),
            group_base: "dc=x".into(),
            user_object_filter: "(objectClass=person)".into(),
            group_object_filter: "(objectClass=groupOfNames)".into(),
            group_membership_field: "member".into(),
            lookup_groups_from_user: false,
            username_attribute: "uid".into(),
            email_attribute: "mail".into(),
            name_attribute: "cn".into(),
            group_name_attribute: "cn".into(),
            timeout: std::time::Duration::from_secs(2),
        };
        let m = [("corp".to_string(), std::sync::Arc::new(def))].into_iter().collect();
        Directories::from_config(&m).unwrap()
    }

    #[tokio::test]
    async fn disabled_sources_refuse_and_unreachable_ones_fail_closed() {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mirrored = user(json!({"ldap_source": "corp", "ldap_dn": "uid=dave,dc=x"}));
        assert!(matches!(
            standing(&source(false, port), &mirrored).await,
            Standing::Refused
        ));
        assert!(matches!(
            standing(&source(true, port), &mirrored).await,
            Standing::Down(_)
        ));
        // Never asked about a user without a DN.
        let no_dn = user(json!({"ldap_source": "corp"}));
        assert!(matches!(standing(&source(true, port), &no_dn).await, Standing::Refused));
    }
}
