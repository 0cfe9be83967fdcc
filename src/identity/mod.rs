//! Users, groups and attributes in an embedded SQLite database or in PostgreSQL (sqlx, one set of
//! queries and migrations for both: `db.rs` is the seam), argon2id hashing off the event loop,
//! and seeding from YAML. No HTTP types, no sessions.

pub mod app_passwords;
mod db;
pub mod directory_users;
pub mod hash;
mod hash_pool;
pub mod mfa;
pub mod names;
mod open;
pub mod passkeys;
mod passwords;
pub mod records;
pub mod seed;
pub mod sources;
mod store;
mod store_keys;
mod user;
pub mod webauthn;

pub use hash::{HashError, HashParams, PasswordHasher, Verified};
pub use open::PG_ACQUIRE_TIMEOUT;
pub use store::{LookupField, NewUser, StoreError, User, UserStore, UserUpdate};

#[cfg(test)]
mod tests;
