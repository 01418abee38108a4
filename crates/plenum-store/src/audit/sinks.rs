//! Where audit events go: the [`AuditSink`] trait and the sinks the library ships. A sink is
//! called inside the access's transaction; it may not change the event.

use std::sync::{Mutex, PoisonError};

use plenum_audit::Event;
use plenum_crypto::BoxFuture;

use super::AuditLog;
use crate::error::Error;
use crate::tx::{BackendKind, TenantTx};

/// Where audit events go. One method, called inside the transaction of the access the event
/// describes; an error fails that access (fail closed). Implement it for a SIEM or a queue
/// (an outbox table written in `tx` keeps the all-or-nothing property).
pub trait AuditSink: Send + Sync {
    /// Records `event`, which happened in `tx`.
    ///
    /// # Errors
    ///
    /// Whatever keeps the event from being recorded; the access then fails.
    fn append<'a>(
        &'a self,
        tx: &'a mut TenantTx,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<(), Error>>;
}

/// The tenant's tamper-evident log in the database: the default sink.
///
/// A write's event is appended in the access's own transaction, so the two commit together or
/// not at all. An access whose result already reached the caller must stay on record whatever
/// the caller then does with its transaction: a read (`read`, `list`, `search`, `count`: the
/// data is out), a refused or failed attempt, a key operation (which commits in the key store's
/// own transaction). Their events are appended in the access's transaction too, and that
/// transaction holds them: if it rolls back, is dropped, or fails to commit, the library
/// writes them in a transaction of their own (`TenantTx::rollback`, `TenantTx::commit`, and on
/// drop a task on the current runtime). With [`DbLog::keeping_refusals`], refusals and key
/// operations are written in a transaction of their own at once instead (PostgreSQL; SQLite
/// has one writer, so there they wait for the caller's transaction to end).
///
/// Not covered: the process dying after the data reached the caller and before its
/// transaction ended (SECURITY.md).
#[derive(Debug, Clone, Default)]
pub struct DbLog {
    refusals: Option<crate::TenantPool>,
}

impl DbLog {
    /// Every event in the access's transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// As [`DbLog::new`], except that refused and failed attempts and key operations are
    /// recorded in a transaction of their own on `pool`, so they stay recorded whatever the
    /// caller does next.
    /// That takes a second connection for a moment: if none frees up within the pool's acquire
    /// timeout, the event goes into the access's transaction after all (and a warning is
    /// logged).
    pub fn keeping_refusals(pool: crate::TenantPool) -> Self {
        Self {
            refusals: Some(pool),
        }
    }
}

impl AuditSink for DbLog {
    fn append<'a>(
        &'a self,
        tx: &'a mut TenantTx,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let refused = !matches!(event.outcome, plenum_audit::Outcome::Success);
            // Key operations commit in the key store's own transaction: their events must not
            // depend on `tx` committing either. Retention destroys keys when it erases a closed
            // account's holder (`keys`) or offboards the tenant (`tenants`).
            let key_operation = matches!(
                event.action.as_str(),
                "erase" | "key.create" | "key.rotate" | "key.rewrap"
            ) || (event.action == "retention"
                && matches!(event.record_type.as_deref(), Some("keys" | "tenants")));
            if let (Some(pool), true, BackendKind::Postgres) =
                (&self.refusals, refused || key_operation, tx.backend())
            {
                let own = async {
                    let mut own = pool.begin(event.tenant).await?;
                    AuditLog::append(&mut own, event).await?;
                    own.commit().await
                };
                match own.await {
                    Ok(()) => return Ok(()),
                    Err(e) => tracing::warn!(
                        kind = ?e.kind(),
                        "a refused attempt could not be recorded on its own; recording it in the access's transaction"
                    ),
                }
            }
            AuditLog::append(tx, event).await?;
            let discloses = matches!(event.action.as_str(), "read" | "list" | "search" | "count");
            if discloses || refused || key_operation {
                tx.hold_event(event);
            }
            Ok(())
        })
    }
}

/// Emits each event's canonical body as a `tracing` event (target `plenum::audit`, level
/// INFO), for log pipelines. Not tamper-evident and not transactional: use it beside
/// [`DbLog`], not instead.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingSink;

impl AuditSink for TracingSink {
    fn append<'a>(
        &'a self,
        _tx: &'a mut TenantTx,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let body = event
                .canonical()
                .map_err(|_| Error::Audit("event is not canonical"))?;
            tracing::info!(target: "plenum::audit", event = %body, "audit");
            Ok(())
        })
    }
}

/// Keeps events in memory, for tests.
#[derive(Debug, Default)]
pub struct MemorySink {
    events: Mutex<Vec<Event>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events recorded so far, removed from the sink.
    pub fn take(&self) -> Vec<Event> {
        core::mem::take(&mut *self.events.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl AuditSink for MemorySink {
    fn append<'a>(
        &'a self,
        _tx: &'a mut TenantTx,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<(), Error>> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event.clone());
        Box::pin(async { Ok(()) })
    }
}

/// Records nothing. It exists so that turning the audit log off is a decision someone wrote
/// down: [`Auditor::with_sinks`](crate::Auditor::with_sinks) refuses an empty list.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiscardEvents;

impl AuditSink for DiscardEvents {
    fn append<'a>(
        &'a self,
        _tx: &'a mut TenantTx,
        _event: &'a Event,
    ) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }
}
