//! argon2id password hashing, always off the async event loop and off the proxy's CPU share
//! (on the low-priority threads of [`super::hash_pool`]), with a dummy hash to equalise timing
//! for unknown users.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;

/// argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl From<crate::config::Argon2Settings> for HashParams {
    /// The configured `identity.argon2` costs.
    fn from(a: crate::config::Argon2Settings) -> Self {
        Self {
            memory_kib: a.memory_kib,
            iterations: a.iterations,
            parallelism: a.parallelism,
        }
    }
}

impl Default for HashParams {
    fn default() -> Self {
        Self {
            memory_kib: crate::config::DEFAULT_ARGON2_MEMORY_KIB,
            iterations: crate::config::DEFAULT_ARGON2_ITERATIONS,
            parallelism: crate::config::DEFAULT_ARGON2_PARALLELISM,
        }
    }
}

/// Hashing errors.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The stored hash is not a valid PHC string.
    #[error("stored password hash is malformed")]
    Malformed,
    /// argon2 refused the parameters or failed.
    #[error("password hashing failed: {0}")]
    Argon2(String),
    /// The blocking task died.
    #[error("password hashing task failed")]
    Task,
}

/// The result of a verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The password matched.
    pub ok: bool,
    /// The stored hash uses other parameters than the current ones.
    pub needs_rehash: bool,
}

pub use super::hash_pool::max_concurrent_hashes;

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct PasswordHasher {
    params: HashParams,
    dummy: Arc<String>,
}

impl PasswordHasher {
    /// A hasher for `params` (validated by the config loader).
    pub fn new(params: HashParams) -> Self {
        let mut h = Self {
            params,
            dummy: Arc::new(String::new()),
        };
        // The dummy hash costs one hash at startup; it makes unknown users as slow as known ones.
        h.dummy = Arc::new(h.hash_blocking("flowgate-dummy-password").unwrap_or_default());
        h
    }

    /// The parameters in use.
    pub fn params(&self) -> HashParams {
        self.params
    }

    fn argon2(&self) -> Result<Argon2<'static>, HashError> {
        let p = Params::new(
            self.params.memory_kib,
            self.params.iterations,
            self.params.parallelism,
            None,
        )
        .map_err(|e| HashError::Argon2(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, p))
    }

    /// Hashes on the current thread (CLI use).
    pub fn hash_blocking(&self, password: &str) -> Result<String, HashError> {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        self.argon2()?
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| HashError::Argon2(e.to_string()))
    }

    /// Hashes on a hashing thread, in turn.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let me = self.clone();
        super::hash_pool::run(move || me.hash_blocking(&password)).await?
    }

    fn verify_blocking(&self, password: &str, phc: &str) -> Result<Verified, HashError> {
        let parsed = PasswordHash::new(phc).map_err(|_| HashError::Malformed)?;
        let argon = self.argon2()?;
        let ok = match argon.verify_password(password.as_bytes(), &parsed) {
            Ok(()) => true,
            Err(argon2::password_hash::Error::Password) => false,
            Err(_) => return Err(HashError::Malformed),
        };
        let current = Params::try_from(&parsed).ok();
        let needs_rehash = parsed.algorithm.as_str() != "argon2id"
            || current.is_none_or(|p| {
                p.m_cost() != self.params.memory_kib
                    || p.t_cost() != self.params.iterations
                    || p.p_cost() != self.params.parallelism
            });
        Ok(Verified { ok, needs_rehash })
    }

    /// Verifies on a hashing thread, in turn.
    pub async fn verify(&self, password: String, phc: String) -> Result<Verified, HashError> {
        let me = self.clone();
        super::hash_pool::run(move || me.verify_blocking(&password, &phc)).await?
    }

    /// Runs a full verification against the dummy hash and ignores the result.
    pub async fn verify_dummy(&self, password: String) {
        let dummy = self.dummy.to_string();
        let _ = self.verify(password, dummy).await;
    }
}
