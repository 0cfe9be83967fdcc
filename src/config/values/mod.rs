//! Value types and parsers the validated model is made of, kept here so that `config` imports
//! nothing above it: the engine modules (`flow`, `outbound`) use these types and re-export them
//! where their users look for them.

pub mod database;
pub mod hibp;
pub mod jwt;
pub mod mail;
pub mod next;
pub mod password_rules;
pub mod ratelimit;
pub mod secret;
pub mod url;
