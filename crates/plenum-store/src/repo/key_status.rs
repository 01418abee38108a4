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
            let d = Dialect::of(tx);
            let tenant = [super::rows::uuid(*tx.tenant().as_uuid())];
            for spec in self.record_types() {
                for field in spec.fields() {
                    if !matches!(field.storage, Storage::Encrypted { .. }) {
                        continue;
                    }
                    let column = field.name.as_str();
                    // The blind index's first byte is its index key version (0: a dead index).
                    if let Storage::Encrypted {
                        blind_index: Some(index),
                        ..
                    } = &field.storage
                    {
                        let index = index.column.as_str();
                        let statement = format!(
                            "SELECT substr({index}, 1, 1), count(*) FROM {} \
                             WHERE tenant_id = {} AND {index} IS NOT NULL GROUP BY 1",
                            d.table(spec.record_type().as_str()),
                            d.p(1)
                        );
                        let rows = sql::fetch(
                            Conn::of(tx)?,
                            &statement,
                            &tenant,
                            &[SqlType::Bytes, SqlType::BigInt],
                        )
                        .await
                        .map_err(|e| super::db_error(spec, e))?;
                        for row in rows {
                            if let (Some(Value::Bytes(v)), Some(Value::BigInt(n))) =
                                (row.first(), row.get(1))
                                && let Some(version) = v.first().filter(|v| **v != 0)
                            {
                                out.push(ValuesPerVersion {
                                    record_type: spec.record_type().to_string(),
                                    field: index.to_owned(),
                                    scope: KeyScopeKind::TenantIndex,
                                    version: u32::from(*version),
                                    values: u64::try_from(*n).unwrap_or(0),
                                });
                            }
                        }
                    }
                    // Header: format, suite, scope, key version (u32 big-endian).
                    let statement = format!(
                        "SELECT substr({column}, 3, 5), count(*) FROM {} \
                         WHERE tenant_id = {} AND {column} IS NOT NULL GROUP BY 1",
                        d.table(spec.record_type().as_str()),
                        d.p(1)
                    );
                    let rows = sql::fetch(
                        Conn::of(tx)?,
                        &statement,
                        &tenant,
                        &[SqlType::Bytes, SqlType::BigInt],
                    )
                    .await
                    .map_err(|e| super::db_error(spec, e))?;
                    for row in rows {
                        let (Some(Value::Bytes(h)), Some(Value::BigInt(n))) =
                            (row.first(), row.get(1))
                        else {
                            continue;
                        };
                        let (Some(scope), Ok(v)) = (
                            h.first().and_then(|b| KeyScopeKind::from_byte(*b)),
                            <[u8; 4]>::try_from(h.get(1..5).unwrap_or_default()),
                        ) else {
                            continue;
                        };
                        out.push(ValuesPerVersion {
                            record_type: spec.record_type().to_string(),
                            field: column.to_owned(),
                            scope,
                            version: u32::from_be_bytes(v),
                            values: u64::try_from(*n).unwrap_or(0),
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
