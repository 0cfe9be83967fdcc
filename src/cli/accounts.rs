//! The account subcommands of the binary: `flowgate user …` and `flowgate invitation …`, and
//! reading a password from standard input. They talk to the user store the config names.

use anyhow::Context;
use clap::Subcommand;
use flowgate::config::Config;
use flowgate::identity::{HashParams, NewUser, PasswordHasher, UserStore};
use std::io::{BufRead, Write};
use std::process::ExitCode;

#[derive(Subcommand)]
pub(crate) enum UserCmd {
    /// Add a user; the password is read from standard input.
    Add {
        /// Username.
        username: String,
        /// Email.
        #[arg(long, default_value = "")]
        email: String,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
        /// Group (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Superuser.
        #[arg(long)]
        superuser: bool,
    },
    /// Set a user's password, read from standard input.
    Passwd {
        /// Username.
        username: String,
    },
    /// List users.
    List,
    /// Delete a user (its sessions end on every replica).
    Delete {
        /// Username.
        username: String,
    },
    /// Deactivate a user: no login, and its sessions end on every replica.
    Disable {
        /// Username.
        username: String,
    },
    /// Reactivate a user.
    Enable {
        /// Username.
        username: String,
    },
    /// Remove a user's TOTP devices, passkeys and recovery codes (it sets up a new second factor).
    ResetMfa {
        /// Username.
        username: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum InvitationCmd {
    /// Create an invitation and print its token.
    Create {
        /// Unique name.
        name: String,
        /// Only for this flow (recommended).
        #[arg(long)]
        flow: Option<String>,
        /// Lifetime, e.g. 7d; never expires when absent.
        #[arg(long)]
        expires: Option<String>,
        /// Deleted on first use.
        #[arg(long)]
        single_use: bool,
        /// JSON object merged over the prompt data (e.g. '{"email":"a@b.c"}').
        #[arg(long, default_value = "{}")]
        fixed_data: String,
    },
    /// List invitations.
    List,
    /// Delete an invitation.
    Delete {
        /// Name.
        name: String,
    },
}

/// The user store the config names.
pub(crate) async fn open_store(cfg: &Config) -> anyhow::Result<UserStore> {
    Ok(UserStore::connect(
        &cfg.identity.database,
        PasswordHasher::new(HashParams::from(cfg.identity.argon2)),
    )
    .await?)
}

pub(crate) async fn invitation_cmd(store: &UserStore, action: InvitationCmd) -> anyhow::Result<ExitCode> {
    use flowgate::session::clock::Clock;
    let now_ms = flowgate::session::clock::SystemClock.now_ms();
    match action {
        InvitationCmd::Create {
            name,
            flow,
            expires,
            single_use,
            fixed_data,
        } => {
            let Some(expires_ms) = super::accounts::expires_at(expires.as_deref(), now_ms) else {
                return Ok(ExitCode::from(64));
            };
            let fixed = match serde_json::from_str::<serde_json::Value>(&fixed_data) {
                Ok(serde_json::Value::Object(m)) => m,
                _ => {
                    eprintln!("--fixed-data: expected a JSON object");
                    return Ok(ExitCode::from(64));
                }
            };
            let inv = store
                .create_invitation(&name, flow.as_deref(), expires_ms, single_use, fixed, now_ms)
                .await?;
            println!("{}", inv.token);
            match &inv.flow {
                Some(f) => eprintln!(
                    "invitation {:?} created; link: /.flowgate/flow/{f}/?itoken={}",
                    inv.name, inv.token
                ),
                None => eprintln!(
                    "invitation {:?} created; add ?itoken={} to the flow's URL",
                    inv.name, inv.token
                ),
            }
        }
        InvitationCmd::List => {
            for i in store.list_invitations().await? {
                println!(
                    "{}\tflow={}\texpires_ms={}\tsingle_use={}",
                    i.name,
                    i.flow.as_deref().unwrap_or("*"),
                    i.expires_ms.map(|e| e.to_string()).unwrap_or_else(|| "never".into()),
                    i.single_use
                );
            }
        }
        InvitationCmd::Delete { name } => {
            if !store.delete_invitation(&name).await? {
                eprintln!("no invitation named {name:?}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn user_cmd(cfg: &Config, store: &UserStore, action: UserCmd) -> anyhow::Result<()> {
    match action {
        UserCmd::Add {
            username,
            email,
            name,
            groups,
            superuser,
        } => {
            let password = read_password("Password: ")?;
            let u = store
                .create_user(NewUser {
                    username,
                    email,
                    email_verified: true,
                    name,
                    password: Some(password),
                    groups,
                    attributes: Default::default(),
                    is_active: true,
                    is_superuser: superuser,
                })
                .await?;
            println!("created user {} (uid {})", u.username, u.uid);
        }
        UserCmd::Passwd { username } => {
            let password = read_password("New password: ")?;
            store.set_password(&username, &password).await?;
            println!("password changed for {username}");
            // A new password ends every session of the user, on every replica.
            if let Some(u) = store.get_by_username(&username).await? {
                let n = match super::admin_client::AdminClient::connect(cfg).await {
                    Some(c) => super::live::end_sessions(&c, &username).await? as usize,
                    None => super::sessions::end_user_sessions(cfg, u.id).await?,
                };
                println!("ended {n} session(s) of {username}");
            }
        }
        UserCmd::List => {
            for u in store.list_users().await? {
                println!(
                    "{}\t{}\t{}\t{}{}",
                    u.username,
                    u.email,
                    u.groups.join(","),
                    if u.is_active { "active" } else { "inactive" },
                    if u.is_superuser { "\tsuperuser" } else { "" }
                );
            }
        }
        UserCmd::Delete { username } => {
            let id = store.get_by_username(&username).await?.map(|u| u.id);
            if store.delete_user(&username).await? {
                println!("deleted {username}");
                if let Some(id) = id {
                    let n = super::sessions::end_user_sessions(cfg, id).await?;
                    println!("ended {n} session(s) of {username}");
                }
            } else {
                anyhow::bail!("no user named {username}");
            }
        }
        UserCmd::Disable { username } => {
            let u = found(store, &username).await?;
            let up = flowgate::identity::UserUpdate {
                is_active: Some(false),
                ..Default::default()
            };
            store.update_user(u.id, up).await?;
            let n = super::sessions::end_user_sessions(cfg, u.id).await?;
            println!("disabled {username}; ended {n} session(s)");
        }
        UserCmd::Enable { username } => {
            let u = found(store, &username).await?;
            let up = flowgate::identity::UserUpdate {
                is_active: Some(true),
                ..Default::default()
            };
            store.update_user(u.id, up).await?;
            super::sessions::user_changed(cfg, u.id).await?;
            println!("enabled {username}");
        }
        UserCmd::ResetMfa { username } => {
            let u = found(store, &username).await?;
            store.delete_mfa(u.id).await?;
            println!("removed the second factors of {username}");
        }
    }
    Ok(())
}

async fn found(store: &UserStore, username: &str) -> anyhow::Result<flowgate::identity::User> {
    store
        .get_by_username(username)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user named {username}"))
}

/// Reads one line from standard input (a password; never echoed back or logged).
pub(crate) fn read_password(prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if std::io::IsTerminal::is_terminal(&stdin) {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading password from standard input")?;
    let pw = line.trim_end_matches(['\n', '\r']).to_string();
    anyhow::ensure!(!pw.is_empty(), "empty password");
    Ok(pw)
}

/// The absolute expiry (ms) of an `--expires D` option: `Some(None)` without one, `None` (after
/// saying why) when `D` is not a duration.
pub(crate) fn expires_at(expires: Option<&str>, now_ms: u64) -> Option<Option<i64>> {
    match expires.map(flowgate::config::duration::parse_duration) {
        None => Some(None),
        Some(Ok(d)) => Some(Some(now_ms.saturating_add(d.as_millis() as u64) as i64)),
        Some(Err(e)) => {
            eprintln!("--expires: {e}");
            None
        }
    }
}
