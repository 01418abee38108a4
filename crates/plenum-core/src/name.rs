//! Validated names (`RecordType`, `FieldName`, `Role`): `[a-z][a-z0-9_]*`, at most 63 bytes, so
//! they are safe as SQL identifiers and key-derivation labels; the literal macros check them at
//! compile time.

use alloc_free::Name;

/// Validation shared by every name type, usable in `const` context.
mod alloc_free {
    use std::borrow::Cow;

    use crate::error::NameProblem;

    /// PostgreSQL truncates identifiers at 63 bytes; refusing longer names keeps a record type
    /// and its table name the same string.
    pub(crate) const MAX_LEN: usize = 63;

    pub(crate) const fn validate(s: &str) -> Result<(), NameProblem> {
        let bytes = s.as_bytes();
        if bytes.is_empty() {
            return Err(NameProblem::Empty);
        }
        if bytes.len() > MAX_LEN {
            return Err(NameProblem::TooLong { found: bytes.len() });
        }
        if !bytes[0].is_ascii_lowercase() {
            return Err(NameProblem::BadStart);
        }
        let mut position = 1;
        while position < bytes.len() {
            let b = bytes[position];
            if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                return Err(NameProblem::UnexpectedCharacter { position });
            }
            position += 1;
        }
        Ok(())
    }

    /// A record type is also a table name, so it stays out of the namespaces of the library's
    /// own tables (`plenum_*` on SQLite, which has no schemas; `plenum.*` on PostgreSQL) and of
    /// the databases' catalogs.
    pub(crate) const fn validate_record_type(s: &str) -> Result<(), NameProblem> {
        if let Err(problem) = validate(s) {
            return Err(problem);
        }
        let mut i = 0;
        while i < super::RESERVED_RECORD_TYPE_PREFIXES.len() {
            if starts_with(
                s.as_bytes(),
                super::RESERVED_RECORD_TYPE_PREFIXES[i].as_bytes(),
            ) {
                return Err(NameProblem::Reserved);
            }
            i += 1;
        }
        Ok(())
    }

    const fn starts_with(s: &[u8], prefix: &[u8]) -> bool {
        if s.len() < prefix.len() {
            return false;
        }
        let mut i = 0;
        while i < prefix.len() {
            if s[i] != prefix[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub(crate) struct Name(pub(crate) Cow<'static, str>);
}

macro_rules! define_name {
    ($(#[$meta:meta])* $name:ident, $kind:expr, $validate:path) => {
        $(#[$meta])*
        ///
        /// A valid name matches `[a-z][a-z0-9_]*` and is at most 63 bytes long: it is safe to use
        /// as a SQL identifier, a key-derivation label and an audit field without quoting.
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Name);

        impl $name {
            /// Not public API: the target of the checked literal macros, which validate in a
            /// `const` block before calling it.
            #[doc(hidden)]
            pub const fn __from_validated_static(name: &'static str) -> Self {
                Self(Name(std::borrow::Cow::Borrowed(name)))
            }

            /// Validates and wraps a name built at run time.
            ///
            /// # Errors
            ///
            /// [`Error::InvalidName`](crate::Error::InvalidName) if `name` is not a valid
            /// identifier.
            pub fn new(name: impl Into<String>) -> Result<Self, crate::Error> {
                let name = name.into();
                match $validate(&name) {
                    Ok(()) => Ok(Self(Name(std::borrow::Cow::Owned(name)))),
                    Err(problem) => Err(crate::Error::InvalidName { kind: $kind, problem }),
                }
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0.0
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.as_str())
            }
        }

        impl core::str::FromStr for $name {
            type Err = crate::Error;

            fn from_str(s: &str) -> Result<Self, crate::Error> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
                Self::new(s.into_owned()).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Not public API: the const validator behind the checked literal macros.
#[doc(hidden)]
pub const fn __is_valid_name(name: &str) -> bool {
    alloc_free::validate(name).is_ok()
}

/// Not public API: the const validator behind `record_type!` and `#[derive(Record)]`.
#[doc(hidden)]
pub const fn __is_valid_record_type(name: &str) -> bool {
    alloc_free::validate_record_type(name).is_ok()
}

/// Prefixes no [`RecordType`] may start with: the library's own tables (`plenum`), and the
/// catalogs of PostgreSQL (`pg_`) and SQLite (`sqlite_`). On SQLite, which has no schemas,
/// every library table is named `plenum_*`, so a record type can never name one of them.
pub const RESERVED_RECORD_TYPE_PREFIXES: [&str; 3] = ["plenum", "pg_", "sqlite_"];

/// A [`RecordType`](crate::RecordType) from a string literal, checked at compile time.
///
/// ```
/// const CUSTOMER: plenum_core::RecordType = plenum_core::record_type!("customer");
/// assert_eq!(CUSTOMER.as_str(), "customer");
/// ```
///
/// A literal that is not a valid name fails the build:
///
/// ```compile_fail
/// const BAD: plenum_core::RecordType = plenum_core::record_type!("Customer; DROP TABLE");
/// ```
///
/// and so does a name in the library's own namespace
/// ([`RESERVED_RECORD_TYPE_PREFIXES`](crate::RESERVED_RECORD_TYPE_PREFIXES)):
///
/// ```compile_fail
/// const LEDGER: plenum_core::RecordType = plenum_core::record_type!("plenum_consent_events");
/// ```
#[macro_export]
macro_rules! record_type {
    ($name:literal) => {
        const {
            assert!(
                $crate::__is_valid_record_type($name),
                "invalid record type name: [a-z][a-z0-9_]*, at most 63 bytes, not starting with plenum, pg_ or sqlite_"
            );
            $crate::RecordType::__from_validated_static($name)
        }
    };
}

/// A [`FieldName`](crate::FieldName) from a string literal, checked at compile time.
///
/// ```
/// const EMAIL: plenum_core::FieldName = plenum_core::field_name!("email");
/// assert_eq!(EMAIL.as_str(), "email");
/// ```
///
/// ```compile_fail
/// const BAD: plenum_core::FieldName = plenum_core::field_name!("e-mail");
/// ```
#[macro_export]
macro_rules! field_name {
    ($name:literal) => {
        const {
            assert!($crate::__is_valid_name($name), "invalid field name");
            $crate::FieldName::__from_validated_static($name)
        }
    };
}

/// A [`Role`](crate::Role) from a string literal, checked at compile time.
///
/// ```
/// let role = plenum_core::role!("dispatcher");
/// assert_eq!(role.as_str(), "dispatcher");
/// ```
///
/// ```compile_fail
/// let role = plenum_core::role!("");
/// ```
#[macro_export]
macro_rules! role {
    ($name:literal) => {
        const {
            assert!($crate::__is_valid_name($name), "invalid role name");
            $crate::Role::__from_validated_static($name)
        }
    };
}

define_name!(
    /// The logical type of a record, which is also its table name: `customer`, `invoice`.
    RecordType,
    crate::NameKind::RecordType,
    alloc_free::validate_record_type
);
define_name!(
    /// The logical name of a field of a record, which is also its column name: `email`.
    FieldName,
    crate::NameKind::FieldName,
    alloc_free::validate
);
define_name!(
    /// A role an [`Actor`](crate::Actor) holds within its tenant: `dispatcher`, `billing`.
    ///
    /// Roles are tenant configuration, so this is an open, validated name rather than a closed
    /// enum; purposes (in `plenum-consent`) decide what a role may do.
    Role,
    crate::NameKind::Role,
    alloc_free::validate
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Error, ErrorKind, NameKind, NameProblem};

    const CUSTOMER: RecordType = crate::record_type!("customer");

    #[test]
    fn const_construction() {
        assert_eq!(CUSTOMER.as_str(), "customer");
        assert_eq!(CUSTOMER, "customer".parse().unwrap());
    }

    #[test]
    fn record_types_stay_out_of_the_library_namespace() {
        for reserved in [
            "plenum_consent_events",
            "plenum",
            "plenumx",
            "pg_class",
            "sqlite_master",
        ] {
            assert_eq!(
                RecordType::new(reserved),
                Err(Error::InvalidName {
                    kind: NameKind::RecordType,
                    problem: NameProblem::Reserved
                }),
                "{reserved}"
            );
            assert!(!__is_valid_record_type(reserved));
            // Still a valid field or role name: only tables share the library's namespace.
            assert!(FieldName::new(reserved).is_ok());
        }
        assert!(RecordType::new("customer_plenum").is_ok());
    }

    #[test]
    fn rejections_say_why() {
        let cases: [(&str, NameProblem); 5] = [
            ("", NameProblem::Empty),
            ("Customer", NameProblem::BadStart),
            ("1st", NameProblem::BadStart),
            (
                "email address",
                NameProblem::UnexpectedCharacter { position: 5 },
            ),
            ("x;drop", NameProblem::UnexpectedCharacter { position: 1 }),
        ];
        for (input, expected) in cases {
            let err = FieldName::new(input).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidName);
            assert_eq!(
                err,
                Error::InvalidName {
                    kind: NameKind::FieldName,
                    problem: expected
                },
                "{input:?}"
            );
        }
        let long = "a".repeat(64);
        assert_eq!(
            Role::new(long).unwrap_err(),
            Error::InvalidName {
                kind: NameKind::Role,
                problem: NameProblem::TooLong { found: 64 }
            }
        );
        assert!(Role::new("a".repeat(63)).is_ok());
    }

    #[test]
    fn serde_validates() {
        let role: Role = serde_json::from_str("\"dispatcher\"").unwrap();
        assert_eq!(serde_json::to_string(&role).unwrap(), "\"dispatcher\"");
        assert!(serde_json::from_str::<Role>("\"Dispatcher\"").is_err());
    }
}
