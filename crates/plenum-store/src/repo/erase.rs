//! What erasing a subject does to their rows, per record type, as each declares
//! ([`Erasure`]): delete them, or keep them pseudonymised (scrubbed, or retained under a legal
//! obligation and restricted). Runs in the caller's transaction before the subject's keys are
//! destroyed, so nothing irreversible happens if a row cannot be changed. SQL from validated
//! names only.

use plenum_consent::{ConsentEvent, Evidence, Method};
use plenum_core::{ActorId, SubjectId};

use super::rows::uuid;
use super::{db_error, invalid};
use crate::consent::ConsentLedger;
use crate::error::Error;
use crate::record::{Erasure, RecordSpec, Storage, Value};
use crate::sql::{self, Conn, Dialect};
use crate::table::SqlType;
use crate::tx::TenantTx;

/// What one erasure did to one record type's rows of the subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasedRecords {
    /// The record type.
    pub record_type: String,
    /// What its declared rule did: deleted, scrubbed, or retained (with its ground).
    pub erasure: Erasure,
    /// How many rows.
    pub rows: u64,
}

/// A value no blind index takes: index values start with their key version, 1..255, so a
/// leading 0 never matches a candidate, and the random rest keeps a unique index satisfied.
fn dead_index() -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend_from_slice(&plenum_crypto::digest::random_bytes::<16>());
    v
}

/// Applies each record type's erasure to `subject`'s rows, children before parents (`specs` is
/// in dependency order, parents first). The rows kept carry `pseudonym` instead of the subject
/// id from now on; retained rows' pseudonym is restricted (Art. 18) in the consent ledger.
/// Returns what was done per record type (those with rows of the subject), parents first.
pub(super) async fn erase_rows(
    tx: &mut TenantTx,
    specs: &[&'static RecordSpec],
    subject: SubjectId,
    pseudonym: SubjectId,
    actor: ActorId,
) -> Result<Vec<ErasedRecords>, Error> {
    let d = Dialect::of(tx);
    let tenant = uuid(*tx.tenant().as_uuid());
    let (p1, p2, p3) = (d.p(1), d.p(2), d.p(3));
    let mut done = Vec::new();
    for spec in specs.iter().rev() {
        let Some(erasure) = spec.erasure() else {
            continue;
        };
        let rows: u64;
        let table = d.table(spec.record_type().as_str());
        let db = |e| db_error(spec, e);
        match erasure {
            Erasure::Delete => {
                let statement =
                    format!("DELETE FROM {table} WHERE tenant_id = {p1} AND subject_id = {p2}");
                rows = sql::execute(
                    Conn::of(tx)?,
                    &statement,
                    &[tenant.clone(), uuid(*subject.as_uuid())],
                )
                .await
                .map_err(db)?;
            }
            Erasure::Scrub => {
                rows = scrub(tx, spec, &table, subject, pseudonym).await?;
            }
            Erasure::Retain(_) => {
                let statement = format!(
                    "UPDATE {table} SET subject_id = {p3} WHERE tenant_id = {p1} AND subject_id = {p2}"
                );
                let n = sql::execute(
                    Conn::of(tx)?,
                    &statement,
                    &[
                        tenant.clone(),
                        uuid(*subject.as_uuid()),
                        uuid(*pseudonym.as_uuid()),
                    ],
                )
                .await
                .map_err(db)?;
                rows = n;
            }
        }
        if rows > 0 {
            done.push(ErasedRecords {
                record_type: spec.record_type().to_string(),
                erasure,
                rows,
            });
        }
    }
    done.reverse();
    if done.iter().any(|e| matches!(e.erasure, Erasure::Retain(_))) {
        let evidence = Evidence {
            notice_version: "erasure".to_owned(),
            notice_sha256: [0; 32],
            method: Method::Api,
            actor,
            at: chrono::Utc::now(),
        };
        ConsentLedger::record(tx, &ConsentEvent::restriction(pseudonym, true, evidence)).await?;
    }
    Ok(done)
}

/// Scrubs each of `subject`'s rows of `spec`: the pseudonym for the subject id, a dead value
/// for every blind index, NULL for every optional plain field of personal data. The subject's
/// encrypted fields need nothing: their key is about to be destroyed.
async fn scrub(
    tx: &mut TenantTx,
    spec: &RecordSpec,
    table: &str,
    subject: SubjectId,
    pseudonym: SubjectId,
) -> Result<u64, Error> {
    let d = Dialect::of(tx);
    let tenant = uuid(*tx.tenant().as_uuid());
    let db = |e| db_error(spec, e);
    let ids = sql::fetch(
        Conn::of(tx)?,
        &format!(
            "SELECT id FROM {table} WHERE tenant_id = {} AND subject_id = {}",
            d.p(1),
            d.p(2)
        ),
        &[tenant.clone(), uuid(*subject.as_uuid())],
        &[SqlType::Uuid],
    )
    .await
    .map_err(db)?;
    let indexes: Vec<&str> = spec
        .fields()
        .iter()
        .filter_map(|f| f.blind_index_spec().map(|b| b.column.as_str()))
        .collect();
    let cleared: Vec<&str> = spec
        .fields()
        .iter()
        .filter(|f| {
            matches!(f.storage, Storage::Plain(_))
                && f.nullable
                && plenum_consent::is_personal(&f.category)
        })
        .map(|f| f.name.as_str())
        .collect();
    let mut sets = vec![format!("subject_id = {}", d.p(3))];
    sets.extend(
        indexes
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = {}", d.p(4 + i))),
    );
    sets.extend(cleared.iter().map(|c| format!("{c} = NULL")));
    let statement = format!(
        "UPDATE {table} SET {} WHERE tenant_id = {} AND id = {}",
        sets.join(", "),
        d.p(1),
        d.p(2)
    );
    let mut n = 0;
    for row in ids {
        let Some(Value::Uuid(id)) = row.into_iter().next() else {
            return Err(invalid(spec, "a row id did not decode"));
        };
        let mut binds = vec![tenant.clone(), uuid(id), uuid(*pseudonym.as_uuid())];
        binds.extend(
            indexes
                .iter()
                .map(|_| (SqlType::Bytes, Value::Bytes(dead_index()))),
        );
        n += sql::execute(Conn::of(tx)?, &statement, &binds)
            .await
            .map_err(db)?;
    }
    Ok(n)
}
