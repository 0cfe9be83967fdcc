//! Outbound calls: a small HTTP client ([`http`], shared with the Have I Been Pwned policy),
//! mail through SMTP or into files ([`mail`], sent off the request path by [`mail_queue`]) and captcha siteverify ([`captcha`]).
//!
//! Everything here is built once at startup from validated settings and is cheap to clone;
//! deciding when to call out (which stage, which message) is left to the flow code.

pub mod captcha;
pub mod http;
pub mod ldap;
pub mod mail;
pub mod mail_queue;
