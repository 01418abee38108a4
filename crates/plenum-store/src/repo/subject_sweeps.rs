//! The retention sweeps whose period counts from an event about a data subject rather than
//! from a row's own date: a closed account's data (`AccountData`, 30 days after the service
//! recorded `AccountClosed`: the subject is erased as a request would erase them, each record
//! type by its declared rule, keys destroyed) and marketing data (`MarketingData`, once the
//! subject's consent to every marketing purpose has ended: their rows of record types declaring
//! `retention = "marketing_data"` are deleted). Screened like every retention call
//! (`compliance.legal_obligation`, or unrestricted), audited, idempotent: what was swept is
//! not due again, so a crash mid-sweep loses and repeats nothing.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use plenum_consent::{RetentionClass, RetentionRule, RetentionSchedule, Trigger};
use plenum_core::{RecordId, SubjectId};

use super::Records;
use super::report::{describe, report, subjects_of};
use crate::access::Action;
use crate::consent::ConsentLedger;
use crate::error::Error;
use crate::gate::PurposeGrant;
use crate::holds::HoldStore;
use crate::record::{RecordSpec, Value};
use crate::retention::RetentionEvents;
use crate::sql::{self, Conn, Dialect};
use crate::table::SqlType;
use crate::tx::TenantTx;

impl Records {
    /// Erases, at most `batch` at a time, the subjects whose account was closed
    /// ([`Records::record_retention_event`] with `AccountClosed`) longer ago than `schedule`'s
    /// account-data period at `now` (30 days), as [`Records::erase_subject`] would: each
    /// registered record type's rows by its declared erasure (financial records stay,
    /// pseudonymised, for their own period), the subject's keys destroyed. A subject a live
    /// legal hold covers is skipped; one already erased is not due again. Each erasure is
    /// audited as `retention` naming the subject. Returns the subjects erased; call it until
    /// it returns none.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`] (`retention_needs_legal_obligation`); database, key store and hook
    /// failures (the subjects erased before a failure stay erased once `tx` commits).
    pub async fn sweep_closed_accounts(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        schedule: &RetentionSchedule,
        now: DateTime<Utc>,
        batch: u32,
    ) -> Result<Vec<SubjectId>, Error> {
        self.screen_sweep(tx, grant).await?;
        let mut erased = Vec::new();
        for subject in self.closed_accounts_due(tx, schedule, now).await? {
            if erased.len() >= batch as usize {
                break;
            }
            if self.held(tx, subject, now).await? {
                continue;
            }
            self.erase_subject_rows(tx, grant, subject, Action::Retention, now)
                .await?;
            erased.push(subject);
        }
        Ok(erased)
    }

    /// Deletes, up to `batch` rows per record type, the rows of registered record types
    /// declaring `retention = "marketing_data"` whose subject's consent to marketing has ended
    /// (withdrawn, lapsed or objected to for every marketing purpose, or never given) and
    /// whose `schedule` period after that has passed at `now` (none: at once), unless a live
    /// legal hold covers them. Each record type's deletion is audited as `retention` naming
    /// its rows. Returns the rows deleted per record type; call it until it returns nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`] (`retention_needs_legal_obligation`); database and hook failures.
    pub async fn sweep_marketing_data(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        schedule: &RetentionSchedule,
        now: DateTime<Utc>,
        batch: u32,
    ) -> Result<Vec<(String, u64)>, Error> {
        self.screen_sweep(tx, grant).await?;
        let Some(rule) = schedule.rule(RetentionClass::MarketingData) else {
            return Ok(Vec::new());
        };
        let holds: Vec<_> = HoldStore::all(tx)
            .await?
            .into_iter()
            .map(|(_, h)| h)
            .collect();
        let mut done = Vec::new();
        for spec in self.specs_of(RetentionClass::MarketingData) {
            let mut access = describe(grant, Action::Retention, spec.record_type().clone());
            let result = async {
                let tenant = tx.tenant();
                let mut due = marketing_due(tx, spec, rule, now).await?;
                due.retain(|(id, s)| {
                    !holds
                        .iter()
                        .any(|h| h.covers(now, tenant, spec.record_type(), *id, Some(*s)))
                });
                due.truncate(batch as usize);
                super::retention::delete_rows(tx, spec, due.iter().map(|(id, _)| *id)).await?;
                Ok(due)
            }
            .await;
            if let Ok(deleted) = &result {
                access.records = deleted.iter().map(|(id, _)| *id).collect();
                access.subjects = subjects_of(deleted.iter().map(|(_, s)| *s));
            }
            let deleted =
                report(&*self.shared.hook, tx, access, result, |d| d.len() as u64).await?;
            done.push((spec.record_type().to_string(), deleted.len() as u64));
        }
        Ok(done)
    }

    /// Screens a sweep's grant; a refusal is on record like any other.
    pub(super) async fn screen_sweep(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
    ) -> Result<(), Error> {
        if let Err(e) = super::retention::check(tx, grant) {
            let access = describe(grant, Action::Retention, super::retention::RETENTION);
            return report(&*self.shared.hook, tx, access, Err(e), |()| 0).await;
        }
        Ok(())
    }

    /// The subjects whose account's closing `schedule` makes due at `now` and who still have
    /// data here (rows or keys), in the order their accounts were closed.
    pub(super) async fn closed_accounts_due(
        &self,
        tx: &mut TenantTx,
        schedule: &RetentionSchedule,
        now: DateTime<Utc>,
    ) -> Result<Vec<SubjectId>, Error> {
        let Some(rule) = schedule.rule(RetentionClass::AccountData) else {
            return Ok(Vec::new());
        };
        let mut events = RetentionEvents::all(tx).await?;
        events.sort_by_key(|e| e.at);
        let closed = subjects_of(
            events
                .iter()
                .filter(|e| e.trigger == Trigger::AccountClosed)
                .filter(|e| rule.due_at(e.at).is_some_and(|d| d <= now))
                .filter_map(|e| e.subject),
        );
        let mut due = Vec::new();
        for subject in closed {
            if self.subject_has_data(tx, subject).await? {
                due.push(subject);
            }
        }
        Ok(due)
    }

    /// Whether `subject` has a row of a registered record type or a key in this tenant.
    async fn subject_has_data(&self, tx: &mut TenantTx, subject: SubjectId) -> Result<bool, Error> {
        if self
            .keyring()
            .has_live_key(tx.tenant(), plenum_crypto::KeyScope::Subject(subject))
            .await?
        {
            return Ok(true);
        }
        let d = Dialect::of(tx);
        for spec in self.record_types().iter().filter(|s| s.has_subject()) {
            let statement = format!(
                "SELECT id FROM {} WHERE tenant_id = {} AND subject_id = {} LIMIT 1",
                d.table(spec.record_type().as_str()),
                d.p(1),
                d.p(2)
            );
            let binds = [
                super::rows::uuid(*tx.tenant().as_uuid()),
                super::rows::uuid(*subject.as_uuid()),
            ];
            let rows = sql::fetch(Conn::of(tx)?, &statement, &binds, &[SqlType::Uuid])
                .await
                .map_err(|e| super::db_error(spec, e))?;
            if !rows.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Rows of `spec` (a marketing-data record type) whose subject's marketing consent ended
/// long enough before `now` for `rule`, in id order. Reads the record type's ids and subjects
/// and the ledger of those subjects (one statement each on PostgreSQL).
pub(super) async fn marketing_due(
    tx: &mut TenantTx,
    spec: &'static RecordSpec,
    rule: &RetentionRule,
    now: DateTime<Utc>,
) -> Result<Vec<(RecordId, SubjectId)>, Error> {
    let d = Dialect::of(tx);
    let statement = format!(
        "SELECT id, subject_id FROM {} WHERE tenant_id = {} ORDER BY id",
        d.table(spec.record_type().as_str()),
        d.p(1)
    );
    let binds = [super::rows::uuid(*tx.tenant().as_uuid())];
    let rows = sql::fetch(
        Conn::of(tx)?,
        &statement,
        &binds,
        &[SqlType::Uuid, SqlType::Uuid],
    )
    .await
    .map_err(|e| super::db_error(spec, e))?;
    let rows: Vec<(RecordId, SubjectId)> = rows
        .into_iter()
        .map(|row| match row.as_slice() {
            [Value::Uuid(id), Value::Uuid(s)] => Ok((
                RecordId::from_trusted_uuid(*id),
                SubjectId::from_trusted_uuid(*s),
            )),
            _ => Err(Error::Config("unreadable marketing data row")),
        })
        .collect::<Result<_, _>>()?;
    let subjects = subjects_of(rows.iter().map(|(_, s)| *s));
    let events = ConsentLedger::events_of(tx, &subjects).await?;
    let due: HashMap<SubjectId, bool> = subjects
        .iter()
        .map(|s| {
            let ended = plenum_consent::marketing_consent_ended(
                events.get(s).map_or(&[][..], Vec::as_slice),
                now,
            );
            let due = ended.is_some_and(|at| rule.due_at(at).is_none_or(|d| d <= now));
            (*s, due)
        })
        .collect();
    Ok(rows
        .into_iter()
        .filter(|(_, s)| due.get(s).copied().unwrap_or(false))
        .collect())
}
