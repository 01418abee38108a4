//! Tenant offboarding: when the contract is terminated (`Trigger::ContractTerminated`), the
//! tenant can export everything during the schedule's window (30 days), and then its rows are
//! deleted and its keys destroyed (crypto-shredding every field it held). The tenant's audit
//! log stays, with the proof of each step. Both calls are screened like retention
//! (`compliance.legal_obligation`, or unrestricted) and audited.

use chrono::{DateTime, Utc};
use plenum_consent::{HoldScope, RetentionClass, RetentionSchedule, Trigger};
use plenum_crypto::KeyScope;

use super::report::{describe, report};
use super::screen::denied;
use super::{ExportSummary, Records};
use crate::access::Action;
use crate::audit::AuditLog;
use crate::denial::Denial;
use crate::error::Error;
use crate::export::{ExportHeader, ExportRetention, ExportSink};
use crate::gate::PurposeGrant;
use crate::holds::HoldStore;
use crate::retention::RetentionEvents;
use crate::sql::{self, Conn, Dialect};
use crate::tx::TenantTx;

/// What offboarding a tenant did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Offboarding {
    /// Rows deleted per registered record type, children first.
    pub records: Vec<(String, u64)>,
    /// Key versions destroyed (the tenant's data, index and subject-wrap keys: every subject
    /// key below them can no longer be unwrapped).
    pub keys_destroyed: usize,
}

fn io_error(e: std::io::Error) -> Error {
    Error::Export(e.kind())
}

impl Records {
    /// Exports every record of every registered record type of this tenant into `sink` (the
    /// subject export's format with `subject` null: `docs/subject-export.md`), fields opened,
    /// page by page, each page audited as an `export`; with retention per record type. The
    /// consent ledger and the audit log have their own exports
    /// ([`AuditLog::export`](crate::AuditLog::export)). What a terminated tenant is offered
    /// during its window.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`] (`retention_needs_legal_obligation`); [`Error::Export`]; database,
    /// key store and hook failures.
    pub async fn export_tenant(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        sink: &mut (dyn ExportSink + Send),
    ) -> Result<ExportSummary, Error> {
        super::retention::check(tx, grant)?;
        let mut summary = ExportSummary::default();
        sink.begin(&ExportHeader {
            tenant: tx.tenant(),
            subject: None,
            generated_at: Utc::now(),
            policy_version: grant.policy().version().to_owned(),
        })
        .map_err(io_error)?;
        let specs: Vec<_> = self.record_types().to_vec();
        for spec in &specs {
            let n = self
                .export_records(tx, grant, spec, None, sink, &mut summary)
                .await?;
            summary.records.push((spec.record_type().to_string(), n));
        }
        sink.purposes(&[]).map_err(io_error)?;
        let retention: Vec<ExportRetention> = specs
            .iter()
            .map(|s| super::export::retention_of(s))
            .collect();
        sink.retention(&retention).map_err(io_error)?;
        sink.consent(&[]).map_err(io_error)?;
        sink.access_log(&[]).map_err(io_error)?;
        sink.finish().map_err(io_error)?;
        Ok(summary)
    }

    /// Offboards this tenant at `now`: once its contract's termination was recorded
    /// ([`Records::record_retention_event`]) and `schedule`'s export window after it has passed,
    /// and no legal hold covers the tenant, deletes every row of every registered record type
    /// (children first) in `tx` and destroys the tenant's keys, so every field it held, in this
    /// database and its replicas, stops opening (backups: once the root key version that wraps
    /// the tenant's keys is destroyed at the provider, SECURITY.md "Erasure and backups").
    /// Audited as `retention` on the tenant's log, which stays. Commit `tx` for the deletions
    /// to hold; the keys are destroyed either way (the key store commits on its own), so a
    /// crash before the commit leaves rows no key opens, and running this again deletes them.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRecord`] before the termination or while the export window is open;
    /// [`Error::Denied`] (`under_legal_hold` with a tenant-wide hold, or another purpose);
    /// database, key store and hook failures.
    pub async fn offboard_tenant(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        schedule: &RetentionSchedule,
        now: DateTime<Utc>,
    ) -> Result<Offboarding, Error> {
        let access = describe(
            grant,
            Action::Retention,
            plenum_core::record_type!("tenants"),
        );
        let result = async {
            super::retention::check(tx, grant)?;
            let terminated = RetentionEvents::all(tx)
                .await?
                .into_iter()
                .filter(|e| e.trigger == Trigger::ContractTerminated)
                .map(|e| e.at)
                .min();
            let due = terminated.and_then(|at| {
                schedule
                    .rule(RetentionClass::TenantBusinessData)
                    .and_then(|r| r.due_at(at))
            });
            if due.is_none_or(|d| d > now) {
                return Err(Error::InvalidRecord {
                    record_type: "tenants".to_owned(),
                    reason: "a tenant is offboarded once its contract's termination is recorded \
                             and its export window has passed",
                });
            }
            let held = HoldStore::all(tx).await?.into_iter().any(|(_, h)| {
                h.scope == HoldScope::Tenant
                    && h.placed_at <= now
                    && h.lifted_at.is_none_or(|l| l > now)
            });
            if held {
                return Err(denied(grant, Denial::UnderLegalHold));
            }
            record_on_platform_log(tx, grant).await?;
            let mut records = Vec::new();
            let d = Dialect::of(tx);
            for spec in self.record_types().iter().rev() {
                let statement = format!(
                    "DELETE FROM {} WHERE tenant_id = {}",
                    d.table(spec.record_type().as_str()),
                    d.p(1)
                );
                let tenant = super::rows::uuid(*tx.tenant().as_uuid());
                let n = sql::execute(Conn::of(tx)?, &statement, &[tenant])
                    .await
                    .map_err(|e| super::db_error(spec, e))?;
                records.push((spec.record_type().to_string(), n));
            }
            let mut keys_destroyed = 0;
            for scope in [
                KeyScope::TenantData,
                KeyScope::TenantIndex,
                KeyScope::SubjectWrap,
            ] {
                keys_destroyed += self.keyring().destroy_scope(tx.tenant(), scope).await?;
            }
            Ok(Offboarding {
                records,
                keys_destroyed,
            })
        }
        .await;
        report(&*self.shared.hook, tx, access, result, |o| {
            o.records.iter().map(|(_, n)| n).sum()
        })
        .await
    }
}

/// Appends `tenant.offboard` (record type `tenants`, naming the tenant) to the platform log
/// ([`PLATFORM_LOG`](crate::PLATFORM_LOG)) before anything is deleted or destroyed: the
/// operator's log says which tenant was offboarded, by whom and when (the tenant's own log
/// keeps the details). On PostgreSQL in a transaction of its own, committed first, so it stays
/// whatever becomes of `tx`; on SQLite (one writer) inside `tx`.
async fn record_on_platform_log(tx: &mut TenantTx, grant: &PurposeGrant<'_>) -> Result<(), Error> {
    let mut event = plenum_audit::Event::new(
        crate::contract::PLATFORM_LOG,
        grant.request().actor().clone(),
        "tenant.offboard",
    );
    event.service = "retention".to_owned();
    event.request = Some(grant.request().id());
    event.record_type = Some("tenants".to_owned());
    event.records = vec![plenum_core::RecordId::from_trusted_uuid(
        *tx.tenant().as_uuid(),
    )];
    match tx.backend() {
        #[cfg(feature = "sqlite")]
        crate::BackendKind::Sqlite => crate::audit::append_platform_in(tx, &event).await,
        _ => {
            let pool = tx
                .pool()
                .ok_or(Error::Config("offboarding runs in a data transaction"))?
                .clone();
            let mut own = pool.begin(crate::contract::PLATFORM_LOG).await?;
            AuditLog::append(&mut own, &event).await?;
            own.commit().await
        }
    }
}
