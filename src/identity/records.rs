//! Flow records kept beside the users: invitations and consents.

use super::store::StoreError;
use sqlx::SqlitePool;

/// Creates the tables of this module.
pub(crate) async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    let _ = pool;
    Ok(())
}
