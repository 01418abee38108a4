//! Data-subject requests through [`Records`]: received, moved step by step, listed as overdue.
//! Each act is screened (only `compliance.rights_fulfilment`, or an unrestricted grant) and
//! reported to the access hook like any other operation, naming the request and its subject.

use chrono::{DateTime, Utc};
use plenum_consent::{Purpose, RequestState, Step, SubjectRequest};
use plenum_core::RecordId;

use super::Records;
use super::report::{describe, report};
use super::screen::{self, denied};
use crate::access::Action;
use crate::denial::Denial;
use crate::error::Error;
use crate::gate::PurposeGrant;
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

impl Records {
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
            check(tx, grant)?;
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
