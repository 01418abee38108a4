//! What an operator asks before retiring a key version: how many stored values each key
//! version seals (read from the envelopes' headers by SQL, nothing decrypted), and the seal
//! counts across instances with a warning for versions due for rotation.

use plenum_crypto::{KeyRef, KeyScopeKind};

use super::Records;
use super::report::{describe, report};
use super::screen::{self};
use crate::access::Action;
use crate::error::Error;
use crate::gate::PurposeGrant;
use crate::record::{Storage, Value};
use crate::sql::{self, Conn, Dialect};
use crate::table::SqlType;
use crate::tx::TenantTx;

/// How many stored values of one field are sealed under one key version.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValuesPerVersion {
    /// The record type.
    pub record_type: String,
    /// The field.
    pub field: String,
    /// Whose key: the tenant's data key or the subjects' keys.
    pub scope: KeyScopeKind,
    /// The key version the envelopes name.
    pub version: u32,
    /// How many values.
    pub values: u64,
}

impl Records {
    /// For every encrypted field of every registered record type, how many of this tenant's
    /// stored values each key version seals, from the envelope headers (bytes 3 to 7: scope and
    /// version), and for every blind index how many values each index key version computed
    /// (its first byte), by SQL: nothing is opened. A version that seals nothing any more may be
    /// retired. Needs `security.protection` or an unrestricted grant; reported as a `count`.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`]; database and hook failures.
    pub async fn values_per_key_version(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
    ) -> Result<Vec<ValuesPerVersion>, Error> {
        let access = describe(grant, Action::Count, plenum_core::record_type!("keys"));
        let result = async {
            screen::check_key_operation(tx, grant, "keys")?;
            let mut out = Vec::new();
            for spec in self.record_types() {
                for field in spec.fields() {
                    let Storage::Encrypted { blind_index, .. } = &field.storage else {
                        continue;
                    };
                    let record_type = spec.record_type().to_string();
                    // The blind index's first byte is its index key version (0: a dead index).
                    if let Some(index) = blind_index {
                        let column = index.column.as_str();
                        for (prefix, values) in count_by_prefix(tx, spec, column, 1, 1).await? {
                            if let Some(version) = prefix.first().filter(|v| **v != 0) {
                                out.push(ValuesPerVersion {
                                    record_type: record_type.clone(),
                                    field: column.to_owned(),
                                    scope: KeyScopeKind::TenantIndex,
                                    version: u32::from(*version),
                                    values,
                                });
                            }
                        }
                    }
                    // Header: format, suite, then scope and key version (u32 big-endian).
                    let column = field.name.as_str();
                    for (prefix, values) in count_by_prefix(tx, spec, column, 3, 5).await? {
                        let (Some(scope), Ok(v)) = (
                            prefix.first().and_then(|b| KeyScopeKind::from_byte(*b)),
                            <[u8; 4]>::try_from(prefix.get(1..5).unwrap_or_default()),
                        ) else {
                            continue;
                        };
                        out.push(ValuesPerVersion {
                            record_type: record_type.clone(),
                            field: column.to_owned(),
                            scope,
                            version: u32::from_be_bytes(v),
                            values,
                        });
                    }
                }
            }
            out.sort_by(|a, b| {
                (&a.record_type, &a.field, a.version).cmp(&(&b.record_type, &b.field, b.version))
            });
            Ok(out)
        }
        .await;
        report(&*self.shared.hook, tx, access, result, |v| v.len() as u64).await
    }

    /// Flushes this process's seal counts to the key store and takes in the other instances'
    /// ([`Keyring::flush_usage`](plenum_crypto::Keyring::flush_usage)); logs a warning (target
    /// `plenum::keys`) for every tenant key version past its rotation threshold, well ahead of
    /// the limit at which sealing is refused. Call it on the service's timer. Returns the key
    /// versions due for rotation.
    ///
    /// # Errors
    ///
    /// Key store failures (the unflushed seals are kept for the next call).
    pub async fn flush_key_usage(&self) -> Result<Vec<(KeyRef, u64)>, Error> {
        let keyring = self.keyring();
        let due: Vec<(KeyRef, u64)> = keyring
            .flush_usage()
            .await?
            .into_iter()
            .filter(|(key, _)| keyring.rotation_due(key))
            .collect();
        for (key, seals) in &due {
            tracing::warn!(
                target: "plenum::keys",
                tenant = %key.tenant,
                scope = %key.scope.kind(),
                version = key.version,
                seals,
                "key version is due for rotation (plenum keys rotate, then reencrypt)"
            );
        }
        Ok(due)
    }
}

/// How many of this tenant's non-null values of `column` (a validated column of `spec`'s
/// table) start with each `len`-byte prefix found at byte `start` (1-based, as SQL's `substr`):
/// the key version counts of envelope headers and blind indexes, by SQL, nothing opened.
async fn count_by_prefix(
    tx: &mut TenantTx,
    spec: &crate::record::RecordSpec,
    column: &str,
    start: u8,
    len: u8,
) -> Result<Vec<(Vec<u8>, u64)>, Error> {
    let d = Dialect::of(tx);
    let statement = format!(
        "SELECT substr({column}, {start}, {len}), count(*) FROM {} \
         WHERE tenant_id = {} AND {column} IS NOT NULL GROUP BY 1",
        d.table(spec.record_type().as_str()),
        d.p(1)
    );
    let tenant = [super::rows::uuid(*tx.tenant().as_uuid())];
    let rows = sql::fetch(
        Conn::of(tx)?,
        &statement,
        &tenant,
        &[SqlType::Bytes, SqlType::BigInt],
    )
    .await
    .map_err(|e| super::db_error(spec, e))?;
    Ok(rows
        .into_iter()
        .filter_map(|row| match <[Value; 2]>::try_from(row) {
            Ok([Value::Bytes(prefix), Value::BigInt(n)]) => {
                Some((prefix, u64::try_from(n).unwrap_or(0)))
            }
            _ => None,
        })
        .collect())
}
