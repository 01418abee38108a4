//! The row plumbing generated code goes through: [`RowWriter`] seals a record's fields with the
//! keys the repository resolved for the row, [`RowReader`] hands a stored row's fields back
//! still sealed. Neither runs SQL.

use plenum_core::{RecordId, SubjectId, TenantId};
use plenum_crypto::{BlindIndexer, FieldKey, PiiValue};

use super::{ColumnType, EncryptedColumn, RecordSpec, Value};
use crate::encrypted::{Encrypted, KeySlot};
use crate::error::Error;

/// What a field contributes to a write.
#[derive(Debug)]
pub(crate) enum Slot {
    /// Not written yet.
    Empty,
    /// A column value (plain, or envelope bytes), with the blind index value if the field has
    /// one.
    Set(Value, Option<Value>),
    /// An encrypted field loaded and not changed: an update leaves its columns alone.
    Unchanged,
}

/// Receives a record's fields for a write; sealing happens here, with keys the repository
/// resolved for this row.
pub struct RowWriter<'a> {
    record: RecordId,
    keys: &'a [Option<FieldKey>],
    indexers: &'a [Option<BlindIndexer>],
    /// Whether loaded, unchanged encrypted values may be left as they are (update) or must be
    /// sealed afresh for this record (insert).
    keep_unchanged: bool,
    pub(crate) slots: Vec<Slot>,
    /// The plaintexts written to blind-indexed fields, by position, kept only while the tenant
    /// has more than one live index key version ([`RowWriter::keeping_indexed`]): what a
    /// uniqueness check across index versions needs.
    pub(crate) indexed: Vec<(usize, plenum_crypto::Pii<String>)>,
    keep_indexed: bool,
}

impl core::fmt::Debug for RowWriter<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RowWriter")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

impl<'a> RowWriter<'a> {
    pub(crate) fn new(
        record: RecordId,
        keys: &'a [Option<FieldKey>],
        indexers: &'a [Option<BlindIndexer>],
        keep_unchanged: bool,
    ) -> Self {
        Self {
            record,
            keys,
            indexers,
            keep_unchanged,
            slots: (0..keys.len()).map(|_| Slot::Empty).collect(),
            indexed: Vec::new(),
            keep_indexed: false,
        }
    }

    /// Keeps the plaintext of each blind-indexed field written (see `indexed`).
    #[must_use]
    pub(crate) fn keeping_indexed(mut self, keep: bool) -> Self {
        self.keep_indexed = keep;
        self
    }

    fn slot(&mut self, field: usize) -> Result<&mut Slot, Error> {
        self.slots.get_mut(field).ok_or(Error::Config(
            "field position out of range of the record spec",
        ))
    }

    /// Writes a plain field.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `field` is not a position of the spec.
    pub fn plain<T: ColumnType>(&mut self, field: usize, value: &T) -> Result<(), Error> {
        *self.slot(field)? = Slot::Set(value.to_value(), None);
        Ok(())
    }

    /// Writes an encrypted field: sealed under this row's key for the field, unless it was
    /// loaded and not changed and the write is an update.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `field` is not an encrypted field of the spec; sealing failures.
    pub fn encrypted<E: EncryptedColumn>(&mut self, field: usize, value: &E) -> Result<(), Error> {
        let slot = self.seal(field, value.as_encrypted(), None)?;
        *self.slot(field)? = slot;
        Ok(())
    }

    /// Writes an encrypted, blind-indexed text field: the envelope and the blind index of the
    /// normalised value.
    ///
    /// # Errors
    ///
    /// As [`RowWriter::encrypted`], plus normalisation failures (an empty email, say).
    pub fn encrypted_indexed<E: EncryptedColumn<Plain = String>>(
        &mut self,
        field: usize,
        value: &E,
    ) -> Result<(), Error> {
        let indexer = self
            .indexers
            .get(field)
            .and_then(Option::as_ref)
            .ok_or(Error::Config("blind index on a field declared without one"))?;
        let slot = self.seal(field, value.as_encrypted(), Some(indexer))?;
        *self.slot(field)? = slot;
        Ok(())
    }

    fn seal<T: PiiValue>(
        &mut self,
        field: usize,
        value: Option<&Encrypted<T>>,
        indexer: Option<&BlindIndexer>,
    ) -> Result<Slot, Error> {
        let Some(value) = value else {
            let index = indexer.map(|_| Value::Null);
            return Ok(Slot::Set(Value::Null, index));
        };
        // An update leaves a field alone only while it holds the value stored in this very
        // field of this very record; one copied from another record or field is re-sealed for
        // this one (a withheld copy cannot be, and is refused by `seal_for`).
        if self.keep_unchanged && value.is_stored_at(self.record, field) {
            return Ok(Slot::Unchanged);
        }
        let key = self
            .keys
            .get(field)
            .and_then(Option::as_ref)
            .ok_or(Error::Config("encrypted write to a field declared plain"))?;
        let sealed = value.seal_for(key, self.record, indexer, self.keep_indexed)?;
        if let Some(text) = sealed.indexed {
            self.indexed.push((field, text));
        }
        Ok(Slot::Set(
            Value::Bytes(sealed.envelope.into_bytes()),
            sealed.index.map(|i| Value::Bytes(i.as_bytes().to_vec())),
        ))
    }
}

/// Hands a stored row's fields to [`Record::read`](crate::Record::read).
pub struct RowReader {
    spec: &'static RecordSpec,
    tenant: TenantId,
    id: RecordId,
    subject: Option<SubjectId>,
    values: Vec<Option<Value>>,
    keys: Vec<Option<KeySlot>>,
    withheld: std::sync::Arc<[bool]>,
}

impl core::fmt::Debug for RowReader {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RowReader")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl RowReader {
    pub(crate) fn new(
        spec: &'static RecordSpec,
        tenant: TenantId,
        id: RecordId,
        subject: Option<SubjectId>,
        values: Vec<Option<Value>>,
        keys: Vec<Option<KeySlot>>,
        withheld: std::sync::Arc<[bool]>,
    ) -> Self {
        Self {
            spec,
            tenant,
            id,
            subject,
            values,
            keys,
            withheld,
        }
    }

    /// The row's id.
    pub fn id(&self) -> RecordId {
        self.id
    }

    /// The row's tenant (already checked against the transaction's).
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The row's data subject.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if the record type has none.
    pub fn subject(&self) -> Result<SubjectId, Error> {
        self.subject
            .ok_or(Error::Config("the record type declares no subject"))
    }

    fn decode_error(&self, field: usize) -> Error {
        Error::Decode {
            record_type: self.spec.record_type().to_string(),
            field: self
                .spec
                .fields()
                .get(field)
                .map_or_else(|| format!("#{field}"), |f| f.name.to_string()),
        }
    }

    fn take(&mut self, field: usize) -> Result<Value, Error> {
        self.values
            .get_mut(field)
            .and_then(Option::take)
            .ok_or(Error::Config(
                "field read twice or out of range of the spec",
            ))
    }

    /// Takes a plain field.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] if the column does not decode as `T`.
    pub fn plain<T: ColumnType>(&mut self, field: usize) -> Result<T, Error> {
        let value = self.take(field)?;
        T::from_value(value).ok_or_else(|| self.decode_error(field))
    }

    /// Takes an encrypted field, still sealed: nothing is decrypted until the caller opens it.
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] if the column is not bytes, or NULL in a non-optional field.
    pub fn encrypted<E: EncryptedColumn>(&mut self, field: usize) -> Result<E, Error> {
        let value = self.take(field)?;
        if self.withheld.get(field).copied().unwrap_or(false) {
            // Present or NULL alike: a withheld optional field does not reveal which.
            return E::from_encrypted(Some(Encrypted::withheld(self.id, field)))
                .ok_or_else(|| self.decode_error(field));
        }
        let key = self.keys.get_mut(field).and_then(Option::take);
        let loaded = match (value, key) {
            (Value::Null, _) => None,
            (Value::Bytes(bytes), Some(key)) => Some(Encrypted::loaded(bytes, key, self.id, field)),
            _ => return Err(self.decode_error(field)),
        };
        E::from_encrypted(loaded).ok_or_else(|| self.decode_error(field))
    }
}
