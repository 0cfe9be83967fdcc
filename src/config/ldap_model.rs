//! The validated directory sources (`sources:` entries of `type: ldap`) and the password
//! stage's `backends`. What `outbound::ldap` connects with and `flow::directories` mirrors.

use super::values::secret::Secret;
use std::time::Duration;

/// Default `user_object_filter`.
pub const DEFAULT_USER_OBJECT_FILTER: &str = "(objectClass=person)";
/// Default `group_object_filter`.
pub const DEFAULT_GROUP_OBJECT_FILTER: &str = "(objectClass=groupOfNames)";
/// Default `group_membership_field`.
pub const DEFAULT_GROUP_MEMBERSHIP_FIELD: &str = "member";
/// Default `username_attribute` (OpenLDAP; Active Directory uses `sAMAccountName`).
pub const DEFAULT_USERNAME_ATTRIBUTE: &str = "uid";
/// Default `email_attribute`.
pub const DEFAULT_EMAIL_ATTRIBUTE: &str = "mail";
/// Default `name_attribute`.
pub const DEFAULT_NAME_ATTRIBUTE: &str = "cn";
/// Default `group_name_attribute`.
pub const DEFAULT_GROUP_NAME_ATTRIBUTE: &str = "cn";
/// Attribute read for `lookup_groups_from_user`.
pub const MEMBER_OF_ATTRIBUTE: &str = "memberOf";
/// Default deadline of each directory operation: 5 seconds.
pub const DEFAULT_LDAP_TIMEOUT: Duration = Duration::from_secs(5);
/// The password backend that checks flowgate's own hashes.
pub const LOCAL_BACKEND: &str = "local";

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LdapTls {
    /// `ldaps://`: TLS from the first byte.
    Ldaps,
    /// `ldap://` upgraded with StartTLS before anything else is sent.
    StartTls,
    /// `ldap://` in the clear: only to a loopback address.
    PlainLoopback,
}

/// A `type: ldap` source.
#[derive(Debug, Clone)]
pub struct LdapSourceDef {
    /// The source's key.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Whether logins may use it.
    pub enabled: bool,
    /// `ldap://` or `ldaps://` URL.
    pub server_uri: String,
    /// How the connection is secured.
    pub tls: LdapTls,
    /// PEM text of the CA certificates (read at load); `None`: the web PKI roots.
    pub ca_pem: Option<String>,
    /// Service account DN.
    pub bind_cn: String,
    /// Service account password.
    pub bind_password: Secret,
    /// Base of user searches (`additional_user_dn,base_dn`).
    pub user_base: String,
    /// Base of group searches (`additional_group_dn,base_dn`).
    pub group_base: String,
    /// Which entries are users.
    pub user_object_filter: String,
    /// Which entries are groups.
    pub group_object_filter: String,
    /// Group attribute naming members by DN.
    pub group_membership_field: String,
    /// Groups from the user's `memberOf`.
    pub lookup_groups_from_user: bool,
    /// Login name attribute.
    pub username_attribute: String,
    /// Email attribute.
    pub email_attribute: String,
    /// Display name attribute.
    pub name_attribute: String,
    /// Group name attribute.
    pub group_name_attribute: String,
    /// Deadline of each operation.
    pub timeout: Duration,
}

/// One entry of a password stage's `backends`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordBackend {
    /// flowgate's own argon2id hashes.
    Local,
    /// A `type: ldap` source, by key.
    Ldap(String),
}
