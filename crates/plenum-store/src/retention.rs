//! Retention trigger events in the database (`retention_events`, append-only under the tenant
//! boundary): the events a period counts from that only the service knows (an account closed,
//! the tenant's contract terminated), recorded through a typed API and read back by the plan.

use chrono::{DateTime, Utc};
use plenum_consent::Trigger;
use plenum_core::{ActorId, RecordId, SubjectId, TenantId};

use crate::error::Error;
use crate::record::Value;
use crate::sql::{self, Conn, Dialect};
use crate::table::SqlType;
use crate::tx::TenantTx;

/// A recorded trigger event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetentionEvent {
    /// Its id.
    pub id: RecordId,
    /// What happened.
    pub trigger: Trigger,
    /// Whose account, for `AccountClosed`.
    pub subject: Option<SubjectId>,
    /// When it happened (the period counts from here).
    pub at: DateTime<Utc>,
    /// Who recorded it.
    pub recorded_by: ActorId,
}

fn db(e: sqlx::Error) -> Error {
    Error::from_sqlx(e, "retention_events")
}

fn trigger_of(key: &str) -> Result<Trigger, Error> {
    match key {
        "account_closed" => Ok(Trigger::AccountClosed),
        "contract_terminated" => Ok(Trigger::ContractTerminated),
        _ => Err(Error::Config("unreadable retention event")),
    }
}

pub(crate) struct RetentionEvents;

impl RetentionEvents {
    pub(crate) async fn insert(
        tx: &mut TenantTx,
        trigger: Trigger,
        subject: Option<SubjectId>,
        at: DateTime<Utc>,
        actor: ActorId,
    ) -> Result<RecordId, Error> {
        let id = RecordId::generate();
        let binds = [
            (SqlType::Uuid, Value::Uuid(*tx.tenant().as_uuid())),
            (SqlType::Uuid, Value::Uuid(*id.as_uuid())),
            (SqlType::Text, Value::Text(trigger.key().to_owned())),
            (
                SqlType::Uuid,
                subject.map_or(Value::Null, |s| Value::Uuid(*s.as_uuid())),
            ),
            (SqlType::Timestamp, Value::Timestamp(at)),
            (SqlType::Uuid, Value::Uuid(*actor.as_uuid())),
        ];
        let d = Dialect::of(tx);
        let statement = format!(
            "INSERT INTO {} (tenant_id, id, trigger, subject_id, at, recorded_by) VALUES ({})",
            d.library("retention_events"),
            d.params(binds.len())
        );
        sql::execute(Conn::of(tx)?, &statement, &binds)
            .await
            .map_err(db)?;
        Ok(id)
    }

    pub(crate) async fn all(tx: &mut TenantTx) -> Result<Vec<RetentionEvent>, Error> {
        let tenant: TenantId = tx.tenant();
        let d = Dialect::of(tx);
        let statement = format!(
            "SELECT tenant_id, id, trigger, subject_id, at, recorded_by FROM {} \
             WHERE tenant_id = {} ORDER BY at, id",
            d.library("retention_events"),
            d.p(1)
        );
        let rows = sql::fetch(
            Conn::of(tx)?,
            &statement,
            &[(SqlType::Uuid, Value::Uuid(*tenant.as_uuid()))],
            &[
                SqlType::Uuid,
                SqlType::Uuid,
                SqlType::Text,
                SqlType::Uuid,
                SqlType::Timestamp,
                SqlType::Uuid,
            ],
        )
        .await
        .map_err(db)?;
        rows.into_iter()
            .map(|row| {
                let Ok::<[Value; 6], _>(
                    [
                        Value::Uuid(t),
                        Value::Uuid(id),
                        Value::Text(trigger),
                        subject,
                        Value::Timestamp(at),
                        Value::Uuid(by),
                    ],
                ) = row.try_into()
                else {
                    return Err(Error::Config("unreadable retention event"));
                };
                crate::tx::check_tenant(tenant, t, "plenum.retention_events")?;
                Ok(RetentionEvent {
                    id: RecordId::from_trusted_uuid(id),
                    trigger: trigger_of(&trigger)?,
                    subject: match subject {
                        Value::Uuid(s) => Some(SubjectId::from_trusted_uuid(s)),
                        _ => None,
                    },
                    at,
                    recorded_by: ActorId::from_trusted_uuid(by),
                })
            })
            .collect()
    }
}
