//! What every repository operation reports, and to whom.

use plenum_consent::{LegalBasis, Purpose};
use plenum_core::{Actor, DataCategory, FieldName, RecordId, RecordType, RequestId, SubjectId};
use plenum_crypto::BoxFuture;

use crate::error::{Error, ErrorKind};
use crate::tx::TenantTx;

/// What an operation did.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// One record by id.
    Read,
    /// A page of records.
    List,
    /// Records found by a blind index.
    Search,
    /// A count of records (no field values).
    Count,
    /// Records written.
    Insert,
    /// A record changed.
    Update,
    /// A record removed.
    Delete,
    /// A consent ledger event recorded (given, withdrawn, objection, restriction, ...).
    Consent(plenum_consent::EventKind),
    /// A data subject erased: every version of their key destroyed.
    Erase,
    /// Keys created (new subjects' keys, created on their first write).
    KeyCreate,
    /// A key rotated (a new active version).
    KeyRotate,
    /// Rows re-sealed under their key's active version (one page of a re-encryption sweep).
    KeyReencrypt,
    /// The tenant's keys re-wrapped under the root provider's current root key version.
    KeyRewrap,
    /// A subject's records exported (access or portability), one event per page.
    Export,
    /// A retention trigger event recorded (an account closed, a contract terminated).
    RetentionEvent,
    /// A retention action taken (audit bodies dropped past their period).
    Retention,
    /// A legal hold placed, or lifted.
    Hold {
        /// Placed (`true`) or lifted.
        placed: bool,
    },
    /// A data-subject request received or moved to the state it names.
    Request(plenum_consent::RequestState),
}

impl Action {
    /// A stable lower-case name (`read`, `list`, `consent.given`, ...), for logs and audit
    /// events.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::List => "list",
            Self::Search => "search",
            Self::Count => "count",
            Self::Insert => "insert",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Consent(kind) => match kind {
                plenum_consent::EventKind::Given => "consent.given",
                plenum_consent::EventKind::Withdrawn => "consent.withdrawn",
                plenum_consent::EventKind::Expired => "consent.expired",
                plenum_consent::EventKind::Objected => "consent.objected",
                plenum_consent::EventKind::ObjectionWithdrawn => "consent.objection_withdrawn",
                plenum_consent::EventKind::RestrictionPlaced => "consent.restriction_placed",
                plenum_consent::EventKind::RestrictionLifted => "consent.restriction_lifted",
                _ => "consent.other",
            },
            Self::Erase => "erase",
            Self::KeyCreate => "key.create",
            Self::KeyRotate => "key.rotate",
            Self::KeyReencrypt => "key.reencrypt",
            Self::KeyRewrap => "key.rewrap",
            Self::Export => "export",
            Self::RetentionEvent => "retention.event",
            Self::Retention => "retention",
            Self::Hold { placed: true } => "hold.placed",
            Self::Hold { placed: false } => "hold.lifted",
            Self::Request(state) => match state {
                plenum_consent::RequestState::Received => "request.received",
                plenum_consent::RequestState::IdentityPending => "request.identity_pending",
                plenum_consent::RequestState::InProgress => "request.in_progress",
                plenum_consent::RequestState::Extended(_) => "request.extended",
                plenum_consent::RequestState::Completed => "request.completed",
                plenum_consent::RequestState::Refused(_) => "request.refused",
                _ => "request.other",
            },
        }
    }
}

/// How an operation ended.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It did what was asked.
    Success,
    /// It failed with an error of this kind; nothing was returned or changed by it.
    Failed(ErrorKind),
    /// The purpose layer refused it; nothing was read.
    Denied(crate::Denial),
}

/// The description of one repository operation: never a value, only names, ids and counts.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// Who acted (from the grant's request).
    pub actor: Actor,
    /// The request the operation belonged to.
    pub request: RequestId,
    /// What was done.
    pub action: Action,
    /// To which record type.
    pub record_type: RecordType,
    /// The records involved (for a failed read by id: the id asked for).
    pub records: Vec<RecordId>,
    /// The fields touched, with their data categories.
    pub fields: Vec<(FieldName, DataCategory)>,
    /// The data subjects whose rows were touched, deduplicated.
    pub subjects: Vec<SubjectId>,
    /// How many rows were returned or changed.
    pub rows: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// The purpose it ran under; `None` under an unrestricted grant.
    pub purpose: Option<Purpose>,
    /// For an unrestricted grant ([`Gate::unrestricted`](crate::Gate::unrestricted)): the
    /// reason given for stepping outside the policy.
    pub unrestricted: Option<&'static str>,
    /// The legal basis the policy gives that purpose.
    pub legal_basis: Option<LegalBasis>,
    /// The version of the policy that decided.
    pub policy_version: Option<String>,
    /// For lists and searches: how many rows were left out because their subject's consent,
    /// objection or restriction forbade the purpose.
    pub excluded: u64,
}

/// Receives the description of every repository operation, inside the operation's transaction.
///
/// The audit log implements it by writing the event into `tx`, so the event commits with the
/// access or not at all; the purpose layer adds the purpose. An error from the hook fails the
/// operation (fail closed): a successful operation whose description cannot be recorded returns
/// the hook's error instead of its result. For failed operations the hook is told too, and its
/// own error is then ignored in favour of the original one.
///
/// There is no default hook: a repository needs one, and [`DiscardAccess`] must be named to
/// record nothing.
pub trait AccessHook: Send + Sync {
    /// Records `access`, performed in `tx`.
    ///
    /// # Errors
    ///
    /// Whatever keeps the description from being recorded; the operation then fails.
    fn on_access<'a>(
        &'a self,
        tx: &'a mut TenantTx,
        access: &'a Access,
    ) -> BoxFuture<'a, Result<(), Error>>;
}

/// The explicit no-op hook: records nothing. For tests and for tools whose accesses are audited
/// elsewhere; a production service names it at its peril.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiscardAccess;

impl AccessHook for DiscardAccess {
    fn on_access<'a>(
        &'a self,
        _tx: &'a mut TenantTx,
        _access: &'a Access,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
}
