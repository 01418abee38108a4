//! The audit hook: turns each [`Access`] into a value-free [`Event`] (subjects as keyed
//! pseudonyms that erasure makes uncomputable) and hands it to every sink. It builds events; it
//! does not store them.

use core::fmt;
use std::sync::Arc;

use plenum_audit::{Event, Pseudonym};
use plenum_core::{SubjectId, TenantId};
use plenum_crypto::{BoxFuture, Keyring};

use super::sinks::{AuditSink, DbLog};
use crate::access::{Access, AccessHook, Outcome};
use crate::error::Error;
use crate::tx::TenantTx;

/// The audit hook: give it to [`Records::new`](crate::Records::new) and every operation is
/// audited.
#[derive(Clone)]
pub struct Auditor {
    keyring: Arc<Keyring>,
    service: String,
    sinks: Vec<Arc<dyn AuditSink>>,
}

impl fmt::Debug for Auditor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auditor")
            .field("service", &self.service)
            .field("sinks", &self.sinks.len())
            .finish_non_exhaustive()
    }
}

fn valid_service(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

impl Auditor {
    /// Audits into the database log as `service` (`[a-z0-9._-]{1,63}`), naming subjects by
    /// pseudonyms derived from their keys in `keyring`; refused and failed attempts are kept
    /// even when the caller rolls back ([`DbLog::keeping_refusals`] on `pool`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an unusable service name.
    pub fn new(
        keyring: Arc<Keyring>,
        pool: &crate::TenantPool,
        service: &str,
    ) -> Result<Self, Error> {
        Self::with_sinks(
            keyring,
            service,
            vec![Arc::new(DbLog::keeping_refusals(pool.clone()))],
        )
    }

    /// As [`Auditor::new`] with these sinks instead of the database log; every event goes to
    /// each, in order, and the first error fails the access.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an unusable service name or no sinks (name [`DiscardEvents`](crate::DiscardEvents) to
    /// record nothing).
    pub fn with_sinks(
        keyring: Arc<Keyring>,
        service: &str,
        sinks: Vec<Arc<dyn AuditSink>>,
    ) -> Result<Self, Error> {
        if !valid_service(service) {
            return Err(Error::Config("service name must match [a-z0-9._-]{1,63}"));
        }
        if sinks.is_empty() {
            return Err(Error::Config(
                "an auditor needs a sink (DiscardEvents to record nothing)",
            ));
        }
        Ok(Self {
            keyring,
            service: service.to_owned(),
            sinks,
        })
    }

    /// Adds a sink (for example [`TracingSink`](crate::TracingSink) beside the database log).
    #[must_use]
    pub fn and(mut self, sink: Arc<dyn AuditSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// The event describing `access` in `tenant`.
    ///
    /// # Errors
    ///
    /// Key store failures while computing subject pseudonyms.
    pub async fn event_of(&self, tenant: TenantId, access: &Access) -> Result<Event, Error> {
        let mut e = Event::new(tenant, access.actor.clone(), access.action.as_str());
        e.service.clone_from(&self.service);
        e.request = Some(access.request);
        e.record_type = Some(access.record_type.to_string());
        e.records.clone_from(&access.records);
        e.fields = access
            .fields
            .iter()
            .map(|(f, c)| (f.to_string(), c.to_string()))
            .collect();
        let (refs, unlinked) = self.pseudonyms(tenant, &access.subjects).await?;
        e.subjects = refs;
        e.subjects_unlinked = unlinked;
        e.purpose = access
            .purpose
            .map(|p| (p.key().to_owned(), u32::from(p.version())));
        e.legal_basis = access.legal_basis.map(|b| b.key().to_owned());
        e.policy.clone_from(&access.policy_version);
        e.unrestricted = access.unrestricted.map(str::to_owned);
        e.outcome = match access.outcome {
            Outcome::Success => plenum_audit::Outcome::Success,
            Outcome::Failed(kind) => plenum_audit::Outcome::Failed(kind.as_str().to_owned()),
            Outcome::Denied(reason) => plenum_audit::Outcome::Denied(reason.as_str().to_owned()),
        };
        e.rows = access.rows;
        e.excluded = access.excluded;
        Ok(e)
    }

    async fn pseudonyms(
        &self,
        tenant: TenantId,
        subjects: &[SubjectId],
    ) -> Result<(Vec<Pseudonym>, u64), Error> {
        if subjects.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let all = self.keyring.subject_pseudonyms(tenant, subjects).await?;
        let unlinked = all.iter().filter(|p| p.is_none()).count() as u64;
        Ok((all.into_iter().flatten().collect(), unlinked))
    }

    /// Appends `event` to every sink, in `tx`.
    ///
    /// # Errors
    ///
    /// The first sink's error.
    pub async fn record(&self, tx: &mut TenantTx, event: &Event) -> Result<(), Error> {
        if event.tenant != tx.tenant() {
            return Err(Error::TenantMismatch {
                record_type: "audit_log".to_owned(),
            });
        }
        for sink in &self.sinks {
            sink.append(tx, event).await?;
        }
        Ok(())
    }
}

impl AccessHook for Auditor {
    fn on_access<'a>(
        &'a self,
        tx: &'a mut TenantTx,
        access: &'a Access,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let event = self.event_of(tx.tenant(), access).await?;
            self.record(tx, &event).await
        })
    }
}
