//! Tenant-scoped repositories: the everyday way to read and write records.
//!
//! A repository call flows down through stages, each in its own file, and comes back once:
//!
//! 1. **describe** ([`report::describe`]): what is about to happen, from the grant (actor,
//!    request, purpose, basis, policy);
//! 2. **screen** (`screen.rs`): the grant's tenant, the purpose's field categories (the
//!    [`screen::FieldMask`]: what a marketing read may not see is dropped here) and the
//!    subjects' consent, objection and restriction ([`screen::decide`]);
//! 3. **keys** (`keys.rs`): tenant keys and blind indexers once per call, subject keys as one
//!    bundle per row;
//! 4. **rows** (`rows.rs`): the record type's statements, run in the caller's transaction,
//!    rows checked against its tenant and turned into records, sealed fields left sealed;
//! 5. **report** ([`report::report`]): the access hook hears how it ended, refusals included.
//!
//! `read.rs` and `write.rs` hold the public [`Repository`] methods as those orchestrations;
//! `records.rs` holds [`Records`], the service hub (repositories, consent recording, erasure,
//! key rotation). Nothing below this module hands out a connection or plaintext.

mod adopt;
mod erase;
mod export;
mod holds;
mod key_status;
mod keys;
mod offboard;
mod read;
mod records;
mod reencrypt;
mod report;
mod requests;
mod retention;
mod rows;
mod screen;
mod subject_sweeps;
mod write;

use core::fmt;
use core::marker::PhantomData;
use std::sync::Arc;

use plenum_core::{FieldName, RecordId};
use plenum_crypto::Keyring;

pub use self::adopt::AdoptPage;
pub use self::erase::ErasedRecords;
pub use self::export::ExportSummary;
pub use self::key_status::ValuesPerVersion;
use self::keys::{KeyLayout, RowKeys};
pub use self::offboard::Offboarding;
pub use self::records::{CONSENT_EVIDENCE_MAX_AHEAD, CONSENT_EVIDENCE_MAX_BEHIND, Records};
pub use self::reencrypt::ReencryptPage;
pub use self::requests::{ErasureReceipt, IdentityVerifier, Rectification};
pub use self::retention::{PlanItem, RetentionPlan};
use self::rows::Statements;
use crate::access::{Access, AccessHook, Action};
use crate::error::Error;
use crate::gate::PurposeGrant;
use crate::record::{Record, RecordSpec};

/// What every repository of one [`Records`] shares: the key hierarchy and the access hook.
struct Shared {
    keyring: Arc<Keyring>,
    hook: Arc<dyn AccessHook>,
    /// The record types erasure reaches, parents first (`Records::with_record_types`).
    record_types: Vec<&'static RecordSpec>,
}

/// One page of a keyset-paginated list.
#[derive(Debug)]
pub struct Page<R> {
    /// The records, in id order (creation order, ids being UUIDv7).
    pub items: Vec<R>,
    /// Pass this as `after` for the next page; `None` on the last page.
    pub next: Option<RecordId>,
    /// Rows of this page left out of `items` because they could not be read (a stored value
    /// that does not decode as the record type declares), with why. The access hook was told
    /// of each as a failure. Rows whose sealed fields are malformed are in `items` instead:
    /// those fields alone refuse to open.
    pub unreadable: Vec<UnreadableRow>,
}

/// A row a page could not return, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnreadableRow {
    /// The row's id.
    pub id: RecordId,
    /// Why: [`ErrorKind::Tampered`](crate::ErrorKind::Tampered) for a row that does not decode.
    pub kind: crate::ErrorKind,
}

/// The operations on records of type `R`. Every one takes the tenant transaction it runs in and
/// a [`PurposeGrant`]: there is no way to touch a record without both.
///
/// Each statement filters by `tenant_id = $1` (besides row-level security on PostgreSQL), every
/// row read is checked against the transaction's tenant, encrypted fields are sealed on write
/// and left sealed on read until opened, reads return only what the grant's purpose may see of
/// the subjects it may process, writes touch only fields and subjects the purpose may, and the
/// operation is described to the access hook with the grant's actor, request and purpose.
pub struct Repository<R> {
    shared: Arc<Shared>,
    sql: Arc<Statements>,
    layout: Arc<KeyLayout>,
    _record: PhantomData<fn() -> R>,
}

impl<R> Clone for Repository<R> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            sql: self.sql.clone(),
            layout: self.layout.clone(),
            _record: PhantomData,
        }
    }
}

impl<R: Record> fmt::Debug for Repository<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repository")
            .field("record_type", R::spec().record_type())
            .finish_non_exhaustive()
    }
}

impl<R: Record> Repository<R> {
    fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            sql: Arc::new(Statements::new(R::spec())),
            layout: Arc::new(KeyLayout::new(R::spec())),
            _record: PhantomData,
        }
    }

    fn spec(&self) -> &'static RecordSpec {
        R::spec()
    }

    /// A record type holds a person's data only once registered with the `Records` it is
    /// written through ([`Records::with_record_types`]): what is registered is what rights
    /// requests, exports and erasure reach, so an unregistered one would hide a subject's data
    /// from them.
    fn check_registered(&self) -> Result<(), Error> {
        let spec = self.spec();
        if spec.has_subject()
            && !self
                .shared
                .record_types
                .iter()
                .any(|s| s.record_type() == spec.record_type())
        {
            return Err(invalid(
                spec,
                "a record type with a data subject must be registered (Records::with_record_types) \
                 before it holds subject data, so that rights requests and erasure reach it",
            ));
        }
        Ok(())
    }

    fn keys(&self) -> RowKeys<'_> {
        RowKeys {
            keyring: &self.shared.keyring,
            spec: R::spec(),
            layout: &self.layout,
        }
    }

    fn describe(&self, grant: &PurposeGrant<'_>, action: Action) -> Access {
        report::describe(grant, action, self.spec().record_type().clone())
    }

    async fn report<T>(
        &self,
        tx: &mut crate::tx::TenantTx,
        access: Access,
        result: Result<T, Error>,
        rows: impl FnOnce(&T) -> u64,
    ) -> Result<T, Error> {
        report::report(&*self.shared.hook, tx, access, result, rows).await
    }
}

/// A sqlx error as the store's error, a unique violation naming the logical field.
fn db_error(spec: &RecordSpec, e: sqlx::Error) -> Error {
    match Error::from_sqlx(e, spec.record_type().as_str()) {
        Error::UniqueViolation { record_type, field } => Error::UniqueViolation {
            field: spec
                .field_of_column(&field)
                .map_or(field, FieldName::to_string),
            record_type,
        },
        other => other,
    }
}

fn not_found(spec: &RecordSpec) -> Error {
    Error::NotFound {
        record_type: spec.record_type().to_string(),
    }
}

fn invalid(spec: &RecordSpec, reason: &'static str) -> Error {
    Error::InvalidRecord {
        record_type: spec.record_type().to_string(),
        reason,
    }
}

fn decode_error(spec: &RecordSpec, field: &str) -> Error {
    Error::Decode {
        record_type: spec.record_type().to_string(),
        field: field.to_owned(),
    }
}
