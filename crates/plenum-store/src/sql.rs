//! The few statement shapes repositories run, over either backend, with values bound by their
//! declared SQL type. Every statement text is rendered from validated identifiers
//! ([`RecordType`](plenum_core::RecordType), [`FieldName`](plenum_core::FieldName)), never from
//! data; data only ever travels as bind parameters.

#[cfg(feature = "postgres")]
use chrono::{DateTime, Utc};
#[cfg(feature = "postgres")]
use uuid::Uuid;

use crate::error::Error;
use crate::record::Value;
pub(crate) use crate::table::Dialect;
use crate::table::SqlType;
use crate::tx::{BackendKind, TenantTx};

impl From<BackendKind> for Dialect {
    fn from(backend: BackendKind) -> Self {
        match backend {
            BackendKind::Postgres => Self::Postgres,
            BackendKind::Sqlite => Self::Sqlite,
        }
    }
}

impl Dialect {
    pub(crate) fn of(tx: &TenantTx) -> Self {
        tx.backend().into()
    }

    /// The placeholders `1..=n`, comma-separated: a `VALUES (...)` list.
    pub(crate) fn params(self, n: usize) -> String {
        (1..=n).map(|i| self.p(i)).collect::<Vec<_>>().join(", ")
    }

    /// The `n`th (1-based) bind placeholder.
    pub(crate) fn p(self, n: usize) -> String {
        match self {
            Self::Postgres => format!("${n}"),
            Self::Sqlite => format!("?{n}"),
        }
    }
}

/// A transaction's connection.
pub(crate) enum Conn<'a> {
    #[cfg(feature = "postgres")]
    Pg(&'a mut sqlx::PgConnection),
    #[cfg(feature = "sqlite")]
    Lite(&'a mut sqlx::SqliteConnection),
}

impl<'a> Conn<'a> {
    pub(crate) fn of(tx: &'a mut TenantTx) -> Result<Self, Error> {
        match tx.backend() {
            #[cfg(feature = "postgres")]
            BackendKind::Postgres => Ok(Self::Pg(tx.postgres_internal()?)),
            #[cfg(feature = "sqlite")]
            BackendKind::Sqlite => Ok(Self::Lite(tx.sqlite_internal()?)),
            #[allow(
                unreachable_patterns,
                reason = "BackendKind is non_exhaustive across feature sets"
            )]
            _ => Err(Error::Config("backend not compiled in")),
        }
    }
}

/// The statement text as sqlx takes it. Safe by construction: see the module documentation.
/// Every data statement the crate runs passes through here, which is where the statement log
/// (for the statement-shape test of `docs/scaling.md`) records it.
fn text(statement: &str) -> sqlx::AssertSqlSafe<String> {
    #[cfg(feature = "statement-log")]
    statement_log::record(statement);
    sqlx::AssertSqlSafe(statement.to_owned())
}

/// Every distinct statement text this crate has run, for the library's own tests: they check
/// that each is router-executable on a database sharded by `tenant_id` (`docs/scaling.md`).
/// Only with the `statement-log` feature, which a service never enables.
#[cfg(feature = "statement-log")]
pub mod statement_log {
    use std::collections::BTreeSet;
    use std::sync::Mutex;

    static LOG: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

    pub(super) fn record(statement: &str) {
        let mut log = LOG
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !log.contains(statement) {
            log.insert(statement.to_owned());
        }
    }

    /// The distinct statements run so far, in text order.
    pub fn statements() -> Vec<String> {
        LOG.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }
}

/// `INSERT` of many rows: on PostgreSQL one statement over `unnest` arrays (the tenant bound
/// once as a scalar), on SQLite one prepared row statement run per row in-process.
pub(crate) fn insert_statement(
    d: Dialect,
    table: &str,
    columns: &[String],
    types: &[SqlType],
) -> String {
    let cols = columns.join(", ");
    match d {
        Dialect::Postgres => {
            let arrays: Vec<String> = types
                .iter()
                .enumerate()
                .skip(1)
                .map(|(i, ty)| format!("${}::{}[]", i + 1, d.ty(*ty)))
                .collect();
            format!(
                "INSERT INTO {table} ({cols}) SELECT $1::uuid, u.* FROM unnest({}) AS u",
                arrays.join(", ")
            )
        }
        Dialect::Sqlite => {
            format!(
                "INSERT INTO {table} ({cols}) VALUES ({})",
                d.params(columns.len())
            )
        }
    }
}

/// `select` restricted to the tenant and to rows whose `column` is one of `candidates`.
pub(crate) fn any_of(
    d: Dialect,
    select: &str,
    column: &str,
    tenant: (SqlType, Value),
    candidates: Vec<Vec<u8>>,
) -> (String, Vec<(SqlType, Value)>) {
    let mut binds = vec![tenant];
    let mut params = Vec::with_capacity(candidates.len());
    for c in candidates {
        binds.push((SqlType::Bytes, Value::Bytes(c)));
        params.push(d.p(binds.len()));
    }
    if params.is_empty() {
        params.push("NULL".to_owned());
    }
    (
        format!(
            "{select} WHERE tenant_id = {} AND {column} IN ({})",
            d.p(1),
            params.join(", ")
        ),
        binds,
    )
}

pub(crate) async fn fetch(
    conn: Conn<'_>,
    statement: &str,
    binds: &[(SqlType, Value)],
    out: &[SqlType],
) -> Result<Vec<Vec<Value>>, sqlx::Error> {
    match conn {
        #[cfg(feature = "postgres")]
        Conn::Pg(c) => {
            let rows = pg::bind_all(sqlx::query(text(statement)), binds)
                .fetch_all(&mut *c)
                .await?;
            rows.iter().map(|r| pg::decode_row(r, out)).collect()
        }
        #[cfg(feature = "sqlite")]
        Conn::Lite(c) => {
            let rows = lite::bind_all(sqlx::query(text(statement)), binds)
                .fetch_all(&mut *c)
                .await?;
            rows.iter().map(|r| lite::decode_row(r, out)).collect()
        }
    }
}

/// [`fetch`], row by row: a row that does not decode into `out` is `Err` with its first
/// `head` columns if those decode (a table's `tenant_id, id`), so the caller can name it and
/// return the others. The statement itself failing is the outer error.
pub(crate) async fn fetch_each(
    conn: Conn<'_>,
    statement: &str,
    binds: &[(SqlType, Value)],
    out: &[SqlType],
    head: usize,
) -> Result<Vec<Result<Vec<Value>, Option<Vec<Value>>>>, sqlx::Error> {
    let head_types = out.get(..head).unwrap_or(out);
    match conn {
        #[cfg(feature = "postgres")]
        Conn::Pg(c) => {
            let rows = pg::bind_all(sqlx::query(text(statement)), binds)
                .fetch_all(&mut *c)
                .await?;
            Ok(rows
                .iter()
                .map(|r| pg::decode_row(r, out).map_err(|_| pg::decode_row(r, head_types).ok()))
                .collect())
        }
        #[cfg(feature = "sqlite")]
        Conn::Lite(c) => {
            let rows = lite::bind_all(sqlx::query(text(statement)), binds)
                .fetch_all(&mut *c)
                .await?;
            Ok(rows
                .iter()
                .map(|r| lite::decode_row(r, out).map_err(|_| lite::decode_row(r, head_types).ok()))
                .collect())
        }
    }
}

pub(crate) async fn execute(
    conn: Conn<'_>,
    statement: &str,
    binds: &[(SqlType, Value)],
) -> Result<u64, sqlx::Error> {
    match conn {
        #[cfg(feature = "postgres")]
        Conn::Pg(c) => Ok(pg::bind_all(sqlx::query(text(statement)), binds)
            .execute(&mut *c)
            .await?
            .rows_affected()),
        #[cfg(feature = "sqlite")]
        Conn::Lite(c) => Ok(lite::bind_all(sqlx::query(text(statement)), binds)
            .execute(&mut *c)
            .await?
            .rows_affected()),
    }
}

/// Inserts rows of `types` with `statement` from [`insert_statement`]: on PostgreSQL one
/// statement binding the tenant once and every other column as a typed array, on SQLite one
/// prepared statement run per row.
pub(crate) async fn insert_rows(
    conn: Conn<'_>,
    statement: &str,
    types: &[SqlType],
    rows: Vec<Vec<Value>>,
) -> Result<(), sqlx::Error> {
    match conn {
        #[cfg(feature = "postgres")]
        Conn::Pg(_) => {
            let Some(tenant) = rows.first().and_then(|r| r.first()).cloned() else {
                return Ok(());
            };
            let mut columns: Vec<Array> = types
                .iter()
                .skip(1)
                .map(|t| Array(Column::new(*t, rows.len())))
                .collect();
            for row in rows {
                for (col, value) in columns.iter_mut().zip(row.into_iter().skip(1)) {
                    col.0.push(value)?;
                }
            }
            fetch_arrays(conn, statement, &[(SqlType::Uuid, tenant)], columns, &[]).await?;
            Ok(())
        }
        #[cfg(feature = "sqlite")]
        Conn::Lite(c) => {
            for row in rows {
                let binds: Vec<(SqlType, Value)> = types.iter().copied().zip(row).collect();
                lite::bind_all(sqlx::query(text(statement)), &binds)
                    .execute(&mut *c)
                    .await?;
            }
            Ok(())
        }
    }
}

/// A typed array bind for PostgreSQL (`$n::<type>[]`, usually under `unnest`): how the
/// library sends a batch or a page of keys in one statement.
#[cfg(feature = "postgres")]
pub(crate) struct Array(Column);

#[cfg(feature = "postgres")]
impl Array {
    /// An array of `ty` holding `values` (each of that type, or NULL).
    pub(crate) fn of(
        ty: SqlType,
        values: impl ExactSizeIterator<Item = Value>,
    ) -> Result<Self, sqlx::Error> {
        let mut column = Column::new(ty, values.len());
        for v in values {
            column.push(v)?;
        }
        Ok(Self(column))
    }
}

/// [`fetch`] on PostgreSQL with the scalar binds first and then the arrays.
#[cfg(feature = "postgres")]
pub(crate) async fn fetch_arrays(
    conn: Conn<'_>,
    statement: &str,
    scalars: &[(SqlType, Value)],
    arrays: Vec<Array>,
    out: &[SqlType],
) -> Result<Vec<Vec<Value>>, sqlx::Error> {
    #[allow(
        irrefutable_let_patterns,
        reason = "Conn has one variant when only PostgreSQL is compiled in"
    )]
    let Conn::Pg(c) = conn else {
        return Err(sqlx::Error::Protocol("array binds need PostgreSQL".into()));
    };
    let mut q = pg::bind_all(sqlx::query(text(statement)), scalars);
    for a in arrays {
        q = a.0.bind(q);
    }
    let rows = q.fetch_all(&mut *c).await?;
    rows.iter().map(|r| pg::decode_row(r, out)).collect()
}

/// The rows of a library table (`Dialect::library(table)`) that belong to `subjects` in the
/// transaction's tenant: `SELECT columns ... WHERE tenant_id AND subject_id [AND filter]
/// [ORDER BY order]`, one index probe per subject. On PostgreSQL that is one statement, each
/// probe a `LATERAL` subquery kept from being flattened by `OFFSET 0`: `subject_id = ANY($2)`
/// had the generic plan scan every row of the tenant against the whole array (67 ms for 1,000
/// subjects of a 10,000-key tenant), and a plain join against `unnest` got a nested loop with a
/// join filter (400 ms) whenever the statistics of a young table said the tenant had one row.
/// The order is applied once to the rows found, not inside each probe: a sort set up per probe
/// cost ~1.3 us per subject even when it found nothing (a 500-subject consent screen 1.10 ms of
/// server time, 0.45 ms with one sort). On SQLite (in-process) it is one cheap query per subject.
/// `filter` and `order` are SQL written by the library, never data; database errors are
/// classified for `what`.
#[allow(
    clippy::too_many_arguments,
    reason = "a statement shape: table, columns, filter, order, subjects, types, error label"
)]
pub(crate) async fn fetch_per_subject(
    tx: &mut TenantTx,
    table: &str,
    columns: &str,
    filter: &str,
    order: &str,
    subjects: &[plenum_core::SubjectId],
    out: &[SqlType],
    what: &str,
) -> Result<Vec<Vec<Value>>, Error> {
    let db = |e| Error::from_sqlx(e, what);
    let d = Dialect::of(tx);
    let tenant = (SqlType::Uuid, Value::Uuid(*tx.tenant().as_uuid()));
    let table = d.library(table);
    let filter = if filter.is_empty() {
        String::new()
    } else {
        format!(" AND {filter}")
    };
    let order = if order.is_empty() {
        String::new()
    } else {
        format!(" ORDER BY {order}")
    };
    let conn = Conn::of(tx)?;
    match conn {
        #[cfg(feature = "postgres")]
        Conn::Pg(_) => {
            let ids = Array::of(
                SqlType::Uuid,
                subjects.iter().map(|s| Value::Uuid(*s.as_uuid())),
            )
            .map_err(db)?;
            // Whole rows from the probes, so that `columns` and `order` name the table's
            // columns once, outside.
            let statement = format!(
                "SELECT {columns} FROM (SELECT r.* FROM unnest($2::uuid[]) AS s(id) \
                 CROSS JOIN LATERAL (SELECT * FROM {table} \
                     WHERE tenant_id = $1 AND subject_id = s.id{filter} OFFSET 0) AS r) AS r{order}"
            );
            fetch_arrays(conn, &statement, &[tenant], vec![ids], out)
                .await
                .map_err(db)
        }
        #[cfg(feature = "sqlite")]
        Conn::Lite(c) => {
            let statement = format!(
                "SELECT {columns} FROM {table} WHERE tenant_id = ?1 AND subject_id = ?2{filter}{order}"
            );
            let mut rows = Vec::new();
            for s in subjects {
                let binds = [tenant.clone(), (SqlType::Uuid, Value::Uuid(*s.as_uuid()))];
                rows.extend(
                    fetch(Conn::Lite(&mut *c), &statement, &binds, out)
                        .await
                        .map_err(db)?,
                );
            }
            Ok(rows)
        }
    }
}

#[cfg(feature = "postgres")]
fn mismatch() -> sqlx::Error {
    sqlx::Error::Encode("a value does not match its column's declared type".into())
}

/// One column of a batch, as the typed array PostgreSQL's `unnest` takes.
#[cfg(feature = "postgres")]
enum Column {
    Uuid(Vec<Option<Uuid>>),
    Text(Vec<Option<String>>),
    Bytes(Vec<Option<Vec<u8>>>),
    BigInt(Vec<Option<i64>>),
    Bool(Vec<Option<bool>>),
    Timestamp(Vec<Option<DateTime<Utc>>>),
}

#[cfg(feature = "postgres")]
impl Column {
    fn new(ty: SqlType, n: usize) -> Self {
        match ty {
            SqlType::Uuid => Self::Uuid(Vec::with_capacity(n)),
            SqlType::Text => Self::Text(Vec::with_capacity(n)),
            SqlType::Bytes => Self::Bytes(Vec::with_capacity(n)),
            SqlType::BigInt | SqlType::Int => Self::BigInt(Vec::with_capacity(n)),
            SqlType::Bool => Self::Bool(Vec::with_capacity(n)),
            SqlType::Timestamp => Self::Timestamp(Vec::with_capacity(n)),
        }
    }

    fn push(&mut self, v: Value) -> Result<(), sqlx::Error> {
        match (self, v) {
            (Self::Uuid(c), Value::Uuid(x)) => c.push(Some(x)),
            (Self::Text(c), Value::Text(x)) => c.push(Some(x)),
            (Self::Bytes(c), Value::Bytes(x)) => c.push(Some(x)),
            (Self::BigInt(c), Value::BigInt(x)) => c.push(Some(x)),
            (Self::Bool(c), Value::Bool(x)) => c.push(Some(x)),
            (Self::Timestamp(c), Value::Timestamp(x)) => c.push(Some(x)),
            (Self::Uuid(c), Value::Null) => c.push(None),
            (Self::Text(c), Value::Null) => c.push(None),
            (Self::Bytes(c), Value::Null) => c.push(None),
            (Self::BigInt(c), Value::Null) => c.push(None),
            (Self::Bool(c), Value::Null) => c.push(None),
            (Self::Timestamp(c), Value::Null) => c.push(None),
            _ => return Err(mismatch()),
        }
        Ok(())
    }

    fn bind(self, q: pg::Query<'_>) -> pg::Query<'_> {
        match self {
            Self::Uuid(c) => q.bind(c),
            Self::Text(c) => q.bind(c),
            Self::Bytes(c) => q.bind(c),
            Self::BigInt(c) => q.bind(c),
            Self::Bool(c) => q.bind(c),
            Self::Timestamp(c) => q.bind(c),
        }
    }
}

/// Binding and decoding, written once per backend (sqlx's types differ, the logic does not).
macro_rules! backend_codec {
    ($module:ident, $feature:literal, $db:ty, $args:ty, $row:ty) => {
        #[cfg(feature = $feature)]
        mod $module {
            use chrono::{DateTime, Utc};
            use sqlx::Row as _;
            use uuid::Uuid;

            use crate::record::Value;
            use crate::table::SqlType;

            pub(super) type Query<'a> = sqlx::query::Query<'a, $db, $args>;

            pub(super) fn bind_one<'a>(q: Query<'a>, ty: SqlType, v: Value) -> Query<'a> {
                match (ty, v) {
                    (_, Value::Uuid(x)) => q.bind(x),
                    (_, Value::Text(x)) => q.bind(x),
                    (_, Value::Bytes(x)) => q.bind(x),
                    (_, Value::BigInt(x)) => q.bind(x),
                    (_, Value::Bool(x)) => q.bind(x),
                    (_, Value::Timestamp(x)) => q.bind(x),
                    (SqlType::Uuid, Value::Null) => q.bind(None::<Uuid>),
                    (SqlType::Text, Value::Null) => q.bind(None::<String>),
                    (SqlType::Bytes, Value::Null) => q.bind(None::<Vec<u8>>),
                    (SqlType::BigInt | SqlType::Int, Value::Null) => q.bind(None::<i64>),
                    (SqlType::Bool, Value::Null) => q.bind(None::<bool>),
                    (SqlType::Timestamp, Value::Null) => q.bind(None::<DateTime<Utc>>),
                }
            }

            pub(super) fn bind_all<'a>(mut q: Query<'a>, binds: &[(SqlType, Value)]) -> Query<'a> {
                for (ty, v) in binds {
                    q = bind_one(q, *ty, v.clone());
                }
                q
            }

            pub(super) fn decode_row(
                row: &$row,
                types: &[SqlType],
            ) -> Result<Vec<Value>, sqlx::Error> {
                let mut out = Vec::with_capacity(types.len());
                for (i, ty) in types.iter().enumerate() {
                    out.push(match ty {
                        SqlType::Uuid => row
                            .try_get::<Option<Uuid>, _>(i)?
                            .map_or(Value::Null, Value::Uuid),
                        SqlType::Text => row
                            .try_get::<Option<String>, _>(i)?
                            .map_or(Value::Null, Value::Text),
                        SqlType::Bytes => row
                            .try_get::<Option<Vec<u8>>, _>(i)?
                            .map_or(Value::Null, Value::Bytes),
                        SqlType::BigInt => row
                            .try_get::<Option<i64>, _>(i)?
                            .map_or(Value::Null, Value::BigInt),
                        SqlType::Int => row
                            .try_get::<Option<i32>, _>(i)?
                            .map_or(Value::Null, |x| Value::BigInt(i64::from(x))),
                        SqlType::Bool => row
                            .try_get::<Option<bool>, _>(i)?
                            .map_or(Value::Null, Value::Bool),
                        SqlType::Timestamp => row
                            .try_get::<Option<DateTime<Utc>>, _>(i)?
                            .map_or(Value::Null, Value::Timestamp),
                    });
                }
                Ok(out)
            }
        }
    };
}

backend_codec!(
    pg,
    "postgres",
    sqlx::Postgres,
    sqlx::postgres::PgArguments,
    sqlx::postgres::PgRow
);
backend_codec!(
    lite,
    "sqlite",
    sqlx::Sqlite,
    sqlx::sqlite::SqliteArguments,
    sqlx::sqlite::SqliteRow
);
