//! Users mirrored from a directory (`sources:` of `type: ldap`) at login: created on their first
//! login, their email, name and groups replaced by the directory's at every login, so sessions,
//! policies and identity headers work as for local users. A mirrored user carries the
//! attributes `ldap_source` (the source's key) and `ldap_dn`, and no password hash: its password
//! is always checked by the directory. A local user of the same name is never taken over.

use super::store::{StoreError, UserStore};
use super::user::{NewUser, User, UserUpdate};
use serde_json::{Map, Value};

/// Attribute naming the directory source a user was mirrored from.
pub const SOURCE_ATTRIBUTE: &str = "ldap_source";
/// Attribute holding the user's DN in that directory.
pub const DN_ATTRIBUTE: &str = "ldap_dn";

/// A user as a directory returned it.
#[derive(Debug, Clone)]
pub struct DirectoryEntry<'a> {
    /// The source's key.
    pub source: &'a str,
    /// The entry's DN.
    pub dn: &'a str,
    /// Login name.
    pub username: &'a str,
    /// Email (may be empty).
    pub email: &'a str,
    /// Display name.
    pub name: &'a str,
    /// Group names.
    pub groups: &'a [String],
}

/// The directory source `u` was mirrored from, if any.
pub fn directory_of(u: &User) -> Option<&str> {
    u.attributes.get(SOURCE_ATTRIBUTE).and_then(Value::as_str)
}

impl UserStore {
    /// Creates or refreshes the mirror of `e`; `None` when a user of that name exists that does
    /// not come from this source (never taken over).
    pub async fn mirror_directory_user(&self, e: &DirectoryEntry<'_>) -> Result<Option<User>, StoreError> {
        let mut attrs = Map::new();
        attrs.insert(SOURCE_ATTRIBUTE.into(), Value::String(e.source.into()));
        attrs.insert(DN_ATTRIBUTE.into(), Value::String(e.dn.into()));
        let id = match self.get_by_username(e.username).await? {
            Some(u) if directory_of(&u) == Some(e.source) => {
                let up = |email: Option<String>| UserUpdate {
                    email,
                    email_verified: Some(true),
                    name: Some(e.name.to_string()),
                    attributes: attrs.clone(),
                    ..Default::default()
                };
                match self.update_user(u.id, up(Some(e.email.to_string()))).await {
                    Err(StoreError::Duplicate { what: "email", .. }) => {
                        tracing::warn!(user = %u.username, "directory email belongs to another user; kept the old one");
                        self.update_user(u.id, up(None)).await?;
                    }
                    r => {
                        r?;
                    }
                }
                u.id
            }
            Some(u) => {
                tracing::warn!(user = %u.username, source = %e.source, "a local user has this directory login name; not taken over");
                return Ok(None);
            }
            None => {
                let new = |email: &str| NewUser {
                    username: e.username.to_string(),
                    email: email.to_string(),
                    email_verified: !email.is_empty(),
                    name: e.name.to_string(),
                    password: None,
                    groups: e.groups.to_vec(),
                    attributes: attrs.clone(),
                    is_active: true,
                    is_superuser: false,
                };
                match self.create_user(new(e.email)).await {
                    Ok(u) => u.id,
                    Err(StoreError::Duplicate { what: "email", .. }) => {
                        tracing::warn!(user = %e.username, "directory email belongs to another user; mirrored without it");
                        self.create_user(new("")).await?.id
                    }
                    Err(err) => return Err(err),
                }
            }
        };
        let mut tx = self.db().begin().await?;
        Self::set_groups(&mut tx.conn(), id, e.groups).await?;
        tx.commit().await?;
        self.get_by_id(id).await
    }
}
