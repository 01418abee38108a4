//! The consent ledger in the database: append-only events under the tenant boundary, and the
//! subject states derived from them, read inside the caller's transaction so that a withdrawal
//! committed before it counts.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use plenum_consent::{Channel, ConsentEvent, EventKind, Evidence, Method, Purpose, SubjectStatus};
use plenum_core::{ActorId, RecordId, SubjectId, TenantId};
use uuid::Uuid;

use crate::error::Error;
use crate::tx::{BackendKind, TenantTx};

/// The consent ledger: `plenum.consent_events` on PostgreSQL (row-level security; the runtime
/// role may only read and append), `plenum_consent_events` on SQLite (triggers refuse updates
/// and deletes).
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsentLedger;

type Row = (
    Uuid,
    Uuid,
    String,
    Option<String>,
    i32,
    Option<String>,
    bool,
    Option<DateTime<Utc>>,
    String,
    Vec<u8>,
    String,
    Uuid,
    DateTime<Utc>,
);

const COLUMNS: &str = "tenant_id, subject_id, kind, purpose, purpose_version, channel, explicit, \
                       expires_at, notice_version, notice_sha256, method, actor_id, at";

fn decode(tenant: TenantId, row: Row) -> Result<ConsentEvent, Error> {
    let (
        t,
        subject,
        kind,
        purpose,
        version,
        channel,
        explicit,
        expires_at,
        notice,
        sha,
        method,
        actor,
        at,
    ) = row;
    crate::tx::check_tenant(tenant, t, "plenum.consent_events")?;
    let bad = |_| Error::Config("unreadable consent event");
    let notice_sha256: [u8; 32] = sha
        .try_into()
        .map_err(|_| Error::Config("consent notice hash is not 32 bytes"))?;
    Ok(ConsentEvent {
        subject: SubjectId::from_trusted_uuid(subject),
        kind: EventKind::from_key(&kind).map_err(bad)?,
        purpose: purpose
            .map(|p| Purpose::from_key(&p))
            .transpose()
            .map_err(bad)?,
        purpose_version: u16::try_from(version)
            .map_err(|_| Error::Config("purpose version out of range"))?,
        channel: channel
            .map(|c| Channel::from_key(&c))
            .transpose()
            .map_err(bad)?,
        explicit,
        expires_at,
        evidence: Evidence {
            notice_version: notice,
            notice_sha256,
            method: Method::from_key(&method).map_err(bad)?,
            actor: ActorId::from_trusted_uuid(actor),
            at,
        },
    })
}

impl ConsentLedger {
    /// Appends `event` in `tx`. It counts for every decision made after `tx` commits (and for
    /// later decisions inside `tx`). Services record consent through
    /// [`Records::record_consent`](crate::Records::record_consent), which audits it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRecord`] for an event that names no purpose where it must; database
    /// failures.
    pub(crate) async fn record(tx: &mut TenantTx, event: &ConsentEvent) -> Result<RecordId, Error> {
        if event.kind.has_purpose() != event.purpose.is_some() {
            return Err(Error::InvalidRecord {
                record_type: "consent_events".to_owned(),
                reason: "purpose events need a purpose, restriction events take none",
            });
        }
        let id = RecordId::generate();
        let tenant = tx.tenant();
        let purpose = event.purpose.map(Purpose::key);
        let channel = event.channel.map(Channel::key);
        let version = i32::from(event.purpose_version);
        let e = &event.evidence;
        macro_rules! bind_all {
            ($q:expr) => {
                $q.bind(tenant.as_uuid())
                    .bind(id.as_uuid())
                    .bind(event.subject.as_uuid())
                    .bind(event.kind.key())
                    .bind(purpose)
                    .bind(version)
                    .bind(channel)
                    .bind(event.explicit)
                    .bind(event.expires_at)
                    .bind(e.notice_version.as_str())
                    .bind(e.notice_sha256.to_vec())
                    .bind(e.method.key())
                    .bind(e.actor.as_uuid())
                    .bind(e.at)
            };
        }
        match tx.backend() {
            #[cfg(feature = "postgres")]
            BackendKind::Postgres => {
                bind_all!(sqlx::query(
                    "INSERT INTO plenum.consent_events (tenant_id, id, subject_id, kind, purpose, \
                     purpose_version, channel, explicit, expires_at, notice_version, \
                     notice_sha256, method, actor_id, at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
                ))
                .execute(tx.postgres_internal()?)
                .await
                .map_err(|e| Error::from_sqlx(e, "consent_events"))?;
            }
            #[cfg(feature = "sqlite")]
            BackendKind::Sqlite => {
                bind_all!(sqlx::query(
                    "INSERT INTO plenum_consent_events (tenant_id, id, subject_id, kind, purpose, \
                     purpose_version, channel, explicit, expires_at, notice_version, \
                     notice_sha256, method, actor_id, at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
                ))
                .execute(tx.sqlite_internal()?)
                .await
                .map_err(|e| Error::from_sqlx(e, "consent_events"))?;
            }
            #[allow(
                unreachable_patterns,
                reason = "BackendKind is non_exhaustive across feature sets"
            )]
            _ => return Err(Error::Config("backend not compiled in")),
        }
        Ok(id)
    }

    /// Every event of `subject`, oldest first.
    ///
    /// # Errors
    ///
    /// Database failures; [`Error::IsolationViolation`] if a row of another tenant came back.
    pub async fn events(tx: &mut TenantTx, subject: SubjectId) -> Result<Vec<ConsentEvent>, Error> {
        let mut all = Self::events_of(tx, &[subject]).await?;
        Ok(all.remove(&subject).unwrap_or_default())
    }

    /// The derived state of `subject`.
    ///
    /// # Errors
    ///
    /// As [`ConsentLedger::events`].
    pub async fn status(tx: &mut TenantTx, subject: SubjectId) -> Result<SubjectStatus, Error> {
        Ok(SubjectStatus::from_events(
            &Self::events(tx, subject).await?,
        ))
    }

    /// The derived states of many subjects, in one query on PostgreSQL. Subjects without events
    /// get the empty state (no consent, no objection, not restricted).
    ///
    /// # Errors
    ///
    /// As [`ConsentLedger::events`].
    pub async fn statuses(
        tx: &mut TenantTx,
        subjects: &[SubjectId],
    ) -> Result<HashMap<SubjectId, SubjectStatus>, Error> {
        let events = Self::events_of(tx, subjects).await?;
        Ok(subjects
            .iter()
            .map(|s| {
                let status = events
                    .get(s)
                    .map(SubjectStatus::from_events)
                    .unwrap_or_default();
                (*s, status)
            })
            .collect())
    }

    async fn events_of(
        tx: &mut TenantTx,
        subjects: &[SubjectId],
    ) -> Result<HashMap<SubjectId, Vec<ConsentEvent>>, Error> {
        let tenant = tx.tenant();
        let rows: Vec<Row> = match tx.backend() {
            #[cfg(feature = "postgres")]
            BackendKind::Postgres => {
                let ids: Vec<Uuid> = subjects.iter().map(|s| *s.as_uuid()).collect();
                // Per-subject index probes (see the key store for why not `= ANY($2)`).
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT e.* FROM unnest($2::uuid[]) AS s(id) \
                     CROSS JOIN LATERAL (SELECT {COLUMNS} FROM plenum.consent_events \
                         WHERE tenant_id = $1 AND subject_id = s.id ORDER BY at, recorded_at OFFSET 0) AS e"
                )))
                .bind(tenant.as_uuid())
                .bind(&ids)
                .fetch_all(tx.postgres_internal()?)
                .await
                .map_err(|e| Error::from_sqlx(e, "consent_events"))?
            }
            #[cfg(feature = "sqlite")]
            BackendKind::Sqlite => {
                let mut rows = Vec::new();
                for s in subjects {
                    let mut some: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM plenum_consent_events \
                         WHERE tenant_id = ?1 AND subject_id = ?2 ORDER BY at, recorded_at"
                    )))
                    .bind(tenant.as_uuid())
                    .bind(s.as_uuid())
                    .fetch_all(tx.sqlite_internal()?)
                    .await
                    .map_err(|e| Error::from_sqlx(e, "consent_events"))?;
                    rows.append(&mut some);
                }
                rows
            }
            #[allow(
                unreachable_patterns,
                reason = "BackendKind is non_exhaustive across feature sets"
            )]
            _ => return Err(Error::Config("backend not compiled in")),
        };
        let mut out: HashMap<SubjectId, Vec<ConsentEvent>> = HashMap::new();
        for row in rows {
            let event = decode(tenant, row)?;
            out.entry(event.subject).or_default().push(event);
        }
        Ok(out)
    }
}
