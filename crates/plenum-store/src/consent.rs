//! The consent ledger in the database: append-only events under the tenant boundary, and the
//! subject states derived from them, read inside the caller's transaction so that a withdrawal
//! committed before it counts.

use std::collections::HashMap;

use crate::error::Error;
use crate::record::Value;
use crate::sql::{self, Conn, Dialect};
use crate::table::SqlType;
use crate::tx::TenantTx;
use plenum_consent::{Channel, ConsentEvent, EventKind, Evidence, Method, Purpose, SubjectStatus};
use plenum_core::{ActorId, RecordId, SubjectId, TenantId};

/// The consent ledger: `plenum.consent_events` on PostgreSQL (row-level security; the runtime
/// role may only read and append), `plenum_consent_events` on SQLite (triggers refuse updates
/// and deletes).
#[derive(Debug, Clone, Copy, Default)]
pub struct ConsentLedger;

const COLUMNS: &str = "tenant_id, subject_id, kind, purpose, purpose_version, channel, explicit, \
                       expires_at, notice_version, notice_sha256, method, actor_id, at";
const TYPES: [SqlType; 13] = [
    SqlType::Uuid,
    SqlType::Uuid,
    SqlType::Text,
    SqlType::Text,
    SqlType::Int,
    SqlType::Text,
    SqlType::Bool,
    SqlType::Timestamp,
    SqlType::Text,
    SqlType::Bytes,
    SqlType::Text,
    SqlType::Uuid,
    SqlType::Timestamp,
];

fn db(e: sqlx::Error) -> Error {
    Error::from_sqlx(e, "consent_events")
}

fn text(v: Option<&str>) -> (SqlType, Value) {
    (
        SqlType::Text,
        v.map_or(Value::Null, |t| Value::Text(t.to_owned())),
    )
}

/// A ledger row ([`COLUMNS`]) as an event of `tenant`, the row's tenant checked.
fn decode(tenant: TenantId, row: Vec<Value>) -> Result<ConsentEvent, Error> {
    let unreadable = || Error::Config("unreadable consent event");
    let Ok::<[Value; 13], _>(
        [
            Value::Uuid(t),
            Value::Uuid(subject),
            Value::Text(kind),
            purpose,
            Value::BigInt(version),
            channel,
            Value::Bool(explicit),
            expires_at,
            Value::Text(notice),
            Value::Bytes(sha),
            Value::Text(method),
            Value::Uuid(actor),
            Value::Timestamp(at),
        ],
    ) = row.try_into()
    else {
        return Err(unreadable());
    };
    crate::tx::check_tenant(tenant, t, "plenum.consent_events")?;
    let optional_text = |v: Value| match v {
        Value::Text(t) => Ok(Some(t)),
        Value::Null => Ok(None),
        _ => Err(unreadable()),
    };
    let bad = |_| unreadable();
    let notice_sha256: [u8; 32] = sha
        .try_into()
        .map_err(|_| Error::Config("consent notice hash is not 32 bytes"))?;
    Ok(ConsentEvent {
        subject: SubjectId::from_trusted_uuid(subject),
        kind: EventKind::from_key(&kind).map_err(bad)?,
        purpose: optional_text(purpose)?
            .map(|p| Purpose::from_key(&p))
            .transpose()
            .map_err(bad)?,
        purpose_version: u16::try_from(version)
            .map_err(|_| Error::Config("purpose version out of range"))?,
        channel: optional_text(channel)?
            .map(|c| Channel::from_key(&c))
            .transpose()
            .map_err(bad)?,
        explicit,
        expires_at: match expires_at {
            Value::Timestamp(t) => Some(t),
            Value::Null => None,
            _ => return Err(unreadable()),
        },
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
        let e = &event.evidence;
        let binds = [
            (SqlType::Uuid, Value::Uuid(*tx.tenant().as_uuid())),
            (SqlType::Uuid, Value::Uuid(*id.as_uuid())),
            (SqlType::Uuid, Value::Uuid(*event.subject.as_uuid())),
            text(Some(event.kind.key())),
            text(event.purpose.map(Purpose::key)),
            (
                SqlType::BigInt,
                Value::BigInt(i64::from(event.purpose_version)),
            ),
            text(event.channel.map(Channel::key)),
            (SqlType::Bool, Value::Bool(event.explicit)),
            (
                SqlType::Timestamp,
                event.expires_at.map_or(Value::Null, Value::Timestamp),
            ),
            text(Some(&e.notice_version)),
            (SqlType::Bytes, Value::Bytes(e.notice_sha256.to_vec())),
            text(Some(e.method.key())),
            (SqlType::Uuid, Value::Uuid(*e.actor.as_uuid())),
            (SqlType::Timestamp, Value::Timestamp(e.at)),
        ];
        let d = Dialect::of(tx);
        let statement = format!(
            "INSERT INTO {} (tenant_id, id, subject_id, kind, purpose, purpose_version, channel, \
             explicit, expires_at, notice_version, notice_sha256, method, actor_id, at) \
             VALUES ({})",
            d.library("consent_events"),
            d.params(binds.len())
        );
        sql::execute(Conn::of(tx)?, &statement, &binds)
            .await
            .map_err(db)?;
        Ok(id)
    }

    /// Every event of `subject`, in the order they were recorded.
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

    pub(crate) async fn events_of(
        tx: &mut TenantTx,
        subjects: &[SubjectId],
    ) -> Result<HashMap<SubjectId, Vec<ConsentEvent>>, Error> {
        let tenant = tx.tenant();
        // Recording order, the database's clock, never the evidence's: the subject's latest
        // act wins, however its evidence is dated. On PostgreSQL `recorded_at` is
        // `clock_timestamp()` (distinct within a transaction) and the runtime role cannot write
        // it (migration 8); on SQLite the rowid breaks ties within a millisecond.
        let order = match Dialect::of(tx) {
            Dialect::Postgres => "recorded_at, id",
            Dialect::Sqlite => "recorded_at, rowid",
        };
        let rows = sql::fetch_per_subject(
            tx,
            "consent_events",
            COLUMNS,
            "",
            order,
            subjects,
            &TYPES,
            "consent_events",
        )
        .await?;
        let mut out: HashMap<SubjectId, Vec<ConsentEvent>> = HashMap::new();
        for row in rows {
            let event = decode(tenant, row)?;
            out.entry(event.subject).or_default().push(event);
        }
        Ok(out)
    }
}
