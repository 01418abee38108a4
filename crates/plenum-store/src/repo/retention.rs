//! Retention through [`Records`]: trigger events the service records (an account closed, the
//! contract terminated), the plan of what a schedule makes due at a given time (a dry run:
//! per class, how much, how much a legal hold keeps), and the first action wired to the
//! schedule, dropping audit event bodies past their two years. Every call is screened
//! (`compliance.legal_obligation`, or unrestricted) and audited.

use chrono::{DateTime, Utc};
use plenum_consent::{
    HoldScope, Purpose, RetentionAction, RetentionClass, RetentionSchedule, Trigger,
};
use plenum_core::{RecordId, SubjectId};

use super::Records;
use super::report::{describe, report};
use super::screen::{self, denied};
use crate::access::Action;
use crate::audit::AuditLog;
use crate::denial::Denial;
use crate::error::Error;
use crate::gate::PurposeGrant;
use crate::holds::HoldStore;
use crate::record::{RecordSpec, Storage, Value};
use crate::requests::RequestStore;
use crate::retention::RetentionEvents;
use crate::sql::{self, Conn, Dialect};
use crate::table::SqlType;
use crate::tx::TenantTx;

pub(super) const RETENTION: plenum_core::RecordType = plenum_core::record_type!("retention_events");

pub(super) fn check(tx: &TenantTx, grant: &PurposeGrant<'_>) -> Result<(), Error> {
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
    ) -> Result<RecordId, Error> {
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
                        let due = self.closed_accounts_due(tx, schedule, now).await?;
                        let held = due.iter().filter(|s| subject_held(**s)).count();
                        (due.len() as u64, held as u64, None)
                    }
                    RetentionClass::MarketingData if !self.specs_of(rule.class).is_empty() => {
                        let (mut due, mut held) = (0, 0);
                        for spec in self.specs_of(rule.class) {
                            let rows =
                                super::subject_sweeps::marketing_due(tx, spec, rule, now).await?;
                            held += rows
                                .iter()
                                .filter(|(id, s)| {
                                    holds.iter().any(|h| {
                                        h.covers(
                                            now,
                                            tx.tenant(),
                                            spec.record_type(),
                                            *id,
                                            Some(*s),
                                        )
                                    })
                                })
                                .count() as u64;
                            due += rows.len() as u64;
                        }
                        (due, held, None)
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
                            Some(b) => AuditLog::bodies_before(tx, b).await?,
                            None => 0,
                        };
                        (n, if tenant_held { n } else { 0 }, None)
                    }
                    class => {
                        let cutoff = rule.offset_before(now);
                        let specs = self.specs_of(class);
                        if specs.is_empty() {
                            (
                                0,
                                0,
                                Some("no registered record type declares this class's data"),
                            )
                        } else {
                            let (mut due, mut held) = (0, 0);
                            for spec in specs {
                                let rows = match cutoff {
                                    Some(c) => due_rows(tx, spec, c, None).await?,
                                    None => Vec::new(),
                                };
                                let kept = rows
                                    .iter()
                                    .filter(|(id, s)| {
                                        holds.iter().any(|h| {
                                            h.covers(now, tx.tenant(), spec.record_type(), *id, *s)
                                        })
                                    })
                                    .count();
                                due += rows.len() as u64;
                                held += kept as u64;
                            }
                            (due, held, None)
                        }
                    }
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

    /// Deletes up to `batch` rows per registered record type whose retention class
    /// (`#[plenum(retention = "...", counted_from = "...")]`) `schedule` makes due at `now`, in
    /// id order, skipping rows a live legal hold covers. Call it until it returns nothing: each
    /// call recomputes what is due, so a crash mid-sweep loses nothing and repeats nothing (a
    /// row deleted is not due again). Each record type's deletion is audited as `retention`
    /// naming its rows. Returns the rows deleted per record type.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`]; database failures (a row still referenced by another:
    /// [`Error::ForeignKeyViolation`]); hook failures.
    pub async fn sweep_records(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        schedule: &RetentionSchedule,
        now: DateTime<Utc>,
        batch: u32,
    ) -> Result<Vec<(String, u64)>, Error> {
        self.screen_sweep(tx, grant).await?;
        let holds: Vec<_> = HoldStore::all(tx)
            .await?
            .into_iter()
            .map(|(_, h)| h)
            .collect();
        let mut done = Vec::new();
        for rule in schedule.rules() {
            let Some(cutoff) = rule.offset_before(now) else {
                continue;
            };
            // Classes counted from an event about the subject have sweeps of their own.
            for spec in self
                .specs_of(rule.class)
                .into_iter()
                .filter(|s| s.retention().is_some_and(|(_, field)| field.is_some()))
            {
                let mut access = describe(grant, Action::Retention, spec.record_type().clone());
                let result = async {
                    let tenant = tx.tenant();
                    let mut deleted = Vec::new();
                    // Held rows are stepped over (keyset pages), so they never fill a batch.
                    let mut after = None;
                    while deleted.len() < batch as usize {
                        let rows = due_rows(tx, spec, cutoff, Some((after, batch))).await?;
                        let Some((last, _)) = rows.last() else {
                            break;
                        };
                        after = Some(*last);
                        let mut page = Vec::new();
                        for (id, subject) in rows {
                            if deleted.len() + page.len() == batch as usize
                                || holds
                                    .iter()
                                    .any(|h| h.covers(now, tenant, spec.record_type(), id, subject))
                            {
                                continue;
                            }
                            page.push((id, subject));
                        }
                        delete_rows(tx, spec, page.iter().map(|(id, _)| *id)).await?;
                        deleted.extend(page);
                    }
                    Ok(deleted)
                }
                .await;
                if let Ok(deleted) = &result {
                    access.records = deleted.iter().map(|(id, _)| *id).collect();
                    access.subjects =
                        super::report::subjects_of(deleted.iter().filter_map(|(_, s)| *s));
                }
                let deleted =
                    report(&*self.shared.hook, tx, access, result, |d| d.len() as u64).await?;
                done.push((spec.record_type().to_string(), deleted.len() as u64));
            }
        }
        Ok(done)
    }

    /// Until when `subject`'s rows that erasure retains (`erasure = "retain"`) must be kept:
    /// the latest end of their class's period in the privacy policy's schedule, from each row's
    /// own date; `None` if no retained record type declares a class or the subject has no
    /// such rows.
    pub(super) async fn retained_until(
        &self,
        tx: &mut TenantTx,
        subject: SubjectId,
    ) -> Result<Option<DateTime<Utc>>, Error> {
        let schedule = RetentionSchedule::plenum_default();
        let mut until: Option<DateTime<Utc>> = None;
        for spec in self.record_types() {
            let (Some(crate::record::Erasure::Retain(_)), Some((class, Some(column)))) =
                (spec.erasure(), spec.retention())
            else {
                continue;
            };
            let Some(rule) = schedule.rule(class) else {
                continue;
            };
            let field = spec.field(column.as_str()).ok_or(Error::Config(
                "a retention field that the record does not have",
            ))?;
            let ty = match field.storage {
                Storage::Plain(ty) => ty,
                Storage::Encrypted { .. } => continue,
            };
            let d = Dialect::of(tx);
            let statement = format!(
                "SELECT max({column}) FROM {} WHERE tenant_id = {} AND subject_id = {}",
                d.table(spec.record_type().as_str()),
                d.p(1),
                d.p(2)
            );
            let binds = [
                super::rows::uuid(*tx.tenant().as_uuid()),
                super::rows::uuid(*subject.as_uuid()),
            ];
            let rows = sql::fetch(Conn::of(tx)?, &statement, &binds, &[ty])
                .await
                .map_err(|e| super::db_error(spec, e))?;
            let latest = match rows.first().and_then(|r| r.first()) {
                Some(Value::Timestamp(t)) => Some(*t),
                Some(Value::Text(date)) => chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|d| d.and_utc()),
                _ => None,
            };
            if let Some(end) = latest.and_then(|l| rule.due_at(l)) {
                until = Some(until.map_or(end, |u| u.max(end)));
            }
        }
        Ok(until)
    }

    /// The registered record types declaring `class`.
    pub(super) fn specs_of(&self, class: RetentionClass) -> Vec<&'static RecordSpec> {
        self.record_types()
            .iter()
            .copied()
            .filter(|s| s.retention().is_some_and(|(c, _)| c == class))
            .collect()
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
    ) -> Result<Vec<RecordId>, Error> {
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

/// Rows of `spec` whose retention field is before `cutoff`, in id order: all of them, or a
/// keyset page (after an id, at most a count).
async fn due_rows(
    tx: &mut TenantTx,
    spec: &'static RecordSpec,
    cutoff: DateTime<Utc>,
    page: Option<(Option<RecordId>, u32)>,
) -> Result<Vec<(RecordId, Option<SubjectId>)>, Error> {
    let Some((_, Some(column))) = spec.retention() else {
        return Ok(Vec::new());
    };
    let field = spec.field(column.as_str()).ok_or(Error::Config(
        "a retention field that the record does not have",
    ))?;
    // A `NaiveDate` is stored as its `YYYY-MM-DD` text, which orders as the date does; a date
    // counts from its first instant, so a date on the cut-off's day is due.
    let (op, bound) = match field.storage {
        Storage::Plain(SqlType::Timestamp) => ("<", (SqlType::Timestamp, Value::Timestamp(cutoff))),
        Storage::Plain(SqlType::Text) => (
            "<=",
            (
                SqlType::Text,
                Value::Text(cutoff.date_naive().format("%Y-%m-%d").to_string()),
            ),
        ),
        _ => {
            return Err(Error::Config(
                "a retention field is a plain date or timestamp",
            ));
        }
    };
    let d = Dialect::of(tx);
    let subject = if spec.has_subject() {
        "subject_id"
    } else {
        "NULL"
    };
    let mut binds = vec![super::rows::uuid(*tx.tenant().as_uuid()), bound];
    let paged = match page {
        Some((after, limit)) => {
            binds.push(super::rows::uuid(
                after.map_or(uuid::Uuid::nil(), |a| *a.as_uuid()),
            ));
            binds.push((SqlType::BigInt, Value::BigInt(i64::from(limit))));
            format!(" AND id > {} ORDER BY id LIMIT {}", d.p(3), d.p(4))
        }
        None => " ORDER BY id".to_owned(),
    };
    let statement = format!(
        "SELECT id, {subject} FROM {} WHERE tenant_id = {} AND {column} {op} {}{paged}",
        d.table(spec.record_type().as_str()),
        d.p(1),
        d.p(2)
    );
    let rows = sql::fetch(
        Conn::of(tx)?,
        &statement,
        &binds,
        &[SqlType::Uuid, SqlType::Uuid],
    )
    .await
    .map_err(|e| super::db_error(spec, e))?;
    rows.into_iter()
        .map(|row| match row.as_slice() {
            [Value::Uuid(id), s] => Ok((
                RecordId::from_trusted_uuid(*id),
                match s {
                    Value::Uuid(s) => Some(SubjectId::from_trusted_uuid(*s)),
                    _ => None,
                },
            )),
            _ => Err(Error::Config("unreadable retention row")),
        })
        .collect()
}

/// Deletes rows of `spec` by id, in statements of at most 500 ids (one round trip each).
pub(super) async fn delete_rows(
    tx: &mut TenantTx,
    spec: &'static RecordSpec,
    ids: impl Iterator<Item = RecordId>,
) -> Result<(), Error> {
    let ids: Vec<RecordId> = ids.collect();
    let d = Dialect::of(tx);
    for chunk in ids.chunks(500) {
        let mut binds = vec![super::rows::uuid(*tx.tenant().as_uuid())];
        let mut params = Vec::with_capacity(chunk.len());
        for id in chunk {
            binds.push(super::rows::uuid(*id.as_uuid()));
            params.push(d.p(binds.len()));
        }
        let statement = format!(
            "DELETE FROM {} WHERE tenant_id = {} AND id IN ({})",
            d.table(spec.record_type().as_str()),
            d.p(1),
            params.join(", ")
        );
        sql::execute(Conn::of(tx)?, &statement, &binds)
            .await
            .map_err(|e| super::db_error(spec, e))?;
    }
    Ok(())
}
