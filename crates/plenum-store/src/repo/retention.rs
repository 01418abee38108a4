//! Retention through [`Records`]: trigger events the service records (an account closed, the
//! contract terminated), the plan of what a schedule makes due at a given time (a dry run:
//! per class, how much, how much a legal hold keeps), and the first action wired to the
//! schedule, dropping audit event bodies past their two years. Every call is screened
//! (`compliance.legal_obligation`, or unrestricted) and audited.

use chrono::{DateTime, Utc};
use plenum_consent::{
    HoldScope, Purpose, RetentionAction, RetentionClass, RetentionSchedule, Trigger,
};
use plenum_core::SubjectId;

use super::Records;
use super::report::{describe, report};
use super::screen::{self, denied};
use crate::access::Action;
use crate::audit::AuditLog;
use crate::denial::Denial;
use crate::error::Error;
use crate::gate::PurposeGrant;
use crate::holds::HoldStore;
use crate::requests::RequestStore;
use crate::retention::RetentionEvents;
use crate::tx::TenantTx;

const RETENTION: plenum_core::RecordType = plenum_core::record_type!("retention_events");

fn check(tx: &TenantTx, grant: &PurposeGrant<'_>) -> Result<(), Error> {
    screen::check_grant(tx, grant, RETENTION.as_str())?;
    match grant.purpose() {
        None | Some(Purpose::LegalObligation) => Ok(()),
        Some(_) => Err(denied(grant, Denial::RetentionNeedsLegalObligation)),
    }
}

/// What one class of a schedule makes due.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlanItem {
    /// The class.
    pub class: RetentionClass,
    /// What happens to what is due.
    pub action: RetentionAction,
    /// How many items are due now (rows, accounts, requests; 1 for a terminated tenant).
    pub due: u64,
    /// How many of them a live legal hold keeps.
    pub held: u64,
    /// Why the class is not counted, when it is not.
    pub not_counted: Option<&'static str>,
}

/// A dry run of a schedule for one tenant at one time: nothing is changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionPlan {
    /// The schedule's version.
    pub schedule: String,
    /// The time the plan is for.
    pub at: DateTime<Utc>,
    /// One item per class of the schedule, in its order.
    pub items: Vec<PlanItem>,
}

impl Records {
    /// Records that `trigger` happened at `at`: `AccountClosed` for the account of `subject`,
    /// `ContractTerminated` for the tenant (no subject). The periods that count from them
    /// start there. Audited as `retention.event`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRecord`] for a trigger the library records itself, or a subject missing
    /// or given where it does not belong; [`Error::Denied`]; database and hook failures.
    pub async fn record_retention_event(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        trigger: Trigger,
        subject: Option<SubjectId>,
        at: DateTime<Utc>,
    ) -> Result<plenum_core::RecordId, Error> {
        let mut access = describe(grant, Action::RetentionEvent, RETENTION);
        access.subjects = subject.into_iter().collect();
        let result = async {
            check(tx, grant)?;
            match (trigger, subject) {
                (Trigger::AccountClosed, Some(_)) | (Trigger::ContractTerminated, None) => {}
                _ => {
                    return Err(Error::InvalidRecord {
                        record_type: RETENTION.to_string(),
                        reason: "the service records account_closed (with the account's subject) \
                                 and contract_terminated (without one)",
                    });
                }
            }
            RetentionEvents::insert(tx, trigger, subject, at, grant.request().actor().id()).await
        }
        .await;
        if let Ok(id) = &result {
            access.records = vec![*id];
        }
        report(&*self.shared.hook, tx, access, result, |_| 1).await
    }

    /// What `schedule` makes due in this tenant at `now`, per class, and how much of it a live
    /// legal hold keeps: a dry run, nothing changed. Classes whose data no registered record
    /// type declares are listed as not counted. Reported as a `count`.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`]; database and hook failures.
    pub async fn retention_plan(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        schedule: &RetentionSchedule,
        now: DateTime<Utc>,
    ) -> Result<RetentionPlan, Error> {
        let access = describe(grant, Action::Count, RETENTION);
        let result = async {
            check(tx, grant)?;
            let events = RetentionEvents::all(tx).await?;
            let holds: Vec<_> = HoldStore::all(tx)
                .await?
                .into_iter()
                .map(|(_, h)| h)
                .filter(|h| h.placed_at <= now && h.lifted_at.is_none_or(|l| l > now))
                .collect();
            let tenant_held = holds.iter().any(|h| h.scope == HoldScope::Tenant);
            let subject_held = |s: SubjectId| {
                tenant_held || holds.iter().any(|h| h.scope == HoldScope::Subject(s))
            };
            let mut items = Vec::new();
            for rule in schedule.rules() {
                let due_by = |at: DateTime<Utc>| rule.due_at(at).is_some_and(|d| d <= now);
                let (due, held, not_counted) = match rule.class {
                    RetentionClass::AccountData => {
                        let due: Vec<SubjectId> = events
                            .iter()
                            .filter(|e| e.trigger == Trigger::AccountClosed && due_by(e.at))
                            .filter_map(|e| e.subject)
                            .collect();
                        let held = due.iter().filter(|s| subject_held(**s)).count();
                        (due.len() as u64, held as u64, None)
                    }
                    RetentionClass::TenantBusinessData => {
                        let due = events
                            .iter()
                            .any(|e| e.trigger == Trigger::ContractTerminated && due_by(e.at));
                        (u64::from(due), u64::from(due && tenant_held), None)
                    }
                    RetentionClass::SubjectRequests => {
                        let requests = RequestStore::load_all(tx).await?;
                        let due: Vec<SubjectId> = requests
                            .iter()
                            .filter(|(_, r)| r.state().is_final())
                            .filter(|(_, r)| r.history().last().is_some_and(|t| due_by(t.at)))
                            .map(|(_, r)| r.subject())
                            .collect();
                        let held = due.iter().filter(|s| subject_held(**s)).count();
                        (due.len() as u64, held as u64, None)
                    }
                    RetentionClass::AuditLogBodies => {
                        let before = rule.offset_before(now);
                        let n = match before {
                            Some(b) => RetentionEvents::audit_bodies_before(tx, b).await?,
                            None => 0,
                        };
                        (n, if tenant_held { n } else { 0 }, None)
                    }
                    _ => (
                        0,
                        0,
                        Some("no registered record type declares this class's data yet"),
                    ),
                };
                items.push(PlanItem {
                    class: rule.class,
                    action: rule.action,
                    due,
                    held,
                    not_counted,
                });
            }
            Ok(RetentionPlan {
                schedule: schedule.version().to_owned(),
                at: now,
                items,
            })
        }
        .await;
        report(&*self.shared.hook, tx, access, result, |p| {
            p.items.iter().map(|i| i.due).sum()
        })
        .await
    }

    /// Deletes this tenant's records of data-subject requests answered longer ago than
    /// `schedule`'s period at `now` (24 months), unless a legal hold covers their subject; the
    /// database refuses any whose answer it recorded less than 24 months ago, whatever `now`
    /// says. Returns the requests deleted (with their history); audited as `retention` naming
    /// them.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`]; [`Error::PermissionDenied`] or [`Error::Database`] when the database
    /// refuses a deletion (nothing of the batch is kept deleted if the caller rolls back);
    /// hook failures.
    pub async fn sweep_subject_requests(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        schedule: &RetentionSchedule,
        now: DateTime<Utc>,
    ) -> Result<Vec<plenum_core::RecordId>, Error> {
        let mut access = describe(
            grant,
            Action::Retention,
            plenum_core::record_type!("subject_requests"),
        );
        let result = async {
            check(tx, grant)?;
            let Some(rule) = schedule.rule(RetentionClass::SubjectRequests) else {
                return Ok(Vec::new());
            };
            let mut deleted = Vec::new();
            for (id, request) in RequestStore::load_all(tx).await? {
                let answered = request.state().is_final()
                    && request
                        .history()
                        .last()
                        .and_then(|t| rule.due_at(t.at))
                        .is_some_and(|due| due <= now);
                if answered && !self.held(tx, request.subject(), now).await? {
                    RequestStore::delete(tx, id).await?;
                    deleted.push((id, request.subject()));
                }
            }
            Ok(deleted)
        }
        .await;
        if let Ok(deleted) = &result {
            access.records = deleted.iter().map(|(id, _)| *id).collect();
            access.subjects = super::report::subjects_of(deleted.iter().map(|(_, s)| *s));
        }
        report(&*self.shared.hook, tx, access, result, |d| d.len() as u64)
            .await
            .map(|d| d.into_iter().map(|(id, _)| id).collect())
    }

    /// Drops the bodies of this tenant's audit events older than `schedule`'s audit period at
    /// `now` (two years; the database refuses anything younger whatever `now` says), unless a
    /// tenant-wide legal hold is live. The log still verifies: leaf hashes and checkpoints
    /// stay. Returns how many bodies were dropped; audited as `retention`.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`]; [`Error::AuditLog`] if the database refuses; hook failures.
    pub async fn sweep_audit_bodies(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        schedule: &RetentionSchedule,
        now: DateTime<Utc>,
    ) -> Result<u64, Error> {
        let access = describe(
            grant,
            Action::Retention,
            plenum_core::record_type!("audit_log"),
        );
        let result = async {
            check(tx, grant)?;
            let Some(before) = schedule
                .rule(RetentionClass::AuditLogBodies)
                .and_then(|r| r.offset_before(now))
            else {
                return Ok(0);
            };
            let held = HoldStore::all(tx).await?.into_iter().any(|(_, h)| {
                h.scope == HoldScope::Tenant
                    && h.placed_at <= now
                    && h.lifted_at.is_none_or(|l| l > now)
            });
            if held {
                return Ok(0);
            }
            AuditLog::expire_bodies(tx, before).await
        }
        .await;
        report(&*self.shared.hook, tx, access, result, |n| *n).await
    }
}
