//! A data subject's export (access, Art. 15; portability, Art. 20): every field of every
//! record of the subject in every registered record type, opened under
//! `compliance.rights_fulfilment`, then the purposes and legal bases that apply, retention per
//! record type, the consent history with its evidence, and who accessed the data. Streams page
//! by page into an [`ExportSink`]; each page is an audited access (`export`).

use chrono::Utc;
use plenum_consent::{DenyReason, Purpose};
use plenum_core::{RecordId, SubjectId};
use zeroize::Zeroize as _;

use super::Records;
use super::keys::{KeyLayout, RowKeys};
use super::report::{describe, report};
use super::rows::{Read, Statements};
use super::screen::{self, denied};
use crate::access::Action;
use crate::audit::AuditLog;
use crate::consent::ConsentLedger;
use crate::denial::Denial;
use crate::encrypted::KeySlot;
use crate::error::Error;
use crate::export::{
    ExportAccess, ExportConsent, ExportHeader, ExportPurpose, ExportRecord, ExportRetention,
    ExportSink, ExportValue, plaintext_value,
};
use crate::gate::PurposeGrant;
use crate::record::{Erasure, RecordSpec, Storage, Value};
use crate::tx::TenantTx;

/// Records per page: what an export holds in memory at once, per record type.
const EXPORT_PAGE: u32 = 500;

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportSummary {
    /// Records per record type, in the order written.
    pub records: Vec<(String, u64)>,
    /// Fields whose key was destroyed (erased), over all records.
    pub erased_fields: u64,
    /// Fields that did not open, over all records.
    pub unreadable_fields: u64,
    /// Consent ledger events.
    pub consent_events: u64,
    /// Audit log entries about the subject.
    pub accesses: u64,
}

fn io_error(e: std::io::Error) -> Error {
    Error::Export(e.kind())
}

/// Overwrites the opened values of a written page: they leave memory with the page.
fn wipe(values: &mut [ExportValue]) {
    for v in values {
        match v {
            ExportValue::Value(Value::Text(t)) => t.zeroize(),
            ExportValue::Value(Value::Bytes(b)) => b.zeroize(),
            _ => {}
        }
    }
}

impl Records {
    /// Exports everything held about `subject` in this tenant into `sink` (JSON:
    /// [`JsonExport`](crate::JsonExport), CSV: [`CsvExport`](crate::CsvExport); the format is
    /// `docs/subject-export.md`): every field of every record of the subject in every
    /// registered record type ([`Records::with_record_types`]), encrypted fields opened; the
    /// purposes and legal bases of the tenant's policy with whether each applies to the subject
    /// now; what erasure does per record type; the consent history with its evidence; and who
    /// accessed the subject's data (the audit log). Memory stays bounded by one page of
    /// records per record type, whatever the subject's record count, and each page's opened
    /// values are overwritten once written.
    ///
    /// Needs a grant for `compliance.rights_fulfilment` (or an unrestricted one); each page is
    /// reported to the hook as an `export` of its records. A subject this tenant holds nothing
    /// about gets an export with no records: the same answer whether or not another tenant
    /// holds them.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`] (`export_needs_rights_fulfilment`); [`Error::TenantMismatch`];
    /// [`Error::Export`] if the sink fails; database, key store and hook failures.
    pub async fn export_subject(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        subject: SubjectId,
        sink: &mut (dyn ExportSink + Send),
    ) -> Result<ExportSummary, Error> {
        screen::check_grant(tx, grant, "subject_export")?;
        if !matches!(grant.purpose(), None | Some(Purpose::RightsFulfilment)) {
            let mut access = describe(
                grant,
                Action::Export,
                plenum_core::record_type!("subject_export"),
            );
            access.subjects = vec![subject];
            let refused: Result<(), Error> =
                Err(denied(grant, Denial::ExportNeedsRightsFulfilment));
            report(&*self.shared.hook, tx, access, refused, |_| 0).await?;
        }
        let mut summary = ExportSummary::default();
        let now = Utc::now();
        sink.begin(&ExportHeader {
            tenant: tx.tenant(),
            subject: Some(subject),
            generated_at: now,
            policy_version: grant.policy().version().to_owned(),
        })
        .map_err(io_error)?;
        let specs: Vec<&'static RecordSpec> = self
            .record_types()
            .iter()
            .copied()
            .filter(|s| s.has_subject())
            .collect();
        for spec in &specs {
            let n = self
                .export_records(tx, grant, spec, Some(subject), sink, &mut summary)
                .await?;
            summary.records.push((spec.record_type().to_string(), n));
        }

        let status = ConsentLedger::status(tx, subject).await?;
        let policy = grant.policy();
        let purposes: Vec<ExportPurpose> = policy
            .purposes()
            .filter_map(|p| {
                let rule = policy.rule(p)?;
                let decision = policy.decide(p, &status, now);
                let reason = match decision {
                    plenum_consent::Decision::Deny(r) => Some(DenyReason::key(r)),
                    _ => None,
                };
                Some(ExportPurpose {
                    purpose: p.key(),
                    legal_basis: rule.basis.key(),
                    applies: decision.is_allowed(),
                    reason,
                })
            })
            .collect();
        sink.purposes(&purposes).map_err(io_error)?;
        let retention: Vec<ExportRetention> = specs.iter().map(|s| retention_of(s)).collect();
        sink.retention(&retention).map_err(io_error)?;

        let consent: Vec<ExportConsent> = ConsentLedger::events(tx, subject)
            .await?
            .into_iter()
            .map(|e| ExportConsent {
                kind: e.kind.key(),
                purpose: e.purpose.map(Purpose::key),
                channel: e.channel.map(plenum_consent::Channel::key),
                at: e.evidence.at,
                notice_version: e.evidence.notice_version.clone(),
                notice_sha256: hex::encode(e.evidence.notice_sha256),
                method: e.evidence.method.key(),
            })
            .collect();
        summary.consent_events = consent.len() as u64;
        sink.consent(&consent).map_err(io_error)?;

        let accesses: Vec<ExportAccess> = AuditLog::events_about(tx, self.keyring(), subject)
            .await?
            .into_iter()
            .filter_map(|(seq, body)| access_entry(seq, &body))
            .collect();
        summary.accesses = accesses.len() as u64;
        sink.access_log(&accesses).map_err(io_error)?;
        sink.finish().map_err(io_error)?;
        Ok(summary)
    }

    /// One record type's records of `subject`, page by page; returns how many.
    pub(super) async fn export_records(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        spec: &'static RecordSpec,
        subject: Option<SubjectId>,
        sink: &mut (dyn ExportSink + Send),
        summary: &mut ExportSummary,
    ) -> Result<u64, Error> {
        sink.record_type(spec).map_err(io_error)?;
        let statements = Statements::new(spec);
        let layout = KeyLayout::new(spec);
        let keys = RowKeys {
            keyring: self.keyring(),
            spec,
            layout: &layout,
        };
        let tenant = tx.tenant();
        if let Some(subject) = subject {
            keys.prepare(tenant, &[subject], false).await?;
        }
        let (mut after, mut total) = (None::<RecordId>, 0u64);
        loop {
            let mut access = describe(grant, Action::Export, spec.record_type().clone());
            access.fields = spec
                .fields()
                .iter()
                .map(|f| (f.name.clone(), f.category.clone()))
                .collect();
            access.subjects = subject.into_iter().collect();
            let read = match subject {
                Some(s) => Read::Subject(s, after, EXPORT_PAGE),
                None => Read::Page(after, EXPORT_PAGE),
            };
            let page = async {
                let (rows, undecodable) = statements.fetch_lenient(tx, &read).await?;
                let subjects =
                    super::report::subjects_of(rows.iter().filter_map(|r| r.head.subject));
                if subject.is_none() {
                    // A tenant export: this page's subjects' keys, in one load.
                    keys.prepare(tenant, &subjects, false).await?;
                }
                let scanned = rows.len() + undecodable.len();
                let last = rows
                    .last()
                    .map(|r| r.head.id)
                    .max(undecodable.last().copied());
                let mut ids = Vec::with_capacity(rows.len());
                for row in rows {
                    let slots = keys
                        .for_row_read(tenant, row.head.subject, &row.values)
                        .await?;
                    let mut values = Vec::with_capacity(row.values.len());
                    for ((field, value), slot) in spec.fields().iter().zip(row.values).zip(slots) {
                        values.push(export_value(field, value, slot, row.head.id, summary));
                    }
                    let written = sink.record(&ExportRecord {
                        id: row.head.id,
                        fields: spec.fields(),
                        values: &values,
                    });
                    wipe(&mut values);
                    written.map_err(io_error)?;
                    ids.push(row.head.id);
                }
                Ok::<_, Error>((ids, scanned, last, subjects))
            }
            .await;
            if let Ok((ids, _, _, subjects)) = &page {
                access.records = ids.clone();
                access.subjects.clone_from(subjects);
            }
            let (ids, scanned, last, _) =
                report(&*self.shared.hook, tx, access, page, |p| p.0.len() as u64).await?;
            total += ids.len() as u64;
            if scanned < EXPORT_PAGE as usize {
                return Ok(total);
            }
            after = last;
        }
    }
}

/// One stored field as exported: plain values as they are; encrypted ones opened, or `Erased`
/// (key destroyed) or `Unreadable` (does not open, or not a value of the declared type).
fn export_value(
    field: &crate::record::FieldSpec,
    value: Option<Value>,
    slot: Option<KeySlot>,
    record: RecordId,
    summary: &mut ExportSummary,
) -> ExportValue {
    if field.not_exported.is_some() {
        // Declared withheld from every export: never opened.
        return ExportValue::Withheld;
    }
    let value = value.unwrap_or(Value::Null);
    let out = match (&field.storage, value) {
        (Storage::Plain(_), v) | (Storage::Encrypted { .. }, v @ Value::Null) => {
            ExportValue::Value(v)
        }
        (Storage::Encrypted { .. }, Value::Bytes(envelope)) => match slot {
            Some(KeySlot::Ready(key)) => {
                match key.key().map(|k| k.open::<Vec<u8>>(record, &envelope)) {
                    Some(Ok(opened)) => plaintext_value(field.plaintext, opened.expose().clone())
                        .map_or(ExportValue::Unreadable, ExportValue::Value),
                    Some(Err(_)) | None => ExportValue::Unreadable,
                }
            }
            Some(KeySlot::Destroyed { .. }) => ExportValue::Erased,
            _ => ExportValue::Unreadable,
        },
        (Storage::Encrypted { .. }, _) => ExportValue::Unreadable,
    };
    match out {
        ExportValue::Erased => summary.erased_fields += 1,
        ExportValue::Unreadable => summary.unreadable_fields += 1,
        ExportValue::Value(_) | ExportValue::Withheld => {}
    }
    out
}

/// An audit body about the subject as the export lists it; `None` for a body that is not
/// the documented JSON (the log's own verification reports those).
fn access_entry(seq: Option<u64>, body: &str) -> Option<ExportAccess> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    Some(ExportAccess {
        seq,
        at: text(&v["at"])?,
        actor_kind: text(&v["actor"]["kind"])?,
        actor_role: v["actor"]["roles"]
            .as_array()
            .and_then(|r| r.first())
            .and_then(|r| r.as_str().map(str::to_owned)),
        action: text(&v["action"])?,
        record_type: text(&v["record_type"]),
        purpose: text(&v["purpose"]["key"]),
        outcome: text(&v["outcome"]["status"])?,
    })
}

/// What the export says about a record type's retention: its erasure rule, and the period of
/// its class in the privacy policy's schedule (a record type that declares no class is the
/// tenant's business data, kept while the tenant is a customer).
pub(super) fn retention_of(spec: &RecordSpec) -> ExportRetention {
    let (on_erasure, ground) = match spec.erasure() {
        Some(Erasure::Delete) | None => ("delete", None),
        Some(Erasure::Scrub) => ("scrub", None),
        Some(Erasure::Retain(g)) => ("retain", Some(g.key())),
    };
    let schedule = plenum_consent::RetentionSchedule::plenum_default();
    let (class, counted_from) = match spec.retention() {
        Some((class, Some(field))) => (class, field.to_string()),
        Some((class, None)) => (
            class,
            schedule
                .rule(class)
                .map_or_else(String::new, |r| r.trigger.key().to_owned()),
        ),
        None => (
            plenum_consent::RetentionClass::TenantBusinessData,
            plenum_consent::Trigger::ContractTerminated.key().to_owned(),
        ),
    };
    ExportRetention {
        record_type: spec.record_type().to_string(),
        on_erasure,
        ground,
        class: class.key(),
        kept_for: schedule
            .rule(class)
            .map_or_else(String::new, |r| r.offset.describe()),
        counted_from,
    }
}
