//! The integration suite as one test binary (`[[test]] suite` in Cargo.toml, `autotests = false`):
//! one file per feature beside this one, each run against flowgate started in-process on port 0
//! (`common/`). One binary links once; a binary per file linked all of pingora 27 times, and a
//! clean test build took 20 GB of disk.
//!
//! `logging.rs` is a binary of its own (`[[test]] logging`): it installs a process-wide TRACE
//! subscriber, which would capture every other test's gateway.
//!
//!     cargo test --test suite redirects::    # one module
//!     cargo test --test suite                # all of it

mod common;

mod api_clients;
mod availability;
mod blueprints;
mod browser;
mod bruteforce;
mod cli;
mod config;
mod credentials;
mod csrf;
mod enumeration;
mod error_pages;
mod expression_policies;
mod floods;
mod flow_engine;
mod flow_integrity;
mod flow_selection;
mod forward_auth;
mod forward_auth_peers;
mod forwarded_headers;
mod forwarded_headers_host;
mod framing;
mod fuzz_regressions;
mod http2;
mod identity_headers;
mod inspect;
mod layers;
mod ldap;
mod ldap_standing;
mod login;
mod mailed_links;
mod oauth_sources;
mod oauth_sources_callback;
mod oauth_sources_interop;
mod operations;
mod outbound;
mod passkey_store;
mod passkeys;
mod passkeys_management;
mod password_policies;
mod paths_and_hosts;
mod proxy;
mod redirects;
mod reload;
mod reputation;
mod request_ids;
mod request_policies;
mod sessions;
mod shared_faults;
mod shared_limits;
mod shared_state;
mod shared_state_redis;
mod sign_on;
mod sign_on_attacks;
mod signed_identity;
mod signup_identity;
mod stage_catalogue;
mod stages;
mod step_up;
mod timeouts;
mod tls_resumption;
mod user_database_gateway;
mod user_databases;
