//! `flowgate user|session|invitation` through the admin API of the running gateway
//! ([`AdminClient`]); the output matches the direct commands'.

use super::accounts::{read_password, InvitationCmd, UserCmd};
use super::admin_client::{seg, AdminClient};
use super::sessions::SessionCmd;
use hyper::Method;
use serde_json::{json, Value};
use std::process::ExitCode;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

pub(crate) async fn user(c: &AdminClient, action: UserCmd) -> anyhow::Result<ExitCode> {
    match action {
        UserCmd::Add {
            username,
            email,
            name,
            groups,
            superuser,
        } => {
            let password = read_password("Password: ")?;
            let body = json!({
                "username": username, "password": password, "email": email, "name": name,
                "groups": groups, "superuser": superuser,
            });
            let u = c.ok(Method::POST, "/api/users", Some(body)).await?;
            println!("created user {} (uid {})", s(&u["username"]), s(&u["uid"]));
        }
        UserCmd::List => {
            let list = c.ok(Method::GET, "/api/users", None).await?;
            for u in list.as_array().into_iter().flatten() {
                let groups: Vec<&str> = u["groups"].as_array().into_iter().flatten().map(s).collect();
                println!(
                    "{}\t{}\t{}\t{}{}",
                    s(&u["username"]),
                    s(&u["email"]),
                    groups.join(","),
                    if u["is_active"] == true { "active" } else { "inactive" },
                    if u["is_superuser"] == true { "\tsuperuser" } else { "" }
                );
            }
        }
        UserCmd::Delete { username } => {
            let v = c
                .ok(Method::DELETE, &format!("/api/users/{}", seg(&username)), None)
                .await?;
            println!("deleted {username}");
            println!("ended {} session(s) of {username}", v["sessions_ended"]);
        }
        UserCmd::Disable { username } => {
            let path = format!("/api/users/{}/disable", seg(&username));
            let v = c.ok(Method::POST, &path, None).await?;
            println!("disabled {username}; ended {} session(s)", v["sessions_ended"]);
        }
        UserCmd::Enable { username } => {
            c.ok(Method::POST, &format!("/api/users/{}/enable", seg(&username)), None)
                .await?;
            println!("enabled {username}");
        }
        UserCmd::ResetMfa { username } => {
            c.ok(Method::DELETE, &format!("/api/users/{}/mfa", seg(&username)), None)
                .await?;
            println!("removed the second factors of {username}");
        }
        UserCmd::Passwd { .. } => anyhow::bail!("passwd writes the database itself, not through the API"),
    }
    Ok(ExitCode::SUCCESS)
}

/// After `flowgate user passwd` wrote the database: the running gateway ends the sessions.
pub(crate) async fn end_sessions(c: &AdminClient, username: &str) -> anyhow::Result<u64> {
    let path = format!("/api/sessions?user={}", seg(username));
    let v = c.ok(Method::DELETE, &path, None).await?;
    Ok(v["revoked"].as_u64().unwrap_or(0))
}

pub(crate) async fn session(c: &AdminClient, action: SessionCmd) -> anyhow::Result<ExitCode> {
    match action {
        SessionCmd::List { user } => {
            let path = match &user {
                Some(u) => format!("/api/sessions?user={}", seg(u)),
                None => "/api/sessions".into(),
            };
            let (status, v) = c.call(Method::GET, &path, None).await?;
            if status == 404 {
                eprintln!("no user named {:?}", user.unwrap_or_default());
                return Ok(ExitCode::from(1));
            }
            if status != 200 {
                anyhow::bail!("admin API: {} ({status})", s(&v["error"]));
            }
            for l in v.as_array().into_iter().flatten() {
                let secs = |k: &str| (l[k].as_u64().unwrap_or(0) / 1000).to_string();
                println!(
                    "{}\t{}\tcreated={}\tlast_seen={}\texpires={}",
                    s(&l["tag"]),
                    l["user"].as_str().unwrap_or("-"),
                    secs("created_ms"),
                    secs("last_seen_ms"),
                    secs("expires_ms")
                );
            }
        }
        SessionCmd::Revoke { id, user } => {
            let path = match (id, &user) {
                (Some(id), None) => format!("/api/sessions/{}", seg(&id)),
                (None, Some(name)) => format!("/api/sessions?user={}", seg(name)),
                _ => {
                    eprintln!("give a session tag or --user NAME");
                    return Ok(ExitCode::from(64));
                }
            };
            let (status, v) = c.call(Method::DELETE, &path, None).await?;
            match (status, &user) {
                (200, None) => println!("revoked {}", s(&v["revoked"])),
                (200, Some(name)) => println!("revoked {} session(s) of {name}", v["revoked"]),
                (404, Some(name)) => {
                    eprintln!("no user named {name:?}");
                    return Ok(ExitCode::from(1));
                }
                _ => {
                    eprintln!("{}", s(&v["error"]));
                    return Ok(ExitCode::from(1));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn invitation(c: &AdminClient, action: InvitationCmd) -> anyhow::Result<ExitCode> {
    match action {
        InvitationCmd::Create {
            name,
            flow,
            expires,
            single_use,
            fixed_data,
        } => {
            let fixed = match serde_json::from_str::<Value>(&fixed_data) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    eprintln!("--fixed-data: expected a JSON object");
                    return Ok(ExitCode::from(64));
                }
            };
            let body = json!({
                "name": name, "flow": flow, "expires": expires, "single_use": single_use, "fixed_data": fixed,
            });
            let (status, v) = c.call(Method::POST, "/api/invitations", Some(body)).await?;
            if status == 400 {
                eprintln!("{}", s(&v["error"]));
                return Ok(ExitCode::from(64));
            }
            if status != 201 {
                anyhow::bail!("admin API: {} ({status})", s(&v["error"]));
            }
            let token = s(&v["token"]);
            println!("{token}");
            match v["flow"].as_str() {
                Some(f) => eprintln!("invitation {name:?} created; link: /.flowgate/flow/{f}/?itoken={token}"),
                None => eprintln!("invitation {name:?} created; add ?itoken={token} to the flow's URL"),
            }
        }
        InvitationCmd::List => {
            let list = c.ok(Method::GET, "/api/invitations", None).await?;
            for i in list.as_array().into_iter().flatten() {
                println!(
                    "{}\tflow={}\texpires_ms={}\tsingle_use={}",
                    s(&i["name"]),
                    i["flow"].as_str().unwrap_or("*"),
                    i["expires_ms"]
                        .as_i64()
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "never".into()),
                    i["single_use"] == true
                );
            }
        }
        InvitationCmd::Delete { name } => {
            let (status, _) = c
                .call(Method::DELETE, &format!("/api/invitations/{}", seg(&name)), None)
                .await?;
            if status == 404 {
                eprintln!("no invitation named {name:?}");
                return Ok(ExitCode::from(1));
            }
            if status != 200 {
                anyhow::bail!("admin API: deleting the invitation failed ({status})");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
