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
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use plenum_audit as audit;
pub use plenum_consent as consent;
pub use plenum_core as core;
pub use plenum_crypto as crypto;
pub use plenum_store as store;

/// Declares a record type: derives [`store::Record`] for a struct with named fields.
///
/// ```
/// use plenum::Record;
/// use plenum::core::{RecordId, SubjectId, TenantId};
/// use plenum::store::Encrypted;
///
/// #[derive(Debug, Record)]
/// #[plenum(record_type = "customers", erasure = "delete")]
/// struct Customer {
///     #[plenum(id)]
///     id: RecordId,
///     #[plenum(tenant)]
///     tenant: TenantId,
///     #[plenum(subject)]
///     subject: SubjectId,
///     #[plenum(pii = "user.contact.email", blind_index = "email-v1", unique)]
///     email: Encrypted<String>,
///     #[plenum(category = "system.operations")]
///     visits: i64,
/// }
///
/// assert_eq!(Customer::EMAIL_INDEX.position(), 0);
/// ```
///
/// On the struct: `record_type = "<name>"` (the logical record type and table name; required);
/// for a record with a subject, `erasure = "delete" | "scrub" | "retain"` (required: what
/// erasing the subject does to the rows, see [`store::Erasure`]; `"retain"` also takes
/// `retain = "legal_obligation" | "legal_claims"`); `retention = "financial_records"` with
/// `counted_from = "<plain NaiveDate or DateTime<Utc> field>"` (the rows' retention class and
/// the date its period counts from: `Records::sweep_records` deletes them when the schedule says
/// so); `views(...)`; and `crate = "<path>"` (where the `plenum` facade is, if renamed).
///
/// On fields, exactly one each of:
/// - `id`: the [`core::RecordId`] (generate it with `RecordId::generate()` before inserting: the
///   ciphertexts of the row are bound to it);
/// - `tenant`: the [`core::TenantId`];
/// - `subject` (optional): the [`core::SubjectId`] the row is about; its key seals the row's PII.
///
/// And for every other field:
/// - `pii = "<category>"`: encrypted, typed [`store::Encrypted<T>`] or `Option<Encrypted<T>>`;
///   with `blind_index = "email-v1" | "phone-e164-v1" | "text-nfkc-v1"` (an `Encrypted<String>`
///   searchable by equality through `Repository::find` and the generated `<FIELD>_INDEX`
///   constant), `unique` (unique blind index), `owner = "tenant"` (sealed under the tenant key,
///   for data that must outlive the subject's erasure: a `user.*` category then also needs
///   `retain = "legal_obligation" | "legal_claims"`, the GDPR Art. 17(3) ground, shown in the
///   data map), `not_exported = "<reason>"` (withheld from every subject export, never decrypted
///   for one, the reason shown: a credential verifier);
/// - otherwise a plain column of a [`store::ColumnType`], with `category = "<category>"`
///   (required: there is no default, since the category decides which purposes see the field;
///   `system.operations` for data about no one), `unique`, `references = "<record type>"`
///   (same-tenant foreign key).
///
/// Mistakes are compile errors that say what to write instead.
#[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use plenum_macros::Record;

/// The names a service needs for everyday calls, in one import: `use plenum::prelude::*;`.
///
/// Ids and the actor; the PII wrapper and the encrypted field type; the record derive; the
/// purpose layer (policy, purposes, gate, request, grant); tenant transactions and
/// repositories; and what setting them up takes (keyring, local root key provider, database
/// key store, auditor). Anything more special is one module path away (`plenum::audit`,
/// `plenum::consent`, `plenum::crypto`, `plenum::store`).
pub mod prelude {
    pub use plenum_consent::{Policy, Purpose};
    pub use plenum_core::{
        Actor, ActorId, ActorKind, FieldName, RecordId, RecordType, RequestId, Role, SubjectId,
        TenantId, field_name, record_type, role,
    };
    pub use plenum_crypto::{Keyring, KeyringConfig, LocalKeyProvider, Pii, PiiValue};
    #[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    pub use plenum_store::{
        AccessHook, AuditLog, Auditor, Authorisation, DbKeyStore, DiscardAccess, Encrypted, Gate,
        PurposeGrant, Record as _, Records, Repository, Request, TenantBound, TenantPool, TenantTx,
    };

    #[cfg_attr(docsrs, doc(cfg(any(feature = "postgres", feature = "sqlite"))))]
    #[cfg(any(feature = "postgres", feature = "sqlite"))]
    pub use crate::Record;
}

/// What `#[derive(Record)]` expands to: one hidden path, so that generated code names nothing
/// at the public roots. Not API.
#[doc(hidden)]
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub mod __private {
    pub use plenum_consent::Purpose;
    pub use plenum_core::{RecordId, SubjectId, TenantId, data_category, field_name, record_type};
    pub use plenum_crypto::Normaliser;
    pub use plenum_store::__private::*;
}
