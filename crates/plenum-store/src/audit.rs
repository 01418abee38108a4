//! Capture: every repository operation, consent change and key operation becomes an audit
//! event, appended in the same transaction as the access it describes, to the tenant's
//! tamper-evident log (`plenum.audit_log`; `docs/audit-format.md`).
//!
//! - [`Auditor`] is the [`AccessHook`] that turns an [`Access`] into a
//!   [`plenum_audit::Event`] (subjects as keyed pseudonyms) and hands it to its sinks.
//! - [`AuditSink`] is the one-method trait sinks implement: [`DbLog`] (the default),
//!   [`TracingSink`], [`MemorySink`], and explicitly [`DiscardEvents`].
//! - [`AuditLog`] appends, checkpoints, exports and expires the database log.

use core::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use plenum_audit::checkpoint::{Checkpoint, CheckpointSigner};
use plenum_audit::merkle::{Frontier, Hash, leaf_hash};
use plenum_audit::verify::{EXPORT_FORMAT, Entry, Export};
use plenum_audit::{Event, Pseudonym};
use plenum_core::{SubjectId, TenantId};
use plenum_crypto::{BoxFuture, KeyStore, Keyring};

use crate::access::{Access, AccessHook, Outcome};
use crate::error::Error;
use crate::tx::{BackendKind, TenantTx};

/// The log admin transactions are recorded in: a reserved tenant id that holds no data, is
/// registered by migration 4, and whose log is sequenced, checkpointed, exported and verified
/// like any tenant's (`TenantPool::begin(PLATFORM_LOG)` as the runtime role). The admin role may
/// append to this log and to no other.
pub const PLATFORM_LOG: TenantId = TenantId::from_trusted_uuid(uuid::Uuid::from_u128(
    0x0000_0000_0000_7000_8000_0000_0000_0a0d,
));

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
/// A successful access's event is appended in the access's own transaction, so the two commit
/// together or not at all. A refused or failed attempt has nothing to commit, and the caller
/// will usually roll back (or the error already aborted the PostgreSQL transaction), which
/// would take its event along; and key operations (creation, rotation, erasure) commit in the
/// key store's own transaction whatever the caller does. With [`DbLog::keeping_refusals`],
/// those events are written in a transaction of their own instead (on PostgreSQL; SQLite has
/// one writer, so there they stay in the access's transaction).
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
            // depend on `tx` committing either.
            let key_operation =
                matches!(event.action.as_str(), "erase" | "key.create" | "key.rotate");
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
            AuditLog::append(tx, event).await
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
/// down: [`Auditor::with_sinks`] refuses an empty list.
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

/// The audit hook: give it to [`Records::new`](crate::Records::new) and every operation is
/// audited.
#[derive(Clone)]
pub struct Auditor {
    keyring: Arc<Keyring>,
    keys: Arc<dyn KeyStore>,
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
        keys: Arc<dyn KeyStore>,
        pool: &crate::TenantPool,
        service: &str,
    ) -> Result<Self, Error> {
        Self::with_sinks(
            keyring,
            keys,
            service,
            vec![Arc::new(DbLog::keeping_refusals(pool.clone()))],
        )
    }

    /// As [`Auditor::new`] with these sinks instead of the database log; every event goes to
    /// each, in order, and the first error fails the access.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an unusable service name or no sinks (name [`DiscardEvents`] to
    /// record nothing).
    pub fn with_sinks(
        keyring: Arc<Keyring>,
        keys: Arc<dyn KeyStore>,
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
            keys,
            service: service.to_owned(),
            sinks,
        })
    }

    /// Adds a sink (for example [`TracingSink`] beside the database log).
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
            Outcome::Denied(reason) => plenum_audit::Outcome::Denied(reason.to_owned()),
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
        let all = self
            .keyring
            .subject_pseudonyms(&*self.keys, tenant, subjects)
            .await?;
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

/// The database audit log of one tenant, used through its transaction.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditLog;

/// A stored checkpoint: the signed note and the frontier the next one continues from.
struct Stored {
    time: i64,
    frontier: Frontier,
}

/// The PostgreSQL append, shared with the admin transaction (which has no `TenantTx`).
#[cfg(feature = "postgres")]
async fn append_pg(
    conn: &mut sqlx::PgConnection,
    event: &Event,
    leaf: &[u8],
    body: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO plenum.audit_log (tenant_id, event_id, at, leaf_hash, body) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(event.tenant.as_uuid())
    .bind(event.id)
    .bind(event.at)
    .bind(leaf)
    .bind(body)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Appends `event` to the platform log on an admin connection.
#[cfg(feature = "postgres")]
pub(crate) async fn append_platform(
    conn: &mut sqlx::PgConnection,
    event: &Event,
) -> Result<(), sqlx::Error> {
    let body = event
        .canonical()
        .map_err(|_| sqlx::Error::Protocol("audit event is not canonical".into()))?;
    append_pg(conn, event, &leaf_hash(body.as_bytes()), &body).await
}

fn db(e: sqlx::Error) -> Error {
    Error::AuditLog(e)
}

fn to_i64(n: u64) -> Result<i64, Error> {
    i64::try_from(n).map_err(|_| Error::Audit("sequence number out of range"))
}

fn to_u64(n: i64) -> Result<u64, Error> {
    u64::try_from(n).map_err(|_| Error::Audit("negative size in the database"))
}

impl AuditLog {
    /// Appends `event` to its tenant's log in `tx`: one insert, no lock and no counter, so
    /// concurrent accesses of one tenant do not wait for each other. The event gets its
    /// sequence number from [`AuditLog::sequence`] once `tx` has committed; if `tx` rolls back,
    /// the event was never there and no number is lost.
    ///
    /// # Errors
    ///
    /// [`Error::TenantMismatch`]; [`Error::AuditLog`] when the database refuses.
    pub async fn append(tx: &mut TenantTx, event: &Event) -> Result<(), Error> {
        let tenant = tx.tenant();
        if event.tenant != tenant {
            return Err(Error::TenantMismatch {
                record_type: "audit_log".to_owned(),
            });
        }
        let body = event
            .canonical()
            .map_err(|_| Error::Audit("event is not canonical"))?;
        let leaf = leaf_hash(body.as_bytes()).to_vec();
        let t = *tenant.as_uuid();
        match tx.backend() {
            #[cfg(feature = "postgres")]
            BackendKind::Postgres => {
                append_pg(tx.postgres_internal()?, event, &leaf, &body)
                    .await
                    .map_err(db)?;
            }
            #[cfg(feature = "sqlite")]
            BackendKind::Sqlite => {
                sqlx::query(
                    "INSERT INTO plenum_audit_log (tenant_id, event_id, at, leaf_hash, body) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .bind(t)
                .bind(event.id)
                .bind(event.at)
                .bind(&leaf)
                .bind(&body)
                .execute(tx.sqlite_internal()?)
                .await
                .map_err(db)?;
            }
            #[allow(unreachable_patterns, reason = "with both backends compiled in")]
            _ => return Err(Error::Config("backend not compiled in")),
        }
        Ok(())
    }

    /// Numbers the tenant's committed, not yet numbered events, in append order, continuing
    /// gaplessly from the log's size, and returns how many it numbered. Holds the tenant's head
    /// row until `tx` ends, so sequencers of one tenant take turns (other tenants and accesses
    /// never wait). [`AuditLog::checkpoint`] runs it first; run it more often to keep the
    /// unnumbered tail short.
    ///
    /// # Errors
    ///
    /// [`Error::AuditLog`].
    pub async fn sequence(tx: &mut TenantTx) -> Result<u64, Error> {
        let size = Self::lock_head(tx).await?;
        let t = *tx.tenant().as_uuid();
        let numbered = match tx.backend() {
            #[cfg(feature = "postgres")]
            BackendKind::Postgres => {
                let conn = tx.postgres_internal()?;
                let n = sqlx::query(
                    "WITH pending AS (SELECT entry, row_number() OVER (ORDER BY entry) - 1 AS i \
                     FROM plenum.audit_log WHERE tenant_id = $1 AND seq IS NULL) \
                     UPDATE plenum.audit_log l SET seq = $2 + pending.i FROM pending \
                     WHERE l.tenant_id = $1 AND l.entry = pending.entry",
                )
                .bind(t)
                .bind(to_i64(size)?)
                .execute(&mut *conn)
                .await
                .map_err(db)?
                .rows_affected();
                if n > 0 {
                    sqlx::query(
                        "UPDATE plenum.audit_heads SET size = size + $2 WHERE tenant_id = $1",
                    )
                    .bind(t)
                    .bind(to_i64(n)?)
                    .execute(&mut *conn)
                    .await
                    .map_err(db)?;
                }
                n
            }
            #[cfg(feature = "sqlite")]
            BackendKind::Sqlite => {
                // Rows this statement already numbered have seq >= size: counting them with the
                // pending ones keeps the numbering right whether or not SQLite shows a row's own
                // statement's earlier updates.
                let conn = tx.sqlite_internal()?;
                let n = sqlx::query(
                    "UPDATE plenum_audit_log SET seq = ?2 + (SELECT count(*) FROM plenum_audit_log p \
                     WHERE p.tenant_id = ?1 AND (p.seq IS NULL OR p.seq >= ?2) \
                     AND p.rowid < plenum_audit_log.rowid) \
                     WHERE tenant_id = ?1 AND seq IS NULL",
                )
                .bind(t)
                .bind(to_i64(size)?)
                .execute(&mut *conn)
                .await
                .map_err(db)?
                .rows_affected();
                if n > 0 {
                    sqlx::query(
                        "UPDATE plenum_audit_heads SET size = size + ?2 WHERE tenant_id = ?1",
                    )
                    .bind(t)
                    .bind(to_i64(n)?)
                    .execute(&mut *conn)
                    .await
                    .map_err(db)?;
                }
                n
            }
            #[allow(unreachable_patterns, reason = "with both backends compiled in")]
            _ => return Err(Error::Config("backend not compiled in")),
        };
        Ok(numbered)
    }

    /// Numbers the pending events ([`AuditLog::sequence`]) and issues a signed checkpoint of the
    /// tenant's log, also when nothing was appended since the last one (a fresh time on the same root shows the logger is alive, so
    /// a silenced logger or a cut tail shows as a stale or contradicted checkpoint). Continues
    /// from the previous checkpoint's frontier, reading only the entries since.
    ///
    /// Commit `tx` to publish it. Holds the tenant's head for the duration, so no two
    /// sequencers or checkpoints of a tenant interleave.
    ///
    /// # Errors
    ///
    /// [`Error::AuditLog`]; [`Error::Audit`] if the stored log is inconsistent.
    pub async fn checkpoint(
        tx: &mut TenantTx,
        signer: &CheckpointSigner,
    ) -> Result<Checkpoint, Error> {
        let tenant = tx.tenant();
        Self::sequence(tx).await?;
        let size = Self::lock_head(tx).await?;
        let (mut frontier, last_time) = match Self::last_checkpoint(tx, signer, size).await? {
            Some(s) => (s.frontier, s.time),
            None => (Frontier::new(), i64::MIN),
        };
        let leaves = Self::leaves(tx, frontier.size(), size).await?;
        for leaf in leaves {
            frontier.push(leaf);
        }
        if frontier.size() != size {
            return Err(Error::Audit("the log has a gap below its head"));
        }
        let now = Utc::now();
        let checkpoint = Checkpoint {
            tenant,
            size,
            root: frontier.root(),
            time: now.timestamp().max(last_time),
        };
        let note = signer.sign(&checkpoint);
        let peaks: Vec<u8> = frontier.peaks().iter().flatten().copied().collect();
        let issued_at =
            DateTime::from_timestamp(checkpoint.time, now.timestamp_subsec_nanos()).unwrap_or(now);
        let (t, n) = (*tenant.as_uuid(), to_i64(size)?);
        match tx.backend() {
            #[cfg(feature = "postgres")]
            BackendKind::Postgres => {
                sqlx::query(
                    "INSERT INTO plenum.audit_checkpoints (tenant_id, size, issued_at, note, frontier) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(t)
                .bind(n)
                .bind(issued_at)
                .bind(&note)
                .bind(&peaks)
                .execute(tx.postgres_internal()?)
                .await
                .map_err(db)?;
            }
            #[cfg(feature = "sqlite")]
            BackendKind::Sqlite => {
                sqlx::query(
                    "INSERT INTO plenum_audit_checkpoints (tenant_id, size, issued_at, note, frontier) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .bind(t)
                .bind(n)
                .bind(issued_at)
                .bind(&note)
                .bind(&peaks)
                .execute(tx.sqlite_internal()?)
                .await
                .map_err(db)?;
            }
            #[allow(unreachable_patterns, reason = "with both backends compiled in")]
            _ => return Err(Error::Config("backend not compiled in")),
        }
        Ok(checkpoint)
    }

    /// One checkpoint round: for each of `tenants`, its own transaction that sequences and
    /// checkpoints ([`AuditLog::checkpoint`]) and commits. Run it on a timer, every tenant every
    /// time (idle ones too: a fresh time on an unchanged root is what shows the logger is
    /// alive):
    ///
    /// ```no_run
    /// # async fn demo(
    /// #     pool: plenum_store::TenantPool,
    /// #     signer: plenum_audit::CheckpointSigner,
    /// #     tenants: Vec<plenum_core::TenantId>,
    /// # ) {
    /// use plenum_store::AuditLog;
    ///
    /// loop {
    ///     for (tenant, result) in AuditLog::checkpoint_all(&pool, &signer, &tenants).await {
    ///         if let Err(e) = result {
    ///             tracing::error!(%tenant, kind = ?e.kind(), "audit checkpoint failed");
    ///         }
    ///     }
    ///     // tokio::time::sleep(Duration::from_secs(60)).await;
    /// }
    /// # }
    /// ```
    pub async fn checkpoint_all(
        pool: &crate::TenantPool,
        signer: &CheckpointSigner,
        tenants: &[TenantId],
    ) -> Vec<(TenantId, Result<Checkpoint, Error>)> {
        let mut out = Vec::with_capacity(tenants.len());
        for tenant in tenants {
            let result = async {
                let mut tx = pool.begin(*tenant).await?;
                let checkpoint = Self::checkpoint(&mut tx, signer).await?;
                tx.commit().await?;
                Ok(checkpoint)
            }
            .await;
            out.push((*tenant, result));
        }
        out
    }

    /// The committed size of the tenant's log, with its head locked until `tx` ends.
    async fn lock_head(tx: &mut TenantTx) -> Result<u64, Error> {
        let t = *tx.tenant().as_uuid();
        let size: Option<i64> = match tx.backend() {
            #[cfg(feature = "postgres")]
            BackendKind::Postgres => {
                let conn = tx.postgres_internal()?;
                sqlx::query(
                    "INSERT INTO plenum.audit_heads (tenant_id, size) VALUES ($1, 0) \
                     ON CONFLICT (tenant_id) DO NOTHING",
                )
                .bind(t)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
                sqlx::query_scalar(
                    "SELECT size FROM plenum.audit_heads WHERE tenant_id = $1 FOR UPDATE",
                )
                .bind(t)
                .fetch_optional(&mut *conn)
                .await
                .map_err(db)?
            }
            #[cfg(feature = "sqlite")]
            BackendKind::Sqlite => {
                let conn = tx.sqlite_internal()?;
                sqlx::query(
                    "INSERT INTO plenum_audit_heads (tenant_id, size) VALUES (?1, 0) \
                     ON CONFLICT (tenant_id) DO NOTHING",
                )
                .bind(t)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
                sqlx::query_scalar("SELECT size FROM plenum_audit_heads WHERE tenant_id = ?1")
                    .bind(t)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(db)?
            }
            #[allow(unreachable_patterns, reason = "with both backends compiled in")]
            _ => return Err(Error::Config("backend not compiled in")),
        };
        to_u64(size.unwrap_or(0))
    }

    /// The newest stored checkpoint this signer signed, whose stored frontier gives its signed
    /// root and which the log still covers: where the next checkpoint continues from. Rows are
    /// only a cache of what was signed; the runtime role can insert rows, so a row that does
    /// not check out is skipped (and the verifier will refuse its note), and with none the
    /// tree is rebuilt from the first entry.
    async fn last_checkpoint(
        tx: &mut TenantTx,
        signer: &CheckpointSigner,
        head: u64,
    ) -> Result<Option<Stored>, Error> {
        let tenant = tx.tenant();
        let t = *tenant.as_uuid();
        let rows: Vec<(i64, String, Vec<u8>)> = match tx.backend() {
            #[cfg(feature = "postgres")]
            BackendKind::Postgres => sqlx::query_as(
                "SELECT size, note, frontier FROM plenum.audit_checkpoints \
                 WHERE tenant_id = $1 ORDER BY size DESC, issued_at DESC LIMIT 16",
            )
            .bind(t)
            .fetch_all(tx.postgres_internal()?)
            .await
            .map_err(db)?,
            #[cfg(feature = "sqlite")]
            BackendKind::Sqlite => sqlx::query_as(
                "SELECT size, note, frontier FROM plenum_audit_checkpoints \
                 WHERE tenant_id = ?1 ORDER BY size DESC, issued_at DESC LIMIT 16",
            )
            .bind(t)
            .fetch_all(tx.sqlite_internal()?)
            .await
            .map_err(db)?,
            #[allow(unreachable_patterns, reason = "with both backends compiled in")]
            _ => return Err(Error::Config("backend not compiled in")),
        };
        let trusted = [signer.verifier()];
        for (size, note, bytes) in rows {
            let stored = plenum_audit::checkpoint::open(&note, &trusted)
                .ok()
                .filter(|c| c.tenant == tenant && i64::try_from(c.size).ok() == Some(size))
                .filter(|c| c.size <= head && bytes.len() % 32 == 0)
                .and_then(|c| {
                    let peaks: Vec<Hash> = bytes
                        .chunks_exact(32)
                        .map(|chunk| {
                            let mut h = [0u8; 32];
                            h.copy_from_slice(chunk);
                            h
                        })
                        .collect();
                    Frontier::from_parts(c.size, peaks)
                        .filter(|f| f.root() == c.root)
                        .map(|frontier| Stored {
                            time: c.time,
                            frontier,
                        })
                });
            match stored {
                Some(s) => return Ok(Some(s)),
                None => tracing::warn!(
                    "a stored audit checkpoint does not check out under the signer's key; skipping it"
                ),
            }
        }
        Ok(None)
    }

    async fn leaves(tx: &mut TenantTx, from: u64, to: u64) -> Result<Vec<Hash>, Error> {
        let (t, from, to) = (*tx.tenant().as_uuid(), to_i64(from)?, to_i64(to)?);
        let rows: Vec<(i64, Vec<u8>)> = match tx.backend() {
            #[cfg(feature = "postgres")]
            BackendKind::Postgres => sqlx::query_as(
                "SELECT seq, leaf_hash FROM plenum.audit_log \
                 WHERE tenant_id = $1 AND seq >= $2 AND seq < $3 ORDER BY seq",
            )
            .bind(t)
            .bind(from)
            .bind(to)
            .fetch_all(tx.postgres_internal()?)
            .await
            .map_err(db)?,
            #[cfg(feature = "sqlite")]
            BackendKind::Sqlite => sqlx::query_as(
                "SELECT seq, leaf_hash FROM plenum_audit_log \
                 WHERE tenant_id = ?1 AND seq >= ?2 AND seq < ?3 ORDER BY seq",
            )
            .bind(t)
            .bind(from)
            .bind(to)
            .fetch_all(tx.sqlite_internal()?)
            .await
            .map_err(db)?,
            #[allow(unreachable_patterns, reason = "with both backends compiled in")]
            _ => return Err(Error::Config("backend not compiled in")),
        };
        let mut out = Vec::with_capacity(rows.len());
        for (i, (seq, hash)) in rows.into_iter().enumerate() {
            if seq != from + i64::try_from(i).unwrap_or(i64::MAX) {
                return Err(Error::Audit("the log has a gap below its head"));
            }
            out.push(
                hash.try_into()
                    .map_err(|_| Error::Audit("a stored leaf hash is not 32 bytes"))?,
            );
        }
        Ok(out)
    }

    /// The tenant's numbered log as the verifier reads it (run [`AuditLog::sequence`] first to
    /// include the latest events): entries in sequence order and signed checkpoints in issue
    /// order ([`plenum_audit::verify::verify_log`], the `plenum-audit`
    /// binary, `tests/audit_interop.py`).
    ///
    /// # Errors
    ///
    /// [`Error::AuditLog`].
    pub async fn export(tx: &mut TenantTx) -> Result<Export, Error> {
        let tenant = tx.tenant();
        let t = *tenant.as_uuid();
        type EntryRow = (i64, Vec<u8>, Option<String>);
        let (entries, notes): (Vec<EntryRow>, Vec<String>) = match tx.backend() {
            #[cfg(feature = "postgres")]
            BackendKind::Postgres => {
                let conn = tx.postgres_internal()?;
                let entries = sqlx::query_as(
                    "SELECT seq, leaf_hash, body FROM plenum.audit_log WHERE tenant_id = $1 \
                     AND seq IS NOT NULL ORDER BY seq",
                )
                .bind(t)
                .fetch_all(&mut *conn)
                .await
                .map_err(db)?;
                let notes = sqlx::query_scalar(
                    "SELECT note FROM plenum.audit_checkpoints WHERE tenant_id = $1 \
                     ORDER BY size, issued_at",
                )
                .bind(t)
                .fetch_all(&mut *conn)
                .await
                .map_err(db)?;
                (entries, notes)
            }
            #[cfg(feature = "sqlite")]
            BackendKind::Sqlite => {
                let conn = tx.sqlite_internal()?;
                let entries = sqlx::query_as(
                    "SELECT seq, leaf_hash, body FROM plenum_audit_log WHERE tenant_id = ?1 \
                     AND seq IS NOT NULL ORDER BY seq",
                )
                .bind(t)
                .fetch_all(&mut *conn)
                .await
                .map_err(db)?;
                let notes = sqlx::query_scalar(
                    "SELECT note FROM plenum_audit_checkpoints WHERE tenant_id = ?1 \
                     ORDER BY size, issued_at",
                )
                .bind(t)
                .fetch_all(&mut *conn)
                .await
                .map_err(db)?;
                (entries, notes)
            }
            #[allow(unreachable_patterns, reason = "with both backends compiled in")]
            _ => return Err(Error::Config("backend not compiled in")),
        };
        let entries = entries
            .into_iter()
            .map(|(seq, hash, body)| {
                Ok(Entry {
                    seq: to_u64(seq)?,
                    leaf_hash: hash.iter().map(|b| format!("{b:02x}")).collect(),
                    body,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Export {
            format: EXPORT_FORMAT.to_owned(),
            tenant,
            entries,
            checkpoints: notes,
        })
    }

    /// Deletes the bodies of events recorded (by the database's clock) before `before`, keeping
    /// their leaf hashes so the log still verifies. The database refuses anything younger than
    /// two years, whatever `before` says: retention is the only change the runtime role may
    /// make to the log.
    ///
    /// # Errors
    ///
    /// [`Error::AuditLog`] (permission denied for a body younger than two years).
    pub async fn expire_bodies(tx: &mut TenantTx, before: DateTime<Utc>) -> Result<u64, Error> {
        let t = *tx.tenant().as_uuid();
        let done = match tx.backend() {
            #[cfg(feature = "postgres")]
            BackendKind::Postgres => sqlx::query(
                "UPDATE plenum.audit_log SET body = NULL \
                 WHERE tenant_id = $1 AND recorded_at < $2 AND body IS NOT NULL",
            )
            .bind(t)
            .bind(before)
            .execute(tx.postgres_internal()?)
            .await
            .map_err(db)?
            .rows_affected(),
            #[cfg(feature = "sqlite")]
            BackendKind::Sqlite => sqlx::query(
                "UPDATE plenum_audit_log SET body = NULL \
                 WHERE tenant_id = ?1 AND recorded_at < ?2 AND body IS NOT NULL",
            )
            .bind(t)
            .bind(before.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .execute(tx.sqlite_internal()?)
            .await
            .map_err(db)?
            .rows_affected(),
            #[allow(unreachable_patterns, reason = "with both backends compiled in")]
            _ => return Err(Error::Config("backend not compiled in")),
        };
        Ok(done)
    }

    /// "Who accessed my data": the events naming `subject` among their subjects (under any of
    /// its live key versions), in append order, with their sequence numbers (`None` while the
    /// sequencer has not numbered them yet). Empty once the subject is erased: the pseudonyms
    /// cannot be recomputed. Pair each numbered one with
    /// [`plenum_audit::verify::prove_inclusion`] to prove it without the rest of the log. Reads
    /// the tenant's whole log (a data-subject request is rare; an index of pseudonyms would
    /// be the next step if it is not).
    ///
    /// # Errors
    ///
    /// Key store and database failures.
    pub async fn events_about(
        tx: &mut TenantTx,
        keyring: &Keyring,
        keys: &dyn KeyStore,
        subject: SubjectId,
    ) -> Result<Vec<(Option<u64>, String)>, Error> {
        let tenant = tx.tenant();
        let refs = match keyring
            .subject_pseudonym_candidates(keys, tenant, subject)
            .await
        {
            Ok(refs) => refs,
            Err(
                plenum_crypto::Error::KeyNotFound { .. }
                | plenum_crypto::Error::KeyDestroyed { .. },
            ) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        if refs.is_empty() {
            return Ok(Vec::new());
        }
        let wanted: Vec<String> = refs
            .iter()
            .map(|r| r.iter().map(|b| format!("{b:02x}")).collect())
            .collect();
        let t = *tenant.as_uuid();
        let rows: Vec<(Option<i64>, String)> = match tx.backend() {
            #[cfg(feature = "postgres")]
            BackendKind::Postgres => sqlx::query_as(
                "SELECT seq, body FROM plenum.audit_log WHERE tenant_id = $1 \
                 AND body IS NOT NULL ORDER BY entry",
            )
            .bind(t)
            .fetch_all(tx.postgres_internal()?)
            .await
            .map_err(db)?,
            #[cfg(feature = "sqlite")]
            BackendKind::Sqlite => sqlx::query_as(
                "SELECT seq, body FROM plenum_audit_log WHERE tenant_id = ?1 \
                 AND body IS NOT NULL ORDER BY rowid",
            )
            .bind(t)
            .fetch_all(tx.sqlite_internal()?)
            .await
            .map_err(db)?,
            #[allow(unreachable_patterns, reason = "with both backends compiled in")]
            _ => return Err(Error::Config("backend not compiled in")),
        };
        let mut out = Vec::new();
        for (seq, body) in rows {
            let event: serde_json::Value = serde_json::from_str(&body)
                .map_err(|_| Error::Audit("a stored event body is not JSON"))?;
            let names_subject = event["subjects"]["refs"].as_array().is_some_and(|refs| {
                refs.iter()
                    .any(|r| r.as_str().is_some_and(|r| wanted.iter().any(|w| w == r)))
            });
            if names_subject {
                out.push((seq.map(to_u64).transpose()?, body));
            }
        }
        Ok(out)
    }
}
