//! The crate's one error type. Errors never contain the rejected input.

use core::fmt;

use crate::id::IdKind;

/// Everything that can go wrong in `plenum-core`: only the parsing of untrusted input.
///
/// Messages never repeat the rejected input: ids and names arrive from URLs and job payloads, and
/// echoing them would carry whatever an attacker put there into logs.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An id string was not a canonical, non-nil UUID.
    #[error("invalid {kind}: {problem}")]
    InvalidId {
        /// Which id was being parsed.
        kind: IdKind,
        /// What was wrong with it.
        problem: IdProblem,
    },
    /// A record type, field or role name was not a valid identifier.
    #[error("invalid {kind}: {problem}")]
    InvalidName {
        /// Which kind of name was being parsed.
        kind: NameKind,
        /// What was wrong with it.
        problem: NameProblem,
    },
    /// An actor kind string was not one of the documented forms.
    #[error("unknown actor kind")]
    UnknownActorKind,
}

impl Error {
    /// The category of this error, for callers that branch on it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidId { .. } => ErrorKind::InvalidId,
            Self::InvalidName { .. } | Self::UnknownActorKind => ErrorKind::InvalidName,
        }
    }
}

/// The category of an [`Error`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// An id could not be parsed.
    InvalidId,
    /// A name (record type, field, role, actor kind) could not be parsed.
    InvalidName,
}

/// What was wrong with a rejected id string.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdProblem {
    /// The string was empty.
    Empty,
    /// The string did not have the 36 characters of the hyphenated form.
    WrongLength {
        /// The length found, in bytes.
        found: usize,
    },
    /// A character was neither a hex digit nor a hyphen in its place.
    UnexpectedCharacter {
        /// Zero-based byte offset of the first offending character.
        position: usize,
    },
    /// The nil UUID, which is never a valid id.
    Nil,
}

impl fmt::Display for IdProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty string"),
            Self::WrongLength { found } => {
                write!(f, "expected 36 characters (hyphenated UUID), found {found}")
            }
            Self::UnexpectedCharacter { position } => {
                write!(f, "unexpected character at position {position}")
            }
            Self::Nil => f.write_str("the nil UUID is not a valid id"),
        }
    }
}

/// Which kind of name was rejected.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A [`RecordType`](crate::RecordType).
    RecordType,
    /// A [`FieldName`](crate::FieldName).
    FieldName,
    /// A [`Role`](crate::Role).
    Role,
    /// A [`DataCategory`](crate::DataCategory).
    DataCategory,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RecordType => "record type",
            Self::FieldName => "field name",
            Self::Role => "role",
            Self::DataCategory => "data category",
        })
    }
}

/// What was wrong with a rejected name.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    /// The name was empty.
    Empty,
    /// The name was longer than 63 bytes (PostgreSQL's identifier limit).
    TooLong {
        /// The length found, in bytes.
        found: usize,
    },
    /// The name did not start with a lowercase ASCII letter.
    BadStart,
    /// A character other than `a-z`, `0-9` or `_`.
    UnexpectedCharacter {
        /// Zero-based byte offset of the first offending character.
        position: usize,
    },
    /// A record type in a namespace the library or the database keeps for itself
    /// ([`RESERVED_RECORD_TYPE_PREFIXES`](crate::RESERVED_RECORD_TYPE_PREFIXES)): a record
    /// declared as `plenum_consent_events` would write into the consent ledger.
    Reserved,
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty string"),
            Self::TooLong { found } => write!(f, "at most 63 bytes allowed, found {found}"),
            Self::BadStart => f.write_str("must start with a lowercase ASCII letter"),
            Self::Reserved => f.write_str(
                "reserved for the library's and the database's own tables (prefixes plenum, pg_, sqlite_)",
            ),
            Self::UnexpectedCharacter { position } => write!(
                f,
                "unexpected character at position {position} (allowed: a-z, 0-9, _)"
            ),
        }
    }
}
