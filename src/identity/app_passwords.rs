//! App passwords (authentik's `app_password` tokens): credentials an API client sends to one app
//! as `Authorization: Basic` (with the username) or `Bearer`. A token is
//! `fgp_<key>_<secret>`: `key` (12 hex characters) is its public handle for listing and
//! revoking, `secret` 256 random bits. Only the SHA-256 of the secret is stored (the secret is
//! random, so a slow hash adds nothing), compared in constant time; the token itself is shown
//! once, at creation. Times are Unix milliseconds passed in by the caller.

use super::db::{args, DbRow};
use super::store::{StoreError, UserStore};
use sha2::Digest;
use subtle::ConstantTimeEq;

/// The table of this module, in the markers of `db::Dialect::ddl`.
pub(crate) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS app_passwords (
        key TEXT PRIMARY KEY,
        user_id {int} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        app TEXT NOT NULL,
        secret_sha256 TEXT NOT NULL,
        created_ms {int} NOT NULL,
        expires_ms {int}
    )",
    "CREATE INDEX IF NOT EXISTS app_passwords_user ON app_passwords (user_id)",
];

/// Prefix of every app password.
pub const TOKEN_PREFIX: &str = "fgp_";

/// A stored app password (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AppPassword {
    /// Public handle (`token revoke KEY`).
    pub key: String,
    /// The owner.
    pub username: String,
    /// The owner's id.
    pub user_id: i64,
    /// The app it opens.
    pub app: String,
    /// Creation time.
    pub created_ms: i64,
    /// Expiry; `None`: never.
    pub expires_ms: Option<i64>,
}

/// What a valid app password proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppPasswordCheck {
    /// The owner's id.
    pub user_id: i64,
    /// The token's expiry.
    pub expires_ms: Option<i64>,
}

/// Splits `fgp_<key>_<secret>`; `None` when it is not shaped like an app password.
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (key, secret) = rest.split_once('_')?;
    let ok = key.len() == 12
        && key.bytes().all(|b| b.is_ascii_hexdigit())
        && (40..=64).contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some((key, secret))
}

fn digest(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

fn row_to_app_password(r: &DbRow) -> Result<AppPassword, StoreError> {
    Ok(AppPassword {
        key: r.get("key")?,
        username: r.get("username")?,
        user_id: r.get("user_id")?,
        app: r.get("app")?,
        created_ms: r.get("created_ms")?,
        expires_ms: r.get("expires_ms")?,
    })
}

impl UserStore {
    /// Creates an app password for `username` at `app`; returns it with the token (shown once).
    pub async fn create_app_password(
        &self,
        username: &str,
        app: &str,
        expires_ms: Option<i64>,
        now_ms: u64,
    ) -> Result<(AppPassword, String), StoreError> {
        use base64::Engine;
        use rand::RngCore;
        if app.is_empty() || app.len() > 64 || !app.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(StoreError::Invalid(format!("invalid app name {app:?}")));
        }
        let Some(user) = self.get_by_username(username).await? else {
            return Err(StoreError::NotFound {
                what: "user",
                value: username.to_string(),
            });
        };
        let mut k = [0u8; 6];
        let mut s = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        rand::rngs::OsRng.fill_bytes(&mut s);
        let key = hex::encode(k);
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        self.db()
            .execute(
                "INSERT INTO app_passwords (key, user_id, app, secret_sha256, created_ms, expires_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                args![&key, user.id, app, digest(&secret), now_ms as i64, expires_ms],
            )
            .await?;
        let token = format!("{TOKEN_PREFIX}{key}_{secret}");
        let ap = AppPassword {
            key,
            username: user.username,
            user_id: user.id,
            app: app.to_string(),
            created_ms: now_ms as i64,
            expires_ms,
        };
        Ok((ap, token))
    }

    /// App passwords, of one user or of all, by user then creation.
    pub async fn list_app_passwords(&self, username: Option<&str>) -> Result<Vec<AppPassword>, StoreError> {
        let rows = self
            .db()
            .fetch_all(
                "SELECT a.key, u.username, a.user_id, a.app, a.created_ms, a.expires_ms
                 FROM app_passwords a JOIN users u ON u.id = a.user_id
                 WHERE ($1 IS NULL OR u.username = $1)
                 ORDER BY u.username, a.created_ms, a.key",
                args![username],
            )
            .await?;
        rows.iter().map(row_to_app_password).collect()
    }

    /// Deletes the app password with handle `key`; false when there is none.
    pub async fn revoke_app_password(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self
            .db()
            .execute("DELETE FROM app_passwords WHERE key = $1", args![key])
            .await?
            > 0)
    }

    /// Checks `token` for `app` at `now_ms`: the owner when it is a live app password of
    /// that app, `None` otherwise (unknown, wrong secret, other app, expired).
    pub async fn check_app_password(
        &self,
        token: &str,
        app: &str,
        now_ms: u64,
    ) -> Result<Option<AppPasswordCheck>, StoreError> {
        let Some((key, secret)) = parse_token(token) else {
            return Ok(None);
        };
        let row = self
            .db()
            .fetch_optional(
                "SELECT user_id, app, secret_sha256, expires_ms FROM app_passwords WHERE key = $1",
                args![key],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stored: String = row.get("secret_sha256")?;
        let matches: bool = stored.as_bytes().ct_eq(digest(secret).as_bytes()).into();
        let for_app: String = row.get("app")?;
        let expires_ms: Option<i64> = row.get("expires_ms")?;
        let live = expires_ms.is_none_or(|e| e > now_ms as i64);
        if !matches || for_app != app || !live {
            return Ok(None);
        }
        Ok(Some(AppPasswordCheck {
            user_id: row.get("user_id")?,
            expires_ms,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_token;

    #[test]
    fn token_shape() {
        let secret = "a".repeat(43);
        assert_eq!(
            parse_token(&format!("fgp_0123456789ab_{secret}")),
            Some(("0123456789ab", secret.as_str()))
        );
        for bad in [
            "",
            "fgp_",
            "fgp_0123456789ab",
            "fgp_0123456789a_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "fgp_0123456789ag_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "xyz_0123456789ab_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "fgp_0123456789ab_short",
            "fgp_0123456789ab_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa*a",
        ] {
            assert_eq!(parse_token(bad), None, "{bad}");
        }
    }
}
