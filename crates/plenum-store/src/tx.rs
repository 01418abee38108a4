//! Tenant-scoped pools and transactions: `TenantPool::begin(tenant)` is the only way to a
//! connection of the runtime pool, and the tenant context lives and dies with the transaction.

use core::fmt;

use plenum_core::TenantId;

use crate::error::Error;

/// The runtime pool: the only way to a connection is [`TenantPool::begin`], which needs a tenant.
///
/// On PostgreSQL it connects as the runtime role of the contract, whose every query is filtered
/// again by row-level security. On SQLite there is no second barrier: the library's explicit
/// `tenant_id` predicates and row checks are all there is.
#[derive(Clone)]
pub struct TenantPool {
    inner: PoolInner,
}

#[derive(Clone)]
enum PoolInner {
    /// The pool, the key that authenticates tenant contexts, and the pool that creates keys
    /// (see `postgres::KEY_POOL_CONNECTIONS`).
    #[cfg(feature = "postgres")]
    Postgres(
        sqlx::PgPool,
        Option<crate::postgres::ContextKey>,
        sqlx::PgPool,
    ),
    /// The data pool and the key pool (a database of its own, see `sqlite::open`).
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool, sqlx::SqlitePool),
}

impl fmt::Debug for TenantPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantPool")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

/// Which database a pool or transaction talks to.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// PostgreSQL, with row-level security.
    Postgres,
    /// SQLite, without.
    Sqlite,
}

impl TenantPool {
    /// Connects to PostgreSQL as the runtime role.
    ///
    /// `url` is sqlx's: `postgres://role@host:port/db`, or a Unix socket's directory
    /// (`postgres://role@%2Fvar%2Frun%2Fpostgresql/db`). The workspace requires sqlx 0.9.1 or
    /// later: 0.9.0 left Nagle's algorithm on, so over TCP with TLS a message of more than one
    /// TLS record (16 KB: a batch insert, a consent screen of ~800 subjects) waited ~40 ms for
    /// the server's delayed acknowledgement (`benches/README.md`, "The 40 ms that were the
    /// driver's").
    ///
    /// # Errors
    ///
    /// Connection failures.
    #[cfg(feature = "postgres")]
    pub async fn connect_postgres(
        url: &str,
        config: &crate::postgres::PgPoolConfig,
    ) -> Result<Self, Error> {
        Ok(Self {
            inner: PoolInner::Postgres(
                crate::postgres::connect_pool(url, config).await?,
                config.context_key.clone(),
                crate::postgres::connect_key_pool(url, config)?,
            ),
        })
    }

    /// Connects as the runtime role and refuses to return a pool unless the catalog verifier
    /// finds the database contract intact: what a service calls at boot.
    ///
    /// # Errors
    ///
    /// [`Error::Contract`] with every finding, or connection failures.
    #[cfg(feature = "postgres")]
    pub async fn connect_postgres_verified(
        url: &str,
        config: &crate::postgres::PgPoolConfig,
        roles: &crate::Roles,
    ) -> Result<Self, Error> {
        let pool = Self::connect_postgres(url, config).await?;
        pool.verify(roles).await?.ensure_clean()?;
        Ok(pool)
    }

    /// Runs the catalog verifier as this pool's role.
    ///
    /// # Errors
    ///
    /// Database failures; [`Error::Config`] on a SQLite pool.
    #[cfg(feature = "postgres")]
    pub async fn verify(&self, roles: &crate::Roles) -> Result<crate::postgres::Report, Error> {
        match &self.inner {
            PoolInner::Postgres(pool, key, _) => {
                // A connection of its own: a pooled one carries what its last user left in the
                // session until the next `begin` cleans it (`postgres::begin_statement`).
                let fresh = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect_with((*pool.connect_options()).clone())
                    .await
                    .map_err(Error::Database)?;
                let report = crate::postgres::verify::verify(&fresh, roles, key.as_ref()).await;
                fresh.close().await;
                report
            }
            #[cfg(feature = "sqlite")]
            PoolInner::Sqlite(..) => Err(Error::Config("SQLite has no catalog contract to verify")),
        }
    }

    /// An embedded SQLite database, in memory (`None`) or in a file, with the library's tables
    /// and `tables` created.
    ///
    /// # Errors
    ///
    /// Database failures.
    #[cfg(feature = "sqlite")]
    pub async fn sqlite(
        path: Option<&std::path::Path>,
        tables: &[crate::TableSpec],
    ) -> Result<Self, Error> {
        let (data, keys) = crate::sqlite::open(path, tables).await?;
        Ok(Self {
            inner: PoolInner::Sqlite(data, keys),
        })
    }

    /// Which database this pool talks to.
    pub fn backend(&self) -> BackendKind {
        match &self.inner {
            #[cfg(feature = "postgres")]
            PoolInner::Postgres(..) => BackendKind::Postgres,
            #[cfg(feature = "sqlite")]
            PoolInner::Sqlite(..) => BackendKind::Sqlite,
        }
    }

    /// Begins a transaction scoped to `tenant`. On PostgreSQL, `BEGIN` and the transaction-local
    /// tenant setting travel in one round trip. Dropping the transaction without
    /// [`TenantTx::commit`] rolls it back.
    ///
    /// # Errors
    ///
    /// Connection or pool failures.
    pub async fn begin(&self, tenant: TenantId) -> Result<TenantTx, Error> {
        let inner = match &self.inner {
            #[cfg(feature = "postgres")]
            PoolInner::Postgres(pool, key, _) => {
                Self::begin_postgres(pool, key.as_ref(), tenant).await?
            }
            #[cfg(feature = "sqlite")]
            PoolInner::Sqlite(data, _) => {
                TxInner::Sqlite(data.begin().await.map_err(Error::Database)?)
            }
        };
        Ok(TenantTx {
            tenant,
            inner,
            unsettled: crate::audit::Unsettled::new(Some(self.clone())),
        })
    }

    #[cfg(feature = "postgres")]
    async fn begin_postgres(
        pool: &sqlx::PgPool,
        key: Option<&crate::postgres::ContextKey>,
        tenant: TenantId,
    ) -> Result<TxInner, Error> {
        let key = key.ok_or(Error::Config(
            "no context key: set PgPoolConfig::context_key to the key migrate installed",
        ))?;
        Ok(TxInner::Postgres(
            pool.begin_with(crate::postgres::begin_statement(key, tenant))
                .await
                .map_err(Error::Database)?,
        ))
    }

    /// A transaction on the database holding the wrapped keys, from a pool of its own: the key
    /// pool of the same database on PostgreSQL (so creating a key never waits for a data
    /// connection), the key database on SQLite. It carries no audit events.
    pub(crate) async fn begin_keys(&self, tenant: TenantId) -> Result<TenantTx, Error> {
        let inner = match &self.inner {
            #[cfg(feature = "postgres")]
            PoolInner::Postgres(_, key, keys) => {
                Self::begin_postgres(keys, key.as_ref(), tenant).await?
            }
            #[cfg(feature = "sqlite")]
            PoolInner::Sqlite(_, keys) => {
                TxInner::Sqlite(keys.begin().await.map_err(Error::Database)?)
            }
        };
        Ok(TenantTx {
            tenant,
            inner,
            unsettled: crate::audit::Unsettled::new(None),
        })
    }

    /// Registers `tenant` in the tenant registry (idempotent). Rows of a tenant can only be
    /// written once it is registered (every record table references the registry).
    ///
    /// # Errors
    ///
    /// Database failures.
    pub async fn register_tenant(&self, tenant: TenantId) -> Result<(), Error> {
        let mut tx = self.begin(tenant).await?;
        match &mut tx.inner {
            #[cfg(feature = "postgres")]
            TxInner::Postgres(t) => {
                sqlx::query(
                    "INSERT INTO plenum.tenants (id) VALUES ($1) ON CONFLICT (id) DO NOTHING",
                )
                .bind(tenant.as_uuid())
                .execute(&mut **t)
                .await
                .map_err(Error::Database)?;
            }
            #[cfg(feature = "sqlite")]
            TxInner::Sqlite(t) => {
                sqlx::query(
                    "INSERT INTO plenum_tenants (id) VALUES (?1) ON CONFLICT (id) DO NOTHING",
                )
                .bind(tenant.as_uuid())
                .execute(&mut **t)
                .await
                .map_err(Error::Database)?;
            }
        }
        tx.commit().await
    }
}

/// A transaction scoped to one tenant. Every repository operation takes one, so no data access
/// exists without a tenant.
pub struct TenantTx {
    tenant: TenantId,
    inner: TxInner,
    /// Audit events of accesses that reached the caller, owed to the log if this transaction
    /// does not commit.
    unsettled: crate::audit::Unsettled,
}

enum TxInner {
    #[cfg(feature = "postgres")]
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

impl fmt::Debug for TenantTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantTx")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl TenantTx {
    /// The tenant this transaction is scoped to.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// Which database this transaction talks to.
    pub fn backend(&self) -> BackendKind {
        match &self.inner {
            #[cfg(feature = "postgres")]
            TxInner::Postgres(_) => BackendKind::Postgres,
            #[cfg(feature = "sqlite")]
            TxInner::Sqlite(_) => BackendKind::Sqlite,
        }
    }

    /// The PostgreSQL connection, for hand-written SQL. Row-level security still applies to
    /// every statement (the tenant context is part of this transaction), but nothing else
    /// does: no purpose, no grant, no audit event, and a withheld field's envelope is readable
    /// (still sealed; opening it needs [`Keyring::dangerous_open`](plenum_crypto::Keyring::dangerous_open)).
    /// Hence the name. (`None` on SQLite.)
    #[cfg(feature = "postgres")]
    pub fn dangerous_postgres(&mut self) -> Option<&mut sqlx::PgConnection> {
        match &mut self.inner {
            TxInner::Postgres(t) => Some(&mut **t),
            #[cfg(feature = "sqlite")]
            TxInner::Sqlite(_) => None,
        }
    }

    /// The SQLite connection, for hand-written SQL. **Nothing isolates tenants here**: SQLite has
    /// no row-level security, so every statement must filter by tenant itself. (`None` on
    /// PostgreSQL.)
    #[cfg(feature = "sqlite")]
    pub fn dangerous_sqlite(&mut self) -> Option<&mut sqlx::SqliteConnection> {
        match &mut self.inner {
            TxInner::Sqlite(t) => Some(&mut **t),
            #[cfg(feature = "postgres")]
            TxInner::Postgres(_) => None,
        }
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn postgres_internal(&mut self) -> Result<&mut sqlx::PgConnection, Error> {
        self.dangerous_postgres()
            .ok_or(Error::Config("not a PostgreSQL transaction"))
    }

    #[cfg(feature = "sqlite")]
    pub(crate) fn sqlite_internal(&mut self) -> Result<&mut sqlx::SqliteConnection, Error> {
        self.dangerous_sqlite()
            .ok_or(Error::Config("not a SQLite transaction"))
    }

    /// Commits. If the commit fails (the connection was killed, the server refused), the audit
    /// events of the accesses that reached the caller are written in a transaction of their
    /// own, unless the log already holds them.
    ///
    /// # Errors
    ///
    /// Database failures (the transaction is then rolled back).
    pub async fn commit(self) -> Result<(), Error> {
        let Self {
            inner,
            mut unsettled,
            ..
        } = self;
        let result = match inner {
            #[cfg(feature = "postgres")]
            TxInner::Postgres(t) => t.commit().await.map_err(Error::Database),
            #[cfg(feature = "sqlite")]
            TxInner::Sqlite(t) => t.commit().await.map_err(Error::Database),
        };
        match result {
            Ok(()) => unsettled.settle(),
            // The commit's error is the one to report; a failure to write the events again is
            // logged by the write itself.
            Err(_) => {
                let _ = unsettled.write(true).await;
            }
        }
        result
    }

    /// Rolls back explicitly (dropping does the same), then writes the audit events of the
    /// accesses in it that reached the caller (reads, refusals) in a transaction of their own:
    /// what was disclosed stays on record whatever happens to the transaction.
    ///
    /// # Errors
    ///
    /// Database failures, of the rollback or of writing those events.
    pub async fn rollback(self) -> Result<(), Error> {
        let Self {
            inner,
            mut unsettled,
            ..
        } = self;
        let result = match inner {
            #[cfg(feature = "postgres")]
            TxInner::Postgres(t) => t.rollback().await.map_err(Error::Database),
            #[cfg(feature = "sqlite")]
            TxInner::Sqlite(t) => t.rollback().await.map_err(Error::Database),
        };
        let written = unsettled.write(false).await;
        result.and(written)
    }

    /// The pool this transaction came from (`None` for a key database transaction): where
    /// the library opens transactions of its own next to it.
    pub(crate) fn pool(&self) -> Option<&TenantPool> {
        self.unsettled.pool()
    }

    /// Holds `event`, appended in this transaction, to be written again on its own if this
    /// transaction does not commit.
    pub(crate) fn hold_event(&mut self, event: &plenum_audit::Event) {
        self.unsettled.hold(event);
    }
}

/// A value bound to a tenant, for background work: serialise it into a job payload, and the
/// worker opens its transaction from [`TenantBound::tenant`]. The tenant travels as data, never as
/// ambient task-local or thread-local state that a spawned task could lose or inherit wrongly.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TenantBound<T> {
    tenant: TenantId,
    payload: T,
}

impl<T> TenantBound<T> {
    /// Binds `payload` to `tenant`.
    pub fn new(tenant: TenantId, payload: T) -> Self {
        Self { tenant, payload }
    }

    /// Binds `payload` to the tenant of an open transaction.
    pub fn for_tx(tx: &TenantTx, payload: T) -> Self {
        Self {
            tenant: tx.tenant(),
            payload,
        }
    }

    /// The tenant.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The payload.
    pub fn payload(&self) -> &T {
        &self.payload
    }

    /// Opens a transaction for the bound tenant and hands back the payload with it.
    ///
    /// # Errors
    ///
    /// As [`TenantPool::begin`].
    pub async fn begin(self, pool: &TenantPool) -> Result<(TenantTx, T), Error> {
        let tx = pool.begin(self.tenant).await?;
        Ok((tx, self.payload))
    }
}

/// The row check behind every read the library generates: a row whose tenant is not the
/// transaction's is never returned. It cannot happen while the predicates and (on PostgreSQL)
/// RLS hold; if it does, the caller gets an error and no data.
pub(crate) fn check_tenant(
    expected: TenantId,
    row_tenant: uuid::Uuid,
    record_type: &str,
) -> Result<(), Error> {
    if row_tenant == *expected.as_uuid() {
        Ok(())
    } else {
        tracing::error!(
            record_type,
            "isolation violation: a row of another tenant was read"
        );
        Err(Error::IsolationViolation {
            record_type: record_type.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_of_another_tenant_is_an_isolation_violation() {
        let (a, b) = (TenantId::generate(), TenantId::generate());
        assert!(check_tenant(a, *a.as_uuid(), "customers").is_ok());
        let err = check_tenant(a, *b.as_uuid(), "customers").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::IsolationViolation);
        assert!(
            !err.to_string().contains(&b.to_string()),
            "no data in the error"
        );
    }
}
