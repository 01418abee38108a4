//! Values in transit between a record and the database, and the traits that say which Rust
//! types a plain column or an encrypted field may have. Plain values only: encrypted fields
//! travel as envelope bytes.

use chrono::{DateTime, NaiveDate, Utc};
use plenum_core::{RecordId, SubjectId};
use plenum_crypto::PiiValue;
use uuid::Uuid;

use crate::encrypted::Encrypted;
use crate::table::SqlType;

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
    /// The plaintext's type name ([`PiiValue::TYPE_NAME`]): how an export renders the opened
    /// value.
    const PLAINTEXT: &'static str = <Self::Plain as PiiValue>::TYPE_NAME;

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
