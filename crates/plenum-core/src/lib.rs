#![doc = include_str!("../README.md")]
//!
//! # Design
//!
//! - Ids are opaque newtypes over UUID. New ids are version 7 (time-ordered, so B-tree inserts stay
//!   local). There is no `Default`, no `Deref` and no blanket `From<Uuid>`: an id is either
//!   generated, parsed strictly from its canonical string, or read back from trusted storage through
//!   a constructor whose name says so.
//! - Names of record types, fields and roles are validated identifiers (`[a-z][a-z0-9_]*`, at most
//!   63 bytes) because they end up in SQL identifiers, key-derivation labels and audit events.
//! - Every type has a stable, documented string form, used by `Display`, `FromStr` and serde alike.
//!
//! # Non-goals
//!
//! This crate does no I/O, no async and no cryptography; it knows nothing about databases.

#![forbid(unsafe_code)]

mod actor;
mod category;
mod error;
mod id;
mod name;

pub use crate::actor::{Actor, ActorKind};
pub use crate::category::{__is_valid_category, DataCategory};
pub use crate::error::{Error, ErrorKind, IdProblem, NameKind, NameProblem};
pub use crate::id::{ActorId, IdKind, RecordId, RequestId, SubjectId, TenantId};
pub use crate::name::{
    __is_valid_name, __is_valid_record_type, FieldName, RESERVED_RECORD_TYPE_PREFIXES, RecordType,
    Role,
};
