//! Fresh PostgreSQL databases for tests, each with its own roles of the contract.
//!
//! The superuser URL (`PLENUM_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`) is used only to create and drop databases and
//! roles; tests then log in **as the contract's roles over their own connections**. A superuser
//! (or `SET ROLE` from one) would bypass row-level security and prove nothing.
//!
//! There is no skip: if the server cannot be reached, the test fails and says how to start it.

use std::str::FromStr as _;
use std::sync::atomic::{AtomicU32, Ordering};

use plenum_store::postgres::{ContextKey, PgPoolConfig, bootstrap_sql, migrate};
use plenum_store::{Roles, TableSpec, TenantPool};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Executor as _};

static COUNTER: AtomicU32 = AtomicU32::new(0);
static CLEANED: std::sync::Once = std::sync::Once::new();

/// The superuser URL tests use for set-up.
pub fn superuser_url() -> String {
    std::env::var("PLENUM_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A fresh database, bootstrapped and migrated, with its own roles.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// Database name (also the role prefix).
    pub name: String,
    /// The contract roles of this database.
    pub roles: Roles,
    /// The tenant-context key `migrate` installed in this database.
    pub context_key: ContextKey,
    host: String,
    port: u16,
}

impl TestDb {
    /// Creates the database and roles, bootstraps the contract and applies the library's
    /// migrations and `tables`, as the migrator.
    ///
    /// # Panics
    ///
    /// If PostgreSQL cannot be reached or set-up fails.
    pub async fn create(tables: &[TableSpec]) -> Self {
        let db = Self::create_empty().await;
        migrate(
            &db.url(&db.roles.migrator()),
            &db.roles,
            &db.context_key,
            tables,
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "migrating {}: {e} ({:?})",
                db.name,
                std::error::Error::source(&e)
            )
        });
        db
    }

    /// Creates and bootstraps the database and roles, without migrations.
    ///
    /// # Panics
    ///
    /// If PostgreSQL cannot be reached or set-up fails.
    pub async fn create_empty() -> Self {
        let url = superuser_url();
        let options =
            PgConnectOptions::from_str(&url).expect("PLENUM_TEST_DATABASE_URL is not a URL");
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot reach PostgreSQL at {url}: {e}. Database tests do not skip: start the \
                 server (pg_ctlcluster --skip-systemctl-redirect 15 main start) or set \
                 PLENUM_TEST_DATABASE_URL to a superuser URL"
                )
            });
        let pid = std::process::id();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mark = boot_mark();
        let name = format!("plenum_t_{}_{pid}_{n}", mark.as_deref().unwrap_or("x"));
        let first = !CLEANED.is_completed();
        CLEANED.call_once(|| {});
        if let (true, Some(mark)) = (first, &mark) {
            drop_leftovers(&admin, mark).await;
        }
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        admin.close().await;
        let db = Self {
            roles: Roles::with_prefix(&name).expect("valid prefix"),
            context_key: ContextKey::generate(),
            name,
            host: options.get_host().to_owned(),
            port: options.get_port(),
        };
        let su = db.superuser().await;
        for statement in bootstrap_sql(&db.roles, &db.name).expect("bootstrap sql") {
            su.execute(AssertSqlSafe(statement.clone()))
                .await
                .unwrap_or_else(|e| panic!("bootstrap: {statement}: {e}"));
        }
        su.close().await;
        db
    }

    /// A URL logging in as `role` to this database.
    pub fn url(&self, role: &str) -> String {
        if self.host.starts_with('/') {
            // A Unix socket's directory: libpq's query form, which sqlx reads too.
            return format!(
                "postgres://{role}@localhost/{}?host={}&port={}",
                self.name, self.host, self.port
            );
        }
        format!(
            "postgres://{role}@{}:{}/{}",
            self.host, self.port, self.name
        )
    }

    /// A superuser pool on this database, for fixtures and deliberate breaks only.
    pub async fn superuser(&self) -> PgPool {
        let options = PgConnectOptions::from_str(&superuser_url())
            .expect("PLENUM_TEST_DATABASE_URL is not a URL")
            .database(&self.name);
        PgPoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .unwrap_or_else(|e| panic!("superuser connection to {}: {e}", self.name))
    }

    /// A pool logged in as the owner's migrator: runs `statements` as the owner in one
    /// transaction (fixtures that need the owner, such as deliberate breaks of the contract).
    pub async fn as_owner(&self, statements: &[&str]) {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect(&self.url(&self.roles.migrator()))
            .await
            .unwrap_or_else(|e| panic!("migrator connection: {e}"));
        let mut tx = pool.begin().await.expect("begin");
        tx.execute(AssertSqlSafe(format!(
            "SET LOCAL ROLE {}",
            self.roles.owner()
        )))
        .await
        .expect("set role owner");
        for s in statements {
            tx.execute(AssertSqlSafe((*s).to_owned()))
                .await
                .unwrap_or_else(|e| panic!("as owner: {s}: {e}"));
        }
        tx.commit().await.expect("commit");
        pool.close().await;
    }

    /// Pool settings for this database's runtime role: `max_connections`, and the context key.
    pub fn pool_config(&self, max_connections: u32) -> PgPoolConfig {
        PgPoolConfig::with_max_connections(max_connections)
            .with_context_key(self.context_key.clone())
    }

    /// The runtime pool (the unprivileged app role).
    pub async fn app(&self, max_connections: u32) -> TenantPool {
        TenantPool::connect_postgres(
            &self.url(&self.roles.app()),
            &self.pool_config(max_connections),
        )
        .await
        .unwrap_or_else(|e| panic!("app pool: {e}"))
    }

    /// A raw sqlx pool logged in as `role` (no Plenum wrapper), for raw-SQL adversarial tests.
    pub async fn raw_pool(&self, role: &str, max_connections: u32) -> PgPool {
        PgPoolOptions::new()
            .max_connections(max_connections)
            .connect(&self.url(role))
            .await
            .unwrap_or_else(|e| panic!("{role} pool: {e}"))
    }
}

/// This machine boot's mark in the names of what its test processes create: the first eight hex
/// digits of the kernel's boot id. A process id says nothing about a process on another machine
/// sharing the server (or from before a reboot), so only names carrying this boot's mark are
/// judged by their process id. `None` where there is no boot id: then nothing is ever swept.
fn boot_mark() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let hex: String = id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(8)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (hex.len() == 8).then_some(hex)
}

/// Whether `name` (a database or role) was created by a test process of this boot (`mark`)
/// other than this one (`own`) that is no longer running (`alive` says which are).
fn is_stale(name: &str, mark: &str, own: u32, alive: impl Fn(u32) -> bool) -> bool {
    let pid = name
        .strip_prefix("plenum_t_")
        .and_then(|r| r.strip_prefix(mark))
        .and_then(|r| r.strip_prefix('_'))
        .and_then(|r| r.split('_').next())
        .and_then(|p| p.parse::<u32>().ok());
    pid.is_some_and(|pid| pid != own && !alive(pid))
}

/// Drops databases and roles left by earlier test processes of this machine's boot that are
/// no longer running; never anything another machine's tests created on a shared server.
async fn drop_leftovers(admin: &PgPool, mark: &str) {
    let stale = |name: &str| {
        is_stale(name, mark, std::process::id(), |pid| {
            std::path::Path::new(&format!("/proc/{pid}")).exists()
        })
    };
    let dbs: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'plenum\\_t\\_%'",
    )
    .fetch_all(admin)
    .await
    .unwrap_or_default();
    for db in dbs.iter().filter(|d| stale(d)) {
        let _ = admin
            .execute(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
            )))
            .await;
    }
    let roles: Vec<String> = sqlx::query_scalar(
        "SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'plenum\\_t\\_%' ORDER BY rolname DESC",
    )
    .fetch_all(admin)
    .await
    .unwrap_or_default();
    for role in roles.iter().filter(|r| stale(r)) {
        let _ = admin
            .execute(AssertSqlSafe(format!("DROP ROLE IF EXISTS {role}")))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use super::{ContextKey, PgConnectOptions, Roles, TestDb, is_stale};

    fn db_on(host: &str) -> TestDb {
        TestDb {
            name: "plenum_t_0a1b2c3d_1_0".to_owned(),
            roles: Roles::with_prefix("plenum_t_0a1b2c3d_1_0").expect("valid prefix"),
            context_key: ContextKey::generate(),
            host: host.to_owned(),
            port: 5433,
        }
    }

    #[test]
    fn role_urls_keep_a_unix_socket_and_a_tcp_host() {
        let socket = PgConnectOptions::from_str(&db_on("/var/run/postgresql").url("app"))
            .expect("a socket URL parses");
        assert_eq!(
            socket.get_socket().and_then(|p| p.to_str()),
            Some("/var/run/postgresql")
        );
        assert_eq!(socket.get_port(), 5433);
        assert_eq!(socket.get_database(), Some("plenum_t_0a1b2c3d_1_0"));
        assert_eq!(socket.get_username(), "app");
        let tcp =
            PgConnectOptions::from_str(&db_on("127.0.0.1").url("app")).expect("a TCP URL parses");
        assert_eq!((tcp.get_host(), tcp.get_socket()), ("127.0.0.1", None));
        assert_eq!(tcp.get_port(), 5433);
    }

    #[test]
    fn only_this_boots_dead_processes_are_stale() {
        let alive = |pid: u32| pid == 200;
        // Ours, of a dead process: swept.
        assert!(is_stale("plenum_t_0a1b2c3d_100_0", "0a1b2c3d", 1, alive));
        assert!(is_stale(
            "plenum_t_0a1b2c3d_100_0_owner",
            "0a1b2c3d",
            1,
            alive
        ));
        // Of a live process, or of this one: kept.
        assert!(!is_stale("plenum_t_0a1b2c3d_200_0", "0a1b2c3d", 1, alive));
        assert!(!is_stale("plenum_t_0a1b2c3d_1_0", "0a1b2c3d", 1, alive));
        // Another machine's (or another boot's) on a shared server, whatever its process id
        // means here: kept. So are names without a mark, and anything else.
        assert!(!is_stale("plenum_t_ffffffff_100_0", "0a1b2c3d", 1, alive));
        assert!(!is_stale("plenum_t_100_0", "0a1b2c3d", 1, alive));
        assert!(!is_stale("plenum_t_x_100_0", "0a1b2c3d", 1, alive));
        assert!(!is_stale("someone_else", "0a1b2c3d", 1, alive));
    }
}
