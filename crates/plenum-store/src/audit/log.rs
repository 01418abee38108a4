//! The database audit log: one plain insert per event in the access's transaction (no lock),
//! the sequencer that numbers committed events per tenant, signed checkpoints, export for the
//! verifier, body expiry for retention, and "who accessed my data". Its statements go through
//! the shared `sql::fetch`/`execute` and `Dialect`; it decides nothing about access.

use chrono::{DateTime, Utc};
use plenum_audit::Event;
use plenum_audit::checkpoint::{Checkpoint, CheckpointSigner};
use plenum_audit::merkle::{Frontier, Hash, leaf_hash};
use plenum_audit::verify::{EXPORT_FORMAT, Entry, Export};
use plenum_core::{SubjectId, TenantId};
use plenum_crypto::Keyring;

use crate::error::Error;
use crate::record::Value;
use crate::sql::{self, Conn, Dialect};
use crate::table::SqlType;
use crate::tx::TenantTx;

/// The database audit log of one tenant, used through its transaction.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditLog;

/// A stored checkpoint: the signed note and the frontier the next one continues from.
struct Stored {
    time: i64,
    frontier: Frontier,
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

fn tenant_bind(tenant: TenantId) -> (SqlType, Value) {
    (SqlType::Uuid, Value::Uuid(*tenant.as_uuid()))
}

fn bigint(n: u64) -> Result<(SqlType, Value), Error> {
    Ok((SqlType::BigInt, Value::BigInt(to_i64(n)?)))
}

fn unexpected_row() -> Error {
    Error::Audit("an audit table returned an unexpected row")
}

fn hash_of(bytes: Vec<u8>) -> Result<Hash, Error> {
    bytes
        .try_into()
        .map_err(|_| Error::Audit("a stored leaf hash is not 32 bytes"))
}

/// Appends one event on `conn`: the access's transaction, or an admin transaction (which has no
/// `TenantTx`).
async fn insert_event(conn: Conn<'_>, d: Dialect, event: &Event) -> Result<(), Error> {
    let body = event
        .canonical()
        .map_err(|_| Error::Audit("event is not canonical"))?;
    let leaf = leaf_hash(body.as_bytes()).to_vec();
    let statement = format!(
        "INSERT INTO {} (tenant_id, event_id, at, leaf_hash, body) VALUES ({})",
        d.library("audit_log"),
        d.params(5)
    );
    let binds = [
        tenant_bind(event.tenant),
        (SqlType::Uuid, Value::Uuid(event.id)),
        (SqlType::Timestamp, Value::Timestamp(event.at)),
        (SqlType::Bytes, Value::Bytes(leaf)),
        (SqlType::Text, Value::Text(body)),
    ];
    sql::execute(conn, &statement, &binds).await.map_err(db)?;
    Ok(())
}

/// Appends `event` to the platform log on an admin connection.
#[cfg(feature = "postgres")]
pub(crate) async fn append_platform(
    conn: &mut sqlx::PgConnection,
    event: &Event,
) -> Result<(), Error> {
    insert_event(Conn::Pg(conn), Dialect::Postgres, event).await
}

/// Appends `event` to the platform log inside `tx`, a transaction of another tenant: on
/// SQLite only, an embedded database with one writer and no roles to keep apart, where a
/// transaction of its own would wait for `tx`.
#[cfg(feature = "sqlite")]
pub(crate) async fn append_platform_in(tx: &mut TenantTx, event: &Event) -> Result<(), Error> {
    if event.tenant != crate::contract::PLATFORM_LOG || tx.backend() != crate::BackendKind::Sqlite {
        return Err(Error::TenantMismatch {
            record_type: "audit_log".to_owned(),
        });
    }
    // The embedded database registers the platform log's tenant when it is first written.
    sql::execute(
        Conn::of(tx)?,
        "INSERT INTO plenum_tenants (id) VALUES (?1) ON CONFLICT (id) DO NOTHING",
        &[tenant_bind(event.tenant)],
    )
    .await
    .map_err(db)?;
    insert_event(Conn::of(tx)?, Dialect::Sqlite, event).await
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
        if event.tenant != tx.tenant() {
            return Err(Error::TenantMismatch {
                record_type: "audit_log".to_owned(),
            });
        }
        let d = Dialect::of(tx);
        insert_event(Conn::of(tx)?, d, event).await
    }

    /// Whether the log already holds `event` (by its id): after a commit whose outcome is
    /// unknown, an event is not written twice.
    pub(crate) async fn holds(tx: &mut TenantTx, event: &Event) -> Result<bool, Error> {
        let d = Dialect::of(tx);
        let statement = format!(
            "SELECT count(*) FROM {} WHERE tenant_id = {} AND event_id = {}",
            d.library("audit_log"),
            d.p(1),
            d.p(2)
        );
        let binds = [
            tenant_bind(event.tenant),
            (SqlType::Uuid, Value::Uuid(event.id)),
        ];
        let rows = sql::fetch(Conn::of(tx)?, &statement, &binds, &[SqlType::BigInt])
            .await
            .map_err(db)?;
        Ok(matches!(rows.first().and_then(|r| r.first()), Some(Value::BigInt(n)) if *n > 0))
    }

    /// Numbers the tenant's committed, not yet numbered events, in append order, continuing
    /// gaplessly from the log's size, and returns how many it numbered. Holds the tenant's head
    /// row until `tx` ends, so sequencers of one tenant take turns (other tenants and accesses
    /// never wait). On PostgreSQL this is `plenum.audit_sequence()`, the only thing that may
    /// number events (the runtime role itself cannot). [`AuditLog::checkpoint`] runs it first;
    /// run it more often to keep the unnumbered tail short.
    ///
    /// # Errors
    ///
    /// [`Error::AuditLog`].
    pub async fn sequence(tx: &mut TenantTx) -> Result<u64, Error> {
        if Dialect::of(tx) == Dialect::Postgres {
            // Only the sequencer (a function owned by the owner, acting within this
            // transaction's tenant) may number events or move the head.
            let rows = sql::fetch(
                Conn::of(tx)?,
                &format!(
                    "SELECT {}.audit_sequence()",
                    crate::contract::LIBRARY_SCHEMA
                ),
                &[],
                &[SqlType::BigInt],
            )
            .await
            .map_err(db)?;
            return match rows.first().map(Vec::as_slice) {
                Some([Value::BigInt(n)]) => to_u64(*n),
                _ => Err(unexpected_row()),
            };
        }
        let size = Self::lock_head(tx).await?;
        let d = Dialect::of(tx);
        let log = d.library("audit_log");
        // Rows this statement already numbered have seq >= size: counting them with the pending
        // ones keeps the numbering right whether or not SQLite shows a row the statement's own
        // earlier updates.
        let number = format!(
            "UPDATE {log} SET seq = ?2 + (SELECT count(*) FROM {log} p \
             WHERE p.tenant_id = ?1 AND (p.seq IS NULL OR p.seq >= ?2) \
             AND p.rowid < {log}.rowid) \
             WHERE tenant_id = ?1 AND seq IS NULL"
        );
        let tenant = tenant_bind(tx.tenant());
        let numbered = sql::execute(Conn::of(tx)?, &number, &[tenant.clone(), bigint(size)?])
            .await
            .map_err(db)?;
        if numbered > 0 {
            let grow = format!(
                "UPDATE {} SET size = size + {} WHERE tenant_id = {}",
                d.library("audit_heads"),
                d.p(2),
                d.p(1)
            );
            sql::execute(Conn::of(tx)?, &grow, &[tenant, bigint(numbered)?])
                .await
                .map_err(db)?;
        }
        Ok(numbered)
    }

    /// Numbers the pending events ([`AuditLog::sequence`]) and issues a signed checkpoint of
    /// the tenant's log, also when nothing was appended since the last one (a fresh time on
    /// the same root shows the logger is alive, so a silenced logger or a cut tail shows as a
    /// stale or contradicted checkpoint). Continues from the previous checkpoint's frontier,
    /// reading only the entries since.
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
        for leaf in Self::leaves(tx, frontier.size(), size).await? {
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
        let d = Dialect::of(tx);
        let insert = format!(
            "INSERT INTO {} (tenant_id, size, issued_at, note, frontier) VALUES ({})",
            d.library("audit_checkpoints"),
            d.params(5)
        );
        let binds = [
            tenant_bind(tenant),
            bigint(size)?,
            (SqlType::Timestamp, Value::Timestamp(issued_at)),
            (SqlType::Text, Value::Text(note)),
            (SqlType::Bytes, Value::Bytes(peaks)),
        ];
        sql::execute(Conn::of(tx)?, &insert, &binds)
            .await
            .map_err(db)?;
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
        let d = Dialect::of(tx);
        let heads = d.library("audit_heads");
        let tenant = [tenant_bind(tx.tenant())];
        // On PostgreSQL the sequencer, which every caller runs first, created the head and holds
        // its row lock until the transaction ends; SQLite has one writer, whose write lock
        // already orders sequencers.
        if d == Dialect::Sqlite {
            let create = format!(
                "INSERT INTO {heads} (tenant_id, size) VALUES ({}, 0) ON CONFLICT (tenant_id) DO NOTHING",
                d.p(1)
            );
            sql::execute(Conn::of(tx)?, &create, &tenant)
                .await
                .map_err(db)?;
        }
        let select = format!("SELECT size FROM {heads} WHERE tenant_id = {}", d.p(1));
        let rows = sql::fetch(Conn::of(tx)?, &select, &tenant, &[SqlType::BigInt])
            .await
            .map_err(db)?;
        match rows.first().map(Vec::as_slice) {
            Some([Value::BigInt(size)]) => to_u64(*size),
            _ => Err(unexpected_row()),
        }
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
        let d = Dialect::of(tx);
        let select = format!(
            "SELECT size, note, frontier FROM {} WHERE tenant_id = {} \
             ORDER BY size DESC, issued_at DESC LIMIT 16",
            d.library("audit_checkpoints"),
            d.p(1)
        );
        let rows = sql::fetch(
            Conn::of(tx)?,
            &select,
            &[tenant_bind(tenant)],
            &[SqlType::BigInt, SqlType::Text, SqlType::Bytes],
        )
        .await
        .map_err(db)?;
        let trusted = [signer.verifier()];
        for row in rows {
            let [Value::BigInt(size), Value::Text(note), Value::Bytes(bytes)] = row.as_slice()
            else {
                return Err(unexpected_row());
            };
            let stored = plenum_audit::checkpoint::open(note, &trusted)
                .ok()
                .filter(|c| c.tenant == tenant && i64::try_from(c.size).ok() == Some(*size))
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

    /// The leaf hashes of entries `from..to`, checked to be gapless.
    async fn leaves(tx: &mut TenantTx, from: u64, to: u64) -> Result<Vec<Hash>, Error> {
        let d = Dialect::of(tx);
        let select = format!(
            "SELECT seq, leaf_hash FROM {} WHERE tenant_id = {} AND seq >= {} AND seq < {} \
             ORDER BY seq",
            d.library("audit_log"),
            d.p(1),
            d.p(2),
            d.p(3)
        );
        let binds = [tenant_bind(tx.tenant()), bigint(from)?, bigint(to)?];
        let rows = sql::fetch(
            Conn::of(tx)?,
            &select,
            &binds,
            &[SqlType::BigInt, SqlType::Bytes],
        )
        .await
        .map_err(db)?;
        let mut out = Vec::with_capacity(rows.len());
        for (expected, row) in (from..).zip(rows) {
            match <[Value; 2]>::try_from(row) {
                Ok([Value::BigInt(seq), Value::Bytes(hash)]) if to_u64(seq)? == expected => {
                    out.push(hash_of(hash)?);
                }
                Ok([Value::BigInt(_), _]) => {
                    return Err(Error::Audit("the log has a gap below its head"));
                }
                _ => return Err(unexpected_row()),
            }
        }
        Ok(out)
    }

    /// The tenant's numbered log as the verifier reads it (run [`AuditLog::sequence`] first to
    /// include the latest events): entries in sequence order and signed checkpoints in issue
    /// order ([`plenum_audit::verify::verify_log`], `plenum audit verify`,
    /// `tests/audit_interop.py`).
    ///
    /// # Errors
    ///
    /// [`Error::AuditLog`].
    pub async fn export(tx: &mut TenantTx) -> Result<Export, Error> {
        let tenant = tx.tenant();
        let d = Dialect::of(tx);
        let binds = [tenant_bind(tenant)];
        let entries = format!(
            "SELECT seq, leaf_hash, body FROM {} WHERE tenant_id = {} AND seq IS NOT NULL \
             ORDER BY seq",
            d.library("audit_log"),
            d.p(1)
        );
        let rows = sql::fetch(
            Conn::of(tx)?,
            &entries,
            &binds,
            &[SqlType::BigInt, SqlType::Bytes, SqlType::Text],
        )
        .await
        .map_err(db)?;
        let entries = rows
            .into_iter()
            .map(|row| match <[Value; 3]>::try_from(row) {
                Ok([Value::BigInt(seq), Value::Bytes(hash), body]) => Ok(Entry {
                    seq: to_u64(seq)?,
                    leaf_hash: hash.iter().map(|b| format!("{b:02x}")).collect(),
                    body: match body {
                        Value::Text(body) => Some(body),
                        _ => None,
                    },
                }),
                _ => Err(unexpected_row()),
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let notes = format!(
            "SELECT note FROM {} WHERE tenant_id = {} ORDER BY size, issued_at",
            d.library("audit_checkpoints"),
            d.p(1)
        );
        let checkpoints = sql::fetch(Conn::of(tx)?, &notes, &binds, &[SqlType::Text])
            .await
            .map_err(db)?
            .into_iter()
            .map(|row| match <[Value; 1]>::try_from(row) {
                Ok([Value::Text(note)]) => Ok(note),
                _ => Err(unexpected_row()),
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Export {
            format: EXPORT_FORMAT.to_owned(),
            tenant,
            entries,
            checkpoints,
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
        let d = Dialect::of(tx);
        let update = format!(
            "UPDATE {} SET body = NULL WHERE tenant_id = {} AND recorded_at < {} \
             AND body IS NOT NULL",
            d.library("audit_log"),
            d.p(1),
            d.p(2)
        );
        let binds = [tenant_bind(tx.tenant()), recorded_before(d, before)];
        sql::execute(Conn::of(tx)?, &update, &binds)
            .await
            .map_err(db)
    }

    /// How many bodies [`AuditLog::expire_bodies`] with `before` would drop.
    pub(crate) async fn bodies_before(
        tx: &mut TenantTx,
        before: DateTime<Utc>,
    ) -> Result<u64, Error> {
        let d = Dialect::of(tx);
        let statement = format!(
            "SELECT count(*) FROM {} WHERE tenant_id = {} AND recorded_at < {} \
             AND body IS NOT NULL",
            d.library("audit_log"),
            d.p(1),
            d.p(2)
        );
        let binds = [tenant_bind(tx.tenant()), recorded_before(d, before)];
        let rows = sql::fetch(Conn::of(tx)?, &statement, &binds, &[SqlType::BigInt])
            .await
            .map_err(db)?;
        match rows.first().and_then(|r| r.first()) {
            Some(Value::BigInt(n)) => Ok(u64::try_from(*n).unwrap_or(0)),
            _ => Err(Error::Config("unreadable count")),
        }
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
        subject: SubjectId,
    ) -> Result<Vec<(Option<u64>, String)>, Error> {
        let tenant = tx.tenant();
        let refs = match keyring.subject_pseudonym_candidates(tenant, subject).await {
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
        let d = Dialect::of(tx);
        // Log order: numbered events by number, then the pending ones as recorded. (`entry`,
        // the append counter, is shared by all tenants and hidden from the runtime role.)
        let order = match d {
            Dialect::Postgres => "seq NULLS LAST, recorded_at, event_id",
            Dialect::Sqlite => "rowid",
        };
        let select = format!(
            "SELECT seq, body FROM {} WHERE tenant_id = {} AND body IS NOT NULL ORDER BY {order}",
            d.library("audit_log"),
            d.p(1)
        );
        let rows = sql::fetch(
            Conn::of(tx)?,
            &select,
            &[tenant_bind(tenant)],
            &[SqlType::BigInt, SqlType::Text],
        )
        .await
        .map_err(db)?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, body) = match <[Value; 2]>::try_from(row) {
                Ok([Value::BigInt(seq), Value::Text(body)]) => (Some(seq), body),
                Ok([Value::Null, Value::Text(body)]) => (None, body),
                _ => return Err(unexpected_row()),
            };
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

/// `before` bound against `recorded_at`: SQLite compares text, so it takes the same spelling as
/// the column's default.
fn recorded_before(d: Dialect, before: DateTime<Utc>) -> (SqlType, Value) {
    match d {
        Dialect::Postgres => (SqlType::Timestamp, Value::Timestamp(before)),
        Dialect::Sqlite => (
            SqlType::Text,
            Value::Text(before.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
        ),
    }
}
