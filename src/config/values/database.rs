//! `identity.database`: where users live. An SQLite file (`sqlite://PATH` or a bare path, the
//! default) or a PostgreSQL server (`postgres://user@host[:port]/db[?sslmode=…]`), whose
//! password comes from `identity.password_env` or `identity.password_file`, never from the YAML:
//! a URL that carries one is refused.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Where users are stored.
#[derive(Clone, PartialEq, Eq)]
pub enum UserDatabase {
    /// An SQLite file, created on first start.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(PostgresDatabase),
}

/// A PostgreSQL database: its URL (without a password) and the password read from the
/// environment or a file. Without one, the driver's own sources apply (`PGPASSWORD`,
/// `~/.pgpass`), as for `psql`.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresDatabase {
    /// `postgres://user@host[:port]/db[?params]`, checked to carry no password.
    pub url: String,
    /// The password, from `identity.password_env` or `identity.password_file`.
    pub password: Option<String>,
}

impl fmt::Debug for PostgresDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresDatabase")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl fmt::Debug for UserDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(p) => f.debug_tuple("Sqlite").field(p).finish(),
            Self::Postgres(p) => f.debug_tuple("Postgres").field(p).finish(),
        }
    }
}

/// The path or the URL (which holds no password), for messages.
impl fmt::Display for UserDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(p) => write!(f, "{}", p.display()),
            Self::Postgres(p) => f.write_str(&p.url),
        }
    }
}

impl UserDatabase {
    /// Whether this is a PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }
}

/// Parses `identity.database` (relative SQLite paths against `base`); the password is added by
/// the caller. Errors say what is allowed and never repeat a password.
pub fn parse_database(db: &str, base: &Path) -> Result<UserDatabase, String> {
    let lower = db.get(..13).unwrap_or(db).to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        return parse_postgres(db).map(UserDatabase::Postgres);
    }
    if let Some((scheme, _)) = db.split_once("://") {
        if scheme != "sqlite" {
            return Err(format!(
                "unsupported database scheme {scheme:?} (expected sqlite://PATH, a file path or postgres://USER@HOST/DB)"
            ));
        }
    }
    let p = db.strip_prefix("sqlite://").unwrap_or(db);
    if p.is_empty() || p.contains('?') {
        return Err(format!(
            "invalid database {db:?} (expected sqlite://PATH, a file path or postgres://USER@HOST/DB)"
        ));
    }
    Ok(UserDatabase::Sqlite(base.join(p)))
}

fn parse_postgres(db: &str) -> Result<PostgresDatabase, String> {
    // The message never quotes the URL: it may hold a password.
    let url = url::Url::parse(db).map_err(|e| format!("invalid PostgreSQL URL ({e})"))?;
    let in_query = url.query_pairs().any(|(k, _)| k == "password");
    if url.password().is_some() || in_query {
        return Err(
            "the PostgreSQL URL carries a password: remove it and set identity.password_env or identity.password_file"
                .into(),
        );
    }
    let socket_host = url.query_pairs().any(|(k, _)| k == "host");
    if url.host_str().is_none_or(str::is_empty) && !socket_host {
        return Err(format!("PostgreSQL URL {db:?} names no host"));
    }
    if url.path().trim_start_matches('/').is_empty() && !url.query_pairs().any(|(k, _)| k == "dbname") {
        return Err(format!(
            "PostgreSQL URL {db:?} names no database (postgres://USER@HOST/DB)"
        ));
    }
    sqlx::postgres::PgConnectOptions::from_str(db).map_err(|e| format!("invalid PostgreSQL URL {db:?}: {e}"))?;
    Ok(PostgresDatabase {
        url: db.to_string(),
        password: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_forms() {
        let base = Path::new("/etc/fg");
        assert_eq!(
            parse_database("sqlite://users.db", base).unwrap(),
            UserDatabase::Sqlite(base.join("users.db"))
        );
        assert_eq!(
            parse_database("/var/lib/fg.db", base).unwrap(),
            UserDatabase::Sqlite(PathBuf::from("/var/lib/fg.db"))
        );
        assert!(parse_database("sqlite://", base).is_err());
        assert!(parse_database("x.db?mode=ro", base).is_err());
        assert!(parse_database("mysql://u@h/db", base).unwrap_err().contains("mysql"));
    }

    #[test]
    fn postgres_forms() {
        let base = Path::new("/");
        let ok = |u: &str| match parse_database(u, base) {
            Ok(UserDatabase::Postgres(p)) => assert_eq!(p.url, u),
            other => panic!("{u}: {other:?}"),
        };
        ok("postgres://flowgate@db.example/flowgate");
        ok("postgresql://flowgate@127.0.0.1:5433/flowgate?sslmode=verify-full");
        ok("postgres:///flowgate?host=/run/postgresql&user=flowgate");
        for bad in [
            "postgres://flowgate:hunter2@db/flowgate",
            "postgres://flowgate@db/flowgate?password=hunter2",
        ] {
            let e = parse_database(bad, base).unwrap_err();
            assert!(e.contains("password_env") && !e.contains("hunter2"), "{e}");
        }
        assert!(parse_database("postgres://flowgate@db", base)
            .unwrap_err()
            .contains("no database"));
        assert!(parse_database("postgres:///flowgate", base)
            .unwrap_err()
            .contains("no host"));
        assert!(parse_database("postgres://u@db/x?sslmode=sometimes", base).is_err());
        assert!(parse_database("postgres://u@db:99999/x", base).is_err());
    }

    #[test]
    fn debug_redacts_the_password() {
        let d = UserDatabase::Postgres(PostgresDatabase {
            url: "postgres://u@h/d".into(),
            password: Some("hunter2".into()),
        });
        assert!(!format!("{d:?}").contains("hunter2"));
        assert_eq!(d.to_string(), "postgres://u@h/d");
    }
}
