//! The PostgreSQL backend: connection pools for each role of the contract, the one-round-trip
//! tenant transaction, the audited admin transaction, migrations and the boot-time verifier.

mod admin;
mod context;
mod schema;
pub(crate) mod verify;

use std::str::FromStr as _;
use std::time::Duration;

use plenum_core::TenantId;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Executor as _};

pub use self::admin::{AdminPool, AdminPurpose, AdminReason, AdminTx};
pub use self::context::ContextKey;
pub use self::schema::bootstrap_sql;
pub use self::verify::{Check, Finding, Report};
use crate::contract::{Roles, TENANT_SETTING};
use crate::error::Error;
use crate::table::TableSpec;

/// Pool settings for the runtime roles.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PgPoolConfig {
    /// Maximum connections.
    pub max_connections: u32,
    /// How long `begin` waits for a free connection.
    pub acquire_timeout: Duration,
    /// Set when connecting through PgBouncer in transaction mode (older than 1.21, or without
    /// `max_prepared_statements`): turns sqlx's prepared-statement cache off, because the server
    /// connection behind a client changes between transactions. Tenant context is already
    /// transaction-local, so nothing else changes.
    pub pgbouncer_transaction_mode: bool,
    /// The key that authenticates this pool's tenant contexts to the database (the one
    /// [`migrate`] installed). Without it, [`TenantPool::begin`](crate::TenantPool::begin) is
    /// refused.
    pub context_key: Option<ContextKey>,
    /// How the connection is encrypted and the server authenticated. A host that is not on
    /// this machine (loopback or a Unix socket) is refused unless this is
    /// [`TlsMode::VerifyFull`].
    pub tls: TlsMode,
}

/// TLS to PostgreSQL (rustls; the trust roots are the system-independent webpki roots unless a
/// root certificate is given).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// What the URL's `sslmode` says (sqlx's default is `prefer`). Allowed only for a host on
    /// this machine.
    #[default]
    FromUrl,
    /// Encrypted, certificate not checked. Loopback only.
    Require,
    /// Encrypted, certificate chain checked against `root` (or the webpki roots), host name
    /// not checked. Loopback only.
    VerifyCa {
        /// A PEM file of trusted roots; `None` for the webpki roots.
        root: Option<std::path::PathBuf>,
    },
    /// Encrypted, chain and host name checked: the only mode for a remote server.
    VerifyFull {
        /// A PEM file of trusted roots; `None` for the webpki roots.
        root: Option<std::path::PathBuf>,
    },
}

impl Default for PgPoolConfig {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(10),
            pgbouncer_transaction_mode: false,
            context_key: None,
            tls: TlsMode::FromUrl,
        }
    }
}

impl PgPoolConfig {
    /// These settings with `key` authenticating the tenant contexts.
    #[must_use]
    pub fn with_context_key(mut self, key: ContextKey) -> Self {
        self.context_key = Some(key);
        self
    }

    /// The defaults with another pool size.
    pub fn with_max_connections(max_connections: u32) -> Self {
        Self {
            max_connections,
            ..Self::default()
        }
    }
}

/// Whether `host` is this machine: a Unix socket directory, `localhost`, or a loopback address.
fn is_local(host: &str) -> bool {
    host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The connect options of `url` with `tls` applied; a remote host without
/// [`TlsMode::VerifyFull`] is refused before anything is sent.
fn connect_options(url: &str, tls: &TlsMode) -> Result<PgConnectOptions, Error> {
    use sqlx::postgres::PgSslMode;
    let options = PgConnectOptions::from_str(url).map_err(Error::Database)?;
    let local = is_local(options.get_host());
    let (mode, root) = match tls {
        TlsMode::VerifyFull { root } => (Some(PgSslMode::VerifyFull), root.as_ref()),
        _ if !local => {
            return Err(Error::Config(
                "a PostgreSQL host that is not on this machine needs TlsMode::VerifyFull",
            ));
        }
        TlsMode::FromUrl => (None, None),
        TlsMode::Require => (Some(PgSslMode::Require), None),
        TlsMode::VerifyCa { root } => (Some(PgSslMode::VerifyCa), root.as_ref()),
    };
    let mut options = match mode {
        Some(mode) => options.ssl_mode(mode),
        None => options,
    };
    if let Some(root) = root {
        options = options.ssl_root_cert(root);
    }
    Ok(options)
}

/// A tenant pool (the runtime role's data pool). Its connections are cleaned at the start of
/// every transaction, in the `BEGIN` round trip ([`begin_statement`]), not when released: a reset
/// on release is a round trip of its own on every transaction (measured: 60-90 us of a ~300 us
/// point get on the development VM, `benches/README.md`), and behind PgBouncer in transaction
/// mode it would reach a server connection that is no longer ours.
pub(crate) async fn connect_pool(url: &str, config: &PgPoolConfig) -> Result<PgPool, Error> {
    let (options, pool) = pool_options(url, config, config.max_connections, Reset::AtBegin)?;
    pool.connect_with(options).await.map_err(Error::Database)
}

/// The admin pool: reset on release ([`SESSION_RESET`]), because an admin transaction does not
/// start with [`begin_statement`] (outside PgBouncer transaction mode, where the hook would reach
/// another client's server connection).
pub(crate) async fn connect_admin_pool(url: &str, config: &PgPoolConfig) -> Result<PgPool, Error> {
    let (options, pool) = pool_options(url, config, config.max_connections, Reset::OnRelease)?;
    pool.connect_with(options).await.map_err(Error::Database)
}

/// Connections of the pool that creates and changes wrapped keys. A pool of its own: a data
/// transaction that needs a new subject key holds its connection while the key is created and
/// committed, so with one shared pool, N concurrent first inserts on an N-connection pool each
/// waited for a connection none would release (until the acquire timeout). Key transactions
/// wait for nothing else, so two connections serve any number of data connections; connected
/// lazily, on the first key operation.
pub(crate) const KEY_POOL_CONNECTIONS: u32 = 2;

/// The key pool ([`KEY_POOL_CONNECTIONS`]), same server, role and TLS as the data pool; cleaned
/// at `BEGIN` like it.
pub(crate) fn connect_key_pool(url: &str, config: &PgPoolConfig) -> Result<PgPool, Error> {
    let (options, pool) = pool_options(url, config, KEY_POOL_CONNECTIONS, Reset::AtBegin)?;
    Ok(pool.connect_lazy_with(options))
}

/// Where a pool's connections are cleaned of what the previous user left in the session.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reset {
    /// In the `BEGIN` round trip of every transaction ([`begin_statement`]).
    AtBegin,
    /// By a release hook ([`SESSION_RESET`]), except in PgBouncer transaction mode.
    OnRelease,
}

fn pool_options(
    url: &str,
    config: &PgPoolConfig,
    max_connections: u32,
    reset: Reset,
) -> Result<(PgConnectOptions, PgPoolOptions), Error> {
    let mut options = connect_options(url, &config.tls)?;
    let mut pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(config.acquire_timeout);
    if config.pgbouncer_transaction_mode {
        options = options.statement_cache_capacity(0);
    } else if reset == Reset::OnRelease {
        pool = pool.after_release(|conn, _meta| {
            Box::pin(async move {
                conn.execute(SESSION_RESET).await?;
                Ok(true)
            })
        });
    }
    Ok((options, pool))
}

/// What cleans a session before the next user. `CLOSE ALL`: a cursor declared `WITH HOLD` in
/// A's transaction keeps A's rows, materialised at commit, in the session after the transaction
/// ends, where B's next transaction on the pooled connection could fetch them
/// (`raw_sql::a_holdable_cursor_does_not_outlive_its_tenant`). `RESET ALL`: session settings (a
/// `statement_timeout`, a `search_path`, a tenant token set for the session) set by raw SQL. Not
/// `DISCARD ALL`, which would also drop the server-side prepared statements sqlx keeps cached.
pub(crate) const SESSION_RESET: &str = "CLOSE ALL; RESET ALL";

/// The reset, committed on its own, then `BEGIN` and the tenant context: one round trip.
///
/// The reset runs in a transaction of its own, committed before the tenant's `BEGIN` in the same
/// message, so raw SQL that ends the tenant's transaction early (`ROLLBACK`) cannot bring back
/// what the previous user of the connection left in the session: a `RESET ALL` inside the
/// tenant's transaction would be rolled back with it
/// (`pool_reuse::a_rollback_in_the_next_transaction_does_not_restore_the_last_session`). It is
/// an explicit `BEGIN ... COMMIT`: committing the implicit transaction of a multi-statement
/// message instead makes the server log "there is no transaction in progress" as a WARNING on
/// every transaction (seen in the server log, which `client_min_messages` does not reach).
///
/// `SET LOCAL` is the statement form of `set_config(name, value, true)`: local to the transaction,
/// never the session, gone at commit or rollback. It is used rather than `SELECT set_config(...)`
/// because a utility statement is not planned and returns no row (measured: ~33 µs less per
/// transaction on the development machine).
pub(crate) fn begin_statement(key: &ContextKey, tenant: TenantId) -> AssertSqlSafe<String> {
    // The token is hex digits only, so it cannot inject.
    let token = key.token(tenant);
    AssertSqlSafe(format!(
        "BEGIN; {SESSION_RESET}; COMMIT; BEGIN; SET LOCAL {TENANT_SETTING} = '{token}'"
    ))
}

/// Applies the library's migrations through the migrator login (`url`), then the DDL of
/// `tables`, all as the owner. Idempotent: safe to run on every deploy.
///
/// # Errors
///
/// Database or migration failures.
pub async fn migrate(
    url: &str,
    roles: &Roles,
    context_key: &ContextKey,
    tables: &[TableSpec],
) -> Result<(), Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .map_err(Error::Database)?;
    schema::migrator(roles)
        .run(&pool)
        .await
        .map_err(|e| Error::Database(e.into()))?;
    // sqlx creates its history table as the login it runs as; the owner owns every object of
    // the contract, so a leaked migrator password cannot rewrite the history unnoticed by boot.
    sqlx::query(AssertSqlSafe(format!(
        "ALTER TABLE {}._sqlx_migrations OWNER TO {}",
        crate::contract::LIBRARY_SCHEMA,
        roles.owner()
    )))
    .execute(&pool)
    .await
    .map_err(Error::Database)?;
    // The context key, as the database's HMAC pads; replaced if it changed (every runtime pool
    // must then be given the new key).
    let (ipad, opad) = context_key.pads();
    let mut tx = pool.begin().await.map_err(Error::Database)?;
    sqlx::query(AssertSqlSafe(format!("SET LOCAL ROLE {}", roles.owner())))
        .execute(&mut *tx)
        .await
        .map_err(Error::Database)?;
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {}.context_key (k_ipad, k_opad) VALUES ($1, $2) \
         ON CONFLICT (one) DO UPDATE SET k_ipad = excluded.k_ipad, k_opad = excluded.k_opad",
        crate::contract::LIBRARY_SCHEMA
    )))
    .bind(ipad.as_slice())
    .bind(opad.as_slice())
    .execute(&mut *tx)
    .await
    .map_err(Error::Database)?;
    tx.commit().await.map_err(Error::Database)?;
    if !tables.is_empty() {
        let ddl = tables.iter().flat_map(|t| t.postgres_ddl(roles)).collect();
        let mut tx = pool.begin().await.map_err(Error::Database)?;
        sqlx::raw_sql(AssertSqlSafe(schema::owned_ddl(roles, ddl)))
            .execute(&mut *tx)
            .await
            .map_err(Error::Database)?;
        tx.commit().await.map_err(Error::Database)?;
    }
    pool.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reset is its own explicit transaction, committed before the tenant's `BEGIN`, and
    /// nothing else ends a transaction in the statement (an implicit transaction's `COMMIT`
    /// would log a warning on every transaction).
    #[test]
    fn the_begin_statement_commits_the_reset_before_the_tenant_transaction() {
        let key = ContextKey::from_bytes([3; 32]);
        let sql = begin_statement(&key, TenantId::generate()).0;
        let statements: Vec<&str> = sql.split(';').map(str::trim).collect();
        assert_eq!(
            statements[..5],
            ["BEGIN", "CLOSE ALL", "RESET ALL", "COMMIT", "BEGIN"]
        );
        assert!(statements[5].starts_with("SET LOCAL plenum.tenant_id = '"));
        assert_eq!(statements.len(), 6);
        assert_eq!(sql.matches("COMMIT").count(), 1);
    }
}
