//! Opening the user database, SQLite or PostgreSQL, and bringing its tables up to date.
//!
//! The migrations are one list for both backends: every module's table definitions are written
//! once with the markers of [`Dialect::ddl`] and run in order (`users`/`groups`, the identity
//! keys, MFA, flow records), all idempotent (`IF NOT EXISTS`, a column added only when
//! missing). On PostgreSQL they run under an advisory lock, so replicas starting together do not
//! race each other's `CREATE TABLE`.

use super::db::{args, Db, Dialect, Exec, Pool};
use super::hash::PasswordHasher;
use super::store::{StoreError, UserStore};
use crate::config::{PostgresDatabase, UserDatabase};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// Connections to SQLite (one writer at a time anyway).
const SQLITE_MAX_CONNECTIONS: u32 = 4;
/// Connections to PostgreSQL per gateway process.
const PG_MAX_CONNECTIONS: u32 = 8;
/// How long a query waits for a PostgreSQL connection (including reconnecting to a server
/// that is down) before the login it serves answers 503. The pool reconnects by itself when
/// the server is back.
pub const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// Advisory lock key that serialises migrations between replicas ("flowgate" in ASCII).
const MIGRATION_LOCK: i64 = 0x666c_6f77_6761_7465;

/// The core tables: users, groups and memberships.
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS users (
        id {pk},
        uid TEXT NOT NULL UNIQUE,
        username TEXT NOT NULL,
        username_lower TEXT NOT NULL UNIQUE,
        email TEXT NOT NULL DEFAULT '',
        name TEXT NOT NULL DEFAULT '',
        is_active {bool} NOT NULL DEFAULT {true},
        is_superuser {bool} NOT NULL DEFAULT {false},
        attributes TEXT NOT NULL DEFAULT '{}',
        password_hash TEXT,
        password_source TEXT NOT NULL DEFAULT 'none',
        password_changed_at {int}
    )",
    "CREATE INDEX IF NOT EXISTS users_email_lower ON users(lower(email))",
    "CREATE TABLE IF NOT EXISTS groups (
        id {pk},
        name TEXT NOT NULL UNIQUE,
        parent_id {int} REFERENCES groups(id) ON DELETE SET NULL,
        attributes TEXT NOT NULL DEFAULT '{}'
    )",
    "CREATE TABLE IF NOT EXISTS user_groups (
        user_id {int} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        group_id {int} NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
        PRIMARY KEY (user_id, group_id)
    )",
];

/// PostgreSQL has no `unixepoch()`; SQLite (3.38+) has. Defining it keeps one query text.
const PG_UNIXEPOCH: &str = "CREATE OR REPLACE FUNCTION unixepoch() RETURNS BIGINT LANGUAGE SQL STABLE
    AS $$ SELECT CAST(EXTRACT(EPOCH FROM now()) AS BIGINT) $$";

/// Runs each definition of `schema`, rendered for the connection's dialect.
pub(crate) async fn run_ddl(conn: &mut Exec<'_>, dialect: Dialect, schema: &[&str]) -> Result<(), StoreError> {
    for stmt in schema {
        conn.execute(&dialect.ddl(stmt), &[]).await?;
    }
    Ok(())
}

/// The column names of `table`.
pub(crate) async fn columns(conn: &mut Exec<'_>, dialect: Dialect, table: &str) -> Result<Vec<String>, StoreError> {
    let sql = match dialect {
        Dialect::Sqlite => "SELECT name FROM pragma_table_info($1)",
        Dialect::Postgres => {
            "SELECT CAST(column_name AS TEXT) FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1"
        }
    };
    conn.fetch_all(sql, args![table])
        .await?
        .iter()
        .map(|r| r.at::<String>(0))
        .collect()
}

/// Every module's migrations, in order, on one connection.
async fn migrate(conn: &mut Exec<'_>, dialect: Dialect) -> Result<(), StoreError> {
    if dialect == Dialect::Postgres {
        conn.execute(PG_UNIXEPOCH, &[]).await?;
    }
    run_ddl(conn, dialect, SCHEMA).await?;
    super::store_keys::migrate_identity_keys(conn, dialect).await?;
    run_ddl(conn, dialect, super::mfa::SCHEMA).await?;
    run_ddl(conn, dialect, super::records::SCHEMA).await?;
    run_ddl(conn, dialect, super::sources::CONNECTIONS_SCHEMA).await?;
    run_ddl(conn, dialect, super::app_passwords::SCHEMA).await?;
    run_ddl(conn, dialect, super::passkeys::SCHEMA).await?;
    Ok(())
}

impl UserStore {
    /// Opens or creates the SQLite database at `path`.
    pub async fn open(path: &Path, hasher: PasswordHasher) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(SQLITE_MAX_CONNECTIONS)
            .connect_with(opts)
            .await?;
        Self::start(Db::new(Pool::Sqlite(pool)), hasher).await
    }

    /// Opens the configured database: an SQLite file or a PostgreSQL database.
    pub async fn connect(db: &UserDatabase, hasher: PasswordHasher) -> Result<Self, StoreError> {
        match db {
            UserDatabase::Sqlite(path) => Self::open(path, hasher).await,
            UserDatabase::Postgres(pg) => Self::open_postgres(pg, hasher).await,
        }
    }

    /// Connects to PostgreSQL (the server must be up at start) and migrates it.
    pub async fn open_postgres(pg: &PostgresDatabase, hasher: PasswordHasher) -> Result<Self, StoreError> {
        // Errors name the URL (which holds no password), never the password.
        let mut opts = PgConnectOptions::from_str(&pg.url)
            .map_err(|e| StoreError::Invalid(format!("invalid PostgreSQL URL {:?}: {e}", pg.url)))?
            .application_name("flowgate");
        if let Some(pw) = &pg.password {
            opts = opts.password(pw);
        }
        let pool = PgPoolOptions::new()
            .max_connections(PG_MAX_CONNECTIONS)
            .acquire_timeout(PG_ACQUIRE_TIMEOUT)
            .connect_with(opts)
            .await?;
        Self::start(Db::new(Pool::Postgres(pool)), hasher).await
    }

    /// Migrates, then wraps the database.
    async fn start(db: Db, hasher: PasswordHasher) -> Result<Self, StoreError> {
        let dialect = db.dialect();
        let mut tx = db.begin().await?;
        if dialect == Dialect::Postgres {
            // Held until the transaction ends; PostgreSQL's DDL is transactional.
            tx.execute("SELECT pg_advisory_xact_lock($1)", args![MIGRATION_LOCK])
                .await?;
        }
        migrate(&mut tx.conn(), dialect).await?;
        tx.commit().await?;
        Ok(Self::from_db(db, hasher))
    }
}
