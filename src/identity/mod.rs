//! Users, groups and attributes in an embedded SQLite database (sqlx), argon2id hashing off the
//! event loop, and seeding from YAML. No HTTP types, no sessions.

pub mod hash;
mod hash_pool;
pub mod mfa;
pub mod names;
pub mod records;
pub mod seed;
mod store;
mod store_keys;
mod user;

pub use hash::{HashError, HashParams, PasswordHasher, Verified};
pub use store::{LookupField, NewUser, StoreError, User, UserStore, UserUpdate};

#[cfg(test)]
mod tests;
