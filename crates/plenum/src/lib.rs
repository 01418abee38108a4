//! Privacy primitives for Plenum services.
//!
//! Plenum is a CRM for HVAC businesses. Its privacy policy promises tenant isolation, encrypted
//! PII, purpose limitation, consent for marketing, audit of every access, export, erasure and
//! fixed retention. This crate is the one dependency a service takes to make those promises hold
//! by construction: the easy way to touch customer data is the isolated, encrypted,
//! purpose-limited and audited way.
//!
//! This facade holds no logic; it re-exports the workspace crates behind features.
//!
//! | Feature    | Default | What it enables                                              |
//! |------------|---------|--------------------------------------------------------------|
//! | `sqlite`   | yes     | the embedded SQLite backend (no server)                      |
//! | `postgres` | no      | the PostgreSQL backend, with Row-Level Security              |

#![forbid(unsafe_code)]

pub use plenum_core as core;
pub use plenum_crypto as crypto;
pub use plenum_store as store;

/// The names most services need, in one import: `use plenum::prelude::*;`.
pub mod prelude {
    pub use plenum_core::{
        Actor, ActorId, ActorKind, FieldName, RecordId, RecordType, RequestId, Role, SubjectId,
        TenantId, field_name, record_type, role,
    };
    pub use plenum_crypto::{Pii, PiiValue};
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    pub use plenum_store::{TenantBound, TenantPool, TenantTx};
}
