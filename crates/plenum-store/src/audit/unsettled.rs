//! The events of accesses that already reached the caller (data read, an attempt refused), held
//! by their transaction until it commits. If it does not (rolled back, dropped, a panic
//! unwinding through it, its connection killed, the commit failing), the library writes them
//! again in a transaction of its own, so the caller's choice about its transaction never decides
//! whether a disclosure is on record.

use plenum_audit::Event;

use super::AuditLog;
use crate::tx::TenantPool;

/// Events a transaction owes the log if it does not commit.
#[derive(Default)]
pub(crate) struct Unsettled {
    /// Where to write them: the pool the transaction came from (`None` for the SQLite key
    /// database's transactions, which carry no events).
    pool: Option<TenantPool>,
    events: Vec<Event>,
}

impl Unsettled {
    pub(crate) fn new(pool: Option<TenantPool>) -> Self {
        Self {
            pool,
            events: Vec::new(),
        }
    }

    /// The pool the transaction came from, if its events are written again from it.
    pub(crate) fn pool(&self) -> Option<&TenantPool> {
        self.pool.as_ref()
    }

    /// Holds `event`, already appended in the transaction, until the transaction commits.
    pub(crate) fn hold(&mut self, event: &Event) {
        if self.pool.is_some() {
            self.events.push(event.clone());
        }
    }

    /// The transaction committed: its own copies are durable.
    pub(crate) fn settle(&mut self) {
        self.events.clear();
    }

    /// The transaction rolled back (`after_failed_commit: false`) or its commit failed: writes
    /// each held event in a transaction of its own. After a failed commit the outcome is unknown
    /// (the server may have committed before the connection broke), so an event already in the
    /// log is not written twice.
    ///
    /// # Errors
    ///
    /// The first failure; the remaining events are still attempted.
    pub(crate) async fn write(&mut self, after_failed_commit: bool) -> Result<(), crate::Error> {
        let events = core::mem::take(&mut self.events);
        let Some(pool) = self.pool.clone() else {
            return Ok(());
        };
        write_all(&pool, events, after_failed_commit).await
    }
}

/// Boxed: the transactions it opens hold events of their own, so `commit` and this call each
/// other.
fn write_all(
    pool: &TenantPool,
    events: Vec<Event>,
    after_failed_commit: bool,
) -> plenum_crypto::BoxFuture<'_, Result<(), crate::Error>> {
    Box::pin(write_all_inner(pool, events, after_failed_commit))
}

async fn write_all_inner(
    pool: &TenantPool,
    events: Vec<Event>,
    after_failed_commit: bool,
) -> Result<(), crate::Error> {
    let mut first = Ok(());
    for event in events {
        let one = async {
            let mut own = pool.begin(event.tenant).await?;
            if !(after_failed_commit && AuditLog::holds(&mut own, &event).await?) {
                AuditLog::append(&mut own, &event).await?;
            }
            own.commit().await
        };
        if let Err(e) = one.await {
            tracing::error!(
                kind = ?e.kind(),
                action = %event.action,
                "an audit event of an uncommitted transaction could not be written"
            );
            if first.is_ok() {
                first = Err(e);
            }
        }
    }
    first
}

impl Drop for Unsettled {
    /// Dropped with events still held: the transaction was dropped without commit or rollback
    /// (an early return, `?`, a panic unwinding). The write needs the async runtime, so it is
    /// spawned on the current one; without a runtime (the runtime itself shutting down) the
    /// events cannot be written and an error is logged.
    fn drop(&mut self) {
        if self.events.is_empty() {
            return;
        }
        let events = core::mem::take(&mut self.events);
        let Some(pool) = self.pool.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    // Errors are logged inside; nobody is left to return them to.
                    let _ = write_all(&pool, events, false).await;
                });
            }
            Err(_) => tracing::error!(
                events = events.len(),
                "a transaction holding audit events was dropped outside an async runtime: the events are lost"
            ),
        }
    }
}
