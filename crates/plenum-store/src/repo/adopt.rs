//! Adopting the library over existing data: moves a legacy plaintext text column into a
//! record type's encrypted field (and its blind index), a page of rows per transaction. Each
//! row is sealed with an optimistic write (only if the plaintext is still what was read), read
//! back and opened, and only then is its plaintext column set to NULL, in the same transaction:
//! a crash or a failed check leaves the plaintext where it was. Rows whose plaintext is already
//! NULL are done, so running it again resumes. Screened for `security.protection` (or
//! unrestricted), audited as `key.reencrypt` naming the rows.

use plenum_core::{FieldName, RecordId, RecordType, SubjectId};
use plenum_crypto::{FieldLocator, Owner};

use super::Records;
use super::report::{describe, report};
use super::screen::{self};
use crate::access::Action;
use crate::error::Error;
use crate::gate::PurposeGrant;
use crate::record::{FieldSpec, KeyOwner, RecordSpec, Storage, Value};
use crate::sql::{self, Conn, Dialect};
use crate::table::SqlType;
use crate::tx::TenantTx;

/// What one page of a plaintext migration did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdoptPage {
    /// Rows sealed, verified and cleared of their plaintext in this page.
    pub sealed: u64,
    /// Rows left as they were: a concurrent update changed the plaintext, or the field already
    /// holds a value (written through the library, newer than the legacy one; its plaintext
    /// column is left for the service to clear).
    pub conflicts: u64,
    /// Whether no row is left whose plaintext can move (a row whose field already holds a value
    /// keeps its plaintext column for the service to clear).
    pub finished: bool,
}

impl Records {
    /// Moves up to `page` rows' values from the legacy plaintext text column `plain_column` of
    /// `record_type`'s table into its encrypted text field `field` (and the field's blind
    /// index), verifying each by opening it before clearing the plaintext. Call it in a
    /// transaction per page until [`AdoptPage::finished`]; then drop the column.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`] (`key_operation_needs_security_protection`); [`Error::InvalidRecord`]
    /// for a record type that is not registered, a field that is not an encrypted text field,
    /// or a column name that is not a plain identifier; database (a missing column), key store
    /// and hook failures.
    pub async fn adopt_plaintext_page(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        record_type: &RecordType,
        field: &FieldName,
        plain_column: &FieldName,
        page: u32,
    ) -> Result<AdoptPage, Error> {
        let mut access = describe(grant, Action::KeyReencrypt, record_type.clone());
        let mut done = Vec::new();
        let result = async {
            screen::check_key_operation(tx, grant, record_type.as_str())?;
            let invalid = |reason| Error::InvalidRecord {
                record_type: record_type.to_string(),
                reason,
            };
            let spec = self
                .record_types()
                .iter()
                .copied()
                .find(|s| s.record_type() == record_type)
                .ok_or_else(|| invalid("plaintext is adopted into a registered record type"))?;
            let target = spec
                .field(field.as_str())
                .filter(|f| {
                    matches!(f.storage, Storage::Encrypted { .. }) && f.plaintext == Some("String")
                })
                .ok_or_else(|| invalid("plaintext is adopted into an encrypted text field"))?;
            if spec.field(plain_column.as_str()).is_some() {
                return Err(invalid(
                    "the plaintext column is not one of the record's fields",
                ));
            }
            self.adopt_page(tx, spec, target, plain_column, page.max(1), &mut done)
                .await
        }
        .await;
        access.records = done;
        report(&*self.shared.hook, tx, access, result, |p| p.sealed).await
    }

    async fn adopt_page(
        &self,
        tx: &mut TenantTx,
        spec: &'static RecordSpec,
        target: &FieldSpec,
        plain_column: &FieldName,
        page: u32,
        done: &mut Vec<RecordId>,
    ) -> Result<AdoptPage, Error> {
        let d = Dialect::of(tx);
        let table = d.table(spec.record_type().as_str());
        let (column, plain) = (target.name.as_str(), plain_column.as_str());
        let subject = if spec.has_subject() {
            "subject_id"
        } else {
            "NULL"
        };
        let tenant = super::rows::uuid(*tx.tenant().as_uuid());
        let statement = format!(
            "SELECT id, {subject}, {plain} FROM {table} WHERE tenant_id = {} AND {plain} IS NOT NULL \
             AND {column} IS NULL ORDER BY id LIMIT {}",
            d.p(1),
            d.p(2)
        );
        let rows = sql::fetch(
            Conn::of(tx)?,
            &statement,
            &[
                tenant.clone(),
                (SqlType::BigInt, Value::BigInt(i64::from(page))),
            ],
            &[SqlType::Uuid, SqlType::Uuid, SqlType::Text],
        )
        .await
        .map_err(|e| super::db_error(spec, e))?;
        let mut out = AdoptPage {
            sealed: 0,
            conflicts: 0,
            finished: rows.len() < page as usize,
        };
        let (owner, index) = match &target.storage {
            Storage::Encrypted { owner, blind_index } => (*owner, blind_index.clone()),
            Storage::Plain(_) => return Err(Error::Config("adopting into a plain field")),
        };
        for row in rows {
            let (id, subject, text) = match row.as_slice() {
                [Value::Uuid(id), s, Value::Text(text)] => (
                    RecordId::from_trusted_uuid(*id),
                    match s {
                        Value::Uuid(s) => Some(SubjectId::from_trusted_uuid(*s)),
                        _ => None,
                    },
                    text.clone(),
                ),
                _ => return Err(Error::Config("unreadable plaintext row")),
            };
            let locator = FieldLocator {
                tenant: tx.tenant(),
                record_type: spec.record_type().clone(),
                field: target.name.clone(),
                owner: match (owner, subject) {
                    (KeyOwner::Subject, Some(s)) => Owner::Subject(s),
                    _ => Owner::Tenant,
                },
            };
            let key = self.keyring().dangerous_field_key(&locator).await?;
            let sealed = key.seal_bytes(id, text.as_bytes())?;
            let mut binds = vec![
                tenant.clone(),
                super::rows::uuid(*id.as_uuid()),
                (SqlType::Bytes, Value::Bytes(sealed.as_bytes().to_vec())),
                (SqlType::Text, Value::Text(text.clone())),
            ];
            let mut set = format!("{column} = {}", d.p(3));
            if let Some(index) = &index {
                let indexer = self
                    .keyring()
                    .blind_indexer(
                        locator.tenant,
                        &locator.record_type,
                        &locator.field,
                        index.normaliser,
                    )
                    .await?;
                let value = indexer.compute(&text)?;
                binds.push((SqlType::Bytes, Value::Bytes(value.as_bytes().to_vec())));
                set.push_str(&format!(", {} = {}", index.column.as_str(), d.p(5)));
            }
            // Only where the plaintext is still what was read and the field is still empty: a
            // value the service already wrote through the library is newer than the legacy one.
            let statement = format!(
                "UPDATE {table} SET {set} WHERE tenant_id = {} AND id = {} AND {plain} = {} \
                 AND {column} IS NULL",
                d.p(1),
                d.p(2),
                d.p(4)
            );
            let n = sql::execute(Conn::of(tx)?, &statement, &binds)
                .await
                .map_err(|e| super::db_error(spec, e))?;
            if n == 0 {
                out.conflicts += 1;
                continue;
            }
            // Verified before the plaintext goes: the stored envelope opens to the same text.
            let statement = format!(
                "SELECT {column} FROM {table} WHERE tenant_id = {} AND id = {}",
                d.p(1),
                d.p(2)
            );
            let back = sql::fetch(Conn::of(tx)?, &statement, &binds[..2], &[SqlType::Bytes])
                .await
                .map_err(|e| super::db_error(spec, e))?;
            let opened = match back.first().and_then(|r| r.first()) {
                Some(Value::Bytes(b)) => key.open_bytes(id, b)?,
                _ => return Err(Error::Config("an adopted value did not read back")),
            };
            if opened.expose().as_slice() != text.as_bytes() {
                return Err(Error::Config("an adopted value read back different"));
            }
            let statement = format!(
                "UPDATE {table} SET {plain} = NULL WHERE tenant_id = {} AND id = {}",
                d.p(1),
                d.p(2)
            );
            sql::execute(Conn::of(tx)?, &statement, &binds[..2])
                .await
                .map_err(|e| super::db_error(spec, e))?;
            out.sealed += 1;
            done.push(id);
        }
        Ok(out)
    }
}
