//! Screening: every purpose decision a repository operation makes, before a key is looked up
//! or a row is built. This is the file that keeps a marketing purpose from a phone number: a
//! field whose category the grant's purpose may not see is cut from the read's [`FieldMask`]
//! (its envelope is dropped, never decrypted), a plain field it may not see refuses the read,
//! and a subject without consent, with an objection or under restriction is [`decide`]d out.
//! Nothing here touches SQL except the consent ledger read in [`decide`].

use std::collections::HashMap;

use plenum_consent::{Decision, Purpose, SubjectStatus};
use plenum_core::{DataCategory, FieldName, SubjectId, TenantId};

use crate::consent::ConsentLedger;
use crate::denial::Denial;
use crate::error::Error;
use crate::gate::PurposeGrant;
use crate::record::{FieldSpec, Record, RecordSpec, View};
use crate::tx::TenantTx;

/// Which of a record type's fields, in declaration order, an operation keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FieldMask(Vec<bool>);

impl FieldMask {
    /// Every field.
    pub(super) fn all(spec: &RecordSpec) -> Self {
        Self(vec![true; spec.fields().len()])
    }

    /// Whether the field at `position` is kept.
    pub(super) fn keeps(&self, position: usize) -> bool {
        self.0.get(position).copied().unwrap_or(false)
    }

    /// The kept fields with their categories, for the access description.
    pub(super) fn fields(&self, spec: &RecordSpec) -> Vec<(FieldName, DataCategory)> {
        spec.fields()
            .iter()
            .enumerate()
            .filter(|(i, _)| self.keeps(*i))
            .map(|(_, f)| (f.name.clone(), f.category.clone()))
            .collect()
    }
}

/// The refusal of `grant` for `reason`.
pub(super) fn denied(grant: &PurposeGrant<'_>, reason: Denial) -> Error {
    Error::Denied {
        purpose: grant.purpose().map_or("unrestricted", Purpose::key),
        reason,
    }
}

/// [`check_grant`] for an operation on keys or key material of `resource`: only a grant for
/// `security.protection`, or an unrestricted one (re-encryption, adoption, key status).
pub(super) fn check_key_operation(
    tx: &TenantTx,
    grant: &PurposeGrant<'_>,
    resource: &str,
) -> Result<(), Error> {
    check_grant(tx, grant, resource)?;
    match grant.purpose() {
        Some(p) if p != Purpose::SecurityProtection => {
            Err(denied(grant, Denial::KeyOperationNeedsSecurityProtection))
        }
        _ => Ok(()),
    }
}

/// The grant must be for the transaction's tenant.
pub(super) fn check_grant(
    tx: &TenantTx,
    grant: &PurposeGrant<'_>,
    record_type: &str,
) -> Result<(), Error> {
    if grant.request().tenant() != tx.tenant() {
        return Err(Error::TenantMismatch {
            record_type: record_type.to_owned(),
        });
    }
    if grant.is_expired() {
        return Err(denied(grant, Denial::GrantExpired));
    }
    Ok(())
}

/// Every record written must carry the transaction's tenant (checked before any SQL).
pub(super) fn check_records_tenant<R: Record>(
    tenant: TenantId,
    records: &[R],
) -> Result<(), Error> {
    if records.iter().any(|r| r.tenant() != tenant) {
        return Err(Error::TenantMismatch {
            record_type: R::spec().record_type().to_string(),
        });
    }
    Ok(())
}

/// Rows (reads, searches, writes) are refused to a purpose that may see aggregates only.
pub(super) fn check_rows(grant: &PurposeGrant<'_>) -> Result<(), Error> {
    if grant.purpose().is_some_and(Purpose::aggregate_only) {
        return Err(denied(grant, Denial::AggregateOnly));
    }
    Ok(())
}

/// A view is read only under a grant for its own purpose.
pub(super) fn check_view<V: View>(grant: &PurposeGrant<'_>) -> Result<(), Error> {
    if grant.purpose() == Some(V::PURPOSE) {
        Ok(())
    } else {
        Err(denied(grant, Denial::GrantForAnotherPurpose))
    }
}

/// Refuses a write touching a field whose category the grant's purpose may not touch.
pub(super) fn check_writable<'f>(
    grant: &PurposeGrant<'_>,
    mut fields: impl Iterator<Item = &'f FieldSpec>,
) -> Result<(), Error> {
    let Some(purpose) = grant.purpose() else {
        return Ok(());
    };
    if fields.any(|f| !grant.policy().allows_category(purpose, &f.category)) {
        return Err(denied(grant, Denial::FieldNotInPurpose));
    }
    Ok(())
}

/// Searching by a field is reading it (a match answers "is this their email?"), so the purpose
/// must be one that may see the searched field.
pub(super) fn check_searchable(
    grant: &PurposeGrant<'_>,
    spec: &RecordSpec,
    position: usize,
) -> Result<(), Error> {
    let category = spec
        .fields()
        .get(position)
        .map(|f| &f.category)
        .ok_or(Error::Config("blind index field out of range"))?;
    match grant.purpose() {
        Some(p) if !grant.policy().allows_category(p, category) => {
            Err(denied(grant, Denial::FieldNotInPurpose))
        }
        _ => Ok(()),
    }
}

/// What a read under `grant` keeps: the fields the purpose may see and, for a view, that the
/// view holds, plus every plain field. Plain columns are loaded into the record whatever the
/// view keeps (a `View` only chooses what to hand on), so a plain field the purpose may not
/// see refuses the read instead of being withheld.
pub(super) fn read_mask(
    grant: &PurposeGrant<'_>,
    spec: &RecordSpec,
    view_fields: Option<&[&str]>,
) -> Result<FieldMask, Error> {
    let allowed = |f: &FieldSpec| {
        grant
            .purpose()
            .is_none_or(|p| grant.policy().allows_category(p, &f.category))
    };
    if spec
        .fields()
        .iter()
        .any(|f| !f.is_encrypted() && !allowed(f))
    {
        return Err(denied(grant, Denial::PlainFieldNotVisible));
    }
    let in_view = |f: &FieldSpec| view_fields.is_none_or(|names| names.contains(&f.name.as_str()));
    Ok(FieldMask(
        spec.fields()
            .iter()
            .map(|f| !f.is_encrypted() || (allowed(f) && in_view(f)))
            .collect(),
    ))
}

/// The subject-level decisions of one operation: which subjects the grant's purpose may not
/// process, and why.
#[derive(Default)]
pub(super) struct Decisions {
    denied: HashMap<SubjectId, Denial>,
    /// The decision for rows without a subject (an empty ledger).
    without_subject: Option<Denial>,
}

impl Decisions {
    /// Why the purpose may not process `subject`'s row, if it may not.
    pub(super) fn denial(&self, subject: Option<SubjectId>) -> Option<Denial> {
        match subject {
            Some(s) => self.denied.get(&s).copied(),
            None => self.without_subject,
        }
    }
}

/// The policy's decision for each of `subjects` under the grant's purpose, from the ledger as
/// this transaction sees it (so a withdrawal committed before it counts). An unrestricted
/// grant denies nobody and reads no ledger.
pub(super) async fn decide(
    tx: &mut TenantTx,
    grant: &PurposeGrant<'_>,
    subjects: &[SubjectId],
) -> Result<Decisions, Error> {
    let Some(purpose) = grant.purpose() else {
        return Ok(Decisions::default());
    };
    let policy = grant.policy();
    let now = chrono::Utc::now();
    let reason = |status: &SubjectStatus| match policy.decide(purpose, status, now) {
        Decision::Allow(_) => None,
        Decision::Deny(reason) => Some(Denial::Policy(reason)),
        _ => Some(Denial::Undecided),
    };
    let mut out = Decisions {
        without_subject: reason(&SubjectStatus::default()),
        ..Decisions::default()
    };
    if subjects.is_empty() {
        return Ok(out);
    }
    let statuses = ConsentLedger::statuses(tx, subjects).await?;
    for (subject, status) in &statuses {
        if let Some(r) = reason(status) {
            out.denied.insert(*subject, r);
        }
    }
    // A subject the ledger did not answer for has no events: decide on the empty status.
    for s in subjects {
        if let (false, Some(r)) = (statuses.contains_key(s), out.without_subject) {
            out.denied.insert(*s, r);
        }
    }
    Ok(out)
}
