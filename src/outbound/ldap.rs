//! Password checks against a directory (`sources:` of `type: ldap`) with `ldap3` over rustls:
//! connect (LDAPS, or StartTLS before anything else is sent, with the configured CA), bind as
//! the service account, find the user by `(&user_object_filter(username_attribute=NAME))` with
//! NAME escaped per RFC 4515 (so `*)(uid=*` is a literal that matches nobody), read the groups
//! (`memberOf` on the user, only groups under the group base, or a group search by member DN,
//! also escaped), then bind as the user's DN with the password. [`Directory::still_active`]
//! makes the same search without a password, for logins that never send one here.
//!
//! Safety rules: an empty password is refused before any connection (an LDAP "unauthenticated
//! bind" with a DN and no password succeeds on many servers); exactly one entry must match;
//! any failure to reach or use the directory is [`DirectoryError`], which callers turn into a
//! clear login error, never into a login. Active Directory's `userAccountControl` disabled bit
//! is honoured; elsewhere an operator excludes disabled accounts in `user_object_filter`.

use crate::config::ldap_model::{LdapSourceDef, LdapTls, MEMBER_OF_ATTRIBUTE};
use ldap3::{ldap_escape, Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use std::sync::Arc;

/// LDAP result code of a failed bind (invalidCredentials).
const INVALID_CREDENTIALS: u32 = 49;
/// Active Directory's ACCOUNTDISABLE bit of `userAccountControl`.
const AD_ACCOUNT_DISABLE: u64 = 0x2;
/// Most groups read for one user.
const MAX_GROUPS: usize = 1000;

/// A user as the directory describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    /// The entry's DN.
    pub dn: String,
    /// Login name (`username_attribute`), as stored in the directory.
    pub username: String,
    /// Email (may be empty).
    pub email: String,
    /// Display name (may be empty).
    pub name: String,
    /// Group names.
    pub groups: Vec<String>,
}

/// What a password check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authenticated {
    /// The password is right; the user as the directory has it now.
    Yes(DirectoryUser),
    /// Wrong or empty password.
    WrongPassword,
    /// No entry (or more than one) matches the name.
    NoSuchUser,
    /// The account is disabled in the directory.
    Disabled,
}

/// What the service account's user search found.
enum Found {
    /// Exactly one entry, named as asked, not disabled.
    Entry(Box<SearchEntry>),
    /// No entry, more than one, or one named otherwise.
    NoSuchUser,
    /// The account is disabled (Active Directory).
    Disabled,
}

/// The directory could not be used (down, TLS, service account refused, timeout).
#[derive(Debug, thiserror::Error)]
#[error("directory {source_name:?} unavailable: {reason}")]
pub struct DirectoryError {
    /// The source's key.
    pub source_name: String,
    /// What failed (no secrets).
    pub reason: String,
}

/// A directory source, ready to connect.
#[derive(Clone)]
pub struct Directory {
    def: Arc<LdapSourceDef>,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Whether the last attempt found the directory unreachable ([`Directory::is_down`]).
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Directory({})", self.def.slug)
    }
}

fn first(e: &SearchEntry, attr: &str) -> String {
    e.attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .and_then(|(_, v)| v.first().cloned())
        .unwrap_or_default()
}

fn all<'a>(e: &'a SearchEntry, attr: &'a str) -> impl Iterator<Item = &'a String> + 'a {
    e.attrs
        .iter()
        .filter(move |(k, _)| k.eq_ignore_ascii_case(attr))
        .flat_map(|(_, v)| v.iter())
}

/// The value of a DN's first RDN (`cn=staff,ou=groups,…` → `staff`), unescaped for the common
/// `\,` `\+` and hex forms.
pub fn first_rdn_value(dn: &str) -> Option<String> {
    let mut out: Vec<u8> = Vec::new();
    let mut chars = dn.split_once('=')?.1.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let a = chars.next()?;
                if a.is_ascii_hexdigit() && chars.peek().is_some_and(|b| b.is_ascii_hexdigit()) {
                    let b = chars.next()?;
                    out.push(u8::from_str_radix(&format!("{a}{b}"), 16).ok()?);
                } else {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(a.encode_utf8(&mut buf).as_bytes());
                }
            }
            ',' | '+' => break,
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    let v = String::from_utf8_lossy(&out).trim().to_string();
    (!v.is_empty()).then_some(v)
}

/// A DN compared loosely: lowercase, without spaces around `,` and `=`.
fn dn_key(dn: &str) -> String {
    let mut out = String::with_capacity(dn.len());
    for part in dn.split(',') {
        if !out.is_empty() {
            out.push(',');
        }
        let (a, v) = part.split_once('=').unwrap_or((part, ""));
        out.push_str(a.trim());
        out.push('=');
        out.push_str(v.trim());
    }
    out.to_lowercase()
}

/// Whether `dn` is strictly below `base` (an escaped `,` in a value never counts as a
/// boundary, so `cn=x\,ou=groups` is not under `ou=groups`).
pub fn dn_within(dn: &str, base: &str) -> bool {
    let (dn, base) = (dn_key(dn), dn_key(base));
    if base.is_empty() || dn.len() <= base.len() + 1 || !dn.ends_with(&base) {
        return false;
    }
    let head = &dn[..dn.len() - base.len()];
    let Some(head) = head.strip_suffix(',') else {
        return false;
    };
    // The comma must not be escaped: count the backslashes before it.
    head.bytes().rev().take_while(|b| *b == b'\\').count() % 2 == 0
}

fn construct(re: ldap3::ResultEntry) -> Option<SearchEntry> {
    // `SearchEntry::construct` panics on BER it cannot parse: a broken or hostile server must
    // fail the login, not the worker.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| SearchEntry::construct(re))).ok()
}

// === impl Directory ===

impl Directory {
    /// The directory of `def`; the TLS settings are built here (once).
    pub fn new(def: Arc<LdapSourceDef>) -> Result<Self, String> {
        let tls = match def.tls {
            LdapTls::PlainLoopback => None,
            LdapTls::Ldaps | LdapTls::StartTls => {
                let mut roots = rustls::RootCertStore::empty();
                match &def.ca_pem {
                    Some(pem) => {
                        for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
                            let cert = cert.map_err(|e| format!("CA file: {e}"))?;
                            roots.add(cert).map_err(|e| format!("CA file: {e}"))?;
                        }
                    }
                    None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
                }
                let cfg = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
                    .with_safe_default_protocol_versions()
                    .map_err(|e| e.to_string())?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Some(Arc::new(cfg))
            }
        };
        Ok(Self {
            def,
            tls,
            down: Default::default(),
        })
    }

    /// The source's settings.
    pub fn def(&self) -> &LdapSourceDef {
        &self.def
    }

    fn unavailable(&self, reason: impl Into<String>) -> DirectoryError {
        DirectoryError {
            source_name: self.def.slug.clone(),
            reason: reason.into(),
        }
    }

    async fn connect(&self) -> Result<Ldap, DirectoryError> {
        let mut s = LdapConnSettings::new().set_conn_timeout(self.def.timeout);
        if let Some(cfg) = &self.tls {
            s = s.set_config(cfg.clone());
        }
        if self.def.tls == LdapTls::StartTls {
            s = s.set_starttls(true);
        }
        let (conn, ldap) =
            tokio::time::timeout(self.def.timeout, LdapConnAsync::with_settings(s, &self.def.server_uri))
                .await
                .map_err(|_| self.unavailable("connect timed out"))?
                .map_err(|e| self.unavailable(format!("connect: {e}")))?;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    /// Checks `password` for the user named `username` (see the module doc).
    pub async fn authenticate(&self, username: &str, password: &str) -> Result<Authenticated, DirectoryError> {
        if password.is_empty() {
            return Ok(Authenticated::WrongPassword);
        }
        if username.is_empty() {
            return Ok(Authenticated::NoSuchUser);
        }
        let r = match self.connect().await {
            Ok(mut ldap) => {
                let r = self.authenticate_on(&mut ldap, username, password).await;
                let _ = tokio::time::timeout(self.def.timeout, ldap.unbind()).await;
                r
            }
            Err(e) => Err(e),
        };
        self.down.store(r.is_err(), std::sync::atomic::Ordering::Relaxed);
        r
    }

    /// Whether the last login attempt found the directory unreachable. The password stage
    /// answers "directory down" for every wrong password while it is, so that a local user's
    /// name and an unknown one get the same answer (no enumeration through the outage).
    pub fn is_down(&self) -> bool {
        self.down.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the user named `username` still stands in the directory as it did when mirrored
    /// with `dn`: the service account finds exactly one entry with the search a password check
    /// makes (so the source's user filter still matches), its DN is `dn` (compared loosely) and
    /// it is not disabled. For logins that do not send the password to the directory (passkeys,
    /// app passwords, mailed links, sources); [`DirectoryError`] when it cannot be asked.
    pub async fn still_active(&self, username: &str, dn: &str) -> Result<bool, DirectoryError> {
        if username.is_empty() || dn.trim().is_empty() {
            return Ok(false);
        }
        let r = match self.connect().await {
            Ok(mut ldap) => {
                let r = self.find_user(&mut ldap, username).await;
                let _ = tokio::time::timeout(self.def.timeout, ldap.unbind()).await;
                r
            }
            Err(e) => Err(e),
        };
        self.down.store(r.is_err(), std::sync::atomic::Ordering::Relaxed);
        Ok(matches!(r?, Found::Entry(e) if !e.dn.trim().is_empty() && dn_key(&e.dn) == dn_key(dn)))
    }

    /// Binds as the service account and finds the one entry named `username` (see the
    /// module doc), shared by password checks and [`Directory::still_active`].
    async fn find_user(&self, ldap: &mut Ldap, username: &str) -> Result<Found, DirectoryError> {
        let d = &self.def;
        let t = d.timeout;
        ldap.with_timeout(t)
            .simple_bind(&d.bind_cn, d.bind_password.expose())
            .await
            .and_then(|r| r.success())
            .map_err(|e| self.unavailable(format!("service account bind: {e}")))?;
        let filter = format!(
            "(&{}({}={}))",
            d.user_object_filter,
            d.username_attribute,
            ldap_escape(username)
        );
        let attrs = vec![
            d.username_attribute.as_str(),
            d.email_attribute.as_str(),
            d.name_attribute.as_str(),
            MEMBER_OF_ATTRIBUTE,
            "userAccountControl",
        ];
        let (entries, _) = ldap
            .with_timeout(t)
            .search(&d.user_base, Scope::Subtree, &filter, attrs)
            .await
            .and_then(|r| r.success())
            .map_err(|e| self.unavailable(format!("user search: {e}")))?;
        let mut entries: Vec<SearchEntry> = entries.into_iter().filter_map(construct).collect();
        if entries.len() != 1 {
            if entries.len() > 1 {
                tracing::warn!(source = %d.slug, matches = entries.len(), "more than one directory entry matches a login name; refused");
            }
            return Ok(Found::NoSuchUser);
        }
        let entry = entries.remove(0);
        // The server matched by its own rules; the login name must be the entry's own.
        if !first(&entry, &d.username_attribute).eq_ignore_ascii_case(username) {
            return Ok(Found::NoSuchUser);
        }
        if first(&entry, "userAccountControl")
            .parse::<u64>()
            .is_ok_and(|v| v & AD_ACCOUNT_DISABLE != 0)
        {
            return Ok(Found::Disabled);
        }
        Ok(Found::Entry(Box::new(entry)))
    }

    async fn authenticate_on(
        &self,
        ldap: &mut Ldap,
        username: &str,
        password: &str,
    ) -> Result<Authenticated, DirectoryError> {
        let d = &self.def;
        let t = d.timeout;
        let entry = match self.find_user(ldap, username).await? {
            Found::Entry(e) => *e,
            Found::NoSuchUser => return Ok(Authenticated::NoSuchUser),
            Found::Disabled => return Ok(Authenticated::Disabled),
        };
        let found_name = first(&entry, &d.username_attribute);
        let mut groups: Vec<String> = if d.lookup_groups_from_user {
            // Only groups under the group base count, as with a group search: a group made
            // elsewhere in the tree (where others may create entries) is not the operator's.
            all(&entry, MEMBER_OF_ATTRIBUTE)
                .filter(|dn| dn_within(dn, &d.group_base))
                .filter_map(|dn| first_rdn_value(dn))
                .collect()
        } else {
            let filter = format!(
                "(&{}({}={}))",
                d.group_object_filter,
                d.group_membership_field,
                ldap_escape(entry.dn.as_str())
            );
            let (gs, _) = ldap
                .with_timeout(t)
                .search(
                    &d.group_base,
                    Scope::Subtree,
                    &filter,
                    vec![d.group_name_attribute.as_str()],
                )
                .await
                .and_then(|r| r.success())
                .map_err(|e| self.unavailable(format!("group search: {e}")))?;
            gs.into_iter()
                .filter_map(construct)
                .map(|g| first(&g, &d.group_name_attribute))
                .filter(|g| !g.is_empty())
                .collect()
        };
        groups.sort();
        groups.dedup();
        groups.truncate(MAX_GROUPS);
        if entry.dn.trim().is_empty() {
            // A bind with an empty name is anonymous on many servers: never one.
            return Err(self.unavailable("the directory returned an entry without a name"));
        }
        match ldap.with_timeout(t).simple_bind(&entry.dn, password).await {
            Ok(r) if r.rc == 0 => {}
            Ok(r) if r.rc == INVALID_CREDENTIALS => return Ok(Authenticated::WrongPassword),
            Ok(r) => return Err(self.unavailable(format!("user bind: result code {}", r.rc))),
            Err(e) => return Err(self.unavailable(format!("user bind: {e}"))),
        }
        Ok(Authenticated::Yes(DirectoryUser {
            username: found_name,
            email: first(&entry, &d.email_attribute),
            name: first(&entry, &d.name_attribute),
            dn: entry.dn,
            groups,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::first_rdn_value;

    #[test]
    fn group_names_from_dns() {
        assert_eq!(
            first_rdn_value("cn=staff,ou=groups,dc=example").as_deref(),
            Some("staff")
        );
        assert_eq!(
            first_rdn_value("CN=Domain Users,CN=Users,DC=corp").as_deref(),
            Some("Domain Users")
        );
        assert_eq!(first_rdn_value("cn=a\\,b,ou=g").as_deref(), Some("a,b"));
        assert_eq!(first_rdn_value("cn=caf\\c3\\a9,ou=g").as_deref(), Some("café"));
        assert_eq!(first_rdn_value("nonsense"), None);
        assert_eq!(first_rdn_value("cn=,ou=g"), None);
    }

    #[test]
    fn groups_under_the_base_only() {
        use super::dn_within;
        let base = "ou=groups,dc=example";
        assert!(dn_within("cn=staff,ou=groups,dc=example", base));
        assert!(dn_within("CN=Staff, OU=Groups, DC=Example", base));
        assert!(dn_within("cn=a,ou=team,ou=groups,dc=example", base));
        assert!(!dn_within("cn=admins,ou=services,dc=example", base));
        assert!(!dn_within("ou=groups,dc=example", base));
        assert!(!dn_within("cn=x,ou=evilgroups,dc=example", base));
        assert!(!dn_within("cn=x\\,ou=groups,dc=example", base));
        assert!(!dn_within("cn=x,ou=groups,dc=example", ""));
    }

    #[test]
    fn escaping_keeps_filters_literal() {
        assert_eq!(ldap3::ldap_escape("*)(uid=*"), "\\2a\\29\\28uid=\\2a");
        assert_eq!(ldap3::ldap_escape("a\\b\0"), "a\\5cb\\00");
    }
}
