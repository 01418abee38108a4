//! Wrapped keys in the database, under the same tenant boundary as the data they protect.

use core::fmt;

use plenum_core::{SubjectId, TenantId};
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

/// The subject keys of `subjects`, in one query on PostgreSQL (SQLite is in-process: one cheap
/// query per subject).
async fn select_subjects(
    tx: &mut TenantTx,
    tenant: TenantId,
    subjects: &[SubjectId],
) -> Result<Vec<StoredKey>, Error> {
    let rows: Vec<SubjectRow> = match tx.backend() {
        #[cfg(feature = "postgres")]
        BackendKind::Postgres => {
            let ids: Vec<Uuid> = subjects.iter().map(|s| *s.as_uuid()).collect();
            // One primary-key probe per subject: a LATERAL subquery kept from being flattened
            // into a join by `OFFSET 0`, so that no plan can do otherwise. `subject_id =
            // ANY($2)` had the generic plan scan every key of the tenant against the whole array (67 ms for 1,000 subjects of a 10,000-key
            // tenant), and a plain join against `unnest` got a nested loop with a join filter
            // (400 ms) whenever the statistics of a young table said the tenant had one key.
            sqlx::query_as(
                "SELECT k.tenant_id, k.subject_id, k.version, k.state, k.wrapped \
                 FROM unnest($2::uuid[]) AS s(id) \
                 CROSS JOIN LATERAL (SELECT * FROM plenum.keys \
                     WHERE tenant_id = $1 AND scope = 3 AND subject_id = s.id OFFSET 0) AS k",
            )
            .bind(tenant.as_uuid())
            .bind(&ids)
            .fetch_all(tx.postgres_internal()?)
            .await?
        }
        #[cfg(feature = "sqlite")]
        BackendKind::Sqlite => {
            let mut rows = Vec::new();
            for s in subjects {
                let mut some: Vec<SubjectRow> = sqlx::query_as(
                    "SELECT tenant_id, subject_id, version, state, wrapped FROM plenum_keys \
                     WHERE tenant_id = ?1 AND scope = 3 AND subject_id = ?2",
                )
                .bind(tenant.as_uuid())
                .bind(s.as_uuid())
                .fetch_all(tx.sqlite_internal()?)
                .await?;
                rows.append(&mut some);
            }
            rows
        }
        #[allow(
            unreachable_patterns,
            reason = "BackendKind is non_exhaustive across feature sets"
        )]
        _ => return Err(Error::Config("backend not compiled in")),
    };
    subject_keys(tenant, rows)
}

/// A subject key row: tenant, subject, version, state, wrapped material.
type SubjectRow = (Uuid, Uuid, i32, String, Option<Vec<u8>>);

fn subject_keys(tenant: TenantId, rows: Vec<SubjectRow>) -> Result<Vec<StoredKey>, Error> {
    rows.into_iter()
        .map(|(t, subject, version, state, wrapped)| {
            let scope = KeyScope::Subject(SubjectId::from_trusted_uuid(subject));
            to_stored(tenant, scope, (t, version, state, wrapped))
        })
        .collect()
}

impl KeyStore for DbKeyStore {
    fn load<'a>(
        &'a self,
        tenant: TenantId,
        scope: KeyScope,
    ) -> BoxFuture<'a, Result<Vec<StoredKey>, plenum_crypto::Error>> {
        Box::pin(async move {
            let mut tx = self.pool.begin_keys(tenant).await.map_err(store_err)?;
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
            let mut tx = self.pool.begin_keys(tenant).await.map_err(store_err)?;
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
            let mut tx = self.pool.begin_keys(tenant).await.map_err(store_err)?;
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

    fn load_subjects<'a>(
        &'a self,
        tenant: TenantId,
        subjects: &'a [SubjectId],
    ) -> BoxFuture<'a, Result<Vec<StoredKey>, plenum_crypto::Error>> {
        Box::pin(async move {
            let mut tx = self.pool.begin_keys(tenant).await.map_err(store_err)?;
            let keys = select_subjects(&mut tx, tenant, subjects)
                .await
                .map_err(store_err)?;
            tx.commit().await.map_err(store_err)?;
            Ok(keys)
        })
    }

    fn insert_many<'a>(
        &'a self,
        keys: Vec<StoredKey>,
    ) -> BoxFuture<'a, Result<Vec<StoredKey>, plenum_crypto::Error>> {
        Box::pin(async move {
            let Some(first) = keys.first() else {
                return Ok(Vec::new());
            };
            let tenant = first.key_ref.tenant;
            let mut subjects = Vec::with_capacity(keys.len());
            for k in &keys {
                match k.key_ref.scope {
                    KeyScope::Subject(s) if k.key_ref.tenant == tenant => subjects.push(s),
                    // Tenant keys are created one at a time; only subject keys come in bulk.
                    _ => {
                        let mut all = Vec::with_capacity(keys.len());
                        for k in keys {
                            all.push(self.insert(k).await?);
                        }
                        return Ok(all);
                    }
                }
            }
            let mut tx = self.pool.begin_keys(tenant).await.map_err(store_err)?;
            let stored = insert_subject_keys(&mut tx, tenant, &keys, &subjects)
                .await
                .map_err(store_err)?;
            tx.commit().await.map_err(store_err)?;
            Ok(stored)
        })
    }
}

/// Inserts subject keys of one tenant, keeping any version another writer stored first, and
/// returns every stored version of those subjects. One statement on PostgreSQL: the insert's
/// `RETURNING` gives the new rows, and the same statement's snapshot gives the rows that
/// existed before it.
async fn insert_subject_keys(
    tx: &mut TenantTx,
    tenant: TenantId,
    keys: &[StoredKey],
    subjects: &[SubjectId],
) -> Result<Vec<StoredKey>, Error> {
    let mut ids = Vec::with_capacity(keys.len());
    let mut versions = Vec::with_capacity(keys.len());
    let mut states = Vec::with_capacity(keys.len());
    let mut wrapped = Vec::with_capacity(keys.len());
    for k in keys {
        let (_, subject) = scope_columns(&k.key_ref.scope);
        ids.push(subject);
        versions.push(
            i32::try_from(k.key_ref.version)
                .map_err(|_| Error::Config("key version out of range"))?,
        );
        states.push(k.state.as_str());
        wrapped.push(k.wrapped.as_ref().map(|w| w.as_bytes().to_vec()));
    }
    match tx.backend() {
        #[cfg(feature = "postgres")]
        BackendKind::Postgres => {
            let rows: Vec<SubjectRow> = sqlx::query_as(
                "WITH new AS ( \
                     SELECT * FROM unnest($2::uuid[], $3::int[], $4::text[], $5::bytea[]) AS k(s, v, st, w) \
                 ), ins AS ( \
                     INSERT INTO plenum.keys (tenant_id, scope, subject_id, version, state, wrapped) \
                     SELECT $1, 3, s, v, st, w FROM new ON CONFLICT DO NOTHING \
                     RETURNING tenant_id, subject_id, version, state, wrapped \
                 ) \
                 SELECT tenant_id, subject_id, version, state, wrapped FROM ins \
                 UNION ALL \
                 SELECT k.tenant_id, k.subject_id, k.version, k.state, k.wrapped \
                 FROM (SELECT DISTINCT s FROM new) AS n \
                 CROSS JOIN LATERAL (SELECT * FROM plenum.keys \
                     WHERE tenant_id = $1 AND scope = 3 AND subject_id = n.s OFFSET 0) AS k",
            )
            .bind(tenant.as_uuid())
            .bind(&ids)
            .bind(&versions)
            .bind(&states)
            .bind(&wrapped)
            .fetch_all(tx.postgres_internal()?)
            .await?;
            subject_keys(tenant, rows)
        }
        #[cfg(feature = "sqlite")]
        BackendKind::Sqlite => {
            for (((subject, version), state), wrapped) in
                ids.iter().zip(&versions).zip(&states).zip(&wrapped)
            {
                sqlx::query(
                    "INSERT INTO plenum_keys (tenant_id, scope, subject_id, version, state, wrapped) \
                     VALUES (?1, 3, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                )
                .bind(tenant.as_uuid())
                .bind(subject)
                .bind(version)
                .bind(state)
                .bind(wrapped)
                .execute(tx.sqlite_internal()?)
                .await?;
            }
            select_subjects(tx, tenant, subjects).await
        }
        #[allow(
            unreachable_patterns,
            reason = "BackendKind is non_exhaustive across feature sets"
        )]
        _ => Err(Error::Config("backend not compiled in")),
    }
}
