//! The embedded backend. Same `TenantTx` API; no row-level security, so the library's explicit
//! predicates and row checks are the only barrier between tenants.

use std::str::FromStr as _;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Executor as _};

use crate::error::Error;
use crate::table::TableSpec;

const LIBRARY_DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS plenum_tenants (id blob PRIMARY KEY, created_at text NOT NULL DEFAULT (datetime('now')))",
    "CREATE TABLE IF NOT EXISTS plenum_keys (\
        tenant_id blob NOT NULL REFERENCES plenum_tenants (id), \
        scope integer NOT NULL CHECK (scope IN (1, 2, 3)), \
        subject_id blob NOT NULL, \
        version integer NOT NULL CHECK (version > 0), \
        state text NOT NULL CHECK (state IN ('active', 'decrypt_only', 'retired', 'destroyed')), \
        wrapped blob, \
        created_at text NOT NULL DEFAULT (datetime('now')), \
        updated_at text NOT NULL DEFAULT (datetime('now')), \
        PRIMARY KEY (tenant_id, scope, subject_id, version), \
        CHECK ((state = 'destroyed') = (wrapped IS NULL)))",
];

pub(crate) async fn open(
    path: Option<&std::path::Path>,
    tables: &[TableSpec],
) -> Result<SqlitePool, Error> {
    let options = match path {
        Some(p) => SqliteConnectOptions::new()
            .filename(p)
            .create_if_missing(true),
        // One connection: an in-memory database lives and dies with its connection.
        None => SqliteConnectOptions::from_str("sqlite::memory:").map_err(Error::Database)?,
    }
    .foreign_keys(true);
    let max = if path.is_some() { 4 } else { 1 };
    let pool = SqlitePoolOptions::new()
        .max_connections(max)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await
        .map_err(Error::Database)?;
    let mut ddl: Vec<String> = LIBRARY_DDL.iter().map(|s| (*s).to_owned()).collect();
    ddl.extend(tables.iter().flat_map(TableSpec::sqlite_ddl));
    let mut tx = pool.begin().await.map_err(Error::Database)?;
    for statement in ddl {
        tx.execute(AssertSqlSafe(statement))
            .await
            .map_err(Error::Database)?;
    }
    tx.commit().await.map_err(Error::Database)?;
    Ok(pool)
}
