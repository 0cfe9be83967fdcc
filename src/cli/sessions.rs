//! `flowgate session list | revoke`: acting on the live session store the config names, so
//! every running gateway (every replica) honours it within the invalidation delay. Full
//! session ids are never printed: a session is named by a tag (a prefix of the SHA-256 of
//! its id), which `revoke` accepts.

use clap::Subcommand;
use flowgate::config::Config;
use flowgate::identity::UserStore;
use flowgate::session::clock::{Clock, SystemClock};
use flowgate::session::revoke;
use flowgate::session::Backend;
use std::process::ExitCode;

#[derive(Subcommand)]
pub(crate) enum SessionCmd {
    /// List logged-in sessions (tag, user, created, last seen, expiry; never the id).
    List {
        /// Only this user's sessions.
        #[arg(long)]
        user: Option<String>,
    },
    /// End sessions on every replica: one by the tag `list` prints (or its id), or all of a user's.
    Revoke {
        /// Tag from `flowgate session list` (at least 8 hex characters), or a session id.
        id: Option<String>,
        /// End every session of this user.
        #[arg(long, conflicts_with = "id")]
        user: Option<String>,
    },
}

async fn user_id(store: &UserStore, name: &str) -> anyhow::Result<Option<i64>> {
    Ok(store.get_by_username(name).await?.map(|u| u.id))
}

/// Times are printed as Unix seconds.
fn unix_secs(ms: u64) -> String {
    (ms / 1000).to_string()
}

pub(crate) async fn session_cmd(cfg: &Config, store: &UserStore, action: SessionCmd) -> anyhow::Result<ExitCode> {
    let backend = revoke::open_backend(cfg).await?;
    let now = SystemClock.now_ms();
    match action {
        SessionCmd::List { user } => {
            let uid = match &user {
                Some(name) => match user_id(store, name).await? {
                    Some(id) => Some(id),
                    None => {
                        eprintln!("no user named {name:?}");
                        return Ok(ExitCode::from(1));
                    }
                },
                None => None,
            };
            for l in revoke::list(backend.as_ref(), uid, now).await? {
                let s = &l.session;
                println!(
                    "{}\t{}\tcreated={}\tlast_seen={}\texpires={}",
                    l.tag,
                    s.user.as_ref().map(|u| u.username.as_str()).unwrap_or("-"),
                    unix_secs(s.created_ms),
                    unix_secs(s.last_seen_ms),
                    unix_secs(s.expires_ms)
                );
            }
        }
        SessionCmd::Revoke { id, user } => match (id, user) {
            (Some(id), None) => match revoke::revoke_one(backend.as_ref(), &id, now).await {
                Ok(tag) => println!("revoked {tag}"),
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::from(1));
                }
            },
            (None, Some(name)) => {
                let Some(uid) = user_id(store, &name).await? else {
                    eprintln!("no user named {name:?}");
                    return Ok(ExitCode::from(1));
                };
                let n = revoke::revoke_user(backend.as_ref(), uid).await?;
                println!("revoked {n} session(s) of {name}");
            }
            _ => {
                eprintln!("give a session tag or --user NAME");
                return Ok(ExitCode::from(64));
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// After `flowgate user passwd | delete`: end the user's sessions on every replica.
pub(crate) async fn end_user_sessions(cfg: &Config, user_id: i64) -> anyhow::Result<usize> {
    let backend: std::sync::Arc<dyn Backend> = revoke::open_backend(cfg).await?;
    Ok(revoke::revoke_user(backend.as_ref(), user_id).await?)
}

/// After `flowgate user enable`: every replica drops its cached copy of the user.
pub(crate) async fn user_changed(cfg: &Config, user_id: i64) -> anyhow::Result<()> {
    let backend: std::sync::Arc<dyn Backend> = revoke::open_backend(cfg).await?;
    Ok(revoke::user_changed(backend.as_ref(), user_id).await?)
}
