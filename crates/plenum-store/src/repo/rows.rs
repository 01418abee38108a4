//! Statements, fetching and row materialisation: the SQL of one record type (rendered once per
//! dialect from validated names, values only as binds), running it in the caller's
//! transaction, and turning rows into records with every sealed field left sealed. Every
//! statement binds `tenant_id` first and every row read is checked against the transaction's
//! tenant ([`RowHead`]) before anything else looks at it. No purpose decisions here.

use plenum_core::{RecordId, SubjectId, TenantId};

use super::keys::RowKeys;
use super::screen::FieldMask;
use super::{db_error, decode_error, invalid, not_found};
use crate::encrypted::KeySlot;
use crate::error::Error;
use crate::record::{Record, RecordSpec, RowReader, Slot, Value};
use crate::sql::{self, Conn, Dialect};
use crate::table::SqlType;
use crate::tx::{BackendKind, TenantTx, check_tenant};

/// What a read asks for: one record, one keyset page, or the rows a blind index names.
pub(super) enum Read {
    One(RecordId),
    Page(Option<RecordId>, u32),
    /// A keyset page of one subject's rows (an export).
    Subject(SubjectId, Option<RecordId>, u32),
    Find {
        column: &'static str,
        candidates: Vec<Vec<u8>>,
        /// What each found row's field must open to (a search); `None` for the uniqueness
        /// probe, which only needs to know whether a row exists.
        check: Option<IndexCheck>,
    },
}

/// What a found row's indexed field must open to: the blind index only narrows the search, so
/// a row whose index value was swapped in from another row is caught here.
pub(super) struct IndexCheck {
    pub(super) position: usize,
    pub(super) normaliser: plenum_crypto::Normaliser,
    /// The search term, normalised.
    pub(super) term: plenum_crypto::Pii<String>,
}

/// The head of a stored row: its id and subject, its tenant already checked.
#[derive(Debug, Clone, Copy)]
pub(super) struct RowHead {
    pub(super) id: RecordId,
    pub(super) subject: Option<SubjectId>,
}

/// A stored row: its head and its field values in declaration order (each `Some` until
/// `Record::read` takes it).
pub(super) struct Row {
    pub(super) head: RowHead,
    pub(super) values: Vec<Option<Value>>,
}

/// One `column = value` of an update's `SET` list.
pub(super) type Assignment = (String, SqlType, Value);

/// The SQL of one record type, rendered once for each dialect.
pub(super) struct Statements {
    spec: &'static RecordSpec,
    /// Types of the selected columns: tenant, id, [subject], fields.
    read_types: Vec<SqlType>,
    /// Types of the inserted columns: tenant, id, [subject], fields, blind indexes.
    write_types: Vec<SqlType>,
    pg: DialectStatements,
    lite: DialectStatements,
}

struct DialectStatements {
    get: String,
    list_first: String,
    list_after: String,
    subject_after: String,
    count: String,
    subject_of: String,
    delete: String,
    insert: String,
    table: String,
    select: String,
}

pub(super) fn uuid(v: uuid::Uuid) -> (SqlType, Value) {
    (SqlType::Uuid, Value::Uuid(v))
}

impl Statements {
    pub(super) fn new(spec: &'static RecordSpec) -> Self {
        let mut read_cols = vec!["tenant_id".to_owned(), "id".to_owned()];
        let mut read_types = vec![SqlType::Uuid, SqlType::Uuid];
        if spec.has_subject() {
            read_cols.push("subject_id".to_owned());
            read_types.push(SqlType::Uuid);
        }
        for f in spec.fields() {
            read_cols.push(f.name.to_string());
            read_types.push(f.sql_type());
        }
        let mut write_cols = read_cols.clone();
        let mut write_types = read_types.clone();
        for b in spec.fields().iter().filter_map(|f| f.blind_index_spec()) {
            write_cols.push(b.column.to_string());
            write_types.push(SqlType::Bytes);
        }
        let build = |d: Dialect| {
            let table = d.table(spec.record_type().as_str());
            let select = format!("SELECT {} FROM {table}", read_cols.join(", "));
            let key = format!("tenant_id = {} AND id = {}", d.p(1), d.p(2));
            let lock = match d {
                Dialect::Postgres => " FOR UPDATE",
                Dialect::Sqlite => "",
            };
            DialectStatements {
                get: format!("{select} WHERE {key}"),
                list_first: format!(
                    "{select} WHERE tenant_id = {} ORDER BY id LIMIT {}",
                    d.p(1),
                    d.p(2)
                ),
                list_after: format!(
                    "{select} WHERE tenant_id = {} AND id > {} ORDER BY id LIMIT {}",
                    d.p(1),
                    d.p(2),
                    d.p(3)
                ),
                // Only for record types with a subject; the nil id starts the first page.
                subject_after: format!(
                    "{select} WHERE tenant_id = {} AND subject_id = {} AND id > {} ORDER BY id LIMIT {}",
                    d.p(1),
                    d.p(2),
                    d.p(3),
                    d.p(4)
                ),
                count: format!("SELECT count(*) FROM {table} WHERE tenant_id = {}", d.p(1)),
                subject_of: format!("SELECT tenant_id, subject_id FROM {table} WHERE {key}{lock}"),
                delete: format!("DELETE FROM {table} WHERE {key}"),
                insert: sql::insert_statement(d, &table, &write_cols, &write_types),
                table,
                select,
            }
        };
        let (pg, lite) = (build(Dialect::Postgres), build(Dialect::Sqlite));
        Self {
            spec,
            read_types,
            write_types,
            pg,
            lite,
        }
    }

    fn for_dialect(&self, d: Dialect) -> &DialectStatements {
        match d {
            Dialect::Postgres => &self.pg,
            Dialect::Sqlite => &self.lite,
        }
    }

    /// The rows of a read, each head decoded and checked against the transaction's tenant;
    /// any row that does not decode fails the whole read (what a write's own reads want).
    pub(super) async fn fetch(&self, tx: &mut TenantTx, read: &Read) -> Result<Vec<Row>, Error> {
        let (rows, undecodable) = self.fetch_lenient(tx, read).await?;
        match undecodable.first() {
            Some(id) => Err(self.undecodable(*id)),
            None => Ok(rows),
        }
    }

    /// The error for a stored row that does not decode.
    pub(super) fn undecodable(&self, record: RecordId) -> Error {
        Error::Undecodable {
            record_type: self.spec.record_type().to_string(),
            record,
        }
    }

    /// [`Statements::fetch`], returning the rows that decode and the ids of those that do not
    /// (in the scan's id order). A row whose id does not decode either, or that belongs to
    /// another tenant, still fails the read: there is nothing to name, or it must never pass.
    pub(super) async fn fetch_lenient(
        &self,
        tx: &mut TenantTx,
        read: &Read,
    ) -> Result<(Vec<Row>, Vec<RecordId>), Error> {
        let d = Dialect::of(tx);
        let tenant = tx.tenant();
        let s = self.for_dialect(d);
        let tenant_bind = uuid(*tenant.as_uuid());
        let limit_bind = |limit: u32| (SqlType::BigInt, Value::BigInt(i64::from(limit)));
        let found;
        let (statement, binds) = match read {
            Read::One(id) => (&s.get, vec![tenant_bind, uuid(*id.as_uuid())]),
            Read::Page(None, limit) => (&s.list_first, vec![tenant_bind, limit_bind(*limit)]),
            Read::Page(Some(a), limit) => (
                &s.list_after,
                vec![tenant_bind, uuid(*a.as_uuid()), limit_bind(*limit)],
            ),
            Read::Subject(subject, after, limit) => (
                &s.subject_after,
                vec![
                    tenant_bind,
                    uuid(*subject.as_uuid()),
                    uuid(after.map_or(uuid::Uuid::nil(), |a| *a.as_uuid())),
                    limit_bind(*limit),
                ],
            ),
            Read::Find {
                column, candidates, ..
            } => {
                let (statement, binds) =
                    sql::any_of(d, &s.select, column, tenant_bind, candidates.clone());
                found = statement;
                (&found, binds)
            }
        };
        let rows = sql::fetch_each(Conn::of(tx)?, statement, &binds, &self.read_types, 2)
            .await
            .map_err(|e| db_error(self.spec, e))?;
        let mut good = Vec::with_capacity(rows.len());
        let mut undecodable = Vec::new();
        for row in rows {
            match row {
                Ok(row) => good.push(self.row(tenant, row)?),
                Err(Some(head)) => {
                    let (Some(Value::Uuid(t)), Some(Value::Uuid(id))) = (head.first(), head.get(1))
                    else {
                        return Err(decode_error(self.spec, "id"));
                    };
                    check_tenant(tenant, *t, self.spec.record_type().as_str())?;
                    undecodable.push(RecordId::from_trusted_uuid(*id));
                }
                Err(None) => return Err(decode_error(self.spec, "id")),
            }
        }
        Ok((good, undecodable))
    }

    /// Splits a selected row into its checked head and its field values.
    fn row(&self, tenant: TenantId, row: Vec<Value>) -> Result<Row, Error> {
        let mut values = row.into_iter();
        let (Some(Value::Uuid(t)), Some(Value::Uuid(id))) = (values.next(), values.next()) else {
            return Err(decode_error(self.spec, "id"));
        };
        check_tenant(tenant, t, self.spec.record_type().as_str())?;
        let subject = if self.spec.has_subject() {
            match values.next() {
                Some(Value::Uuid(s)) => Some(SubjectId::from_trusted_uuid(s)),
                _ => return Err(decode_error(self.spec, "subject_id")),
            }
        } else {
            None
        };
        Ok(Row {
            head: RowHead {
                id: RecordId::from_trusted_uuid(id),
                subject,
            },
            values: values.map(Some).collect(),
        })
    }

    /// The inserted row of `record`: tenant, id, [subject], the sealed or plain values the
    /// record wrote, then its blind indexes.
    pub(super) fn write_row<R: Record>(
        &self,
        tenant: TenantId,
        record: &R,
        slots: Vec<Slot>,
    ) -> Result<Vec<Value>, Error> {
        let mut row = Vec::with_capacity(self.write_types.len());
        row.push(Value::Uuid(*tenant.as_uuid()));
        row.push(Value::Uuid(*record.id().as_uuid()));
        if self.spec.has_subject() {
            let s = record
                .subject()
                .ok_or_else(|| invalid(self.spec, "the record declares a subject but has none"))?;
            row.push(Value::Uuid(*s.as_uuid()));
        }
        let mut indexes = Vec::new();
        for (f, slot) in self.spec.fields().iter().zip(slots) {
            match slot {
                Slot::Set(value, index) => {
                    row.push(value);
                    if f.blind_index_spec().is_some() {
                        indexes.push(index.unwrap_or(Value::Null));
                    }
                }
                Slot::Empty | Slot::Unchanged => return Err(unwritten(self.spec)),
            }
        }
        row.extend(indexes);
        Ok(row)
    }

    /// Inserts rows from [`Statements::write_row`] in one statement (PostgreSQL) or one
    /// prepared statement per row (SQLite).
    pub(super) async fn insert(
        &self,
        tx: &mut TenantTx,
        rows: Vec<Vec<Value>>,
    ) -> Result<(), Error> {
        let statement = &self.for_dialect(Dialect::of(tx)).insert;
        sql::insert_rows(Conn::of(tx)?, statement, &self.write_types, rows)
            .await
            .map_err(|e| db_error(self.spec, e))
    }

    /// The `SET` list of an update from the slots a record wrote: the encrypted fields set
    /// since the read (with their blind indexes) and every plain field. Returns the written
    /// fields' positions too.
    pub(super) fn assignments(
        &self,
        slots: Vec<Slot>,
    ) -> Result<(Vec<usize>, Vec<Assignment>), Error> {
        let mut sets = Vec::new();
        let mut written = Vec::new();
        for (i, (f, slot)) in self.spec.fields().iter().zip(slots).enumerate() {
            match slot {
                Slot::Empty => return Err(unwritten(self.spec)),
                Slot::Unchanged => {}
                Slot::Set(value, index) => {
                    written.push(i);
                    sets.push((f.name.to_string(), f.sql_type(), value));
                    if let (Some(b), Some(index)) = (f.blind_index_spec(), index) {
                        sets.push((b.column.to_string(), SqlType::Bytes, index));
                    }
                }
            }
        }
        Ok((written, sets))
    }

    /// Runs an update of one row (guarded by its subject, which cannot change); returns the
    /// rows affected. With nothing to set, proves the row exists instead.
    pub(super) async fn update(
        &self,
        tx: &mut TenantTx,
        id: RecordId,
        subject: Option<SubjectId>,
        sets: Vec<Assignment>,
    ) -> Result<u64, Error> {
        if sets.is_empty() {
            let found = self.fetch(tx, &Read::One(id)).await?;
            return Ok(found.len() as u64);
        }
        let d = Dialect::of(tx);
        let mut binds = vec![uuid(*tx.tenant().as_uuid()), uuid(*id.as_uuid())];
        let mut guard = String::new();
        if let Some(s) = subject {
            binds.push(uuid(*s.as_uuid()));
            guard = format!(" AND subject_id = {}", d.p(binds.len()));
        }
        let mut assignments = Vec::with_capacity(sets.len());
        for (column, ty, value) in sets {
            binds.push((ty, value));
            assignments.push(format!("{column} = {}", d.p(binds.len())));
        }
        let statement = format!(
            "UPDATE {} SET {} WHERE tenant_id = {} AND id = {}{guard}",
            self.for_dialect(d).table,
            assignments.join(", "),
            d.p(1),
            d.p(2),
        );
        sql::execute(Conn::of(tx)?, &statement, &binds)
            .await
            .map_err(|e| db_error(self.spec, e))
    }

    /// The subject of row `id` (`FOR UPDATE` on PostgreSQL, so it cannot change between a
    /// decision and the write that follows it).
    pub(super) async fn subject_of(
        &self,
        tx: &mut TenantTx,
        id: RecordId,
    ) -> Result<SubjectId, Error> {
        let tenant = tx.tenant();
        let s = self.for_dialect(Dialect::of(tx));
        let key = [uuid(*tenant.as_uuid()), uuid(*id.as_uuid())];
        let rows = sql::fetch(Conn::of(tx)?, &s.subject_of, &key, &[SqlType::Uuid; 2])
            .await
            .map_err(|e| db_error(self.spec, e))?;
        match rows.first().map(Vec::as_slice) {
            None => Err(not_found(self.spec)),
            Some([Value::Uuid(t), Value::Uuid(sub)]) => {
                check_tenant(tenant, *t, self.spec.record_type().as_str())?;
                Ok(SubjectId::from_trusted_uuid(*sub))
            }
            Some(_) => Err(decode_error(self.spec, "subject_id")),
        }
    }

    /// Deletes row `id`; returns the rows affected.
    pub(super) async fn delete(&self, tx: &mut TenantTx, id: RecordId) -> Result<u64, Error> {
        let tenant = tx.tenant();
        let s = self.for_dialect(Dialect::of(tx));
        let key = [uuid(*tenant.as_uuid()), uuid(*id.as_uuid())];
        sql::execute(Conn::of(tx)?, &s.delete, &key)
            .await
            .map_err(|e| db_error(self.spec, e))
    }

    /// This tenant's row counts per value of the plain column `column` (of SQL type `ty`),
    /// groups smaller than `min_group` left out, largest first. `column` is a validated field
    /// name of this record type.
    pub(super) async fn count_by(
        &self,
        tx: &mut TenantTx,
        column: &str,
        ty: SqlType,
        min_group: u64,
    ) -> Result<Vec<(Value, u64)>, Error> {
        let d = Dialect::of(tx);
        let s = self.for_dialect(d);
        let statement = format!(
            "SELECT {column}, count(*) FROM {table} WHERE tenant_id = {p1} \
             GROUP BY {column} HAVING count(*) >= {p2} ORDER BY 2 DESC, 1",
            table = s.table,
            p1 = d.p(1),
            p2 = d.p(2),
        );
        let min = i64::try_from(min_group).unwrap_or(i64::MAX);
        let binds = [
            uuid(*tx.tenant().as_uuid()),
            (SqlType::BigInt, Value::BigInt(min)),
        ];
        let rows = sql::fetch(Conn::of(tx)?, &statement, &binds, &[ty, SqlType::BigInt])
            .await
            .map_err(|e| db_error(self.spec, e))?;
        rows.into_iter()
            .map(|row| match <[Value; 2]>::try_from(row) {
                Ok([key, Value::BigInt(n)]) => u64::try_from(n)
                    .map(|n| (key, n))
                    .map_err(|_| decode_error(self.spec, "count")),
                _ => Err(decode_error(self.spec, "count")),
            })
            .collect()
    }

    /// How many rows this tenant has.
    pub(super) async fn count(&self, tx: &mut TenantTx) -> Result<u64, Error> {
        let tenant = tx.tenant();
        let statement = &self.for_dialect(Dialect::of(tx)).count;
        let rows = sql::fetch(
            Conn::of(tx)?,
            statement,
            &[uuid(*tenant.as_uuid())],
            &[SqlType::BigInt],
        )
        .await
        .map_err(|e| db_error(self.spec, e))?;
        match rows.first().and_then(|r| r.first()) {
            Some(Value::BigInt(n)) => {
                u64::try_from(*n).map_err(|_| decode_error(self.spec, "count"))
            }
            _ => Err(decode_error(self.spec, "count")),
        }
    }

    /// The statement a blind-index search runs on `backend` for `column` with `candidates`
    /// values.
    pub(super) fn find_statement(
        &self,
        backend: BackendKind,
        column: &str,
        candidates: usize,
    ) -> String {
        let d = Dialect::from(backend);
        sql::any_of(
            d,
            &self.for_dialect(d).select,
            column,
            (SqlType::Uuid, Value::Null),
            vec![Vec::new(); candidates],
        )
        .0
    }
}

/// Rows to records: keys resolved for every sealed value the record keeps, nothing decrypted.
/// Fields outside `mask` are withheld: their envelopes are dropped before any key is looked
/// up, so there is nothing to decrypt. `subjects` are the rows' subjects, each once.
#[allow(
    clippy::too_many_arguments,
    reason = "one internal stage of the read pipeline; its inputs are the pipeline's state"
)]
pub(super) async fn materialise<R: Record>(
    keys: &RowKeys<'_>,
    tenant: TenantId,
    subjects: &[SubjectId],
    rows: Vec<Row>,
    mask: &FieldMask,
    check: Option<&IndexCheck>,
    unreadable: &mut Vec<RecordId>,
    undecodable: &mut Vec<RecordId>,
) -> Result<Vec<R>, Error> {
    // Shared by every row's reader (one allocation per page, not per row).
    let withheld: std::sync::Arc<[bool]> = (0..keys.spec.fields().len())
        .map(|i| !mask.keeps(i))
        .collect();
    // The page's subject keys are loaded (one store round trip) when the first row misses the
    // caches, not before: a page whose keys are all cached makes no pass over its subjects.
    let mut prepared = false;
    let mut out = Vec::with_capacity(rows.len());
    for Row { head, mut values } in rows {
        for (value, hidden) in values.iter_mut().zip(withheld.iter()) {
            if *hidden {
                // Dropped before any key is looked up: a withheld envelope is never opened.
                *value = Some(Value::Null);
            }
        }
        let slots = match keys.cached_for_row_read(tenant, head.subject, &values) {
            Some(slots) => slots,
            None => {
                if !prepared {
                    keys.prepare(tenant, subjects, false).await?;
                    prepared = true;
                }
                keys.for_row_read(tenant, head.subject, &values).await?
            }
        };
        if slots.iter().any(|s| matches!(s, Some(KeySlot::Unreadable))) {
            unreadable.push(head.id);
        }
        if let Some(check) = check
            && !indexed_value_matches(keys.spec, head.id, &values, &slots, check)?
        {
            // Erased: the field cannot be opened, so the row does not answer the search.
            continue;
        }
        let mut reader = RowReader::new(
            keys.spec,
            tenant,
            head.id,
            head.subject,
            values,
            slots,
            withheld.clone(),
        );
        match R::read(&mut reader) {
            Ok(record) => out.push(record),
            // A stored value the declaration cannot take: this row is left out and named.
            Err(Error::Decode { .. }) => undecodable.push(head.id),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Whether a found row's indexed field opens to the search term (after normalisation). A row
/// whose subject was erased cannot be opened and does not match. A row that opens to another
/// value had its index value moved from another row: an error, never another person's record.
fn indexed_value_matches(
    spec: &RecordSpec,
    id: RecordId,
    values: &[Option<Value>],
    slots: &[Option<KeySlot>],
    check: &IndexCheck,
) -> Result<bool, Error> {
    let (Some(Some(Value::Bytes(envelope))), Some(Some(slot))) =
        (values.get(check.position), slots.get(check.position))
    else {
        return Ok(false);
    };
    let Some(key) = slot.ready_key() else {
        return Ok(false);
    };
    let plain: plenum_crypto::Pii<String> = key.open(id, envelope)?;
    let found = check.normaliser.normalise(plain.expose())?;
    if found.as_str() == check.term.expose().as_str() {
        Ok(true)
    } else {
        Err(Error::IndexMismatch {
            record_type: spec.record_type().to_string(),
        })
    }
}

fn unwritten(spec: &RecordSpec) -> Error {
    invalid(spec, "Record::write left a field unwritten")
}
