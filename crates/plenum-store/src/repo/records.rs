//! The service hub: [`Records`] holds the keyring and the access hook, hands out repositories,
//! and runs the operations that are not about one record type: recording consent, erasing a
//! subject, rotating a key. Each is screened and reported like a repository call.

use core::fmt;
use std::sync::Arc;

use plenum_consent::{ConsentEvent, EventKind, Purpose};
use plenum_core::{RecordId, SubjectId};
use plenum_crypto::{KeyRef, KeyScope, Keyring};

use super::report::{describe, report};
use super::screen::{self, denied};
use super::{Repository, Shared};
use crate::access::{Access, AccessHook, Action};
use crate::consent::ConsentLedger;
use crate::denial::Denial;
use crate::error::Error;
use crate::gate::PurposeGrant;
use crate::record::{Record, RecordSpec};
use crate::tx::TenantTx;

/// How far ahead of this clock consent evidence may be dated (clock skew between the device
/// that collected it and this service).
pub const CONSENT_EVIDENCE_MAX_AHEAD: chrono::Duration = chrono::Duration::minutes(5);

/// How far behind this clock consent evidence may be dated, except under an unrestricted grant
/// (an import of consents collected elsewhere): a form submitted offline and synced later.
/// Ledger state follows recording order, so an old date changes nothing about which act wins;
/// the window keeps the evidence honest about when the act happened.
pub const CONSENT_EVIDENCE_MAX_BEHIND: chrono::Duration = chrono::Duration::days(1);

/// What every repository shares: the key hierarchy (which owns where wrapped keys live) and
/// the access hook. Build one per service and hand out [`Records::repository`]s.
#[derive(Clone)]
pub struct Records {
    pub(super) shared: Arc<Shared>,
}

impl fmt::Debug for Records {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Records").finish_non_exhaustive()
    }
}

impl Records {
    /// Repositories sealing with `keyring` (whose key store is a
    /// [`DbKeyStore`](crate::DbKeyStore) in a service), reporting every operation to `hook`.
    pub fn new(keyring: Arc<Keyring>, hook: Arc<dyn AccessHook>) -> Self {
        Self {
            shared: Arc::new(Shared {
                keyring,
                hook,
                record_types: Vec::new(),
            }),
        }
    }

    /// The same repositories, knowing the service's record types (`R::spec()` of each, parents
    /// before the records that reference them): [`Records::erase_subject`] applies each type's
    /// declared [`Erasure`](crate::Erasure) to the subject's rows.
    #[must_use]
    pub fn with_record_types(self, specs: impl IntoIterator<Item = &'static RecordSpec>) -> Self {
        let mut record_types = self.shared.record_types.clone();
        record_types.extend(specs);
        Self {
            shared: Arc::new(Shared {
                keyring: self.shared.keyring.clone(),
                hook: self.shared.hook.clone(),
                record_types,
            }),
        }
    }

    /// The record types erasure reaches, parents first.
    pub fn record_types(&self) -> &[&'static RecordSpec] {
        &self.shared.record_types
    }

    /// The repository of `R`. Cheap: the SQL is rendered once per call, so keep it.
    pub fn repository<R: Record>(&self) -> Repository<R> {
        Repository::new(self.shared.clone())
    }

    /// The keyring, for key operations (rotation, re-wrapping, pseudonyms). Its paths to
    /// plaintext are named `dangerous_*` and bypass grants and the audit log.
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.shared.keyring
    }

    /// Records a consent ledger event (given, withdrawn, objection, restriction, ...) under
    /// `grant`, and reports it to the access hook in the same transaction: the audit log holds
    /// every consent change. Which grant may record what:
    ///
    /// - events that narrow processing (withdrawn, expired, objected, restriction placed): any
    ///   grant of the tenant, so whoever hears "stop" can record it;
    /// - consent given: a grant for that same purpose (the flow that collected it), or for
    ///   `compliance.rights_fulfilment`;
    /// - events that widen processing again (objection withdrawn, restriction lifted): a grant
    ///   for `compliance.rights_fulfilment`;
    /// - anything: an unrestricted grant (imports).
    ///
    /// The ledger's state follows recording order: the subject's latest recorded act wins,
    /// whatever time its evidence carries. Evidence is refused when dated more than
    /// [`CONSENT_EVIDENCE_MAX_AHEAD`] ahead of this clock or, except under an unrestricted
    /// grant (imports), more than [`CONSENT_EVIDENCE_MAX_BEHIND`] behind it.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`] (`consent_event_needs_rights_fulfilment`); [`Error::InvalidRecord`]
    /// for evidence dated outside the window or an event without its purpose; [`Error::TenantMismatch`];
    /// the errors of the ledger and of the hook.
    pub async fn record_consent(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        event: &ConsentEvent,
    ) -> Result<RecordId, Error> {
        let mut access = describe(
            grant,
            Action::Consent(event.kind),
            plenum_core::record_type!("consent_events"),
        );
        access.subjects = vec![event.subject];
        // The consent's purpose: what the log must say the change is about (the policy's
        // basis and version belong to data processing, not to the ledger).
        access.purpose = event.purpose;
        access.legal_basis = None;
        access.policy_version = None;
        let result = match check_consent_event(tx, grant, event) {
            Ok(()) => ConsentLedger::record(tx, event).await,
            Err(e) => Err(e),
        };
        if let Ok(id) = &result {
            access.records = vec![*id];
        }
        report(&*self.shared.hook, tx, access, result, |_| 1).await
    }

    /// Erases a data subject. First, in `tx`, each registered record type's rows of the subject
    /// get that type's [`Erasure`](crate::Erasure): deleted; or kept under a fresh pseudonym in
    /// place of the subject id, scrubbed (blind indexes dead, optional personal plain fields
    /// cleared) or retained (and the pseudonym restricted). Then every version of the subject's
    /// key is destroyed, so every field sealed under it (in rows, backups and replicas) becomes
    /// unreadable and the audit log's pseudonyms for them cannot be recomputed. Commit `tx` for
    /// the row changes to hold. Needs a grant for `compliance.rights_fulfilment` or an
    /// unrestricted one.
    ///
    /// The key store commits on its own, so the event does not wait for `tx` either: with the
    /// database log it is written in a transaction of its own, before the key is destroyed
    /// (while the pseudonym can still be computed). If the destruction then fails, a `failed`
    /// event follows it.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`] for another purpose, or (`under_legal_hold`) while a legal hold
    /// covers the subject's data ([`Records::place_legal_hold`]); [`Error::TenantMismatch`];
    /// key store and hook errors.
    pub async fn erase_subject(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        subject: SubjectId,
    ) -> Result<usize, Error> {
        self.erase_subject_rows(tx, grant, subject, Action::Erase, chrono::Utc::now())
            .await
            .map(|(keys, _)| keys)
    }

    /// [`Records::erase_subject`], also returning what was done per record type. `action` is
    /// `Erase` for a subject's request (screened for `rights.fulfilment`) or `Retention` for a
    /// closed account's period ending (screened for `compliance.legal_obligation`); `now` is
    /// the time legal holds are judged at (the sweep's clock).
    pub(super) async fn erase_subject_rows(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        subject: SubjectId,
        action: Action,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(usize, Vec<super::erase::ErasedRecords>), Error> {
        if self.held(tx, subject, now).await? {
            // Nothing is touched while a legal hold covers the subject's data.
            let mut access = describe(grant, action, plenum_core::record_type!("keys"));
            access.subjects = vec![subject];
            let refused = Err(denied(grant, Denial::UnderLegalHold));
            return report(&*self.shared.hook, tx, access, refused, |_| 0).await;
        }
        let access = self.key_operation(tx, grant, action, Some(subject)).await?;
        let pseudonym = SubjectId::generate();
        let rows = super::erase::erase_rows(
            tx,
            &self.shared.record_types,
            subject,
            pseudonym,
            grant.request().actor().id(),
        )
        .await;
        let result = match rows {
            // The rows kept under the pseudonym read as erased: its keys are the subject's
            // versions, destroyed.
            Ok(rows) => self
                .shared
                .keyring
                .destroy_subject_into(tx.tenant(), subject, pseudonym)
                .await
                .map(|keys| (keys, rows))
                .map_err(Error::from),
            Err(e) => Err(e),
        };
        self.key_operation_failed(tx, access, result).await
    }

    /// Re-wraps this tenant's keys (data, index, subject-wrap) under the root provider's
    /// current root key version, after a root rotation; idempotent (keys already under it are
    /// left alone), so an interrupted run is finished by running it again. Then the old root
    /// version can be destroyed at the provider. Needs `security.protection` or an unrestricted
    /// grant; audited as `key.rewrap` like [`Records::rotate_key`].
    ///
    /// # Errors
    ///
    /// As [`Records::rotate_key`].
    pub async fn rewrap_tenant_keys(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
    ) -> Result<usize, Error> {
        let access = self
            .key_operation(tx, grant, Action::KeyRewrap, None)
            .await?;
        let result = self
            .shared
            .keyring
            .rewrap_tenant_keys(tx.tenant())
            .await
            .map_err(Error::from);
        self.key_operation_failed(tx, access, result).await
    }

    /// Rotates a key of this tenant (its data or index key, or a subject's): a new active
    /// version, the old one kept for decryption. Needs a grant for `security.protection` or an
    /// unrestricted one; audited like [`Records::erase_subject`].
    ///
    /// # Errors
    ///
    /// As [`Records::erase_subject`].
    pub async fn rotate_key(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        scope: KeyScope,
    ) -> Result<KeyRef, Error> {
        let subject = match scope {
            KeyScope::Subject(s) => Some(s),
            _ => None,
        };
        let access = self
            .key_operation(tx, grant, Action::KeyRotate, subject)
            .await?;
        let result = self
            .shared
            .keyring
            .rotate(tx.tenant(), scope)
            .await
            .map_err(Error::from);
        self.key_operation_failed(tx, access, result).await
    }

    /// Advances this tenant's erasure epoch
    /// ([`Keyring::advance_erasure_epoch`](plenum_crypto::Keyring::advance_erasure_epoch)): live
    /// subject keys re-wrapped, the previous epoch's subject-wrap key destroyed, a new one
    /// started. What makes erasure reach backups (SECURITY.md, "Erasure and backups"); run it on
    /// a schedule. Needs a grant for `security.protection` or an unrestricted one; audited as a
    /// `key.rotate` of the tenant's keys.
    ///
    /// # Errors
    ///
    /// As [`Records::erase_subject`].
    pub async fn advance_erasure_epoch(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
    ) -> Result<plenum_crypto::EpochReport, Error> {
        let access = self
            .key_operation(tx, grant, Action::KeyRotate, None)
            .await?;
        let result = self
            .shared
            .keyring
            .advance_erasure_epoch(tx.tenant())
            .await
            .map_err(Error::from);
        self.key_operation_failed(tx, access, result).await
    }

    /// Checks the grant for a key operation and records it (refusals too) before it runs;
    /// returns the description recorded.
    async fn key_operation(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        action: Action,
        subject: Option<SubjectId>,
    ) -> Result<Access, Error> {
        let mut access = describe(grant, action, plenum_core::record_type!("keys"));
        access.subjects = subject.into_iter().collect();
        let (purpose, reason) = match action {
            Action::Erase => (
                Purpose::RightsFulfilment,
                Denial::ErasureNeedsRightsFulfilment,
            ),
            Action::Retention => (
                Purpose::LegalObligation,
                Denial::RetentionNeedsLegalObligation,
            ),
            _ => (
                Purpose::SecurityProtection,
                Denial::KeyOperationNeedsSecurityProtection,
            ),
        };
        let screened =
            screen::check_grant(tx, grant, "keys").and_then(|()| match grant.purpose() {
                Some(p) if p != purpose => Err(denied(grant, reason)),
                _ => Ok(()),
            });
        let recorded = access.clone();
        report(&*self.shared.hook, tx, access, screened, |()| 1).await?;
        Ok(Access {
            rows: 1,
            ..recorded
        })
    }

    /// After a key operation whose start was already recorded: if it failed after all, say so.
    async fn key_operation_failed<T>(
        &self,
        tx: &mut TenantTx,
        access: Access,
        result: Result<T, Error>,
    ) -> Result<T, Error> {
        match result {
            Ok(value) => Ok(value),
            Err(e) => report(&*self.shared.hook, tx, access, Err(e), |_| 0).await,
        }
    }
}

/// Which grant may record which consent event (see [`Records::record_consent`]), and whether
/// its evidence is dated plausibly.
fn check_consent_event(
    tx: &TenantTx,
    grant: &PurposeGrant<'_>,
    event: &ConsentEvent,
) -> Result<(), Error> {
    screen::check_grant(tx, grant, "consent_events")?;
    let narrows = matches!(
        event.kind,
        EventKind::Withdrawn
            | EventKind::Expired
            | EventKind::Objected
            | EventKind::RestrictionPlaced
    );
    let allowed = match grant.purpose() {
        None | Some(Purpose::RightsFulfilment) => true,
        Some(p) => narrows || (event.kind == EventKind::Given && event.purpose == Some(p)),
    };
    if !allowed {
        return Err(denied(grant, Denial::ConsentEventNeedsRightsFulfilment));
    }
    let now = chrono::Utc::now();
    if event.evidence.at > now + CONSENT_EVIDENCE_MAX_AHEAD {
        return Err(Error::InvalidRecord {
            record_type: "consent_events".to_owned(),
            reason: "consent evidence dated in the future",
        });
    }
    if grant.purpose().is_some() && event.evidence.at < now - CONSENT_EVIDENCE_MAX_BEHIND {
        return Err(Error::InvalidRecord {
            record_type: "consent_events".to_owned(),
            reason: "consent evidence dated more than a day back (import it under an unrestricted grant)",
        });
    }
    Ok(())
}
