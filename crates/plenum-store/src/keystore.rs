//! Wrapped keys in the database, under the same tenant boundary as the data they protect.

use core::fmt;

use plenum_core::TenantId;
use plenum_crypto::{BoxFuture, KeyRef, KeyScope, KeyState, KeyStore, StoredKey, WrappedKey};
use uuid::Uuid;

use crate::error::Error;
use crate::tx::{BackendKind, TenantPool, TenantTx};

/// Runs one statement on whichever backend `tx` talks to: the SQL differs only in placeholder
/// style and table name, the binds and the call are written once.
macro_rules! on_backend {
    ($tx:expr, $ctor:expr, pg: $pg:literal, sqlite: $lite:literal, |$q:ident| $binds:expr, $call:ident) => {
        match $tx.backend() {
            #[cfg(feature = "postgres")]
            BackendKind::Postgres => {
                let $q = $ctor($pg);
                $binds.$call($tx.postgres_internal()?).await.map(Into::into)
            }
            #[cfg(feature = "sqlite")]
            BackendKind::Sqlite => {
                let $q = $ctor($lite);
                $binds.$call($tx.sqlite_internal()?).await.map(Into::into)
            }
            #[allow(
                unreachable_patterns,
                reason = "BackendKind is non_exhaustive across feature sets"
            )]
            _ => return Err(Error::Config("backend not compiled in")),
        }
    };
}

/// A [`KeyStore`] over the `plenum.keys` table (PostgreSQL, under RLS) or `plenum_keys` (SQLite).
///
/// Every operation runs in **its own** short tenant transaction and commits at once, never in
/// the caller's: a key created inside a data transaction that later rolled back would vanish from
/// the table while staying cached, and data sealed under it would become unreadable. Keys are
/// few and cached by the [`Keyring`](plenum_crypto::Keyring), so this costs a round trip or three
/// on the cold path only.
#[derive(Clone)]
pub struct DbKeyStore {
    pool: TenantPool,
}

impl fmt::Debug for DbKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbKeyStore")
            .field("backend", &self.pool.backend())
            .finish()
    }
}

impl DbKeyStore {
    /// A key store on `pool`'s database.
    pub fn new(pool: TenantPool) -> Self {
        Self { pool }
    }
}

fn scope_columns(scope: &KeyScope) -> (i16, Uuid) {
    match scope {
        KeyScope::TenantData => (1, Uuid::nil()),
        KeyScope::TenantIndex => (2, Uuid::nil()),
        KeyScope::Subject(s) => (3, *s.as_uuid()),
    }
}

fn store_err(e: Error) -> plenum_crypto::Error {
    plenum_crypto::Error::Store(Box::new(e))
}

type Row = (Uuid, i32, String, Option<Vec<u8>>);

/// Rows affected, from either backend's query result.
struct Done(u64);

#[cfg(feature = "postgres")]
impl From<sqlx::postgres::PgQueryResult> for Done {
    fn from(r: sqlx::postgres::PgQueryResult) -> Self {
        Self(r.rows_affected())
    }
}

#[cfg(feature = "sqlite")]
impl From<sqlx::sqlite::SqliteQueryResult> for Done {
    fn from(r: sqlx::sqlite::SqliteQueryResult) -> Self {
        Self(r.rows_affected())
    }
}

fn to_stored(
    tenant: TenantId,
    scope: KeyScope,
    (row_tenant, version, state, wrapped): Row,
) -> Result<StoredKey, Error> {
    crate::tx::check_tenant(tenant, row_tenant, "plenum.keys")?;
    let version =
        u32::try_from(version).map_err(|_| Error::Config("stored key version out of range"))?;
    let state = KeyState::parse(&state).ok_or(Error::Config("unknown key state in plenum.keys"))?;
    Ok(StoredKey {
        key_ref: KeyRef {
            tenant,
            scope,
            version,
        },
        state,
        wrapped: wrapped.map(WrappedKey::from_bytes),
    })
}

async fn select(
    tx: &mut TenantTx,
    tenant: TenantId,
    scope: KeyScope,
    version: Option<i32>,
) -> Result<Vec<Row>, Error> {
    let (kind, subject) = scope_columns(&scope);
    let rows: Vec<Row> = on_backend!(
        tx,
        sqlx::query_as::<_, Row>,
        pg: "SELECT tenant_id, version, state, wrapped FROM plenum.keys \
             WHERE tenant_id = $1 AND scope = $2 AND subject_id = $3 AND ($4::int IS NULL OR version = $4)",
        sqlite: "SELECT tenant_id, version, state, wrapped FROM plenum_keys \
                 WHERE tenant_id = ?1 AND scope = ?2 AND subject_id = ?3 AND (?4 IS NULL OR version = ?4)",
        |q| q.bind(tenant.as_uuid()).bind(kind).bind(subject).bind(version),
        fetch_all
    )?;
    Ok(rows)
}

impl KeyStore for DbKeyStore {
    fn load<'a>(
        &'a self,
        tenant: TenantId,
        scope: KeyScope,
    ) -> BoxFuture<'a, Result<Vec<StoredKey>, plenum_crypto::Error>> {
        Box::pin(async move {
            let mut tx = self.pool.begin(tenant).await.map_err(store_err)?;
            let rows = select(&mut tx, tenant, scope, None)
                .await
                .map_err(store_err)?;
            tx.commit().await.map_err(store_err)?;
            rows.into_iter()
                .map(|r| to_stored(tenant, scope, r).map_err(store_err))
                .collect()
        })
    }

    fn insert<'a>(
        &'a self,
        key: StoredKey,
    ) -> BoxFuture<'a, Result<StoredKey, plenum_crypto::Error>> {
        Box::pin(async move {
            let KeyRef {
                tenant,
                scope,
                version,
            } = key.key_ref;
            let (kind, subject) = scope_columns(&scope);
            let version = i32::try_from(version)
                .map_err(|_| store_err(Error::Config("key version out of range")))?;
            let wrapped = key.wrapped.as_ref().map(|w| w.as_bytes().to_vec());
            let mut tx = self.pool.begin(tenant).await.map_err(store_err)?;
            let result: Result<u64, Error> = async {
                let done: sqlx::Result<Done> = on_backend!(
                    tx,
                    sqlx::query,
                    pg: "INSERT INTO plenum.keys (tenant_id, scope, subject_id, version, state, wrapped) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    sqlite: "INSERT INTO plenum_keys (tenant_id, scope, subject_id, version, state, wrapped) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                    |q| q
                        .bind(tenant.as_uuid())
                        .bind(kind)
                        .bind(subject)
                        .bind(version)
                        .bind(key.state.as_str())
                        .bind(&wrapped),
                    execute
                );
                Ok(done?.0)
            }
            .await;
            result.map_err(store_err)?;
            let rows = select(&mut tx, tenant, scope, Some(version))
                .await
                .map_err(store_err)?;
            tx.commit().await.map_err(store_err)?;
            let row = rows.into_iter().next().ok_or_else(|| {
                store_err(Error::NotFound {
                    record_type: "plenum.keys".to_owned(),
                })
            })?;
            to_stored(tenant, scope, row).map_err(store_err)
        })
    }

    fn update<'a>(&'a self, key: StoredKey) -> BoxFuture<'a, Result<(), plenum_crypto::Error>> {
        Box::pin(async move {
            let KeyRef {
                tenant,
                scope,
                version,
            } = key.key_ref;
            let (kind, subject) = scope_columns(&scope);
            let v = i32::try_from(version)
                .map_err(|_| store_err(Error::Config("key version out of range")))?;
            let wrapped = key.wrapped.as_ref().map(|w| w.as_bytes().to_vec());
            let mut tx = self.pool.begin(tenant).await.map_err(store_err)?;
            let affected: Result<u64, Error> = async {
                let done: sqlx::Result<Done> = on_backend!(
                    tx,
                    sqlx::query,
                    pg: "UPDATE plenum.keys SET state = $5, wrapped = $6, updated_at = now() \
                         WHERE tenant_id = $1 AND scope = $2 AND subject_id = $3 AND version = $4",
                    sqlite: "UPDATE plenum_keys SET state = ?5, wrapped = ?6, updated_at = datetime('now') \
                             WHERE tenant_id = ?1 AND scope = ?2 AND subject_id = ?3 AND version = ?4",
                    |q| q
                        .bind(tenant.as_uuid())
                        .bind(kind)
                        .bind(subject)
                        .bind(v)
                        .bind(key.state.as_str())
                        .bind(&wrapped),
                    execute
                );
                Ok(done?.0)
            }
            .await;
            if affected.map_err(store_err)? == 0 {
                return Err(plenum_crypto::Error::KeyNotFound {
                    scope: scope.kind(),
                    version,
                });
            }
            tx.commit().await.map_err(store_err)
        })
    }
}
