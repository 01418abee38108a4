//! The writing half of [`Repository`]: `insert`, `insert_many`, `update`, `delete`, each an
//! orchestration of the stages (describe -> screen -> keys -> rows -> report). Sealing happens
//! in `Record::write` through a [`RowWriter`] holding the keys this file resolved for the row.

use plenum_core::{DataCategory, FieldName, RecordId, SubjectId};

use super::report::subjects_of;
use super::rows::Read;
use super::screen::{self, FieldMask};
use super::{Repository, not_found};
use crate::access::{Access, Action};
use crate::error::Error;
use crate::gate::PurposeGrant;
use crate::record::{Record, RowWriter};
use crate::tx::TenantTx;

impl<R: Record> Repository<R> {
    /// Inserts one record (its id must be new in this tenant).
    ///
    /// # Errors
    ///
    /// As [`Repository::insert_many`].
    pub async fn insert(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        record: &R,
    ) -> Result<(), Error> {
        self.insert_many(tx, grant, core::slice::from_ref(record))
            .await
    }

    /// Inserts records in one statement (one round trip on PostgreSQL, `unnest` binds). Under
    /// a purpose, every field's category must be one the purpose may touch and every subject
    /// one it may process (a restricted subject takes compliance purposes only, a consent
    /// purpose needs consent); otherwise nothing is written. Subject keys missing for any
    /// record are created first, in one key store round trip.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`] (`field_not_in_purpose`, or the policy's reason for a subject);
    /// [`Error::TenantMismatch`] if a record or the grant belongs to another tenant (nothing
    /// is written); [`Error::UniqueViolation`] naming the logical field;
    /// [`Error::ForeignKeyViolation`]; key and sealing failures ([`Error::Crypto`]).
    pub async fn insert_many(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        records: &[R],
    ) -> Result<(), Error> {
        let mut access = self.describe(grant, Action::Insert);
        access.records = records.iter().map(R::id).collect();
        access.subjects = subjects_of(records.iter().filter_map(R::subject));
        access.fields = FieldMask::all(self.spec()).fields(self.spec());
        let result = self.insert_rows(tx, grant, records).await;
        if let Ok(created) = &result
            && !created.is_empty()
        {
            // The subjects' keys were created in their own committed key transaction: a key
            // event of its own, before the insert's.
            let mut keys = self.describe(grant, Action::KeyCreate);
            keys.record_type = plenum_core::record_type!("keys");
            keys.subjects.clone_from(created);
            keys.rows = created.len() as u64;
            self.shared.hook.on_access(tx, &keys).await?;
        }
        self.report(tx, access, result.map(|_| ()), |_| records.len() as u64)
            .await
    }

    /// Writes a changed record: plain fields, and only the encrypted fields set since the record
    /// was read (each re-sealed, with its blind index). Under a purpose, the written fields'
    /// categories and the subject must be ones the purpose may touch. A record's subject
    /// cannot change: an update naming another subject finds no row.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`]; [`Error::NotFound`] if this tenant has no such record;
    /// [`Error::TenantMismatch`]; constraint, key and sealing failures.
    pub async fn update(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        record: &R,
    ) -> Result<(), Error> {
        let mut access = self.describe(grant, Action::Update);
        access.records = vec![record.id()];
        access.subjects = subjects_of(record.subject());
        let result = self.update_row(tx, grant, record).await;
        if let Ok(changed) = &result {
            access.fields.clone_from(changed);
        }
        self.report(tx, access, result.map(|_| ()), |_| 1).await
    }

    /// Deletes one record. Under a purpose, the purpose must be one that may touch every field
    /// of the record, and its subject one the purpose may process (erasure for a restricted
    /// subject goes through a compliance purpose).
    ///
    /// # Errors
    ///
    /// [`Error::Denied`]; [`Error::NotFound`] if this tenant has no such record;
    /// [`Error::ForeignKeyViolation`] if other records still reference it.
    pub async fn delete(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        id: RecordId,
    ) -> Result<(), Error> {
        let mut access = self.describe(grant, Action::Delete);
        access.records = vec![id];
        access.fields = FieldMask::all(self.spec()).fields(self.spec());
        let result = self.delete_row(tx, grant, id, &mut access).await;
        self.report(tx, access, result, |_| 1).await
    }

    /// Screens, seals and inserts; returns the subjects whose keys were created.
    async fn insert_rows(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        records: &[R],
    ) -> Result<Vec<SubjectId>, Error> {
        let spec = self.spec();
        screen::check_grant(tx, grant, spec.record_type().as_str())?;
        screen::check_rows(grant)?;
        self.check_registered()?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let tenant = tx.tenant();
        screen::check_records_tenant(tenant, records)?;
        screen::check_writable(grant, spec.fields().iter())?;
        let subjects = subjects_of(records.iter().filter_map(R::subject));
        let decisions = screen::decide(tx, grant, &subjects).await?;
        if let Some(reason) = records.iter().find_map(|r| decisions.denial(r.subject())) {
            return Err(screen::denied(grant, reason));
        }
        let keys = self.keys();
        let created = keys.prepare(tenant, &subjects, true).await?;
        let write_keys = keys.for_writes(tenant).await?;
        let probe = self.probes_older_indexes(tenant).await?;
        let mut rows = Vec::with_capacity(records.len());
        for record in records {
            let row_keys = keys
                .for_row_write(tenant, record.subject(), &write_keys)
                .await?;
            let mut writer = RowWriter::new(record.id(), &row_keys, &write_keys.indexers, false)
                .keeping_indexed(probe);
            record.write(&mut writer)?;
            self.unique_across_index_versions(tx, record.id(), &writer.indexed, &write_keys)
                .await?;
            rows.push(self.sql.write_row(tenant, record, writer.slots)?);
        }
        self.sql.insert(tx, rows).await?;
        Ok(created)
    }

    /// Screens, re-seals what changed and updates; returns the fields written.
    pub(super) async fn update_row(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        record: &R,
    ) -> Result<Vec<(FieldName, DataCategory)>, Error> {
        let spec = self.spec();
        screen::check_grant(tx, grant, spec.record_type().as_str())?;
        screen::check_rows(grant)?;
        self.check_registered()?;
        let tenant = tx.tenant();
        screen::check_records_tenant(tenant, core::slice::from_ref(record))?;
        let subjects = subjects_of(record.subject());
        let decisions = screen::decide(tx, grant, &subjects).await?;
        if let Some(reason) = decisions.denial(record.subject()) {
            return Err(screen::denied(grant, reason));
        }
        let keys = self.keys();
        keys.prepare(tenant, &subjects, true).await?;
        let write_keys = keys.for_writes(tenant).await?;
        let row_keys = keys
            .for_row_write(tenant, record.subject(), &write_keys)
            .await?;
        let probe = self.probes_older_indexes(tenant).await?;
        let mut writer = RowWriter::new(record.id(), &row_keys, &write_keys.indexers, true)
            .keeping_indexed(probe);
        record.write(&mut writer)?;
        self.unique_across_index_versions(tx, record.id(), &writer.indexed, &write_keys)
            .await?;
        let (written, sets) = self.sql.assignments(writer.slots)?;
        let fields = spec.fields();
        screen::check_writable(grant, written.iter().filter_map(|i| fields.get(*i)))?;
        let nothing_to_set = sets.is_empty();
        if self
            .sql
            .update(tx, record.id(), record.subject(), sets)
            .await?
            == 0
        {
            return Err(not_found(spec));
        }
        if nothing_to_set {
            return Ok(Vec::new());
        }
        // Encrypted fields first, then plain ones: the order the hook has always seen.
        let (encrypted, plain): (Vec<usize>, Vec<usize>) = written
            .into_iter()
            .partition(|i| fields.get(*i).is_some_and(|f| f.is_encrypted()));
        Ok(encrypted
            .into_iter()
            .chain(plain)
            .filter_map(|i| fields.get(i))
            .map(|f| (f.name.clone(), f.category.clone()))
            .collect())
    }

    /// Whether writes must probe older index versions for uniqueness: only for a record with
    /// a unique blind-indexed field, and only while the tenant has more than one live index
    /// key version (a cached lookup), so the common write pays nothing.
    async fn probes_older_indexes(&self, tenant: plenum_core::TenantId) -> Result<bool, Error> {
        let unique_indexed = self
            .spec()
            .fields()
            .iter()
            .any(|f| f.unique && f.blind_index_spec().is_some());
        if !unique_indexed {
            return Ok(false);
        }
        Ok(self.shared.keyring.live_index_versions(tenant).await? > 1)
    }

    /// A unique blind-indexed field is unique across every live index key version: the
    /// database's unique index covers the active version's values, and rows written before an
    /// index-key rotation (not yet re-indexed) carry an older version's value for the same
    /// plaintext, so those are looked up here. One query per unique indexed field, and only
    /// while the tenant has more than one live index version (`indexed` is empty otherwise).
    async fn unique_across_index_versions(
        &self,
        tx: &mut TenantTx,
        id: RecordId,
        indexed: &[(usize, plenum_crypto::Pii<String>)],
        write_keys: &super::keys::WriteKeys,
    ) -> Result<(), Error> {
        let spec = self.spec();
        for (position, text) in indexed {
            let Some(field) = spec.fields().get(*position).filter(|f| f.unique) else {
                continue;
            };
            let Some(b) = field.blind_index_spec() else {
                continue;
            };
            let candidates = self
                .shared
                .keyring
                .blind_index_candidates(
                    tx.tenant(),
                    spec.record_type(),
                    &field.name,
                    b.normaliser,
                    text.expose(),
                )
                .await?;
            let active = write_keys
                .indexers
                .get(*position)
                .and_then(Option::as_ref)
                .map(|i| i.compute(text.expose()))
                .transpose()?;
            let older: Vec<Vec<u8>> = candidates
                .iter()
                .filter(|c| active.as_ref() != Some(*c))
                .map(|c| c.as_bytes().to_vec())
                .collect();
            if older.is_empty() {
                continue;
            }
            let probe = Read::Find {
                column: b.column.as_str(),
                candidates: older,
                check: None,
            };
            if self
                .sql
                .fetch(tx, &probe)
                .await?
                .iter()
                .any(|row| row.head.id != id)
            {
                return Err(Error::UniqueViolation {
                    record_type: spec.record_type().to_string(),
                    field: field.name.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Screens (the row's subject read `FOR UPDATE`) and deletes.
    async fn delete_row(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        id: RecordId,
        access: &mut Access,
    ) -> Result<(), Error> {
        let spec = self.spec();
        screen::check_grant(tx, grant, spec.record_type().as_str())?;
        screen::check_rows(grant)?;
        // Deleting a row takes every field of it: the purpose must be one that may touch them.
        screen::check_writable(grant, spec.fields().iter())?;
        let subject = if spec.has_subject() {
            let s = self.sql.subject_of(tx, id).await?;
            // Named in the event whether or not the delete is allowed.
            access.subjects = vec![s];
            Some(s)
        } else {
            None
        };
        let subjects = subjects_of(subject);
        if let Some(reason) = screen::decide(tx, grant, &subjects).await?.denial(subject) {
            return Err(screen::denied(grant, reason));
        }
        if self.sql.delete(tx, id).await? == 0 {
            return Err(not_found(spec));
        }
        Ok(())
    }
}
