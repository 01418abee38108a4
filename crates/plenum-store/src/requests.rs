//! Data-subject requests in the database: a request's receipt (`subject_requests`) and its
//! append-only steps (`subject_request_steps`), under the tenant boundary. The state is never
//! stored: loading a request replays its steps through the state machine of
//! [`plenum_consent::SubjectRequest`], so a history the machine would not allow does not load.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use plenum_consent::{RequestChannel, Requester, Right, Step, SubjectRequest};
use plenum_core::{ActorId, RecordId, SubjectId, TenantId};

use crate::error::Error;
use crate::record::Value;
use crate::sql::{self, Conn, Dialect};
use crate::table::SqlType;
use crate::tx::TenantTx;

const REQUEST_COLUMNS: &str =
    "tenant_id, id, subject_id, kind, requester, evidence_ref, channel, received_at";
const REQUEST_TYPES: [SqlType; 8] = [
    SqlType::Uuid,
    SqlType::Uuid,
    SqlType::Uuid,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Text,
    SqlType::Timestamp,
];
const STEP_COLUMNS: &str = "tenant_id, request_id, seq, step, detail, actor_id, at";
const STEP_TYPES: [SqlType; 7] = [
    SqlType::Uuid,
    SqlType::Uuid,
    SqlType::Int,
    SqlType::Text,
    SqlType::Text,
    SqlType::Uuid,
    SqlType::Timestamp,
];

fn db(e: sqlx::Error) -> Error {
    Error::from_sqlx(e, "subject_requests")
}

fn unreadable() -> Error {
    Error::Config("unreadable subject request")
}

fn text(v: Option<&str>) -> (SqlType, Value) {
    (
        SqlType::Text,
        v.map_or(Value::Null, |t| Value::Text(t.to_owned())),
    )
}

fn optional_text(v: Value) -> Result<Option<String>, Error> {
    match v {
        Value::Text(t) => Ok(Some(t)),
        Value::Null => Ok(None),
        _ => Err(unreadable()),
    }
}

/// A request row as a received request of `tenant` (the row's tenant checked), with its id.
fn decode_request(tenant: TenantId, row: Vec<Value>) -> Result<(RecordId, SubjectRequest), Error> {
    let Ok::<[Value; 8], _>(
        [
            Value::Uuid(t),
            Value::Uuid(id),
            Value::Uuid(subject),
            Value::Text(kind),
            Value::Text(requester),
            evidence,
            Value::Text(channel),
            Value::Timestamp(received_at),
        ],
    ) = row.try_into()
    else {
        return Err(unreadable());
    };
    crate::tx::check_tenant(tenant, t, "plenum.subject_requests")?;
    let bad = |_| unreadable();
    let request = SubjectRequest::received(
        tenant,
        SubjectId::from_trusted_uuid(subject),
        Right::from_key(&kind).map_err(bad)?,
        Requester::from_parts(&requester, optional_text(evidence)?.as_deref()).map_err(bad)?,
        RequestChannel::from_key(&channel).map_err(bad)?,
        received_at,
    );
    Ok((RecordId::from_trusted_uuid(id), request))
}

/// A step row: the request it belongs to, its position, the step, who and when.
type StepRow = (RecordId, i64, Step, ActorId, DateTime<Utc>);

fn decode_step(tenant: TenantId, row: Vec<Value>) -> Result<StepRow, Error> {
    let Ok::<[Value; 7], _>(
        [
            Value::Uuid(t),
            Value::Uuid(request),
            Value::BigInt(seq),
            Value::Text(step),
            detail,
            Value::Uuid(actor),
            Value::Timestamp(at),
        ],
    ) = row.try_into()
    else {
        return Err(unreadable());
    };
    crate::tx::check_tenant(tenant, t, "plenum.subject_request_steps")?;
    let step =
        Step::from_parts(&step, optional_text(detail)?.as_deref()).map_err(|_| unreadable())?;
    Ok((
        RecordId::from_trusted_uuid(request),
        seq,
        step,
        ActorId::from_trusted_uuid(actor),
        at,
    ))
}

/// Storage of requests; reached through [`Records`](crate::Records), which screens and audits.
pub(crate) struct RequestStore;

impl RequestStore {
    /// Inserts a received request (no steps yet) and returns its id.
    pub(crate) async fn insert(
        tx: &mut TenantTx,
        request: &SubjectRequest,
    ) -> Result<RecordId, Error> {
        let id = RecordId::generate();
        let binds = [
            (SqlType::Uuid, Value::Uuid(*tx.tenant().as_uuid())),
            (SqlType::Uuid, Value::Uuid(*id.as_uuid())),
            (SqlType::Uuid, Value::Uuid(*request.subject().as_uuid())),
            text(Some(request.kind().key())),
            text(Some(request.requester().key())),
            text(request.requester().evidence_ref()),
            text(Some(request.channel().key())),
            (SqlType::Timestamp, Value::Timestamp(request.received_at())),
        ];
        let d = Dialect::of(tx);
        let statement = format!(
            "INSERT INTO {} ({REQUEST_COLUMNS}) VALUES ({})",
            d.library("subject_requests"),
            d.params(binds.len())
        );
        sql::execute(Conn::of(tx)?, &statement, &binds)
            .await
            .map_err(db)?;
        Ok(id)
    }

    /// Appends step number `seq` (0-based; the primary key refuses a second writer of the same
    /// position, so two concurrent acts on one request cannot both land).
    pub(crate) async fn append(
        tx: &mut TenantTx,
        id: RecordId,
        seq: usize,
        step: &Step,
        actor: ActorId,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let seq = i64::try_from(seq).map_err(|_| Error::Config("too many steps"))?;
        let binds = [
            (SqlType::Uuid, Value::Uuid(*tx.tenant().as_uuid())),
            (SqlType::Uuid, Value::Uuid(*id.as_uuid())),
            (SqlType::BigInt, Value::BigInt(seq)),
            text(Some(step.key())),
            text(step.detail()),
            (SqlType::Uuid, Value::Uuid(*actor.as_uuid())),
            (SqlType::Timestamp, Value::Timestamp(at)),
        ];
        let d = Dialect::of(tx);
        let statement = format!(
            "INSERT INTO {} ({STEP_COLUMNS}) VALUES ({})",
            d.library("subject_request_steps"),
            d.params(binds.len())
        );
        sql::execute(Conn::of(tx)?, &statement, &binds)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Deletes request `id` with its steps (the cascade). The database refuses unless its answer
    /// was recorded more than 24 months ago (migration 13; SQLite triggers).
    pub(crate) async fn delete(tx: &mut TenantTx, id: RecordId) -> Result<u64, Error> {
        let d = Dialect::of(tx);
        let statement = format!(
            "DELETE FROM {} WHERE tenant_id = {} AND id = {}",
            d.library("subject_requests"),
            d.p(1),
            d.p(2)
        );
        let binds = [
            (SqlType::Uuid, Value::Uuid(*tx.tenant().as_uuid())),
            (SqlType::Uuid, Value::Uuid(*id.as_uuid())),
        ];
        sql::execute(Conn::of(tx)?, &statement, &binds)
            .await
            .map_err(db)
    }

    /// One request, replayed; `None` if this tenant has no such request.
    pub(crate) async fn load(
        tx: &mut TenantTx,
        id: RecordId,
    ) -> Result<Option<SubjectRequest>, Error> {
        let mut all = Self::load_where(tx, Some(id)).await?;
        Ok(all.pop().map(|(_, r)| r))
    }

    /// Every request of this tenant, replayed, oldest first.
    pub(crate) async fn load_all(
        tx: &mut TenantTx,
    ) -> Result<Vec<(RecordId, SubjectRequest)>, Error> {
        Self::load_where(tx, None).await
    }

    async fn load_where(
        tx: &mut TenantTx,
        id: Option<RecordId>,
    ) -> Result<Vec<(RecordId, SubjectRequest)>, Error> {
        let tenant = tx.tenant();
        let d = Dialect::of(tx);
        let mut binds = vec![(SqlType::Uuid, Value::Uuid(*tenant.as_uuid()))];
        if let Some(id) = id {
            binds.push((SqlType::Uuid, Value::Uuid(*id.as_uuid())));
        }
        let (one, one_step) = match id {
            Some(_) => (
                format!(" AND id = {}", d.p(2)),
                format!(" AND request_id = {}", d.p(2)),
            ),
            None => (String::new(), String::new()),
        };
        let requests = format!(
            "SELECT {REQUEST_COLUMNS} FROM {} WHERE tenant_id = {}{one} ORDER BY received_at, id",
            d.library("subject_requests"),
            d.p(1)
        );
        let steps = format!(
            "SELECT {STEP_COLUMNS} FROM {} WHERE tenant_id = {}{one_step} ORDER BY request_id, seq",
            d.library("subject_request_steps"),
            d.p(1)
        );
        let rows = sql::fetch(Conn::of(tx)?, &requests, &binds, &REQUEST_TYPES)
            .await
            .map_err(db)?;
        let step_rows = sql::fetch(Conn::of(tx)?, &steps, &binds, &STEP_TYPES)
            .await
            .map_err(db)?;
        let mut by_request: HashMap<RecordId, Vec<StepRow>> = HashMap::new();
        for row in step_rows {
            let step = decode_step(tenant, row)?;
            by_request.entry(step.0).or_default().push(step);
        }
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let (id, mut request) = decode_request(tenant, row)?;
            for (i, (_, seq, step, actor, at)) in by_request
                .remove(&id)
                .unwrap_or_default()
                .into_iter()
                .enumerate()
            {
                if usize::try_from(seq).ok() != Some(i) {
                    return Err(Error::Config(
                        "a subject request's steps are not contiguous",
                    ));
                }
                request.apply(step, actor, at).map_err(|_| {
                    Error::Config("a subject request's stored history is not a valid one")
                })?;
            }
            out.push((id, request));
        }
        Ok(out)
    }
}
