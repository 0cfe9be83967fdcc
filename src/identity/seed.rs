//! Seeding users and groups from a YAML file at start. A password changed since (by the user or
//! an admin) is never overwritten; a seed-sourced password is replaced when the seed changes.

use super::db::args;
use super::store::{NewUser, StoreError, UserStore};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Largest `password_file` read for a seed user.
const MAX_PASSWORD_FILE_BYTES: u64 = 64 * 1024;
use std::path::{Path, PathBuf};

/// The seed file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    /// Groups.
    #[serde(default)]
    pub groups: Vec<SeedGroup>,
    /// Users.
    #[serde(default)]
    pub users: Vec<SeedUser>,
}

/// A seeded group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedGroup {
    /// Name.
    pub name: String,
    /// Parent group.
    pub parent: Option<String>,
    /// Attributes.
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

/// A seeded user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedUser {
    /// Username.
    pub username: String,
    /// Email.
    #[serde(default)]
    pub email: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Plain password (for development; prefer the others).
    pub password: Option<String>,
    /// A ready argon2id hash.
    pub password_hash: Option<String>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// File holding the password (relative to the seed file).
    pub password_file: Option<String>,
    /// Groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Attributes.
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// Active flag.
    #[serde(default = "yes")]
    pub is_active: bool,
    /// Superuser flag.
    #[serde(default)]
    pub is_superuser: bool,
}

fn yes() -> bool {
    true
}

/// A seed file error, with position.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SeedError(pub String);

/// What seeding did.
#[derive(Debug, Default)]
pub struct SeedReport {
    /// Users created.
    pub created: Vec<String>,
    /// Users updated.
    pub updated: Vec<String>,
    /// Users whose changed password was kept.
    pub password_kept: Vec<String>,
}

impl SeedFile {
    /// Parses a seed file; errors carry `name:line:col: path: message`.
    pub fn from_yaml_str(src: &str, name: &str) -> Result<Self, SeedError> {
        if src.trim().is_empty() {
            return Ok(Self::default());
        }
        if let Err(e) = crate::input_limits::check_yaml_nesting(src) {
            return Err(SeedError(format!("{name}:{}:{}: {}", e.line, e.column, e.message)));
        }
        serde_path_to_error::deserialize(serde_yaml::Deserializer::from_str(src)).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let (l, c) = inner.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
            let mut msg = inner.to_string();
            if let Some(i) = msg.find(" at line ") {
                msg.truncate(i);
            }
            SeedError(format!("{name}:{l}:{c}: {path}: {msg}"))
        })
    }

    /// Reads a seed file; returns it with its directory.
    pub fn load(path: &Path) -> Result<(Self, PathBuf), SeedError> {
        let src = crate::input_limits::read_capped_string(path, crate::config::MAX_CONFIG_BYTES)
            .map_err(|e| SeedError(format!("{}: cannot read: {e}", path.display())))?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok((Self::from_yaml_str(&src, &path.display().to_string())?, base))
    }
}

enum SeedPassword {
    None,
    Plain(String),
    Hash(String),
}

fn password_of(u: &SeedUser, base: &Path) -> Result<SeedPassword, StoreError> {
    let given = [
        u.password.is_some(),
        u.password_hash.is_some(),
        u.password_env.is_some(),
        u.password_file.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if given > 1 {
        return Err(StoreError::Invalid(format!(
            "seed user {:?}: give only one of password, password_hash, password_env, password_file",
            u.username
        )));
    }
    if let Some(p) = &u.password {
        return Ok(SeedPassword::Plain(p.clone()));
    }
    if let Some(h) = &u.password_hash {
        argon2::password_hash::PasswordHash::new(h).map_err(|_| {
            StoreError::Invalid(format!(
                "seed user {:?}: password_hash is not a valid PHC string",
                u.username
            ))
        })?;
        return Ok(SeedPassword::Hash(h.clone()));
    }
    if let Some(var) = &u.password_env {
        return std::env::var(var).map(SeedPassword::Plain).map_err(|_| {
            StoreError::Invalid(format!(
                "seed user {:?}: environment variable {var} is not set",
                u.username
            ))
        });
    }
    if let Some(f) = &u.password_file {
        let p = base.join(f);
        let s = crate::input_limits::read_capped_string(&p, MAX_PASSWORD_FILE_BYTES).map_err(|e| {
            StoreError::Invalid(format!(
                "seed user {:?}: cannot read password file {}: {e}",
                u.username,
                p.display()
            ))
        })?;
        return Ok(SeedPassword::Plain(s.trim_end_matches(['\n', '\r']).to_string()));
    }
    Ok(SeedPassword::None)
}

impl UserStore {
    /// Applies a seed file.
    pub async fn seed(&self, seed: &SeedFile, base_dir: &Path) -> Result<SeedReport, StoreError> {
        let mut report = SeedReport::default();
        for g in &seed.groups {
            self.ensure_group(&g.name, g.parent.as_deref(), &g.attributes).await?;
        }
        for u in &seed.users {
            let pw = password_of(u, base_dir)?;
            match self.get_by_username(&u.username).await? {
                None => {
                    let hash = match &pw {
                        SeedPassword::None => None,
                        SeedPassword::Hash(h) => Some(h.clone()),
                        SeedPassword::Plain(p) => Some(self.hasher().hash(p.clone()).await?),
                    };
                    let new = NewUser {
                        username: u.username.clone(),
                        email: u.email.clone(),
                        email_verified: true,
                        name: u.name.clone(),
                        password: None,
                        groups: u.groups.clone(),
                        attributes: u.attributes.clone(),
                        is_active: u.is_active,
                        is_superuser: u.is_superuser,
                    };
                    self.insert(&new, hash, "seed").await?;
                    report.created.push(u.username.clone());
                }
                Some(existing) => {
                    if self.email_taken(&u.email, Some(existing.id)).await? {
                        return Err(StoreError::Duplicate {
                            what: "email",
                            value: u.email.clone(),
                        });
                    }
                    let mut tx = self.db().begin().await?;
                    // The seed's address is the admin's word: verified.
                    tx.execute(
                        "UPDATE users SET email = $1, name = $2, attributes = $3, is_active = $4, is_superuser = $5, email_key = $7, email_verified = TRUE WHERE id = $6",
                        args![
                            u.email.trim(),
                            &u.name,
                            Value::Object(u.attributes.clone()).to_string(),
                            u.is_active,
                            u.is_superuser,
                            existing.id,
                            super::names::email_key(&u.email),
                        ],
                    )
                    .await?;
                    UserStore::set_groups(&mut tx.conn(), existing.id, &u.groups).await?;
                    let source: String = tx
                        .fetch_one("SELECT password_source FROM users WHERE id = $1", args![existing.id])
                        .await?
                        .at(0)?;
                    tx.commit().await?;
                    if source == "user" {
                        report.password_kept.push(u.username.clone());
                    } else {
                        let replace = match (&pw, &existing.password_hash) {
                            (SeedPassword::None, _) => None,
                            (SeedPassword::Hash(h), Some(cur)) if h == cur => None,
                            (SeedPassword::Hash(h), _) => Some(h.clone()),
                            (SeedPassword::Plain(p), Some(cur))
                                if self.hasher().verify(p.clone(), cur.clone()).await.is_ok_and(|v| v.ok) =>
                            {
                                None
                            }
                            (SeedPassword::Plain(p), _) => Some(self.hasher().hash(p.clone()).await?),
                        };
                        if let Some(h) = replace {
                            self.set_hash_keep_source(existing.id, &h, "seed").await?;
                        }
                    }
                    report.updated.push(u.username.clone());
                }
            }
        }
        Ok(report)
    }
}
