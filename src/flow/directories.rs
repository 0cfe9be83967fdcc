//! The directory sources the password checks use (`sources:` of `type: ldap`), built once per
//! config, and a directory login: the bind ([`crate::outbound::ldap`]) and, when it succeeds,
//! the user and groups mirrored into the user store ([`crate::identity::directory_users`]).

use crate::config::ldap_model::LdapSourceDef;
use crate::identity::directory_users::DirectoryEntry;
use crate::identity::{User, UserStore};
use crate::outbound::ldap::{Authenticated, Directory, DirectoryError};
use crate::session::SessionStore;
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
    match users.mirror_directory_user(&entry).await {
        Ok(Some(u)) => {
            sessions.user_changed(u.id).await;
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
