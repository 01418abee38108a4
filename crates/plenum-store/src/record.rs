//! Typed records: what a record type declares (its [`RecordSpec`]) and the row plumbing the
//! `#[derive(Record)]` macro of the `plenum` facade generates against.
//!
//! A declaration is the single source of the table DDL ([`RecordSpec::table`]), the SQL the
//! repository runs, the key each encrypted field is sealed under, and the field/category list
//! every access description carries.

use core::marker::PhantomData;

use chrono::{DateTime, NaiveDate, Utc};
use plenum_core::{DataCategory, FieldName, RecordId, RecordType, SubjectId, TenantId};
use plenum_crypto::{BlindIndexer, FieldKey, Normaliser, PiiValue};
use uuid::Uuid;

use crate::encrypted::{Encrypted, KeySlot};
use crate::error::Error;
use crate::table::{SqlType, TableSpec};

/// A record type: a struct whose rows live in a tenant's table, with encrypted PII fields.
///
/// Implemented by `#[derive(Record)]` (re-exported by the `plenum` facade), which checks the
/// declaration at compile time; a hand-written implementation must keep [`Record::write`] and
/// [`Record::read`] in the order of [`Record::spec`]'s fields.
pub trait Record: Sized + Send + Sync + 'static {
    /// The declaration: record type, subject, fields with their categories and storage.
    fn spec() -> &'static RecordSpec;

    /// The record's id (bound into every ciphertext of the row).
    fn id(&self) -> RecordId;

    /// The tenant the record belongs to; must be the transaction's.
    fn tenant(&self) -> TenantId;

    /// The data subject the row is about, if the record type has one.
    fn subject(&self) -> Option<SubjectId>;

    /// Hands every field to `row`, in declaration order.
    ///
    /// # Errors
    ///
    /// Sealing failures.
    fn write(&self, row: &mut RowWriter<'_>) -> Result<(), Error>;

    /// Builds a record from a stored row, taking every field in declaration order.
    ///
    /// # Errors
    ///
    /// A column that does not decode as its field's type.
    fn read(row: &mut RowReader) -> Result<Self, Error>;
}

/// Whose key seals an encrypted field.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyOwner {
    /// The row's data subject: erasing the subject (destroying its key) erases the field in every
    /// row and every backup. The default for records with a subject.
    Subject,
    /// The tenant: for records without a subject, and for data that must outlive a subject's
    /// erasure (financial records kept under a legal obligation).
    Tenant,
}

/// How a field is stored.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// In the clear, as this SQL type.
    Plain(SqlType),
    /// Sealed in an envelope (`bytea`/`blob`).
    Encrypted {
        /// Whose key seals it.
        owner: KeyOwner,
        /// The blind index, if the field is searchable by equality.
        blind_index: Option<BlindIndexSpec>,
    },
}

/// A blind index column next to an encrypted field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlindIndexSpec {
    /// The normaliser applied before indexing.
    pub normaliser: Normaliser,
    /// The column holding the index (`<field>_bidx`).
    pub column: FieldName,
}

/// One declared field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    /// The logical name, which is also the column name.
    pub name: FieldName,
    /// Its data category (fideslang-style key).
    pub category: DataCategory,
    /// How it is stored.
    pub storage: Storage,
    /// Whether it may be NULL (an `Option` field).
    pub nullable: bool,
    /// For plain `RecordId` fields: the record type it references (same-tenant foreign key).
    pub references: Option<RecordType>,
    /// Unique within the tenant (for blind-indexed fields: the index is unique).
    pub unique: bool,
}

impl FieldSpec {
    /// A plain column.
    pub fn plain(name: FieldName, category: DataCategory, ty: SqlType, nullable: bool) -> Self {
        Self {
            name,
            category,
            storage: Storage::Plain(ty),
            nullable,
            references: None,
            unique: false,
        }
    }

    /// An encrypted column.
    pub fn encrypted(
        name: FieldName,
        category: DataCategory,
        owner: KeyOwner,
        nullable: bool,
    ) -> Self {
        Self {
            name,
            category,
            storage: Storage::Encrypted {
                owner,
                blind_index: None,
            },
            nullable,
            references: None,
            unique: false,
        }
    }

    /// Adds a blind index stored in `column` (an encrypted field only; ignored otherwise).
    #[must_use]
    pub fn blind_index(mut self, normaliser: Normaliser, column: FieldName) -> Self {
        if let Storage::Encrypted { blind_index, .. } = &mut self.storage {
            *blind_index = Some(BlindIndexSpec { normaliser, column });
        }
        self
    }

    /// Makes the field unique within the tenant.
    #[must_use]
    pub fn unique(mut self) -> Self {
        self.unique = true;
        self
    }

    /// Declares a same-tenant foreign key to `record_type`.
    #[must_use]
    pub fn references(mut self, record_type: RecordType) -> Self {
        self.references = Some(record_type);
        self
    }

    /// Whether the field is encrypted.
    pub fn is_encrypted(&self) -> bool {
        matches!(self.storage, Storage::Encrypted { .. })
    }

    /// The blind index, if any.
    pub fn blind_index_spec(&self) -> Option<&BlindIndexSpec> {
        match &self.storage {
            Storage::Encrypted { blind_index, .. } => blind_index.as_ref(),
            Storage::Plain(_) => None,
        }
    }

    fn sql_type(&self) -> SqlType {
        match self.storage {
            Storage::Plain(ty) => ty,
            Storage::Encrypted { .. } => SqlType::Bytes,
        }
    }
}

/// Column names every record table has, which no field may take.
const RESERVED: [&str; 3] = ["tenant_id", "id", "subject_id"];

/// A record type's declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSpec {
    record_type: RecordType,
    has_subject: bool,
    fields: Vec<FieldSpec>,
}

impl RecordSpec {
    /// A declaration, checked: field and index column names unique and not reserved, blind
    /// indexes and uniqueness only where they can work, subject-owned keys only with a subject.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRecord`] naming the first problem.
    pub fn new(
        record_type: RecordType,
        has_subject: bool,
        fields: Vec<FieldSpec>,
    ) -> Result<Self, Error> {
        let bad = |reason: &'static str| Error::InvalidRecord {
            record_type: record_type.to_string(),
            reason,
        };
        let mut names: Vec<&str> = RESERVED.to_vec();
        for f in &fields {
            names.push(f.name.as_str());
            if let Some(b) = f.blind_index_spec() {
                names.push(b.column.as_str());
            }
        }
        let total = names.len();
        names.sort_unstable();
        names.dedup();
        if names.len() != total {
            return Err(bad(
                "two columns share a name, or a field uses a reserved name",
            ));
        }
        for f in &fields {
            match &f.storage {
                Storage::Encrypted { owner, blind_index } => {
                    if *owner == KeyOwner::Subject && !has_subject {
                        return Err(bad("a subject-owned field needs a subject field"));
                    }
                    if f.unique && blind_index.is_none() {
                        return Err(bad(
                            "an encrypted field can only be unique by its blind index",
                        ));
                    }
                    if f.references.is_some() {
                        return Err(bad("an encrypted field cannot reference another record"));
                    }
                }
                Storage::Plain(ty) => {
                    if f.references.is_some() && *ty != SqlType::Uuid {
                        return Err(bad("only an id field can reference another record"));
                    }
                }
            }
        }
        Ok(Self {
            record_type,
            has_subject,
            fields,
        })
    }

    /// Not public API: the derive's constructor, whose checks ran at compile time.
    #[doc(hidden)]
    pub fn __derived(record_type: RecordType, has_subject: bool, fields: Vec<FieldSpec>) -> Self {
        Self {
            record_type,
            has_subject,
            fields,
        }
    }

    /// The record type (and table name).
    pub fn record_type(&self) -> &RecordType {
        &self.record_type
    }

    /// Whether rows carry a data subject (`subject_id`).
    pub fn has_subject(&self) -> bool {
        self.has_subject
    }

    /// The fields, in declaration order.
    pub fn fields(&self) -> &[FieldSpec] {
        &self.fields
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.name.as_str() == name)
    }

    /// The table the tenancy contract requires for this record: `tenant_id` leading every key,
    /// `bytea`/`blob` ciphertext columns, blind index columns with `(tenant_id, index)` indexes,
    /// an index on `(tenant_id, subject_id)` for access requests and erasure.
    pub fn table(&self) -> TableSpec {
        let mut t = TableSpec::new(self.record_type.clone());
        if self.has_subject {
            t = t
                .column(subject_column(), SqlType::Uuid, false)
                .index(subject_column());
        }
        for f in &self.fields {
            t = t.column(f.name.clone(), f.sql_type(), f.nullable);
            if let Some(r) = &f.references {
                t = t.foreign_key(f.name.clone(), r.clone());
            }
            match f.blind_index_spec() {
                Some(b) => {
                    t = t.column(b.column.clone(), SqlType::Bytes, f.nullable);
                    t = if f.unique {
                        t.unique(b.column.clone())
                    } else {
                        t.index(b.column.clone())
                    };
                }
                None if f.unique => t = t.unique(f.name.clone()),
                None => {}
            }
        }
        t
    }

    /// The logical field behind a column name (a blind index column maps to its field).
    pub(crate) fn field_of_column(&self, column: &str) -> Option<&FieldName> {
        self.fields.iter().find_map(|f| {
            if f.name.as_str() == column {
                return Some(&f.name);
            }
            f.blind_index_spec()
                .filter(|b| b.column.as_str() == column)
                .map(|_| &f.name)
        })
    }
}

pub(crate) fn subject_column() -> FieldName {
    plenum_core::field_name!("subject_id")
}

/// A blind-indexed field of `R`, for [`Repository::find`](crate::Repository::find). The derive
/// generates one associated constant per blind-indexed field (`Customer::EMAIL_INDEX`), so a
/// search on a field without an index does not compile.
pub struct BlindIndexField<R> {
    field: usize,
    _record: PhantomData<fn() -> R>,
}

impl<R> BlindIndexField<R> {
    /// Not public API: made by the derive, with the index of a blind-indexed field.
    #[doc(hidden)]
    pub const fn __new(field: usize) -> Self {
        Self {
            field,
            _record: PhantomData,
        }
    }

    /// The position of the field in the record's spec.
    pub fn position(&self) -> usize {
        self.field
    }
}

impl<R> Clone for BlindIndexField<R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for BlindIndexField<R> {}

impl<R> core::fmt::Debug for BlindIndexField<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("BlindIndexField").field(&self.field).finish()
    }
}

/// A column value in transit between a record and the database. Plain values only: encrypted
/// fields travel as envelope bytes.
#[non_exhaustive]
#[derive(Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A UUID.
    Uuid(Uuid),
    /// Text.
    Text(String),
    /// Bytes (envelopes, blind indexes).
    Bytes(Vec<u8>),
    /// A 64-bit integer.
    BigInt(i64),
    /// A boolean.
    Bool(bool),
    /// A UTC timestamp.
    Timestamp(DateTime<Utc>),
}

/// Values of plain columns are not PII by declaration, but they are still row data: `Debug`
/// names the variant only.
impl core::fmt::Debug for Value {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = match self {
            Self::Null => "Null",
            Self::Uuid(_) => "Uuid",
            Self::Text(_) => "Text",
            Self::Bytes(_) => "Bytes",
            Self::BigInt(_) => "BigInt",
            Self::Bool(_) => "Bool",
            Self::Timestamp(_) => "Timestamp",
        };
        write!(f, "Value::{name}(..)")
    }
}

/// A Rust type stored in the clear in one column.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored as a plain column of a record",
    note = "plain columns are `String`, `i64`, `i32`, `bool`, `DateTime<Utc>`, `NaiveDate`, `Uuid`, `RecordId`, `SubjectId`, or an `Option` of one",
    note = "an `Encrypted<T>` field is declared `#[plenum(pii = \"<data category>\")]`"
)]
pub trait ColumnType: Sized {
    /// Its SQL type.
    const SQL_TYPE: SqlType;
    /// Whether it may be NULL (only `Option`).
    const NULLABLE: bool = false;

    /// To a column value.
    fn to_value(&self) -> Value;

    /// From a column value; `None` if it does not decode.
    fn from_value(value: Value) -> Option<Self>;
}

macro_rules! column_type {
    ($t:ty, $sql:ident, $variant:ident, |$v:ident| $to:expr, |$w:ident| $from:expr) => {
        impl ColumnType for $t {
            const SQL_TYPE: SqlType = SqlType::$sql;

            fn to_value(&self) -> Value {
                let $v = self;
                Value::$variant($to)
            }

            fn from_value(value: Value) -> Option<Self> {
                match value {
                    Value::$variant($w) => $from,
                    _ => None,
                }
            }
        }
    };
}

column_type!(String, Text, Text, |v| v.clone(), |w| Some(w));
column_type!(i64, BigInt, BigInt, |v| *v, |w| Some(w));
column_type!(i32, BigInt, BigInt, |v| i64::from(*v), |w| i32::try_from(w)
    .ok());
column_type!(bool, Bool, Bool, |v| *v, |w| Some(w));
column_type!(DateTime<Utc>, Timestamp, Timestamp, |v| *v, |w| Some(w));
column_type!(Uuid, Uuid, Uuid, |v| *v, |w| Some(w));
column_type!(RecordId, Uuid, Uuid, |v| *v.as_uuid(), |w| Some(
    RecordId::from_trusted_uuid(w)
));
column_type!(SubjectId, Uuid, Uuid, |v| *v.as_uuid(), |w| Some(
    SubjectId::from_trusted_uuid(w)
));
column_type!(
    NaiveDate,
    Text,
    Text,
    |v| v.format("%Y-%m-%d").to_string(),
    |w| NaiveDate::parse_from_str(&w, "%Y-%m-%d").ok()
);

impl<T: ColumnType> ColumnType for Option<T> {
    const SQL_TYPE: SqlType = T::SQL_TYPE;
    const NULLABLE: bool = true;

    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, T::to_value)
    }

    fn from_value(value: Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// A field type stored encrypted: [`Encrypted<T>`] or `Option<Encrypted<T>>`.
#[diagnostic::on_unimplemented(
    message = "a `pii` field must be typed `Encrypted<T>` or `Option<Encrypted<T>>`, not `{Self}`",
    note = "`Encrypted<T>` seals the value on write and opens it only when asked; a bare `{Self}` would be stored in the clear"
)]
pub trait EncryptedColumn: Sized {
    /// The plaintext type.
    type Plain: PiiValue;
    /// Whether it may be NULL (only `Option`).
    const NULLABLE: bool;

    /// The value, if present.
    fn as_encrypted(&self) -> Option<&Encrypted<Self::Plain>>;

    /// From a stored value (`None` for NULL); `None` if NULL is not allowed.
    fn from_encrypted(value: Option<Encrypted<Self::Plain>>) -> Option<Self>;
}

impl<T: PiiValue> EncryptedColumn for Encrypted<T> {
    type Plain = T;
    const NULLABLE: bool = false;

    fn as_encrypted(&self) -> Option<&Encrypted<T>> {
        Some(self)
    }

    fn from_encrypted(value: Option<Encrypted<T>>) -> Option<Self> {
        value
    }
}

impl<T: PiiValue> EncryptedColumn for Option<Encrypted<T>> {
    type Plain = T;
    const NULLABLE: bool = true;

    fn as_encrypted(&self) -> Option<&Encrypted<T>> {
        self.as_ref()
    }

    fn from_encrypted(value: Option<Encrypted<T>>) -> Option<Self> {
        Some(value)
    }
}

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
        }
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
        &self,
        field: usize,
        value: Option<&Encrypted<T>>,
        indexer: Option<&BlindIndexer>,
    ) -> Result<Slot, Error> {
        let Some(value) = value else {
            let index = indexer.map(|_| Value::Null);
            return Ok(Slot::Set(Value::Null, index));
        };
        if self.keep_unchanged && (value.is_loaded() || value.is_withheld()) {
            return Ok(Slot::Unchanged);
        }
        let key = self
            .keys
            .get(field)
            .and_then(Option::as_ref)
            .ok_or(Error::Config("encrypted write to a field declared plain"))?;
        let sealed = value.seal_for(key, self.record, indexer)?;
        Ok(Slot::Set(
            Value::Bytes(sealed.envelope.into_bytes()),
            sealed.index.map(|i| Value::Bytes(i.as_bytes().to_vec())),
        ))
    }
}

/// Hands a stored row's fields to [`Record::read`].
pub struct RowReader {
    spec: &'static RecordSpec,
    tenant: TenantId,
    id: RecordId,
    subject: Option<SubjectId>,
    values: Vec<Option<Value>>,
    keys: Vec<Option<KeySlot>>,
    withheld: Vec<bool>,
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
        withheld: Vec<bool>,
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
            return E::from_encrypted(Some(Encrypted::withheld()))
                .ok_or_else(|| self.decode_error(field));
        }
        let key = self.keys.get_mut(field).and_then(Option::take);
        let loaded = match (value, key) {
            (Value::Null, _) => None,
            (Value::Bytes(bytes), Some(key)) => Some(Encrypted::loaded(bytes, key, self.id)),
            _ => return Err(self.decode_error(field)),
        };
        E::from_encrypted(loaded).ok_or_else(|| self.decode_error(field))
    }
}
