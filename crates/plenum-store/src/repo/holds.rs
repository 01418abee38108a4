//! Legal holds through [`Records`]: placed and lifted under `compliance.legal_hold` (or an
//! unrestricted grant), each audited; and the check that stops an erasure a live hold covers.

use chrono::{DateTime, Utc};
use plenum_consent::{HoldScope, LegalHold, Purpose};
use plenum_core::{RecordId, SubjectId};

use super::Records;
use super::report::{describe, report};
use super::screen::{self, denied};
use crate::access::Action;
use crate::denial::Denial;
use crate::error::Error;
use crate::gate::PurposeGrant;
use crate::holds::HoldStore;
use crate::sql::{self, Conn, Dialect};
use crate::table::SqlType;
use crate::tx::TenantTx;

/// The record type holds are reported under.
const HOLDS: plenum_core::RecordType = plenum_core::record_type!("legal_holds");

fn check(tx: &TenantTx, grant: &PurposeGrant<'_>) -> Result<(), Error> {
    screen::check_grant(tx, grant, HOLDS.as_str())?;
    match grant.purpose() {
        None | Some(Purpose::LegalHold) => Ok(()),
        Some(_) => Err(denied(grant, Denial::HoldNeedsLegalHoldPurpose)),
    }
}

impl Records {
    /// Places a legal hold on `scope` in `tx`'s tenant for `matter` (a case or ticket
    /// reference, never personal data), by the grant's actor, from `at`. While placed it
    /// stops every erasure (and retention action) that would touch what it covers. Audited
    /// as `hold.placed`.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`] (`hold_needs_legal_hold_purpose`) under a purpose other than
    /// `compliance.legal_hold`; [`Error::InvalidRecord`] for an empty matter; database and hook
    /// failures.
    pub async fn place_legal_hold(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        scope: HoldScope,
        matter: &str,
        at: DateTime<Utc>,
    ) -> Result<RecordId, Error> {
        let mut access = describe(grant, Action::Hold { placed: true }, HOLDS);
        if let HoldScope::Subject(s) = &scope {
            access.subjects = vec![*s];
        }
        let result = async {
            check(tx, grant)?;
            if matter.trim().is_empty() {
                return Err(Error::InvalidRecord {
                    record_type: HOLDS.to_string(),
                    reason: "a legal hold names its matter",
                });
            }
            let hold = LegalHold {
                tenant: tx.tenant(),
                scope,
                matter: matter.to_owned(),
                placed_by: grant.request().actor().id(),
                placed_at: at,
                lifted_at: None,
            };
            HoldStore::insert(tx, &hold).await
        }
        .await;
        if let Ok(id) = &result {
            access.records = vec![*id];
        }
        report(&*self.shared.hook, tx, access, result, |_| 1).await
    }

    /// Lifts hold `id` at `at`. Audited as `hold.lifted`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if this tenant has no such hold; [`Error::InvalidRecord`] if it was
    /// lifted already; [`Error::Denied`]; database and hook failures.
    pub async fn lift_legal_hold(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        id: RecordId,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut access = describe(grant, Action::Hold { placed: false }, HOLDS);
        access.records = vec![id];
        let result = async {
            check(tx, grant)?;
            let holds = HoldStore::all(tx).await?;
            let (_, hold) =
                holds
                    .iter()
                    .find(|(h, _)| *h == id)
                    .ok_or_else(|| Error::NotFound {
                        record_type: HOLDS.to_string(),
                    })?;
            if hold.lifted_at.is_some() {
                return Err(Error::InvalidRecord {
                    record_type: HOLDS.to_string(),
                    reason: "the hold was lifted already",
                });
            }
            HoldStore::lift(tx, id, grant.request().actor().id(), at).await
        }
        .await;
        report(&*self.shared.hook, tx, access, result, |_| 1).await
    }

    /// Every legal hold of this tenant, placed or lifted, oldest first. Reported as a list.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`]; database and hook failures.
    pub async fn legal_holds(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
    ) -> Result<Vec<(RecordId, LegalHold)>, Error> {
        let mut access = describe(grant, Action::List, HOLDS);
        let result = async {
            check(tx, grant)?;
            HoldStore::all(tx).await
        }
        .await;
        if let Ok(holds) = &result {
            access.records = holds.iter().map(|(id, _)| *id).collect();
        }
        report(&*self.shared.hook, tx, access, result, |h| h.len() as u64).await
    }

    /// Whether a hold live at `now` covers any of `subject`'s data in this tenant: the tenant,
    /// the subject, a registered record type holding rows of the subject, or one such row.
    pub(super) async fn held(
        &self,
        tx: &mut TenantTx,
        subject: SubjectId,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        for (_, hold) in HoldStore::all(tx).await? {
            let live = hold.placed_at <= now && hold.lifted_at.is_none_or(|l| l > now);
            if !live {
                continue;
            }
            let (record_type, record) = match &hold.scope {
                HoldScope::Tenant => return Ok(true),
                HoldScope::Subject(s) if *s == subject => return Ok(true),
                HoldScope::RecordType(t) => (t, None),
                HoldScope::Record(t, r) => (t, Some(*r)),
                _ => continue,
            };
            // A registered type only: its name is a validated identifier the library created.
            let Some(spec) = self
                .record_types()
                .iter()
                .find(|s| s.record_type() == record_type && s.has_subject())
            else {
                continue;
            };
            let d = Dialect::of(tx);
            let mut statement = format!(
                "SELECT id FROM {} WHERE tenant_id = {} AND subject_id = {}",
                d.table(spec.record_type().as_str()),
                d.p(1),
                d.p(2)
            );
            let mut binds = vec![
                super::rows::uuid(*tx.tenant().as_uuid()),
                super::rows::uuid(*subject.as_uuid()),
            ];
            if let Some(r) = record {
                statement.push_str(&format!(" AND id = {}", d.p(3)));
                binds.push(super::rows::uuid(*r.as_uuid()));
            }
            statement.push_str(" LIMIT 1");
            let found = sql::fetch(Conn::of(tx)?, &statement, &binds, &[SqlType::Uuid])
                .await
                .map_err(|e| Error::from_sqlx(e, "legal_holds"))?;
            if !found.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
