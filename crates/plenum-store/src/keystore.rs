//! Wrapped keys in the database, under the same tenant boundary as the data they protect.

use core::fmt;

use plenum_core::{SubjectId, TenantId};
use plenum_crypto::{BoxFuture, KeyRef, KeyScope, KeyState, KeyStore, StoredKey, WrappedKey};
use uuid::Uuid;

use crate::error::Error;
use crate::record::Value;
#[cfg(feature = "postgres")]
use crate::sql::Array;
use crate::sql::{self, Conn, Dialect};
use crate::table::SqlType;
use crate::tx::{TenantPool, TenantTx};

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

fn scope_columns(scope: &KeyScope) -> (i64, Uuid) {
    match scope {
        KeyScope::TenantData => (1, Uuid::nil()),
        KeyScope::TenantIndex => (2, Uuid::nil()),
        KeyScope::Subject(s) => (3, *s.as_uuid()),
        KeyScope::SubjectWrap => (4, Uuid::nil()),
    }
}

fn store_err(e: Error) -> plenum_crypto::Error {
    plenum_crypto::Error::Store(Box::new(e))
}

fn db(e: sqlx::Error) -> Error {
    Error::from_sqlx(e, "plenum.keys")
}

fn uuid(v: Uuid) -> (SqlType, Value) {
    (SqlType::Uuid, Value::Uuid(v))
}

fn int(v: i64) -> (SqlType, Value) {
    (SqlType::BigInt, Value::BigInt(v))
}

fn version_column(version: u32) -> Result<i64, Error> {
    i32::try_from(version)
        .map(i64::from)
        .map_err(|_| Error::Config("key version out of range"))
}

/// The columns every key statement reads, in this order.
const KEY_COLUMNS: &str = "tenant_id, subject_id, version, state, wrapped";
const KEY_TYPES: [SqlType; 5] = [
    SqlType::Uuid,
    SqlType::Uuid,
    SqlType::Int,
    SqlType::Text,
    SqlType::Bytes,
];

/// A key row ([`KEY_COLUMNS`]) as a stored key of `tenant`: the row's tenant checked, the scope
/// taken from `scope` or, for subject keys, from the row's subject.
fn to_stored(
    tenant: TenantId,
    scope: Option<KeyScope>,
    row: Vec<Value>,
) -> Result<StoredKey, Error> {
    let unreadable = || Error::Config("unreadable row in plenum.keys");
    let mut row = row.into_iter();
    let (
        Some(Value::Uuid(t)),
        Some(Value::Uuid(subject)),
        Some(Value::BigInt(version)),
        Some(Value::Text(state)),
        Some(wrapped),
    ) = (row.next(), row.next(), row.next(), row.next(), row.next())
    else {
        return Err(unreadable());
    };
    crate::tx::check_tenant(tenant, t, "plenum.keys")?;
    let version =
        u32::try_from(version).map_err(|_| Error::Config("stored key version out of range"))?;
    let state = KeyState::parse(&state).ok_or(Error::Config("unknown key state in plenum.keys"))?;
    let wrapped = match wrapped {
        Value::Bytes(b) => Some(WrappedKey::from_bytes(b)),
        Value::Null => None,
        _ => return Err(unreadable()),
    };
    Ok(StoredKey {
        key_ref: KeyRef {
            tenant,
            scope: scope.unwrap_or(KeyScope::Subject(SubjectId::from_trusted_uuid(subject))),
            version,
        },
        state,
        wrapped,
    })
}

fn to_stored_all(
    tenant: TenantId,
    scope: Option<KeyScope>,
    rows: Vec<Vec<Value>>,
) -> Result<Vec<StoredKey>, Error> {
    rows.into_iter()
        .map(|r| to_stored(tenant, scope, r))
        .collect()
}

/// Every stored version of one scope (or one version of it).
async fn select(
    tx: &mut TenantTx,
    scope: KeyScope,
    version: Option<u32>,
) -> Result<Vec<StoredKey>, Error> {
    let tenant = tx.tenant();
    let d = Dialect::of(tx);
    let (kind, subject) = scope_columns(&scope);
    let mut binds = vec![uuid(*tenant.as_uuid()), int(kind), uuid(subject)];
    let mut statement = format!(
        "SELECT {KEY_COLUMNS} FROM {} WHERE tenant_id = {} AND scope = {} AND subject_id = {}",
        d.library("keys"),
        d.p(1),
        d.p(2),
        d.p(3)
    );
    if let Some(v) = version {
        binds.push(int(version_column(v)?));
        statement.push_str(&format!(" AND version = {}", d.p(4)));
    }
    let rows = sql::fetch(Conn::of(tx)?, &statement, &binds, &KEY_TYPES)
        .await
        .map_err(db)?;
    to_stored_all(tenant, Some(scope), rows)
}

/// Adds `seals` to `key`'s count (a tenant scope) and returns the total: one statement.
async fn add_usage(tx: &mut TenantTx, key: KeyRef, seals: u64) -> Result<u64, Error> {
    let (scope, _) = scope_columns(&key.scope);
    let d = Dialect::of(tx);
    // PostgreSQL names the existing row by the table's alias; SQLite by the bare column.
    let (table, existing) = match d {
        Dialect::Postgres => (format!("{} AS u", d.library("key_usage")), "u.seals"),
        _ => (d.library("key_usage"), "seals"),
    };
    let statement = format!(
        "INSERT INTO {table} (tenant_id, scope, version, seals) VALUES ({}) \
         ON CONFLICT (tenant_id, scope, version) DO UPDATE SET seals = {existing} + excluded.seals \
         RETURNING seals",
        d.params(4)
    );
    let binds = [
        uuid(*tx.tenant().as_uuid()),
        int(scope),
        int(version_column(key.version)?),
        int(i64::try_from(seals).unwrap_or(i64::MAX)),
    ];
    let rows = sql::fetch(Conn::of(tx)?, &statement, &binds, &[SqlType::BigInt])
        .await
        .map_err(|e| Error::from_sqlx(e, "plenum.key_usage"))?;
    match rows.first().and_then(|r| r.first()) {
        Some(Value::BigInt(n)) => Ok(u64::try_from(*n).unwrap_or(0)),
        _ => Err(Error::Config("the key usage count did not come back")),
    }
}

/// The subject keys of `subjects`: one statement on PostgreSQL, one cheap in-process query per
/// subject on SQLite.
async fn select_subjects(
    tx: &mut TenantTx,
    subjects: &[SubjectId],
) -> Result<Vec<StoredKey>, Error> {
    let tenant = tx.tenant();
    let rows = sql::fetch_per_subject(
        tx,
        "keys",
        KEY_COLUMNS,
        "scope = 3",
        "",
        subjects,
        &KEY_TYPES,
        "plenum.keys",
    )
    .await?;
    to_stored_all(tenant, None, rows)
}

/// The binds of one key row: tenant, scope, subject, version, state, wrapped material.
fn key_binds(key: &StoredKey) -> Result<Vec<(SqlType, Value)>, Error> {
    let (kind, subject) = scope_columns(&key.key_ref.scope);
    Ok(vec![
        uuid(*key.key_ref.tenant.as_uuid()),
        int(kind),
        uuid(subject),
        int(version_column(key.key_ref.version)?),
        (SqlType::Text, Value::Text(key.state.as_str().to_owned())),
        (
            SqlType::Bytes,
            key.wrapped
                .as_ref()
                .map_or(Value::Null, |w| Value::Bytes(w.as_bytes().to_vec())),
        ),
    ])
}

/// Inserts one key unless that version exists (another writer stored it first).
async fn insert_one(tx: &mut TenantTx, key: &StoredKey) -> Result<(), Error> {
    let d = Dialect::of(tx);
    let statement = format!(
        "INSERT INTO {} (tenant_id, scope, subject_id, version, state, wrapped) \
         VALUES ({}) ON CONFLICT DO NOTHING",
        d.library("keys"),
        d.params(6)
    );
    sql::execute(Conn::of(tx)?, &statement, &key_binds(key)?)
        .await
        .map_err(db)?;
    Ok(())
}

/// Sets a stored version's state and wrapped material; returns the rows affected.
async fn update_one(tx: &mut TenantTx, key: &StoredKey) -> Result<u64, Error> {
    let d = Dialect::of(tx);
    let now = match d {
        Dialect::Postgres => "now()",
        Dialect::Sqlite => "datetime('now')",
    };
    let statement = format!(
        "UPDATE {} SET state = {}, wrapped = {}, updated_at = {now} \
         WHERE tenant_id = {} AND scope = {} AND subject_id = {} AND version = {}",
        d.library("keys"),
        d.p(5),
        d.p(6),
        d.p(1),
        d.p(2),
        d.p(3),
        d.p(4)
    );
    sql::execute(Conn::of(tx)?, &statement, &key_binds(key)?)
        .await
        .map_err(db)
}

impl DbKeyStore {
    /// Runs `work` in a short key transaction of `tenant` and commits it.
    async fn in_own_tx<T>(
        &self,
        tenant: TenantId,
        work: impl AsyncFnOnce(&mut TenantTx) -> Result<T, Error>,
    ) -> Result<T, plenum_crypto::Error> {
        let mut tx = self.pool.begin_keys(tenant).await.map_err(store_err)?;
        let out = work(&mut tx).await.map_err(store_err)?;
        tx.commit().await.map_err(store_err)?;
        Ok(out)
    }
}

/// Every version of the subject keys of up to `limit` subjects after `after`, by subject id
/// (uuid order on PostgreSQL, byte order on SQLite: the same order as `SubjectId`'s).
async fn select_subject_page(
    tx: &mut TenantTx,
    after: Option<SubjectId>,
    limit: usize,
) -> Result<Vec<StoredKey>, Error> {
    let tenant = tx.tenant();
    let d = Dialect::of(tx);
    let keys = d.library("keys");
    let after = after.map_or(Uuid::nil(), |s| *s.as_uuid());
    let limit = i64::try_from(limit).map_err(|_| Error::Config("page size out of range"))?;
    let statement = format!(
        "SELECT {KEY_COLUMNS} FROM {keys} WHERE tenant_id = {t} AND scope = 3 AND subject_id IN \
         (SELECT DISTINCT subject_id FROM {keys} WHERE tenant_id = {t} AND scope = 3 \
         AND subject_id > {a} ORDER BY subject_id LIMIT {l})",
        t = d.p(1),
        a = d.p(2),
        l = d.p(3),
    );
    let rows = sql::fetch(
        Conn::of(tx)?,
        &statement,
        &[uuid(*tenant.as_uuid()), uuid(after), int(limit)],
        &KEY_TYPES,
    )
    .await
    .map_err(db)?;
    to_stored_all(tenant, None, rows)
}

impl KeyStore for DbKeyStore {
    fn load_subject_page<'a>(
        &'a self,
        tenant: TenantId,
        after: Option<SubjectId>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredKey>, plenum_crypto::Error>> {
        Box::pin(self.in_own_tx(tenant, async move |tx| {
            select_subject_page(tx, after, limit).await
        }))
    }

    fn load<'a>(
        &'a self,
        tenant: TenantId,
        scope: KeyScope,
    ) -> BoxFuture<'a, Result<Vec<StoredKey>, plenum_crypto::Error>> {
        Box::pin(self.in_own_tx(tenant, async move |tx| select(tx, scope, None).await))
    }

    fn insert<'a>(
        &'a self,
        key: StoredKey,
    ) -> BoxFuture<'a, Result<StoredKey, plenum_crypto::Error>> {
        Box::pin(self.in_own_tx(key.key_ref.tenant, async move |tx| {
            insert_one(tx, &key).await?;
            // What is stored now: ours, or the version another writer stored first.
            select(tx, key.key_ref.scope, Some(key.key_ref.version))
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| Error::NotFound {
                    record_type: "plenum.keys".to_owned(),
                })
        }))
    }

    fn update<'a>(&'a self, key: StoredKey) -> BoxFuture<'a, Result<(), plenum_crypto::Error>> {
        Box::pin(async move {
            let KeyRef { scope, version, .. } = key.key_ref;
            let affected = self
                .in_own_tx(key.key_ref.tenant, async |tx| update_one(tx, &key).await)
                .await?;
            if affected == 0 {
                return Err(plenum_crypto::Error::KeyNotFound {
                    scope: scope.kind(),
                    version,
                });
            }
            Ok(())
        })
    }

    fn add_usage<'a>(
        &'a self,
        key: KeyRef,
        seals: u64,
    ) -> BoxFuture<'a, Result<u64, plenum_crypto::Error>> {
        Box::pin(self.in_own_tx(key.tenant, async move |tx| add_usage(tx, key, seals).await))
    }

    fn load_subjects<'a>(
        &'a self,
        tenant: TenantId,
        subjects: &'a [SubjectId],
    ) -> BoxFuture<'a, Result<Vec<StoredKey>, plenum_crypto::Error>> {
        Box::pin(self.in_own_tx(tenant, async move |tx| select_subjects(tx, subjects).await))
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
            self.in_own_tx(tenant, async |tx| {
                insert_subject_keys(tx, &keys, &subjects).await
            })
            .await
        })
    }
}

/// Inserts subject keys of one tenant, keeping any version another writer stored first, and
/// returns every stored version of those subjects. On PostgreSQL one statement inserts and
/// returns what it inserted; only subjects it did not insert (another writer's key was there,
/// rare) are read back, by a second statement whose snapshot sees that writer's commit.
async fn insert_subject_keys(
    tx: &mut TenantTx,
    keys: &[StoredKey],
    subjects: &[SubjectId],
) -> Result<Vec<StoredKey>, Error> {
    match Dialect::of(tx) {
        #[cfg(feature = "postgres")]
        Dialect::Postgres => {
            let tenant = tx.tenant();
            let mut columns: [Vec<Value>; 4] = Default::default();
            for k in keys {
                let mut binds = key_binds(k)?.into_iter().skip(2).map(|(_, v)| v);
                for column in &mut columns {
                    column.push(binds.next().unwrap_or(Value::Null));
                }
            }
            let [ids, versions, states, wrapped] = columns;
            let arrays = vec![
                Array::of(SqlType::Uuid, ids.into_iter()).map_err(db)?,
                Array::of(SqlType::BigInt, versions.into_iter()).map_err(db)?,
                Array::of(SqlType::Text, states.into_iter()).map_err(db)?,
                Array::of(SqlType::Bytes, wrapped.into_iter()).map_err(db)?,
            ];
            // No read of existing rows in the same statement: probing 1,000 subjects for rows
            // that are almost never there cost as much server time as the insert itself.
            let rows = sql::fetch_arrays(
                Conn::of(tx)?,
                "INSERT INTO plenum.keys (tenant_id, scope, subject_id, version, state, wrapped) \
                 SELECT $1, 3, s, v, st, w \
                 FROM unnest($2::uuid[], $3::int8[], $4::text[], $5::bytea[]) AS k(s, v, st, w) \
                 ON CONFLICT DO NOTHING \
                 RETURNING tenant_id, subject_id, version, state, wrapped",
                &[uuid(*tenant.as_uuid())],
                arrays,
                &KEY_TYPES,
            )
            .await
            .map_err(db)?;
            let mut stored = to_stored_all(tenant, None, rows)?;
            let inserted: std::collections::HashSet<SubjectId> = stored
                .iter()
                .filter_map(|k| match k.key_ref.scope {
                    KeyScope::Subject(s) => Some(s),
                    _ => None,
                })
                .collect();
            let others: Vec<SubjectId> = subjects
                .iter()
                .copied()
                .filter(|s| !inserted.contains(s))
                .collect();
            if !others.is_empty() {
                stored.extend(select_subjects(tx, &others).await?);
            }
            Ok(stored)
        }
        _ => {
            for k in keys {
                insert_one(tx, k).await?;
            }
            select_subjects(tx, subjects).await
        }
    }
}
