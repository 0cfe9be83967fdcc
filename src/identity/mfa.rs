//! Second factors: TOTP devices (RFC 6238) and static recovery codes, stored beside the users.
//! (Being written: see the module owner's task.)

use super::store::StoreError;
use sqlx::SqlitePool;

/// Creates the tables of this module.
pub(crate) async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    let _ = pool;
    Ok(())
}
