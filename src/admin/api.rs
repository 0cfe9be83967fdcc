//! The admin API (docs/operations.md), JSON over the admin listener, behind the bearer token:
//!
//! | method and path | does |
//! |---|---|
//! | `GET /api/users` | lists users |
//! | `POST /api/users` | creates a user (`username`, `password`, `email`, `name`, `groups`, `superuser`) |
//! | `POST /api/users/{username}/disable` | deactivates the user and ends its sessions on every replica |
//! | `POST /api/users/{username}/enable` | reactivates the user |
//! | `DELETE /api/users/{username}` | deletes the user and ends its sessions |
//! | `DELETE /api/users/{username}/mfa` | removes the user's TOTP devices, passkeys and recovery codes |
//! | `GET /api/sessions?user={username}` | lists live sessions (tags, never ids) |
//! | `DELETE /api/sessions/{tag}` | ends one session (tag from the list, or its id) |
//! | `DELETE /api/sessions?user={username}` | ends every session of the user |
//! | `GET /api/invitations`, `POST /api/invitations`, `DELETE /api/invitations/{name}` | invitations |
//! | `GET /api/tokens[?user={username}]` | lists app passwords (handles, never secrets) |
//! | `POST /api/tokens` | creates an app password (`user`, `app`, `expires`); the token is in this answer only |
//! | `DELETE /api/tokens/{key}` | revokes an app password; cached checks of every token are dropped |
//!
//! Session revocation goes through the session store and its invalidation channel
//! (`session::revoke`, docs/decisions/0010), so every replica drops the session, and is applied
//! to this process's caches before the answer, so the next request is refused here already.

use super::{error, json, Admin, Resp, MAX_BODY_BYTES};
use crate::identity::{NewUser, StoreError, User, UserUpdate};
use crate::session::{revoke, Event};
use crate::telemetry::AuditEvent;
use http_body_util::BodyExt;
use hyper::{Method, Request, StatusCode};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Audit reason of every admin API action.
const REASON: &str = "admin_api";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUserBody {
    username: String,
    password: Option<String>,
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    superuser: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewInvitationBody {
    name: String,
    flow: Option<String>,
    /// Lifetime such as `7d`; never expires when absent.
    expires: Option<String>,
    #[serde(default)]
    single_use: bool,
    #[serde(default)]
    fixed_data: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTokenBody {
    user: String,
    app: String,
    /// Lifetime such as `90d`; never expires when absent.
    expires: Option<String>,
}

fn token_json(t: &crate::identity::app_passwords::AppPassword) -> Value {
    json!({
        "key": t.key,
        "user": t.username,
        "app": t.app,
        "created_ms": t.created_ms,
        "expires_ms": t.expires_ms,
    })
}

fn user_json(u: &User) -> Value {
    json!({
        "username": u.username,
        "uid": u.uid,
        "email": u.email,
        "email_verified": u.email_verified,
        "name": u.name,
        "groups": u.groups,
        "is_active": u.is_active,
        "is_superuser": u.is_superuser,
    })
}

fn store_error(e: &StoreError) -> Resp {
    match e {
        StoreError::Duplicate { .. } => error(StatusCode::CONFLICT, &e.to_string()),
        StoreError::NotFound { .. } => error(StatusCode::NOT_FOUND, &e.to_string()),
        StoreError::Invalid(m) => error(StatusCode::BAD_REQUEST, m),
        StoreError::Unavailable(_) => error(StatusCode::SERVICE_UNAVAILABLE, "user store unavailable"),
        other => {
            tracing::error!(error = %other, "admin API: user store failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "user store failed")
        }
    }
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

fn query_param(req: &Request<hyper::body::Incoming>, key: &str) -> Option<String> {
    let q = req.uri().query()?;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

async fn body_json<T: serde::de::DeserializeOwned>(req: Request<hyper::body::Incoming>) -> Result<T, Resp> {
    let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY_BYTES);
    let bytes = match limited.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(error(StatusCode::PAYLOAD_TOO_LARGE, "body too large or unreadable")),
    };
    serde_json::from_slice(&bytes).map_err(|e| error(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}")))
}

/// Routes one authenticated API request.
pub(super) async fn route(admin: &Admin, req: Request<hyper::body::Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path
        .trim_start_matches("/api")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let method = req.method().clone();
    match (&method, segs.as_slice()) {
        (&Method::GET, ["users"]) => match admin.users.list_users().await {
            Ok(us) => json(StatusCode::OK, &Value::Array(us.iter().map(user_json).collect())),
            Err(e) => store_error(&e),
        },
        (&Method::POST, ["users"]) => match body_json::<NewUserBody>(req).await {
            Ok(b) => admin.create_user(b).await,
            Err(r) => r,
        },
        (&Method::POST, ["users", name, "disable"]) => admin.set_active(&decode(name), false).await,
        (&Method::POST, ["users", name, "enable"]) => admin.set_active(&decode(name), true).await,
        (&Method::DELETE, ["users", name]) => admin.delete_user(&decode(name)).await,
        (&Method::DELETE, ["users", name, "mfa"]) => admin.reset_mfa(&decode(name)).await,
        (&Method::GET, ["sessions"]) => admin.list_sessions(query_param(&req, "user")).await,
        (&Method::DELETE, ["sessions"]) => match query_param(&req, "user") {
            Some(name) => admin.revoke_user(&name).await,
            None => error(StatusCode::BAD_REQUEST, "give ?user=NAME or /api/sessions/{tag}"),
        },
        (&Method::DELETE, ["sessions", tag]) => admin.revoke_session(&decode(tag)).await,
        (&Method::GET, ["invitations"]) => match admin.users.list_invitations().await {
            Ok(list) => json(
                StatusCode::OK,
                &Value::Array(
                    list.iter()
                        .map(|i| {
                            json!({ "name": i.name, "flow": i.flow, "expires_ms": i.expires_ms, "single_use": i.single_use })
                        })
                        .collect(),
                ),
            ),
            Err(e) => store_error(&e),
        },
        (&Method::POST, ["invitations"]) => match body_json::<NewInvitationBody>(req).await {
            Ok(b) => admin.create_invitation(b).await,
            Err(r) => r,
        },
        (&Method::DELETE, ["invitations", name]) => match admin.users.delete_invitation(&decode(name)).await {
            Ok(true) => json(StatusCode::OK, &json!({ "deleted": decode(name) })),
            Ok(false) => error(StatusCode::NOT_FOUND, "no such invitation"),
            Err(e) => store_error(&e),
        },
        (&Method::GET, ["tokens"]) => match admin.users.list_app_passwords(query_param(&req, "user").as_deref()).await {
            Ok(list) => json(StatusCode::OK, &Value::Array(list.iter().map(token_json).collect())),
            Err(e) => store_error(&e),
        },
        (&Method::POST, ["tokens"]) => match body_json::<NewTokenBody>(req).await {
            Ok(b) => admin.create_token(b).await,
            Err(r) => r,
        },
        (&Method::DELETE, ["tokens", key]) => admin.revoke_token(&decode(key)).await,
        _ => error(StatusCode::NOT_FOUND, "no such admin API route"),
    }
}

// === impl Admin ===

impl Admin {
    async fn create_token(&self, b: NewTokenBody) -> Resp {
        let now = self.clock.now_ms();
        let expires_ms = match b.expires.as_deref().map(crate::config::duration::parse_duration) {
            None => None,
            Some(Ok(d)) => Some(now.saturating_add(d.as_millis() as u64) as i64),
            Some(Err(e)) => return error(StatusCode::BAD_REQUEST, &format!("expires: {e}")),
        };
        match self.users.create_app_password(&b.user, &b.app, expires_ms, now).await {
            Ok((t, token)) => {
                self.audit("token_created", Some(&t.username));
                let mut v = token_json(&t);
                v["token"] = Value::String(token);
                json(StatusCode::CREATED, &v)
            }
            Err(e) => store_error(&e),
        }
    }

    async fn revoke_token(&self, key: &str) -> Resp {
        let owner = match self.users.list_app_passwords(None).await {
            Ok(list) => list.into_iter().find(|t| t.key == key).map(|t| t.username),
            Err(e) => return store_error(&e),
        };
        match self.users.revoke_app_password(key).await {
            Ok(true) => {
                self.api.forget_all();
                self.audit("token_revoked", owner.as_deref());
                json(StatusCode::OK, &json!({ "revoked": key }))
            }
            Ok(false) => error(StatusCode::NOT_FOUND, "no such token"),
            Err(e) => store_error(&e),
        }
    }

    fn audit(&self, event: &'static str, user: Option<&str>) {
        self.telemetry.audit.emit(AuditEvent {
            event,
            user,
            result: "success",
            reason: Some(REASON),
            ..Default::default()
        });
    }

    async fn find(&self, name: &str) -> Result<User, Resp> {
        match self.users.get_by_username(name).await {
            Ok(Some(u)) => Ok(u),
            Ok(None) => Err(error(StatusCode::NOT_FOUND, &format!("no user named {name:?}"))),
            Err(e) => Err(store_error(&e)),
        }
    }

    async fn create_user(&self, b: NewUserBody) -> Resp {
        let new = NewUser {
            username: b.username,
            email: b.email,
            email_verified: true,
            name: b.name,
            password: b.password.filter(|p| !p.is_empty()),
            groups: b.groups,
            attributes: Default::default(),
            is_active: true,
            is_superuser: b.superuser,
        };
        match self.users.create_user(new).await {
            Ok(u) => {
                self.audit("user_created", Some(&u.username));
                json(StatusCode::CREATED, &user_json(&u))
            }
            Err(e) => store_error(&e),
        }
    }

    async fn set_active(&self, name: &str, active: bool) -> Resp {
        let u = match self.find(name).await {
            Ok(u) => u,
            Err(r) => return r,
        };
        let up = UserUpdate {
            is_active: Some(active),
            ..Default::default()
        };
        let u = match self.users.update_user(u.id, up).await {
            Ok(u) => u,
            Err(e) => return store_error(&e),
        };
        self.sessions.user_changed(u.id).await;
        let mut ended = 0;
        if !active {
            ended = self.sessions.end_user_sessions(u.id, None).await;
            self.sessions.apply_now(Event::UserSessions(u.id));
            self.audit("user_disabled", Some(&u.username));
            self.audit("session_revoked", Some(&u.username));
        } else {
            self.audit("user_enabled", Some(&u.username));
        }
        let mut v = user_json(&u);
        v["sessions_ended"] = json!(ended);
        json(StatusCode::OK, &v)
    }

    async fn delete_user(&self, name: &str) -> Resp {
        let u = match self.find(name).await {
            Ok(u) => u,
            Err(r) => return r,
        };
        match self.users.delete_user_by_id(u.id).await {
            Ok(true) => {}
            Ok(false) => return error(StatusCode::NOT_FOUND, &format!("no user named {name:?}")),
            Err(e) => return store_error(&e),
        }
        let ended = self.sessions.end_user_sessions(u.id, None).await;
        self.sessions.apply_now(Event::UserSessions(u.id));
        self.sessions.user_changed(u.id).await;
        self.audit("user_deleted", Some(&u.username));
        self.audit("session_revoked", Some(&u.username));
        json(
            StatusCode::OK,
            &json!({ "deleted": u.username, "sessions_ended": ended }),
        )
    }

    async fn reset_mfa(&self, name: &str) -> Resp {
        let u = match self.find(name).await {
            Ok(u) => u,
            Err(r) => return r,
        };
        if let Err(e) = self.users.delete_mfa(u.id).await {
            return store_error(&e);
        }
        self.audit("mfa_removed", Some(&u.username));
        json(StatusCode::OK, &json!({ "mfa_removed": u.username }))
    }

    async fn list_sessions(&self, user: Option<String>) -> Resp {
        let Some(backend) = self.sessions.backend() else {
            return error(StatusCode::NOT_IMPLEMENTED, "this gateway keeps no session store");
        };
        let uid = match &user {
            Some(name) => match self.find(name).await {
                Ok(u) => Some(u.id),
                Err(r) => return r,
            },
            None => None,
        };
        match revoke::list(backend.as_ref(), uid, self.clock.now_ms()).await {
            Ok(list) => json(
                StatusCode::OK,
                &Value::Array(
                    list.iter()
                        .map(|l| {
                            let s = &l.session;
                            json!({
                                "tag": l.tag,
                                "user": s.user.as_ref().map(|u| u.username.as_str()),
                                "created_ms": s.created_ms,
                                "last_seen_ms": s.last_seen_ms,
                                "expires_ms": s.expires_ms,
                            })
                        })
                        .collect(),
                ),
            ),
            Err(e) => {
                tracing::error!(error = %e, "admin API: session store failed");
                error(StatusCode::SERVICE_UNAVAILABLE, "session store unavailable")
            }
        }
    }

    async fn revoke_session(&self, tag: &str) -> Resp {
        let Some(backend) = self.sessions.backend() else {
            return error(StatusCode::NOT_IMPLEMENTED, "this gateway keeps no session store");
        };
        match revoke::revoke_key(backend.as_ref(), tag, self.clock.now_ms()).await {
            Ok((key, record)) => {
                let tag: String = key.chars().take(revoke::TAG_CHARS).collect();
                self.sessions.apply_now(Event::Session(key));
                self.audit("session_revoked", record.user.as_ref().map(|u| u.username.as_str()));
                json(StatusCode::OK, &json!({ "revoked": tag }))
            }
            Err(revoke::RevokeError::NotFound(_)) => error(StatusCode::NOT_FOUND, "no session matches"),
            Err(revoke::RevokeError::Store(e)) => {
                tracing::error!(error = %e, "admin API: session store failed");
                error(StatusCode::SERVICE_UNAVAILABLE, "session store unavailable")
            }
            Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string()),
        }
    }

    async fn revoke_user(&self, name: &str) -> Resp {
        let u = match self.find(name).await {
            Ok(u) => u,
            Err(r) => return r,
        };
        let ended = self.sessions.end_user_sessions(u.id, None).await;
        self.sessions.apply_now(Event::UserSessions(u.id));
        self.audit("session_revoked", Some(&u.username));
        json(StatusCode::OK, &json!({ "user": u.username, "revoked": ended }))
    }

    async fn create_invitation(&self, b: NewInvitationBody) -> Resp {
        let now = self.clock.now_ms();
        let expires_ms = match b.expires.as_deref().map(crate::config::duration::parse_duration) {
            None => None,
            Some(Ok(d)) => Some(now.saturating_add(d.as_millis() as u64) as i64),
            Some(Err(e)) => return error(StatusCode::BAD_REQUEST, &format!("expires: {e}")),
        };
        match self
            .users
            .create_invitation(&b.name, b.flow.as_deref(), expires_ms, b.single_use, b.fixed_data, now)
            .await
        {
            Ok(inv) => {
                self.audit("invitation_created", None);
                json(
                    StatusCode::CREATED,
                    &json!({
                        "name": inv.name,
                        "token": inv.token,
                        "flow": inv.flow,
                        "expires_ms": inv.expires_ms,
                        "single_use": inv.single_use,
                    }),
                )
            }
            Err(e) => store_error(&e),
        }
    }
}
