//! `plenum contract verify`, `plenum migrate` and `plenum retention plan`.

use plenum_consent::{Purpose, RetentionSchedule};
use serde_json::json;

use crate::Services;
use crate::cli::{Db, RetentionCommand};
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
        RetentionCommand::Plan { keyring, at } => {
            let now = match at {
                Some(text) => chrono::DateTime::parse_from_rfc3339(&text)
                    .map_err(|_| Failure::usage("--at: not an RFC 3339 time"))?
                    .with_timezone(&chrono::Utc),
                None => chrono::Utc::now(),
            };
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
