//! The re-encryption sweep: after a data or subject key rotation, moves every value of a
//! record type still sealed under an older key version to the active one, and after an index
//! key rotation recomputes every blind index under the active index key (so lookups need one
//! candidate again and the old index version can be destroyed), a keyset page at a time. Each value is opened, re-sealed and written back only if the row still holds what was
//! read (an optimistic check: a concurrent update is never overwritten, it already wrote under
//! the active key), then read back and opened under the active key before the page counts as
//! done. The cursor (`reencryptions`, migration 14) moves in the page's own transaction, so a
//! crash resumes from the last committed page and nothing is written twice. Screened for
//! `security.protection` (or unrestricted) and audited as `key.reencrypt` naming the rows.

use plenum_core::{RecordId, RecordType, SubjectId};
use plenum_crypto::{Envelope, FieldLocator, Owner};

use super::Records;
use super::report::{describe, report};
use super::screen::{self};
use crate::access::Action;
use crate::error::Error;
use crate::gate::PurposeGrant;
use crate::record::{KeyOwner, RecordSpec, Storage, Value};
use crate::sql::{self, Conn, Dialect};
use crate::table::SqlType;
use crate::tx::TenantTx;

/// What one page of a re-encryption sweep did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReencryptPage {
    /// The record type swept.
    pub record_type: String,
    /// Rows read in this page.
    pub scanned: u64,
    /// Values re-sealed under the active version in this page (and read back).
    pub resealed: u64,
    /// Blind indexes recomputed under the active index key version in this page.
    pub reindexed: u64,
    /// Values a concurrent update changed between the read and the write: left as that
    /// update wrote them (under the active version).
    pub conflicts: u64,
    /// Values whose key is destroyed or absent (an erased subject's, kept under a pseudonym):
    /// nothing to move, they stay unreadable.
    pub erased: u64,
    /// Values re-sealed since the sweep of this record type started.
    pub total_resealed: u64,
    /// Whether the sweep reached the last row: the cursor is cleared, and every value of the
    /// record type read under an older version has been moved. Other instances keep sealing
    /// under the old version until their keyring's cache expires (`KeyringConfig::ttl`):
    /// start the sweep that long after the rotation, and check
    /// [`Records::values_per_key_version`] before retiring the old version.
    pub finished: bool,
}

/// One encrypted column of the record type: its position in the page query and field spec.
struct Column {
    name: plenum_core::FieldName,
    owner: KeyOwner,
    /// The blind index column and its normaliser, if the field is searchable.
    index: Option<(plenum_core::FieldName, plenum_crypto::Normaliser)>,
}

impl Records {
    /// Re-seals, in `tx`, the next page (up to `page` rows, in id order) of `record_type`'s
    /// values still under an older key version, and recomputes their blind indexes still under
    /// an older index key version, from where the last committed page of this sweep stopped.
    /// Call it in a transaction per page until [`ReencryptPage::finished`]; then the old
    /// version holds nothing of this record type and may be retired. Idempotent: a value
    /// already under the active version is left alone.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`] (`key_operation_needs_security_protection`); [`Error::InvalidRecord`]
    /// for a record type that is not registered; [`Error::Crypto`] when a value does not open
    /// (tampered) or a re-sealed value does not read back (nothing of the page is kept if the
    /// caller rolls back, as it should); database, key store and hook failures.
    pub async fn reencrypt_page(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        record_type: &RecordType,
        page: u32,
    ) -> Result<ReencryptPage, Error> {
        let mut access = describe(grant, Action::KeyReencrypt, record_type.clone());
        let mut resealed_ids = Vec::new();
        let result = async {
            screen::check_key_operation(tx, grant, record_type.as_str())?;
            let spec = self
                .record_types()
                .iter()
                .copied()
                .find(|s| s.record_type() == record_type)
                .ok_or_else(|| Error::InvalidRecord {
                    record_type: record_type.to_string(),
                    reason: "a re-encryption sweep runs over a registered record type",
                })?;
            self.sweep_page(tx, spec, page.max(1), &mut resealed_ids)
                .await
        }
        .await;
        access.records = resealed_ids;
        report(&*self.shared.hook, tx, access, result, |p| p.resealed).await
    }

    async fn sweep_page(
        &self,
        tx: &mut TenantTx,
        spec: &'static RecordSpec,
        page: u32,
        resealed_ids: &mut Vec<RecordId>,
    ) -> Result<ReencryptPage, Error> {
        let columns: Vec<Column> = spec
            .fields()
            .iter()
            .filter_map(|f| match &f.storage {
                Storage::Encrypted { owner, blind_index } => Some(Column {
                    name: f.name.clone(),
                    owner: *owner,
                    index: blind_index
                        .as_ref()
                        .map(|b| (b.column.clone(), b.normaliser)),
                }),
                Storage::Plain(_) => None,
            })
            .collect();
        let cursor = Cursor::load(tx, spec.record_type()).await?;
        let rows = page_rows(tx, spec, &columns, cursor.as_ref().map(|c| c.0), page).await?;
        let mut out = ReencryptPage {
            record_type: spec.record_type().to_string(),
            scanned: rows.len() as u64,
            resealed: 0,
            reindexed: 0,
            conflicts: 0,
            erased: 0,
            total_resealed: cursor.as_ref().map_or(0, |c| c.1),
            finished: rows.len() < page as usize,
        };
        // The page's subject keys in one key-store round trip, not one per row.
        let subjects: Vec<SubjectId> = rows.iter().filter_map(|(_, s, _)| *s).collect();
        if columns.iter().any(|c| c.owner == KeyOwner::Subject) && !subjects.is_empty() {
            self.keyring()
                .prepare_subjects(tx.tenant(), &subjects, false)
                .await?;
        }
        for (id, subject, values) in &rows {
            let mut changes = Vec::new();
            for (column, (value, index)) in columns.iter().zip(values) {
                let Some(old) = value else { continue };
                let owner = match (column.owner, subject) {
                    (KeyOwner::Subject, Some(s)) => Owner::Subject(*s),
                    _ => Owner::Tenant,
                };
                let locator = FieldLocator {
                    tenant: tx.tenant(),
                    record_type: spec.record_type().clone(),
                    field: column.name.clone(),
                    owner,
                };
                let stored = Stored {
                    id: *id,
                    value: old,
                    index: column
                        .index
                        .as_ref()
                        .zip(index.as_deref())
                        .map(|((c, n), b)| (c, *n, b)),
                };
                match self.plan(&locator, &stored).await? {
                    Planned::Change(change) => changes.push(change),
                    Planned::Current => {}
                    Planned::Erased => out.erased += 1,
                }
            }
            if changes.is_empty() {
                continue;
            }
            if write_row(tx, spec, *id, &changes).await? {
                out.resealed += changes.iter().filter(|c| c.sealed).count() as u64;
                out.reindexed += changes.iter().filter(|c| c.index.is_some()).count() as u64;
                resealed_ids.push(*id);
            } else {
                out.conflicts += changes.len() as u64;
            }
        }
        out.total_resealed += out.resealed;
        match rows.last() {
            Some((last, _, _)) if !out.finished => {
                Cursor::save(
                    tx,
                    spec.record_type(),
                    *last,
                    out.total_resealed,
                    cursor.is_some(),
                )
                .await?;
            }
            _ => Cursor::clear(tx, spec.record_type()).await?,
        }
        Ok(out)
    }

    /// What moving one stored value to the active version of its key, and its blind index to
    /// the active index key, takes, where they are not there already.
    async fn plan(&self, locator: &FieldLocator, stored: &Stored<'_>) -> Result<Planned, Error> {
        let keyring = self.keyring();
        let (id, old) = (stored.id, stored.value);
        // No key is created here: a row without one (an erased subject's, kept under a
        // pseudonym) has nothing to move and stays unreadable.
        let active = match keyring.dangerous_existing_field_key(locator).await {
            Ok(Some(k)) => k,
            Ok(None) | Err(plenum_crypto::Error::KeyDestroyed { .. }) => {
                return Ok(Planned::Erased);
            }
            Err(e) => return Err(e.into()),
        };
        let reseal = Envelope::peek_key_version(old) != Some(active.key_ref().version);
        let indexer = match stored.index {
            Some((_, normaliser, _)) => Some(
                keyring
                    .blind_indexer(
                        locator.tenant,
                        &locator.record_type,
                        &locator.field,
                        normaliser,
                    )
                    .await?,
            ),
            None => None,
        };
        // A dead index (version 0: an erased subject's scrubbed row) stays dead.
        let reindex = match (&indexer, stored.index) {
            (Some(ix), Some((_, _, b))) => b
                .first()
                .is_some_and(|v| *v != 0 && u32::from(*v) != ix.key_ref().version),
            _ => false,
        };
        if !reseal && !reindex {
            return Ok(Planned::Current);
        }
        let opening = match keyring.dangerous_opening_key(locator, old).await {
            Ok(k) => k,
            Err(
                plenum_crypto::Error::KeyDestroyed { .. }
                | plenum_crypto::Error::KeyNotFound { .. },
            ) => return Ok(Planned::Erased),
            Err(e) => return Err(e.into()),
        };
        let plaintext = opening.open_bytes(id, old)?;
        let new = if reseal {
            active.seal_bytes(id, plaintext.expose())?.into_bytes()
        } else {
            old.to_vec()
        };
        let index = match (&indexer, stored.index) {
            (Some(ix), Some((column, _, old_index))) if reindex => {
                let text = core::str::from_utf8(plaintext.expose())
                    .map_err(|_| Error::Config("a blind-indexed value is not text"))?;
                Some((
                    column.clone(),
                    old_index.to_vec(),
                    ix.compute(text)?.as_bytes().to_vec(),
                ))
            }
            _ => None,
        };
        Ok(Planned::Change(Change {
            column: locator.field.clone(),
            old: old.to_vec(),
            new,
            index,
            sealed: reseal,
            active,
            plaintext,
        }))
    }
}

/// One field's move, planned: the column's old and new bytes, the blind index's (column,
/// old, new) if it is recomputed, and for a re-seal the key and plaintext to check it with.
struct Change {
    column: plenum_core::FieldName,
    old: Vec<u8>,
    new: Vec<u8>,
    index: Option<(plenum_core::FieldName, Vec<u8>, Vec<u8>)>,
    sealed: bool,
    active: plenum_crypto::FieldKey,
    plaintext: plenum_crypto::Pii<Vec<u8>>,
}

/// What one value needs.
enum Planned {
    Change(Change),
    Current,
    Erased,
}

/// Writes one row's changes in one statement, only if every changed column still holds what
/// was read (`false`: a concurrent update won, nothing written), then reads the re-sealed
/// columns back in one statement and opens each under the active key.
async fn write_row(
    tx: &mut TenantTx,
    spec: &'static RecordSpec,
    id: RecordId,
    changes: &[Change],
) -> Result<bool, Error> {
    let d = Dialect::of(tx);
    let table = d.table(spec.record_type().as_str());
    let mut binds = vec![
        super::rows::uuid(*tx.tenant().as_uuid()),
        super::rows::uuid(*id.as_uuid()),
    ];
    let (mut set, mut check) = (Vec::new(), Vec::new());
    let bind = |binds: &mut Vec<(SqlType, Value)>, bytes: &[u8]| {
        binds.push((SqlType::Bytes, Value::Bytes(bytes.to_vec())));
        d.p(binds.len())
    };
    for c in changes {
        let column = c.column.as_str();
        set.push(format!("{column} = {}", bind(&mut binds, &c.new)));
        check.push(format!("{column} = {}", bind(&mut binds, &c.old)));
        if let Some((index, old, new)) = &c.index {
            let index = index.as_str();
            set.push(format!("{index} = {}", bind(&mut binds, new)));
            check.push(format!("{index} = {}", bind(&mut binds, old)));
        }
    }
    let statement = format!(
        "UPDATE {table} SET {} WHERE tenant_id = {} AND id = {} AND {}",
        set.join(", "),
        d.p(1),
        d.p(2),
        check.join(" AND ")
    );
    let n = sql::execute(Conn::of(tx)?, &statement, &binds)
        .await
        .map_err(|e| super::db_error(spec, e))?;
    if n == 0 {
        return Ok(false);
    }
    // Read back and open under the active key before the old version may go.
    let sealed: Vec<&Change> = changes.iter().filter(|c| c.sealed).collect();
    if sealed.is_empty() {
        return Ok(true);
    }
    let columns: Vec<&str> = sealed.iter().map(|c| c.column.as_str()).collect();
    let statement = format!(
        "SELECT {} FROM {table} WHERE tenant_id = {} AND id = {}",
        columns.join(", "),
        d.p(1),
        d.p(2)
    );
    let types = vec![SqlType::Bytes; sealed.len()];
    let back = sql::fetch(Conn::of(tx)?, &statement, &binds[..2], &types)
        .await
        .map_err(|e| super::db_error(spec, e))?;
    let row = back
        .first()
        .ok_or(Error::Config("a re-sealed row did not read back"))?;
    for (c, value) in sealed.iter().zip(row) {
        let reopened = match value {
            Value::Bytes(b) => c.active.open_bytes(id, b)?,
            _ => return Err(Error::Config("a re-sealed value did not read back")),
        };
        if reopened.expose() != c.plaintext.expose() {
            return Err(Error::Config("a re-sealed value read back different"));
        }
    }
    Ok(true)
}

/// One stored encrypted value: its row, its bytes, and its blind index (column, normaliser,
/// bytes) if the field has one.
struct Stored<'a> {
    id: RecordId,
    value: &'a [u8],
    index: Option<(
        &'a plenum_core::FieldName,
        plenum_crypto::Normaliser,
        &'a [u8],
    )>,
}

/// The next page's rows after `after`: id, subject, and each encrypted column (NULL: none).
async fn page_rows(
    tx: &mut TenantTx,
    spec: &'static RecordSpec,
    columns: &[Column],
    after: Option<RecordId>,
    page: u32,
) -> Result<Vec<PageRow>, Error> {
    let d = Dialect::of(tx);
    let subject = if spec.has_subject() {
        "subject_id"
    } else {
        "NULL"
    };
    let mut select = format!("SELECT id, {subject}");
    for c in columns {
        select.push_str(", ");
        select.push_str(c.name.as_str());
        select.push_str(", ");
        select.push_str(c.index.as_ref().map_or("NULL", |(b, _)| b.as_str()));
    }
    let statement = format!(
        "{select} FROM {} WHERE tenant_id = {} AND id > {} ORDER BY id LIMIT {}",
        d.table(spec.record_type().as_str()),
        d.p(1),
        d.p(2),
        d.p(3)
    );
    let binds = [
        super::rows::uuid(*tx.tenant().as_uuid()),
        super::rows::uuid(after.map_or(uuid::Uuid::nil(), |a| *a.as_uuid())),
        (SqlType::BigInt, Value::BigInt(i64::from(page))),
    ];
    let mut types = vec![SqlType::Uuid, SqlType::Uuid];
    types.extend(
        columns
            .iter()
            .flat_map(|_| [SqlType::Bytes, SqlType::Bytes]),
    );
    let rows = sql::fetch(Conn::of(tx)?, &statement, &binds, &types)
        .await
        .map_err(|e| super::db_error(spec, e))?;
    let bytes = |v: Option<Value>| match v {
        Some(Value::Bytes(b)) => Some(b),
        _ => None,
    };
    rows.into_iter()
        .map(|row| {
            let mut values = row.into_iter();
            let id = match values.next() {
                Some(Value::Uuid(id)) => RecordId::from_trusted_uuid(id),
                _ => return Err(Error::Config("unreadable row id")),
            };
            let subject = match values.next() {
                Some(Value::Uuid(s)) => Some(SubjectId::from_trusted_uuid(s)),
                _ => None,
            };
            let mut fields = Vec::with_capacity(columns.len());
            for _ in columns {
                let value = bytes(values.next());
                let index = bytes(values.next());
                fields.push((value, index));
            }
            Ok((id, subject, fields))
        })
        .collect()
}

/// One row of a page: id, subject, and per encrypted column its value and blind index.
type PageRow = (
    RecordId,
    Option<SubjectId>,
    Vec<(Option<Vec<u8>>, Option<Vec<u8>>)>,
);

/// The persisted position of a sweep: the last id done and the values re-sealed so far.
struct Cursor;

impl Cursor {
    async fn load(
        tx: &mut TenantTx,
        record_type: &RecordType,
    ) -> Result<Option<(RecordId, u64)>, Error> {
        let d = Dialect::of(tx);
        let statement = format!(
            "SELECT after_id, resealed FROM {} WHERE tenant_id = {} AND record_type = {}",
            d.library("reencryptions"),
            d.p(1),
            d.p(2)
        );
        let binds = [
            super::rows::uuid(*tx.tenant().as_uuid()),
            (SqlType::Text, Value::Text(record_type.to_string())),
        ];
        let rows = sql::fetch(
            Conn::of(tx)?,
            &statement,
            &binds,
            &[SqlType::Uuid, SqlType::BigInt],
        )
        .await
        .map_err(|e| Error::from_sqlx(e, "reencryptions"))?;
        Ok(match rows.first().map(Vec::as_slice) {
            Some([Value::Uuid(after), Value::BigInt(n)]) => Some((
                RecordId::from_trusted_uuid(*after),
                u64::try_from(*n).unwrap_or(0),
            )),
            _ => None,
        })
    }

    async fn save(
        tx: &mut TenantTx,
        record_type: &RecordType,
        after: RecordId,
        resealed: u64,
        exists: bool,
    ) -> Result<(), Error> {
        let d = Dialect::of(tx);
        let table = d.library("reencryptions");
        let statement = if exists {
            format!(
                "UPDATE {table} SET after_id = {}, resealed = {} WHERE tenant_id = {} AND record_type = {}",
                d.p(3),
                d.p(4),
                d.p(1),
                d.p(2)
            )
        } else {
            format!(
                "INSERT INTO {table} (tenant_id, record_type, after_id, resealed) VALUES ({})",
                d.params(4)
            )
        };
        let binds = [
            super::rows::uuid(*tx.tenant().as_uuid()),
            (SqlType::Text, Value::Text(record_type.to_string())),
            super::rows::uuid(*after.as_uuid()),
            (
                SqlType::BigInt,
                Value::BigInt(i64::try_from(resealed).unwrap_or(i64::MAX)),
            ),
        ];
        sql::execute(Conn::of(tx)?, &statement, &binds)
            .await
            .map_err(|e| Error::from_sqlx(e, "reencryptions"))?;
        Ok(())
    }

    async fn clear(tx: &mut TenantTx, record_type: &RecordType) -> Result<(), Error> {
        let d = Dialect::of(tx);
        let statement = format!(
            "DELETE FROM {} WHERE tenant_id = {} AND record_type = {}",
            d.library("reencryptions"),
            d.p(1),
            d.p(2)
        );
        let binds = [
            super::rows::uuid(*tx.tenant().as_uuid()),
            (SqlType::Text, Value::Text(record_type.to_string())),
        ];
        sql::execute(Conn::of(tx)?, &statement, &binds)
            .await
            .map_err(|e| Error::from_sqlx(e, "reencryptions"))?;
        Ok(())
    }
}
