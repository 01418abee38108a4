//! `plenum contract verify`, `plenum migrate`, `plenum audit checkpoint|export`,
//! `plenum retention plan|run` and `plenum rights export`.

use plenum_consent::{Purpose, RetentionSchedule};
use serde_json::json;

use crate::Services;
use crate::cli::{Db, RetentionCommand, RightsCommand, TenantLog};
use crate::db::{self, Session};
use crate::output::{Failure, Output};

pub(crate) async fn contract_verify(database: &Db, out: &Output) -> Result<(), Failure> {
    let roles = db::roles(database)?;
    let pool = db::pool(database).await?;
    let report = pool.verify(&roles).await?;
    let findings: Vec<_> = report
        .findings
        .iter()
        .map(|f| {
            json!({"check": format!("{:?}", f.check), "object": f.object,
                        "problem": f.problem, "fix": f.fix})
        })
        .collect();
    let mut text = format!(
        "{} tenant tables checked, {} findings",
        report.tenant_tables,
        report.findings.len()
    );
    for f in &report.findings {
        text.push_str(&format!("\n- {f}"));
    }
    out.print(
        &text,
        &json!({"tenant_tables": report.tenant_tables, "findings": findings}),
    );
    if report.findings.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(
            1,
            "the database contract does not hold (findings above)",
        ))
    }
}

pub(crate) async fn migrate(
    database: &Db,
    services: &Services,
    out: &Output,
) -> Result<(), Failure> {
    let roles = db::roles(database)?;
    let key = db::context_key()?.ok_or_else(|| {
        Failure::usage("migrate installs the tenant-context key: set PLENUM_CONTEXT_KEY")
    })?;
    plenum_store::postgres::migrate(db::url(database), &roles, &key, &services.tables).await?;
    out.print(
        &format!(
            "migrated: the library's schema and {} tables",
            services.tables.len()
        ),
        &json!({"migrated": true, "tables": services.tables.len()}),
    );
    Ok(())
}

pub(crate) async fn retention(
    command: RetentionCommand,
    services: &Services,
    out: &Output,
) -> Result<(), Failure> {
    match command {
        RetentionCommand::Run { keyring, at, batch } => {
            let now = time(at)?;
            // What a sweep deletes cannot come back: it never runs ahead of the clock (`plan`
            // may look ahead).
            if now > chrono::Utc::now() + chrono::Duration::minutes(1) {
                return Err(Failure::usage(
                    "--at: retention runs at or before now; `plan` looks ahead",
                ));
            }
            let s = Session::open(&keyring, services).await?;
            let request = s.request();
            let grant = s
                .gate()
                .grant(&request, Purpose::LegalObligation)
                .map_err(|e| Failure::new(1, e.to_string()))?;
            let schedule = RetentionSchedule::plenum_default();
            let mut tx = s.pool.begin(s.tenant).await?;
            let accounts = s
                .records
                .sweep_closed_accounts(&mut tx, &grant, &schedule, now, batch)
                .await?;
            let marketing = s
                .records
                .sweep_marketing_data(&mut tx, &grant, &schedule, now, batch)
                .await?;
            let records = s
                .records
                .sweep_records(&mut tx, &grant, &schedule, now, batch)
                .await?;
            let requests = s
                .records
                .sweep_subject_requests(&mut tx, &grant, &schedule, now)
                .await?;
            // The database keeps bodies two years by its own clock and refuses a later `--at`.
            let bodies = s
                .records
                .sweep_audit_bodies(&mut tx, &grant, &schedule, now.min(chrono::Utc::now()))
                .await?;
            tx.commit().await?;
            let requests = requests.len();
            let rows: Vec<_> = marketing.iter().chain(&records).collect();
            let mut text = format!(
                "retention at {now} in {}: {} closed accounts erased, {requests} answered \
                 requests and {bodies} audit bodies removed",
                s.tenant,
                accounts.len()
            );
            for (record_type, n) in &rows {
                text.push_str(&format!("\n  {record_type}: {n} rows deleted"));
            }
            out.print(
                &text,
                &json!({"tenant": s.tenant, "at": now.to_rfc3339(), "accounts": accounts.len(),
                        "requests": requests, "audit_bodies": bodies,
                        "rows": rows.iter().map(|(t, n)| json!({"record_type": t, "deleted": n})).collect::<Vec<_>>()}),
            );
            Ok(())
        }
        RetentionCommand::Plan { keyring, at } => {
            let now = time(at)?;
            let s = Session::open(&keyring, services).await?;
            let request = s.request();
            let grant = s
                .gate()
                .grant(&request, Purpose::LegalObligation)
                .map_err(|e| Failure::new(1, e.to_string()))?;
            let mut tx = s.pool.begin(s.tenant).await?;
            let plan = s
                .records
                .retention_plan(&mut tx, &grant, &RetentionSchedule::plenum_default(), now)
                .await?;
            tx.commit().await?;
            let mut text = format!(
                "retention plan for {} at {} ({})",
                s.tenant, plan.at, plan.schedule
            );
            let mut items = Vec::new();
            for i in &plan.items {
                text.push_str(&format!(
                    "\n  {}: {} due, {} held ({}){}",
                    i.class.key(),
                    i.due,
                    i.held,
                    i.action.key(),
                    i.not_counted
                        .map(|w| format!(" - not counted: {w}"))
                        .unwrap_or_default()
                ));
                items.push(json!({"class": i.class.key(), "due": i.due, "held": i.held,
                                  "action": i.action.key()}));
            }
            out.print(
                &text,
                &json!({"tenant": s.tenant, "at": plan.at.to_rfc3339(),
                                     "schedule": plan.schedule, "items": items}),
            );
            Ok(())
        }
    }
}

fn time(at: Option<String>) -> Result<chrono::DateTime<chrono::Utc>, Failure> {
    match at {
        Some(text) => Ok(chrono::DateTime::parse_from_rfc3339(&text)
            .map_err(|_| Failure::usage("--at: not an RFC 3339 time"))?
            .with_timezone(&chrono::Utc)),
        None => Ok(chrono::Utc::now()),
    }
}

fn tenant(log: &TenantLog) -> Result<plenum_core::TenantId, Failure> {
    log.tenant
        .parse()
        .map_err(|_| Failure::usage("--tenant: not a tenant id"))
}

pub(crate) async fn audit_checkpoint(
    log: &TenantLog,
    name: &str,
    out: &Output,
) -> Result<(), Failure> {
    let seed = db::secret("PLENUM_AUDIT_SIGNING_KEY").ok_or_else(|| {
        Failure::usage("PLENUM_AUDIT_SIGNING_KEY is not set (an Ed25519 seed, base64)")
    })?;
    let seed = plenum_crypto::LocalKeyProvider::key_from_base64(&seed)
        .map_err(|_| Failure::usage("PLENUM_AUDIT_SIGNING_KEY: not 32 bytes of base64"))?;
    let signer = plenum_audit::checkpoint::CheckpointSigner::new(
        name,
        plenum_crypto::signing::SigningKey::from_seed(&seed),
    )
    .map_err(|_| Failure::usage("--name: not a checkpoint key name"))?;
    let t = tenant(log)?;
    let pool = db::pool(&log.db).await?;
    let mut tx = pool.begin(t).await?;
    let checkpoint = plenum_store::AuditLog::checkpoint(&mut tx, &signer).await?;
    tx.commit().await?;
    out.print(
        &format!(
            "checkpoint of {t} at {} entries signed by {name}; verifier key {}",
            checkpoint.size,
            signer.verifier()
        ),
        &json!({"tenant": t, "size": checkpoint.size, "verifier": signer.verifier().to_string()}),
    );
    Ok(())
}

pub(crate) async fn audit_export(log: &TenantLog, out: &Output) -> Result<(), Failure> {
    let t = tenant(log)?;
    let pool = db::pool(&log.db).await?;
    let mut tx = pool.begin(t).await?;
    plenum_store::AuditLog::sequence(&mut tx).await?;
    let export = plenum_store::AuditLog::export(&mut tx).await?;
    tx.commit().await?;
    let value = serde_json::to_value(&export).map_err(|e| Failure::new(1, e.to_string()))?;
    // The export is JSON either way: what `plenum audit verify` reads.
    out.print(&value.to_string(), &value);
    Ok(())
}

pub(crate) async fn rights(
    command: RightsCommand,
    services: &Services,
    out: &Output,
) -> Result<(), Failure> {
    let RightsCommand::Export {
        keyring,
        subject,
        format,
        out: path,
    } = command;
    let subject: plenum_core::SubjectId = subject
        .parse()
        .map_err(|_| Failure::usage("--subject: not a subject id"))?;
    let s = Session::open(&keyring, services).await?;
    let request = s.request();
    let grant = s
        .gate()
        .grant(&request, Purpose::RightsFulfilment)
        .map_err(|e| Failure::new(1, e.to_string()))?;
    let mut tx = s.pool.begin(s.tenant).await?;
    let summary = match (format.as_str(), &path) {
        ("json", Some(path)) => {
            let file = std::fs::File::create(path)
                .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))?;
            let mut sink = plenum_store::JsonExport::new(std::io::BufWriter::new(file));
            s.records
                .export_subject(&mut tx, &grant, subject, &mut sink)
                .await?
        }
        ("json", None) => {
            let mut sink = plenum_store::JsonExport::new(std::io::stdout());
            s.records
                .export_subject(&mut tx, &grant, subject, &mut sink)
                .await?
        }
        ("csv", Some(dir)) => {
            let mut sink = plenum_store::CsvExport::new(dir);
            s.records
                .export_subject(&mut tx, &grant, subject, &mut sink)
                .await?
        }
        ("csv", None) => {
            return Err(Failure::usage(
                "--format csv writes a directory: give --out",
            ));
        }
        _ => return Err(Failure::usage("--format: `json` or `csv`")),
    };
    tx.commit().await?;
    if path.is_some() {
        let records: u64 = summary.records.iter().map(|(_, n)| *n).sum();
        out.print(
            &format!("exported {records} records of {subject}"),
            &json!({"subject": subject, "records": records}),
        );
    }
    Ok(())
}
