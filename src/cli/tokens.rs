//! `flowgate token create|list|revoke`: app passwords for API clients of apps with
//! `basic_auth: true`. Through the admin API of the running gateway when it answers (a
//! revocation then also empties its cache of positive checks at once), else on the database.

use super::admin_client::{seg, AdminClient};
use clap::Subcommand;
use flowgate::config::Config;
use flowgate::identity::UserStore;
use hyper::Method;
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Subcommand)]
pub(crate) enum TokenCmd {
    /// Create an app password and print it (shown once; only its hash is stored).
    Create {
        /// The user it logs in as.
        #[arg(long)]
        user: String,
        /// The app it opens (an app with `basic_auth: true`).
        #[arg(long)]
        app: String,
        /// Lifetime, e.g. 90d; never expires when absent.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List app passwords (handles, never the tokens).
    List {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke an app password by its handle (from `token list`).
    Revoke {
        /// The handle.
        key: String,
    },
}

fn line(t: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    format!(
        "{}\t{}\t{}\texpires_ms={}",
        s(&t["key"]),
        s(&t["user"]),
        s(&t["app"]),
        t["expires_ms"]
            .as_i64()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "never".into())
    )
}

/// Refuses an app the config does not have, or one without `basic_auth`.
pub(crate) fn check_app(cfg: &Config, action: &TokenCmd) -> Result<(), String> {
    let TokenCmd::Create { app, .. } = action else {
        return Ok(());
    };
    match cfg.apps.iter().find(|a| &a.name == app) {
        Some(a) if a.api_clients.is_some() => Ok(()),
        Some(_) => Err(format!("app {app:?} does not take API clients (set basic_auth: true)")),
        None => Err(format!(
            "unknown app {app:?} (known: {})",
            cfg.apps.iter().map(|a| a.name.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}

pub(crate) async fn live(c: &AdminClient, action: TokenCmd) -> anyhow::Result<ExitCode> {
    match action {
        TokenCmd::Create { user, app, expires } => {
            let t = c
                .ok(
                    Method::POST,
                    "/api/tokens",
                    Some(json!({ "user": user, "app": app, "expires": expires })),
                )
                .await?;
            println!("{}", t["token"].as_str().unwrap_or(""));
            eprintln!(
                "app password {} for {user} at {app} created; it is not shown again",
                t["key"].as_str().unwrap_or("")
            );
        }
        TokenCmd::List { user } => {
            let path = match user {
                Some(u) => format!("/api/tokens?user={}", seg(&u)),
                None => "/api/tokens".into(),
            };
            for t in c.ok(Method::GET, &path, None).await?.as_array().into_iter().flatten() {
                println!("{}", line(t));
            }
        }
        TokenCmd::Revoke { key } => {
            c.ok(Method::DELETE, &format!("/api/tokens/{}", seg(&key)), None)
                .await?;
            println!("revoked {key}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn direct(cfg: &Config, store: &UserStore, action: TokenCmd) -> anyhow::Result<ExitCode> {
    use flowgate::session::clock::Clock;
    let now_ms = flowgate::session::clock::SystemClock.now_ms();
    match action {
        TokenCmd::Create { user, app, expires } => {
            let Some(expires_ms) = super::accounts::expires_at(expires.as_deref(), now_ms) else {
                return Ok(ExitCode::from(64));
            };
            let (t, token) = store.create_app_password(&user, &app, expires_ms, now_ms).await?;
            println!("{token}");
            eprintln!(
                "app password {} for {user} at {app} created; it is not shown again",
                t.key
            );
        }
        TokenCmd::List { user } => {
            for t in store.list_app_passwords(user.as_deref()).await? {
                let v = json!({ "key": t.key, "user": t.username, "app": t.app, "expires_ms": t.expires_ms });
                println!("{}", line(&v));
            }
        }
        TokenCmd::Revoke { key } => {
            let owner = store
                .list_app_passwords(None)
                .await?
                .into_iter()
                .find(|t| t.key == key)
                .map(|t| t.user_id);
            if store.revoke_app_password(&key).await? {
                // Running gateways drop their positive checks of the owner's credentials.
                if let Some(id) = owner {
                    if let Err(e) = super::sessions::user_changed(cfg, id).await {
                        eprintln!("running gateways were not told (they forget it within 30 seconds): {e}");
                    }
                }
                println!("revoked {key}");
            } else {
                eprintln!("no app password {key:?}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
