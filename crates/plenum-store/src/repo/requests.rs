//! Data-subject requests through [`Records`]: received, identity verified through the service's
//! [`IdentityVerifier`], answered (an export, an erasure with its receipt), listed as overdue.
//! Each act is screened (only `compliance.rights_fulfilment`, or an unrestricted grant) and
//! reported to the access hook like any other operation, naming the request and its subject.

use chrono::{DateTime, Utc};
use plenum_consent::{
    ConsentEvent, EventKind, Purpose, RefusalReason, RequestState, Right, Step, SubjectRequest,
    Verification,
};
use plenum_core::RecordId;

use super::ExportSummary;
use super::Records;
use super::erase::ErasedRecords;
use super::report::{describe, report};
use super::screen::{self, denied};
use crate::access::Action;
use crate::denial::Denial;
use crate::error::Error;
use crate::export::ExportSink;
use crate::gate::PurposeGrant;
use crate::record::Erasure;
use crate::requests::RequestStore;
use crate::tx::TenantTx;

/// The record type requests are reported under.
const REQUESTS: plenum_core::RecordType = plenum_core::record_type!("subject_requests");

fn not_found() -> Error {
    Error::NotFound {
        record_type: REQUESTS.to_string(),
    }
}

fn check(tx: &TenantTx, grant: &PurposeGrant<'_>) -> Result<(), Error> {
    screen::check_grant(tx, grant, REQUESTS.as_str())?;
    match grant.purpose() {
        None | Some(Purpose::RightsFulfilment) => Ok(()),
        Some(_) => Err(denied(grant, Denial::RequestNeedsRightsFulfilment)),
    }
}

/// Acting on a request is the tenant's (the controller's): platform staff may record a request
/// they received into the tenant's queue, never move it.
fn check_answering(tx: &TenantTx, grant: &PurposeGrant<'_>) -> Result<(), Error> {
    check(tx, grant)?;
    if grant.request().actor().kind() == plenum_core::ActorKind::Support {
        return Err(denied(grant, Denial::RequestAnsweredByItsTenant));
    }
    Ok(())
}

impl Records {
    /// [`check_answering`] for the answering calls, whose refusal is reported like any other
    /// (an attempt to act on request `id`) before anything is read or changed.
    async fn screen_answering(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        id: RecordId,
    ) -> Result<(), Error> {
        let screened = check_answering(tx, grant);
        if screened.is_ok() {
            return Ok(());
        }
        let mut access = describe(grant, Action::Request(RequestState::InProgress), REQUESTS);
        access.records = vec![id];
        report(&*self.shared.hook, tx, access, screened, |()| 0).await
    }

    /// Records a received data-subject request in `tx` and returns its id. The request belongs
    /// to `tx`'s tenant (the tenant whose data it is about): a request for another tenant is
    /// refused, so the platform can forward a homeowner's request but never answer it across
    /// tenants.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`] (`request_needs_rights_fulfilment`) under another purpose;
    /// [`Error::TenantMismatch`] for a request or grant of another tenant; database and hook
    /// failures.
    pub async fn receive_request(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        request: &SubjectRequest,
    ) -> Result<RecordId, Error> {
        let mut access = describe(grant, Action::Request(RequestState::Received), REQUESTS);
        access.subjects = vec![request.subject()];
        let result = async {
            check(tx, grant)?;
            if request.tenant() != tx.tenant() {
                return Err(Error::TenantMismatch {
                    record_type: REQUESTS.to_string(),
                });
            }
            if !request.history().is_empty() {
                return Err(Error::InvalidRecord {
                    record_type: REQUESTS.to_string(),
                    reason: "a request is recorded as received; its steps follow one by one",
                });
            }
            RequestStore::insert(tx, request).await
        }
        .await;
        if let Ok(id) = &result {
            access.records = vec![*id];
        }
        report(&*self.shared.hook, tx, access, result, |_| 1).await
    }

    /// Takes `step` on request `id` at `at`, by the grant's actor: loaded, checked by the
    /// state machine (an illegal step changes nothing), appended, audited as the state entered.
    /// Returns the request as it now stands.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if this tenant has no such request; [`Error::InvalidRecord`] for a
    /// step the request's state does not allow; [`Error::Denied`]; database and hook failures
    /// (two concurrent steps on one request: the second fails on the step's primary key).
    pub async fn advance_request(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        id: RecordId,
        step: Step,
        at: DateTime<Utc>,
    ) -> Result<SubjectRequest, Error> {
        let mut access = describe(grant, Action::Request(RequestState::InProgress), REQUESTS);
        access.records = vec![id];
        let actor = grant.request().actor().id();
        let result = async {
            check_answering(tx, grant)?;
            let mut request = RequestStore::load(tx, id).await?.ok_or_else(not_found)?;
            access.subjects = vec![request.subject()];
            let seq = request.history().len();
            request
                .apply(step.clone(), actor, at)
                .map_err(|e| Error::InvalidRecord {
                    record_type: REQUESTS.to_string(),
                    reason: match e {
                        plenum_consent::Error::ExtensionAfterDeadline => {
                            "a request is extended before its deadline, not after"
                        }
                        plenum_consent::Error::TransitionBeforePrevious => {
                            "a step is dated before the request's previous one"
                        }
                        _ => "the request's state does not allow this step",
                    },
                })?;
            access.action = Action::Request(request.state());
            RequestStore::append(tx, id, seq, &step, actor, at).await?;
            Ok(request)
        }
        .await;
        report(&*self.shared.hook, tx, access, result, |_| 1).await
    }

    /// Request `id` of this tenant, with its history. Reported as a read of the request.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`]; [`Error::Denied`]; database and hook failures.
    pub async fn subject_request(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        id: RecordId,
    ) -> Result<SubjectRequest, Error> {
        let mut access = describe(grant, Action::Read, REQUESTS);
        access.records = vec![id];
        let result = async {
            check(tx, grant)?;
            RequestStore::load(tx, id).await?.ok_or_else(not_found)
        }
        .await;
        if let Ok(r) = &result {
            access.subjects = vec![r.subject()];
        }
        report(&*self.shared.hook, tx, access, result, |_| 1).await
    }

    /// This tenant's requests still open past their due date at `now` (the clock paused while
    /// identity was pending, extensions counted), most overdue first: the report a privacy
    /// officer works from. Reported as a list of requests.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`]; database and hook failures.
    pub async fn overdue_requests(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(RecordId, SubjectRequest)>, Error> {
        let mut access = describe(grant, Action::List, REQUESTS);
        let result = async {
            check(tx, grant)?;
            let mut overdue: Vec<(RecordId, SubjectRequest)> = RequestStore::load_all(tx)
                .await?
                .into_iter()
                .filter(|(_, r)| r.is_overdue(now))
                .collect();
            overdue.sort_by_key(|(_, r)| r.due_at(now));
            Ok(overdue)
        }
        .await;
        if let Ok(list) = &result {
            access.records = list.iter().map(|(id, _)| *id).collect();
            access.subjects = super::report::subjects_of(list.iter().map(|(_, r)| r.subject()));
        }
        report(&*self.shared.hook, tx, access, result, |l| l.len() as u64).await
    }
}

/// The service's identity check for data-subject requests (a login, a callback, a signed
/// link). The library never sees or stores identity documents: it records the outcome only,
/// and a request moves to in progress only with a recorded outcome.
pub trait IdentityVerifier: Send + Sync {
    /// Whether the requester of `request` is who they say (or is authorised to act for the
    /// subject, for an agent).
    fn verify<'a>(
        &'a self,
        request: &'a SubjectRequest,
    ) -> plenum_crypto::BoxFuture<'a, Verification>;
}

/// What erasing a subject for a request did, per record type, and how the request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErasureReceipt {
    /// The request.
    pub request: RecordId,
    /// What was done to each record type with rows of the subject, parents first.
    pub records: Vec<ErasedRecords>,
    /// Key versions destroyed (every field sealed under them unreadable, backups included once
    /// the erasure epoch advances).
    pub keys_destroyed: usize,
    /// How the request ended: completed, or refused in part under a legal obligation when
    /// rows were retained (`RequestState::Refused(LegalObligation)`).
    pub outcome: RequestState,
    /// The request was already answered: nothing was done this time.
    pub already_answered: bool,
    /// When refused in part under a legal obligation: until when the retained rows must be
    /// kept (the latest end of their retention period), after which the retention sweep
    /// deletes them.
    pub retained_until: Option<DateTime<Utc>>,
}

impl Records {
    /// Runs identity verification for request `id`: a request just received is first marked
    /// as waiting for identity (the answer clock pauses), then `verifier`'s outcome is recorded
    /// (verified: in progress; failed: refused). Both steps are audited.
    ///
    /// # Errors
    ///
    /// As [`Records::advance_request`] (a request not awaiting identity: `InvalidRecord`).
    pub async fn verify_identity(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        id: RecordId,
        verifier: &dyn IdentityVerifier,
        at: DateTime<Utc>,
    ) -> Result<SubjectRequest, Error> {
        // Acting on a request is the tenant's: refused to platform staff before anything.
        self.screen_answering(tx, grant, id).await?;
        let mut request = self.subject_request(tx, grant, id).await?;
        if request.state() == RequestState::Received {
            request = self
                .advance_request(tx, grant, id, Step::AwaitIdentity, at)
                .await?;
        }
        let outcome = verifier.verify(&request).await;
        self.advance_request(tx, grant, id, Step::Verification(outcome), at)
            .await
    }

    /// Answers an access or portability request: exports its subject into `sink`
    /// ([`Records::export_subject`]) and completes the request at `at`. A request already
    /// completed is exported again without a new step (a lost answer re-sent).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRecord`] for a request of another kind, or not yet in progress (identity
    /// first); the errors of [`Records::export_subject`] and [`Records::advance_request`].
    pub async fn answer_access_request(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        id: RecordId,
        sink: &mut (dyn ExportSink + Send),
        at: DateTime<Utc>,
    ) -> Result<ExportSummary, Error> {
        // Acting on a request is the tenant's: refused to platform staff before anything.
        self.screen_answering(tx, grant, id).await?;
        let request = self.subject_request(tx, grant, id).await?;
        if !matches!(request.kind(), Right::Access | Right::Portability) {
            return Err(invalid_request(
                "only access and portability requests are exported",
            ));
        }
        let state = request.state();
        if !matches!(
            state,
            RequestState::InProgress | RequestState::Extended(_) | RequestState::Completed
        ) {
            return Err(invalid_request(
                "a request is answered once in progress (identity verified)",
            ));
        }
        let summary = self
            .export_subject(tx, grant, request.subject(), sink)
            .await?;
        if state != RequestState::Completed {
            self.advance_request(tx, grant, id, Step::Complete, at)
                .await?;
        }
        Ok(summary)
    }

    /// Answers an erasure request: erases its subject ([`Records::erase_subject`], each record
    /// type's rule) and ends the request at `at`, completed, or refused in part under a legal
    /// obligation when a record type retained rows (invoices); while a legal hold covers the
    /// subject's data, refused for legal claims with nothing erased. Commit `tx` for the row changes
    /// and the request's step to hold; the keys are destroyed either way (the key store commits
    /// on its own), so a crash before the commit leaves the request in progress, and running
    /// this again finishes it. A request already answered returns a receipt saying so and
    /// does nothing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRecord`] for a request of another kind or not yet in progress; the
    /// errors of [`Records::erase_subject`] and [`Records::advance_request`].
    pub async fn answer_erasure_request(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        id: RecordId,
        at: DateTime<Utc>,
    ) -> Result<ErasureReceipt, Error> {
        // Acting on a request is the tenant's: refused to platform staff before anything.
        self.screen_answering(tx, grant, id).await?;
        let request = self.subject_request(tx, grant, id).await?;
        if request.kind() != Right::Erasure {
            return Err(invalid_request("only erasure requests erase"));
        }
        let state = request.state();
        if state.is_final() {
            return Ok(ErasureReceipt {
                request: id,
                records: Vec::new(),
                keys_destroyed: 0,
                outcome: state,
                already_answered: true,
                retained_until: None,
            });
        }
        if !matches!(state, RequestState::InProgress | RequestState::Extended(_)) {
            return Err(invalid_request(
                "a request is answered once in progress (identity verified)",
            ));
        }
        if self.held(tx, request.subject(), at).await? {
            // A legal hold suspends erasure: the request is refused for legal claims, nothing
            // erased (Art. 17(3)(e)).
            let answered = self
                .advance_request(tx, grant, id, Step::Refuse(RefusalReason::LegalClaims), at)
                .await?;
            return Ok(ErasureReceipt {
                request: id,
                records: Vec::new(),
                keys_destroyed: 0,
                outcome: answered.state(),
                already_answered: false,
                retained_until: None,
            });
        }
        // Before the rows move to a pseudonym: until when the retained ones are kept.
        let retained_until = self.retained_until(tx, request.subject()).await?;
        let (keys_destroyed, records) = self
            .erase_subject_rows(tx, grant, request.subject(), Action::Erase, Utc::now())
            .await?;
        let retained = records
            .iter()
            .any(|r| matches!(r.erasure, Erasure::Retain(_)));
        let step = if retained {
            Step::Refuse(RefusalReason::LegalObligation)
        } else {
            Step::Complete
        };
        let answered = self.advance_request(tx, grant, id, step, at).await?;
        Ok(ErasureReceipt {
            request: id,
            records,
            keys_destroyed,
            outcome: answered.state(),
            already_answered: false,
            retained_until: retained.then_some(retained_until).flatten(),
        })
    }
}

impl Records {
    /// Answers a restriction, objection or consent withdrawal request by recording what it
    /// asks in the consent ledger, in `tx`, and completing it at `at`: a restriction places
    /// one (Art. 18; `purposes` must be empty), an objection objects to each of `purposes`
    /// (Art. 21), a withdrawal withdraws consent to each (Art. 7(3)). From the commit on, every
    /// read and write for those purposes leaves the subject out, as the ledger already
    /// enforces. The evidence names the request (`notice_version` = `request:<id>`, method
    /// `api`, the grant's actor). Each ledger event and the completion are audited. A request
    /// already completed is returned as it is: answering twice records nothing twice.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRecord`] for another kind of request, a request not in progress,
    /// purposes given to a restriction or none to an objection or withdrawal; the errors of
    /// [`Records::record_consent`] and [`Records::advance_request`].
    pub async fn answer_ledger_request(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        id: RecordId,
        purposes: &[Purpose],
        at: DateTime<Utc>,
    ) -> Result<SubjectRequest, Error> {
        // Acting on a request is the tenant's: refused to platform staff before anything.
        self.screen_answering(tx, grant, id).await?;
        let request = self.subject_request(tx, grant, id).await?;
        if request.state() == RequestState::Completed {
            // Answered already: recording the events again would add nothing.
            return Ok(request);
        }
        if !matches!(
            request.state(),
            RequestState::InProgress | RequestState::Extended(_)
        ) {
            return Err(invalid_request(
                "a request is answered once in progress (identity verified)",
            ));
        }
        let evidence = plenum_consent::Evidence {
            notice_version: format!("request:{id}"),
            notice_sha256: [0; 32],
            method: plenum_consent::Method::Api,
            actor: grant.request().actor().id(),
            at,
        };
        let subject = request.subject();
        let events: Vec<ConsentEvent> = match (request.kind(), purposes.is_empty()) {
            (Right::Restriction, true) => vec![ConsentEvent::restriction(subject, true, evidence)],
            (Right::Objection, false) => purposes
                .iter()
                .map(|p| ConsentEvent::about(subject, EventKind::Objected, *p, evidence.clone()))
                .collect(),
            (Right::WithdrawConsent, false) => purposes
                .iter()
                .map(|p| ConsentEvent::about(subject, EventKind::Withdrawn, *p, evidence.clone()))
                .collect(),
            (Right::Restriction, false) => {
                return Err(invalid_request(
                    "a restriction covers all processing: no purposes",
                ));
            }
            (Right::Objection | Right::WithdrawConsent, true) => {
                return Err(invalid_request(
                    "an objection or withdrawal names its purposes",
                ));
            }
            _ => {
                return Err(invalid_request(
                    "only restriction, objection and withdrawal requests are answered in the ledger",
                ));
            }
        };
        for event in &events {
            self.record_consent(tx, grant, event).await?;
        }
        self.advance_request(tx, grant, id, Step::Complete, at)
            .await
    }
}

/// What a rectification changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rectification {
    /// The request answered.
    pub request: RecordId,
    /// The record corrected.
    pub record: RecordId,
    /// The fields written (encrypted ones re-sealed under the subject's current key; the
    /// previous envelope is overwritten in place, not kept in any history of the library's).
    pub fields: Vec<plenum_core::FieldName>,
}

impl<R: crate::record::Record> super::Repository<R> {
    /// Answers a rectification request (Art. 16) with the corrected `record`: written like
    /// [`Repository::update`](super::Repository::update) (only the fields set since it was
    /// read, each re-sealed), then the request completed at `at`. The record must belong to
    /// the request's subject. Both are audited under the grant's purpose
    /// (`compliance.rights_fulfilment`).
    ///
    /// No recipient of the data is declared in the data map today, so there is no one to tell
    /// (Art. 19); the receipt lists what changed for the service's own notifications.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRecord`] for a request of another kind, not in progress, or about
    /// another subject; the errors of [`Repository::update`](super::Repository::update) and
    /// [`Records::advance_request`].
    pub async fn rectify(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        request: RecordId,
        record: &R,
        at: DateTime<Utc>,
    ) -> Result<Rectification, Error> {
        let records = Records {
            shared: self.shared.clone(),
        };
        // Acting on a request is the tenant's: refused to platform staff before anything.
        records.screen_answering(tx, grant, request).await?;
        let asked = records.subject_request(tx, grant, request).await?;
        if asked.kind() != Right::Rectification {
            return Err(invalid_request("only rectification requests rectify"));
        }
        if !matches!(
            asked.state(),
            RequestState::InProgress | RequestState::Extended(_)
        ) {
            return Err(invalid_request(
                "a request is answered once in progress (identity verified)",
            ));
        }
        if record.subject() != Some(asked.subject()) {
            return Err(invalid_request(
                "the record is not the requesting subject's",
            ));
        }
        let mut access = self.describe(grant, Action::Update);
        access.records = vec![record.id()];
        access.subjects = vec![asked.subject()];
        let result = self.update_row(tx, grant, record).await;
        if let Ok(changed) = &result {
            access.fields.clone_from(changed);
        }
        let changed = self.report(tx, access, result, |_| 1).await?;
        records
            .advance_request(tx, grant, request, Step::Complete, at)
            .await?;
        Ok(Rectification {
            request,
            record: record.id(),
            fields: changed.into_iter().map(|(f, _)| f).collect(),
        })
    }
}

fn invalid_request(reason: &'static str) -> Error {
    Error::InvalidRecord {
        record_type: REQUESTS.to_string(),
        reason,
    }
}
