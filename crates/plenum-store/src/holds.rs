//! Legal holds in the database: placed (`legal_holds`) and lifted (`legal_hold_lifts`), both
//! append-only under the tenant boundary, so the record of who held what, why and until when
//! cannot be rewritten. What a hold covers is `plenum_consent::LegalHold::covers`.

use chrono::{DateTime, Utc};
use plenum_consent::{HoldScope, LegalHold};
use plenum_core::{ActorId, RecordId, RecordType, SubjectId, TenantId};

use crate::error::Error;
use crate::record::Value;
use crate::sql::{self, Conn, Dialect};
use crate::table::SqlType;
use crate::tx::TenantTx;

const COLUMNS: &str = "h.tenant_id, h.id, h.scope, h.subject_id, h.record_type, h.record_id, h.matter, \
     h.placed_by, h.placed_at, l.lifted_at";
const TYPES: [SqlType; 10] = [
    SqlType::Uuid,
    SqlType::Uuid,
    SqlType::Text,
    SqlType::Uuid,
    SqlType::Text,
    SqlType::Uuid,
    SqlType::Text,
    SqlType::Uuid,
    SqlType::Timestamp,
    SqlType::Timestamp,
];

fn db(e: sqlx::Error) -> Error {
    Error::from_sqlx(e, "legal_holds")
}

fn unreadable() -> Error {
    Error::Config("unreadable legal hold")
}

fn uuid_or_null(v: Option<uuid::Uuid>) -> (SqlType, Value) {
    (SqlType::Uuid, v.map_or(Value::Null, Value::Uuid))
}

fn decode(tenant: TenantId, row: Vec<Value>) -> Result<(RecordId, LegalHold), Error> {
    let Ok::<[Value; 10], _>(
        [
            Value::Uuid(t),
            Value::Uuid(id),
            Value::Text(scope),
            subject,
            record_type,
            record,
            Value::Text(matter),
            Value::Uuid(placed_by),
            Value::Timestamp(placed_at),
            lifted_at,
        ],
    ) = row.try_into()
    else {
        return Err(unreadable());
    };
    crate::tx::check_tenant(tenant, t, "plenum.legal_holds")?;
    let record_type = || match &record_type {
        Value::Text(t) => RecordType::new(t.clone()).map_err(|_| unreadable()),
        _ => Err(unreadable()),
    };
    let scope = match (scope.as_str(), subject, &record) {
        ("tenant", _, _) => HoldScope::Tenant,
        ("subject", Value::Uuid(s), _) => HoldScope::Subject(SubjectId::from_trusted_uuid(s)),
        ("record_type", _, _) => HoldScope::RecordType(record_type()?),
        ("record", _, Value::Uuid(r)) => {
            HoldScope::Record(record_type()?, RecordId::from_trusted_uuid(*r))
        }
        _ => return Err(unreadable()),
    };
    Ok((
        RecordId::from_trusted_uuid(id),
        LegalHold {
            tenant,
            scope,
            matter,
            placed_by: ActorId::from_trusted_uuid(placed_by),
            placed_at,
            lifted_at: match lifted_at {
                Value::Timestamp(l) => Some(l),
                Value::Null => None,
                _ => return Err(unreadable()),
            },
        },
    ))
}

/// Storage of legal holds; reached through [`Records`](crate::Records), which screens and
/// audits.
pub(crate) struct HoldStore;

impl HoldStore {
    /// Records a placed hold and returns its id.
    pub(crate) async fn insert(tx: &mut TenantTx, hold: &LegalHold) -> Result<RecordId, Error> {
        let id = RecordId::generate();
        let (scope, subject, record_type, record) = match &hold.scope {
            HoldScope::Tenant => ("tenant", None, None, None),
            HoldScope::Subject(s) => ("subject", Some(*s.as_uuid()), None, None),
            HoldScope::RecordType(t) => ("record_type", None, Some(t.as_str()), None),
            HoldScope::Record(t, r) => ("record", None, Some(t.as_str()), Some(*r.as_uuid())),
            _ => {
                return Err(Error::Config(
                    "a legal hold scope this version cannot store",
                ));
            }
        };
        let binds = [
            (SqlType::Uuid, Value::Uuid(*tx.tenant().as_uuid())),
            (SqlType::Uuid, Value::Uuid(*id.as_uuid())),
            (SqlType::Text, Value::Text(scope.to_owned())),
            uuid_or_null(subject),
            (
                SqlType::Text,
                record_type.map_or(Value::Null, |t| Value::Text(t.to_owned())),
            ),
            uuid_or_null(record),
            (SqlType::Text, Value::Text(hold.matter.clone())),
            (SqlType::Uuid, Value::Uuid(*hold.placed_by.as_uuid())),
            (SqlType::Timestamp, Value::Timestamp(hold.placed_at)),
        ];
        let d = Dialect::of(tx);
        let statement = format!(
            "INSERT INTO {} (tenant_id, id, scope, subject_id, record_type, record_id, matter, \
             placed_by, placed_at) VALUES ({})",
            d.library("legal_holds"),
            d.params(binds.len())
        );
        sql::execute(Conn::of(tx)?, &statement, &binds)
            .await
            .map_err(db)?;
        Ok(id)
    }

    /// Records that hold `id` was lifted at `at` by `actor`; a hold is lifted once (the
    /// primary key refuses a second lift).
    pub(crate) async fn lift(
        tx: &mut TenantTx,
        id: RecordId,
        actor: ActorId,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let binds = [
            (SqlType::Uuid, Value::Uuid(*tx.tenant().as_uuid())),
            (SqlType::Uuid, Value::Uuid(*id.as_uuid())),
            (SqlType::Uuid, Value::Uuid(*actor.as_uuid())),
            (SqlType::Timestamp, Value::Timestamp(at)),
        ];
        let d = Dialect::of(tx);
        let statement = format!(
            "INSERT INTO {} (tenant_id, hold_id, lifted_by, lifted_at) VALUES ({})",
            d.library("legal_hold_lifts"),
            d.params(binds.len())
        );
        sql::execute(Conn::of(tx)?, &statement, &binds)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Every hold of this tenant, placed or lifted, oldest first.
    pub(crate) async fn all(tx: &mut TenantTx) -> Result<Vec<(RecordId, LegalHold)>, Error> {
        let tenant = tx.tenant();
        let d = Dialect::of(tx);
        let statement = format!(
            "SELECT {COLUMNS} FROM {} h LEFT JOIN {} l \
             ON l.tenant_id = h.tenant_id AND l.hold_id = h.id \
             WHERE h.tenant_id = {} ORDER BY h.placed_at, h.id",
            d.library("legal_holds"),
            d.library("legal_hold_lifts"),
            d.p(1)
        );
        let rows = sql::fetch(
            Conn::of(tx)?,
            &statement,
            &[(SqlType::Uuid, Value::Uuid(*tenant.as_uuid()))],
            &TYPES,
        )
        .await
        .map_err(db)?;
        rows.into_iter().map(|r| decode(tenant, r)).collect()
    }
}
