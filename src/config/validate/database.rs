//! `identity.database` and the PostgreSQL password beside it (`identity.password_env`,
//! `identity.password_file`), read like every other secret of the config.

use super::Collector;
use crate::config::model::UserDatabase;
use crate::config::raw::RawIdentity;
use crate::config::values::database::parse_database;
use std::path::Path;

/// `identity.database` with the PostgreSQL password from `identity.password_env`/`_file`.
pub(super) fn database(c: &mut Collector<'_>, raw: Option<&RawIdentity>, base: &Path, data_dir: &Path) -> UserDatabase {
    let (env, file) = (
        raw.and_then(|i| i.password_env.as_ref()),
        raw.and_then(|i| i.password_file.as_ref()),
    );
    let parsed = match raw.and_then(|i| i.database.as_deref()) {
        None => Ok(UserDatabase::Sqlite(data_dir.join("flowgate.db"))),
        Some(db) => parse_database(db, base),
    };
    match parsed {
        Ok(UserDatabase::Postgres(mut pg)) => {
            pg.password = super::secrets::secret(c, 0, "identity", None, env, file, "password");
            UserDatabase::Postgres(pg)
        }
        Ok(sqlite) => {
            if env.is_some() || file.is_some() {
                let key = if env.is_some() {
                    "identity.password_env"
                } else {
                    "identity.password_file"
                };
                c.err(0, key, "a database password applies to a postgres:// database only");
            }
            sqlite
        }
        Err(e) => {
            c.err(0, "identity.database", e);
            UserDatabase::Sqlite(data_dir.join("flowgate.db"))
        }
    }
}
