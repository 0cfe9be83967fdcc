//! The user store's data types: a stored user, what creating or updating one takes, how one
//! is looked up, and the store's errors. Kept apart from the queries in `store.rs`.

use super::hash::HashError;
use serde_json::{Map, Value};

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// The database could not be reached (connection refused or lost, pool timeout); logins
    /// answer 503 while it lasts.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// Hashing failed.
    #[error("{0}")]
    Hash(#[from] HashError),
    /// A unique value is taken.
    #[error("{what} {value:?} already exists")]
    Duplicate {
        /// What.
        what: &'static str,
        /// Value.
        value: String,
    },
    /// Something named does not exist.
    #[error("no {what} named {value:?}")]
    NotFound {
        /// What.
        what: &'static str,
        /// Value.
        value: String,
    },
    /// Invalid input.
    #[error("{0}")]
    Invalid(String),
    /// File system error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A stored user.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct User {
    /// Row id.
    pub id: i64,
    /// Stable public id (32 hex characters).
    pub uid: String,
    /// Username.
    pub username: String,
    /// Email, may be empty.
    pub email: String,
    /// Display name, may be empty.
    pub name: String,
    /// Whether the address was verified (a mailed link was followed) or set by an admin (CLI,
    /// seed). Only a verified address reaches the upstream as the user's email.
    pub email_verified: bool,
    /// Active flag.
    pub is_active: bool,
    /// Superuser flag.
    pub is_superuser: bool,
    /// Groups including inherited ones, sorted.
    pub groups: Vec<String>,
    /// Attributes.
    pub attributes: Map<String, Value>,
    /// argon2id PHC string.
    #[serde(skip)]
    pub password_hash: Option<String>,
    /// When the password was last set (Unix seconds).
    pub password_changed_at: Option<i64>,
}

/// Fields an identifier may match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupField {
    /// Username.
    Username,
    /// Email.
    Email,
}

/// A user to create.
#[derive(Clone, Debug, Default)]
pub struct NewUser {
    /// Username.
    pub username: String,
    /// Email.
    pub email: String,
    /// Whether `email` is verified (admin-provided, or confirmed by a mailed link).
    pub email_verified: bool,
    /// Display name.
    pub name: String,
    /// Password (hashed before storing).
    pub password: Option<String>,
    /// Groups (created if missing).
    pub groups: Vec<String>,
    /// Attributes.
    pub attributes: Map<String, Value>,
    /// Active flag.
    pub is_active: bool,
    /// Superuser flag.
    pub is_superuser: bool,
}

/// Changes to an existing user; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct UserUpdate {
    /// New username.
    pub username: Option<String>,
    /// New email. A different address is unverified unless `email_verified` says otherwise.
    pub email: Option<String>,
    /// New verification state of the (new or current) address.
    pub email_verified: Option<bool>,
    /// New display name.
    pub name: Option<String>,
    /// New password (hashed before storing).
    pub password: Option<String>,
    /// Attributes merged over the stored ones (top-level keys replaced).
    pub attributes: Map<String, Value>,
    /// Groups to join (created if missing).
    pub add_groups: Vec<String>,
    /// New active flag.
    pub is_active: Option<bool>,
}
