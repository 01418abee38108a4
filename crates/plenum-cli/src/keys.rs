//! `plenum keys ...`: a tenant's key versions, states and seal counts, a rotation, root
//! re-wrapping, and the re-encryption (and re-indexing) sweep page by page (one transaction each, resumable by running the command again), with a
//! progress bar on a terminal.

use std::io::IsTerminal as _;

use plenum_consent::Purpose;
use plenum_core::{RecordType, SubjectId};
use plenum_crypto::{KeyScope, KeyStore as _};
use plenum_store::DbKeyStore;
use serde_json::json;

use crate::Services;
use crate::cli::KeysCommand;
use crate::db::Session;
use crate::output::{Failure, Output};

fn scope(text: &str) -> Result<KeyScope, Failure> {
    match text {
        "data" => Ok(KeyScope::TenantData),
        "index" => Ok(KeyScope::TenantIndex),
        other => match other.strip_prefix("subject:").map(str::parse::<SubjectId>) {
            Some(Ok(s)) => Ok(KeyScope::Subject(s)),
            _ => Err(Failure::usage(
                "--scope: `data`, `index` or `subject:<subject id>`",
            )),
        },
    }
}

pub(crate) async fn run(
    command: KeysCommand,
    services: &Services,
    out: &Output,
) -> Result<(), Failure> {
    match command {
        KeysCommand::Status { keyring } => {
            let s = Session::open(&keyring, services).await?;
            let store = DbKeyStore::new(s.pool.clone());
            let mut text = format!("tenant {}", s.tenant);
            let mut scopes = Vec::new();
            for (name, scope) in [
                ("data", KeyScope::TenantData),
                ("index", KeyScope::TenantIndex),
                ("subject-wrap", KeyScope::SubjectWrap),
            ] {
                let keys = store.load(s.tenant, scope).await?;
                let mut versions = Vec::new();
                text.push_str(&format!("\n  {name}:"));
                if keys.is_empty() {
                    text.push_str(" none yet");
                }
                let limit = plenum_crypto::KeyringConfig::default().usage_limit;
                for k in &keys {
                    // Seals every instance has flushed (`Keyring::flush_usage`).
                    let seals = store.add_usage(k.key_ref, 0).await?;
                    text.push_str(&format!(
                        "\n    v{} {} - {seals} seals of {limit}",
                        k.key_ref.version,
                        k.state.as_str()
                    ));
                    versions.push(
                        json!({"version": k.key_ref.version, "state": k.state.as_str(),
                                         "seals": seals, "limit": limit}),
                    );
                }
                scopes.push(json!({"scope": name, "versions": versions}));
            }
            // Values per key version, from the envelope headers: what may be retired.
            let request = s.request();
            let grant = s
                .gate()
                .grant(&request, Purpose::SecurityProtection)
                .map_err(|e| Failure::new(1, e.to_string()))?;
            let mut tx = s.pool.begin(s.tenant).await?;
            let in_use = s.records.values_per_key_version(&mut tx, &grant).await?;
            tx.commit().await?;
            text.push_str("\n  values per key version:");
            let mut values = Vec::new();
            for v in &in_use {
                text.push_str(&format!(
                    "\n    {}.{}: {} v{}: {}",
                    v.record_type, v.field, v.scope, v.version, v.values
                ));
                values.push(json!({"record_type": v.record_type, "field": v.field,
                                   "scope": v.scope.to_string(), "version": v.version,
                                   "values": v.values}));
            }
            out.print(
                &text,
                &json!({"tenant": s.tenant, "scopes": scopes, "values": values}),
            );
        }
        KeysCommand::Rotate {
            keyring,
            scope: which,
        } => {
            let scope = scope(&which)?;
            let s = Session::open(&keyring, services).await?;
            let request = s.request();
            let grant = s
                .gate()
                .grant(&request, Purpose::SecurityProtection)
                .map_err(|e| Failure::new(1, e.to_string()))?;
            let mut tx = s.pool.begin(s.tenant).await?;
            let key = s.records.rotate_key(&mut tx, &grant, scope).await?;
            tx.commit().await?;
            out.print(
                &format!("rotated {which}: version {} is active", key.version),
                &json!({"scope": which, "active": key.version}),
            );
        }
        KeysCommand::RewrapRoot {
            keyring,
            to_version,
        } => {
            let s = Session::open_with(&keyring, services, Some(to_version)).await?;
            let request = s.request();
            let grant = s
                .gate()
                .grant(&request, Purpose::SecurityProtection)
                .map_err(|e| Failure::new(1, e.to_string()))?;
            let mut tx = s.pool.begin(s.tenant).await?;
            let rewrapped = s.records.rewrap_tenant_keys(&mut tx, &grant).await?;
            tx.commit().await?;
            out.print(
                &format!(
                    "{rewrapped} keys of {} re-wrapped under root version {to_version}; run with \
                     it as PLENUM_ROOT_KEY (version {to_version}), then destroy the old root key",
                    s.tenant
                ),
                &json!({"tenant": s.tenant, "rewrapped": rewrapped, "root_version": to_version}),
            );
        }
        KeysCommand::Reencrypt {
            keyring,
            record_type,
            page,
        } => {
            let record_type = RecordType::new(&record_type)
                .map_err(|_| Failure::usage("--record-type: not a record type name"))?;
            let s = Session::open(&keyring, services).await?;
            let request = s.request();
            let grant = s
                .gate()
                .grant(&request, Purpose::SecurityProtection)
                .map_err(|e| Failure::new(1, e.to_string()))?;
            // Progress only where a person watches: never in a pipe or a log.
            let bar = if std::io::stderr().is_terminal() && !out.json {
                indicatif::ProgressBar::new_spinner().with_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} {pos} rows read, {msg} [{elapsed}, {per_sec}]",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                )
            } else {
                indicatif::ProgressBar::hidden()
            };
            let (mut scanned, mut resealed, mut reindexed, mut conflicts, mut erased) =
                (0u64, 0u64, 0u64, 0u64, 0u64);
            loop {
                let mut tx = s.pool.begin(s.tenant).await?;
                let p = s
                    .records
                    .reencrypt_page(&mut tx, &grant, &record_type, page)
                    .await?;
                tx.commit().await?;
                scanned += p.scanned;
                resealed += p.resealed;
                reindexed += p.reindexed;
                conflicts += p.conflicts;
                erased += p.erased;
                bar.inc(p.scanned);
                bar.set_message(format!("{} re-sealed", p.total_resealed));
                if p.finished {
                    bar.finish_and_clear();
                    // The seals of this sweep count toward the keys' limits in every instance.
                    s.records.flush_key_usage().await?;
                    out.print(
                        &format!(
                            "{record_type}: {scanned} rows read, {resealed} values re-sealed and \
                             read back ({} since the sweep started), {reindexed} blind indexes \
                             recomputed, {conflicts} left to concurrent updates, {erased} of \
                             erased subjects; done",
                            p.total_resealed
                        ),
                        &json!({"record_type": record_type.as_str(), "scanned": scanned,
                                "resealed": resealed, "reindexed": reindexed,
                                "total_resealed": p.total_resealed,
                                "conflicts": conflicts, "erased": erased, "finished": true}),
                    );
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}
