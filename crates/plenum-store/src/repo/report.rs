//! Telling the access hook: [`describe`] an operation before it runs, [`report`] how it ended.
//! Every repository method and every `Records` operation ends here, successes, refusals and
//! failures alike, so there is one place that decides what the hook (and so the audit log)
//! hears and that a hook failure fails a successful operation, and one place that opens each
//! operation's `plenum.operation` tracing span. No SQL, no keys.

use std::collections::HashSet;

use tracing::Instrument as _;

use plenum_core::{RecordType, SubjectId};

use crate::access::{Access, AccessHook, Action, Outcome};
use crate::error::Error;
use crate::gate::PurposeGrant;
use crate::tx::TenantTx;

/// The description of an operation under `grant`, before anything happened: actor, request,
/// purpose, basis and policy from the grant, nothing touched yet.
pub(super) fn describe(
    grant: &PurposeGrant<'_>,
    action: Action,
    record_type: RecordType,
) -> Access {
    let purpose = grant.purpose();
    let rule = purpose.and_then(|p| grant.policy().rule(p));
    Access {
        actor: grant.request().actor().clone(),
        request: grant.request().id(),
        action,
        record_type,
        records: Vec::new(),
        fields: Vec::new(),
        subjects: Vec::new(),
        rows: 0,
        outcome: Outcome::Success,
        purpose,
        unrestricted: grant.unrestricted_reason(),
        legal_basis: rule.map(|r| r.basis),
        policy_version: purpose.map(|_| grant.policy().version().to_owned()),
        excluded: 0,
    }
}

/// Tells the hook how an operation ended and returns its result. On success the hook's error
/// wins (fail closed: an access the log did not take did not happen); on failure the original
/// error is kept, the outcome says `Denied` (a refusal by the purpose layer, nothing read or
/// written) or `Failed`, no rows count, and a hook failure is only logged.
pub(super) async fn report<T>(
    hook: &dyn AccessHook,
    tx: &mut TenantTx,
    access: Access,
    result: Result<T, Error>,
    rows: impl FnOnce(&T) -> u64,
) -> Result<T, Error> {
    // One span per operation, for tracing pipelines (OpenTelemetry exporters included): who,
    // under which purpose, what, how many rows, how it ended; never a value. The hook (the
    // audit write) runs inside it, within whatever span the caller is in (a request's).
    let span = tracing::info_span!(
        "plenum.operation",
        tenant = %tx.tenant(),
        request = %access.request,
        action = access.action.as_str(),
        record_type = access.record_type.as_str(),
        purpose = access.purpose.map_or("unrestricted", |p| p.key()),
        rows = tracing::field::Empty,
        outcome = tracing::field::Empty,
    );
    let outcome = match &result {
        Ok(value) => {
            let n = rows(value);
            span.record("rows", n);
            span.record("outcome", "success");
            Ok(n)
        }
        Err(Error::Denied { .. }) => {
            span.record("outcome", "denied");
            Err(())
        }
        Err(e) => {
            span.record("outcome", e.kind().as_str());
            Err(())
        }
    };
    report_in(hook, tx, access, result, outcome)
        .instrument(span)
        .await
}

async fn report_in<T>(
    hook: &dyn AccessHook,
    tx: &mut TenantTx,
    mut access: Access,
    result: Result<T, Error>,
    rows: Result<u64, ()>,
) -> Result<T, Error> {
    match result {
        Ok(value) => {
            access.rows = rows.unwrap_or(0);
            hook.on_access(tx, &access).await?;
            Ok(value)
        }
        Err(e) => {
            access.rows = 0;
            access.outcome = match &e {
                Error::Denied { reason, .. } => Outcome::Denied(*reason),
                other => Outcome::Failed(other.kind()),
            };
            if let Err(hook_error) = hook.on_access(tx, &access).await {
                tracing::warn!(
                    record_type = access.record_type.as_str(),
                    action = access.action.as_str(),
                    kind = ?hook_error.kind(),
                    "access hook failed while reporting an operation that did not happen"
                );
            }
            Err(e)
        }
    }
}

/// Distinct subjects, in first-seen order.
pub(super) fn subjects_of(subjects: impl IntoIterator<Item = SubjectId>) -> Vec<SubjectId> {
    let all: Vec<SubjectId> = subjects.into_iter().collect();
    // A page usually names each subject once: a sorted copy proves it without hashing 500
    // ids, and the first-seen order the events keep is then the order given.
    let mut sorted = all.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() == all.len() {
        return all;
    }
    let mut seen = HashSet::with_capacity(sorted.len());
    all.into_iter().filter(|s| seen.insert(*s)).collect()
}
