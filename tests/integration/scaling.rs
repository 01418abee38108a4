//! Readiness for sharding by tenant (`docs/scaling.md`): every statement the library runs on
//! PostgreSQL names one tenant by equality on `tenant_id` with a bind parameter (so a
//! distributed database can route it to one shard), and every key, index and foreign key of
//! every table leads with `tenant_id` (so they are shard-local). The statements are those the
//! library actually ran (the `statement-log` feature records every text `plenum-store` sends),
//! after a workload that exercises each kind of operation.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failed test"
)]

use plenum::consent::ConsentEvent;
use plenum::prelude::*;
use plenum::store::{AuditLog, ConsentLedger};
use plenum_hvac::{Customer, Invoice};

use crate::audit::{Audited, evidence, staff};
use crate::fixtures::{Env, customer};

/// Statements that name no tenant by design, each with why it is still shard-safe.
const TENANT_FREE: &[(&str, &str)] = &[(
    "SELECT plenum.audit_sequence()",
    "numbers the caller's tenant's events: the function reads the authenticated context, and on a \
     sharded database it is a distributed function colocated by tenant",
)];

/// Whether `statement` names one tenant: `tenant_id = $n` in its predicate, or, for an
/// `INSERT`, a bind parameter in the `tenant_id` position of its values or select list.
fn names_one_tenant(statement: &str) -> bool {
    let s: String = statement.split_whitespace().collect::<Vec<_>>().join(" ");
    let has_equality = |text: &str| {
        text.match_indices("tenant_id = $").next().is_some()
            || text.match_indices("tenant_id=$").next().is_some()
    };
    if !s.starts_with("INSERT") {
        return has_equality(&s);
    }
    // INSERT INTO t (c1, c2, ...) VALUES ($1, ...) | SELECT $1, ... : find tenant_id's position.
    let Some(open) = s.find('(') else {
        return false;
    };
    let Some(close) = s[open..].find(')').map(|i| open + i) else {
        return false;
    };
    let columns: Vec<&str> = s[open + 1..close].split(',').map(str::trim).collect();
    let Some(position) = columns.iter().position(|c| *c == "tenant_id") else {
        return false;
    };
    let rest = &s[close + 1..];
    let values = if let Some(v) = rest.trim_start().strip_prefix("VALUES (") {
        v
    } else if let Some(i) = rest.find("SELECT ") {
        &rest[i + "SELECT ".len()..]
    } else {
        return false;
    };
    values
        .split(',')
        .nth(position)
        .is_some_and(|v| v.trim().starts_with('$'))
        && (!rest.contains(" WHERE ") || has_equality(rest) || rest.contains("unnest("))
}

#[tokio::test]
async fn every_statement_the_library_runs_names_one_tenant_by_equality() {
    let a = Audited::new(Env::postgres().await);
    let t = a.seeded(2).await;
    let office = Request::new(t, staff("dispatcher"));
    let officer = Request::new(t, staff("privacy"));
    let security = Request::new(t, staff("security"));
    let marketer = Request::new(t, staff("marketer"));
    let scheduling = a.gate.grant(&office, Purpose::Scheduling).unwrap();
    let rights = a.gate.grant(&officer, Purpose::RightsFulfilment).unwrap();
    let protection = a
        .gate
        .grant(&security, Purpose::SecurityProtection)
        .unwrap();
    let marketing = a.gate.grant(&marketer, Purpose::MarketingEmail).unwrap();
    let customers = a.records.repository::<Customer>();
    let invoices = a.records.repository::<Invoice>();
    let c = customer(t, "shape@example.com", "2175550150");
    let d = customer(t, "shape2@example.com", "2175550151");
    let bill = Invoice {
        id: RecordId::generate(),
        tenant: t,
        subject: c.subject,
        customer_id: c.id,
        amount_cents: Encrypted::new(9_900),
        currency: "USD".to_owned(),
        due_on: chrono::NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
        paid: false,
    };

    let mut tx = a.env.pool.begin(t).await.unwrap();
    customers
        .insert_many(&mut tx, &scheduling, &[c.clone(), d.clone()])
        .await
        .unwrap();
    // Invoices are billing data, beyond scheduling: a storage grant writes the one here.
    invoices
        .insert(&mut tx, &crate::fixtures::grant(t), &bill)
        .await
        .unwrap();
    let mut loaded = customers.get(&mut tx, &scheduling, c.id).await.unwrap();
    let page = customers.list(&mut tx, &scheduling, None, 1).await.unwrap();
    customers
        .list(&mut tx, &scheduling, page.next, 10)
        .await
        .unwrap();
    customers
        .find(
            &mut tx,
            &scheduling,
            Customer::EMAIL_INDEX,
            "shape@example.com",
        )
        .await
        .unwrap();
    customers.count(&mut tx, &scheduling).await.unwrap();
    loaded.phone.set("2175550159".to_owned());
    customers
        .update(&mut tx, &scheduling, &loaded)
        .await
        .unwrap();
    a.records
        .record_consent(
            &mut tx,
            &marketing,
            &ConsentEvent::given(c.subject, Purpose::MarketingEmail, evidence()),
        )
        .await
        .unwrap();
    customers.list(&mut tx, &marketing, None, 10).await.unwrap();
    ConsentLedger::status(&mut tx, c.subject).await.unwrap();
    customers.delete(&mut tx, &scheduling, d.id).await.unwrap();
    a.records
        .rotate_key(&mut tx, &protection, plenum::crypto::KeyScope::TenantIndex)
        .await
        .unwrap();
    a.records
        .advance_erasure_epoch(&mut tx, &protection)
        .await
        .unwrap();
    a.records
        .rotate_key(&mut tx, &protection, plenum::crypto::KeyScope::TenantData)
        .await
        .unwrap();
    // Seal counts (#18) and the re-encryption sweep: a page that leaves a cursor, then the last.
    a.records.keyring().flush_usage().await.unwrap();
    for _ in 0..2 {
        a.records
            .reencrypt_page(
                &mut tx,
                &protection,
                &plenum::core::record_type!("invoices"),
                1,
            )
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    a.export(t).await;
    // Rights requests, the subject export and legal holds (#16, #17).
    let counsel = Request::new(t, staff("counsel"));
    let holding = a.gate.grant(&counsel, Purpose::LegalHold).unwrap();
    let mut tx = a.env.pool.begin(t).await.unwrap();
    let request = plenum::consent::SubjectRequest::received(
        t,
        c.subject,
        plenum::consent::Right::Access,
        plenum::consent::Requester::Subject,
        plenum::consent::RequestChannel::Web,
        chrono::Utc::now(),
    );
    let id = a
        .records
        .receive_request(&mut tx, &rights, &request)
        .await
        .unwrap();
    a.records
        .advance_request(
            &mut tx,
            &rights,
            id,
            plenum::consent::Step::AwaitIdentity,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    a.records
        .overdue_requests(&mut tx, &rights, chrono::Utc::now())
        .await
        .unwrap();
    a.records
        .export_subject(
            &mut tx,
            &rights,
            c.subject,
            &mut plenum::store::JsonExport::new(Vec::new()),
        )
        .await
        .unwrap();
    let hold = a
        .records
        .place_legal_hold(
            &mut tx,
            &holding,
            plenum::consent::HoldScope::RecordType(plenum::core::record_type!("properties")),
            "case-shape",
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    a.records
        .lift_legal_hold(&mut tx, &holding, hold, chrono::Utc::now())
        .await
        .unwrap();
    // A live hold on a record type this subject has no rows of: the erasure below checks it
    // (a probe of that table) and proceeds.
    let hold2 = a
        .records
        .place_legal_hold(
            &mut tx,
            &holding,
            plenum::consent::HoldScope::RecordType(plenum::core::record_type!("properties")),
            "case-shape-2",
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = a.env.pool.begin(t).await.unwrap();
    AuditLog::events_about(&mut tx, a.records.keyring(), c.subject)
        .await
        .unwrap();
    a.records
        .erase_subject(&mut tx, &rights, c.subject)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Retention and offboarding (#17): every sweep, the plan, and the platform log's record.
    let storage = crate::fixtures::grant(t);
    let schedule = plenum::consent::RetentionSchedule::plenum_default();
    let now = chrono::Utc::now();
    let later = now + chrono::Duration::days(31);
    let mut tx = a.env.pool.begin(t).await.unwrap();
    let e = customer(t, "shape3@example.com", "2175550152");
    customers.insert(&mut tx, &storage, &e).await.unwrap();
    a.records
        .repository::<plenum_hvac::MarketingProfile>()
        .insert(
            &mut tx,
            &storage,
            &plenum_hvac::MarketingProfile {
                id: RecordId::generate(),
                tenant: t,
                subject: e.subject,
                customer_id: e.id,
                interests: Encrypted::new("boilers".to_owned()),
                recorded_at: now,
            },
        )
        .await
        .unwrap();
    a.records
        .record_retention_event(
            &mut tx,
            &storage,
            plenum::consent::Trigger::AccountClosed,
            Some(e.subject),
            now,
        )
        .await
        .unwrap();
    a.records
        .retention_plan(&mut tx, &storage, &schedule, later)
        .await
        .unwrap();
    a.records
        .sweep_marketing_data(&mut tx, &storage, &schedule, later, 10)
        .await
        .unwrap();
    a.records
        .sweep_records(&mut tx, &storage, &schedule, later, 10)
        .await
        .unwrap();
    a.records
        .sweep_subject_requests(&mut tx, &storage, &schedule, now)
        .await
        .unwrap();
    a.records
        .sweep_closed_accounts(&mut tx, &storage, &schedule, later, 10)
        .await
        .unwrap();
    a.records
        .export_tenant(
            &mut tx,
            &storage,
            &mut plenum::store::JsonExport::new(Vec::new()),
        )
        .await
        .unwrap();
    a.records
        .record_retention_event(
            &mut tx,
            &storage,
            plenum::consent::Trigger::ContractTerminated,
            None,
            now,
        )
        .await
        .unwrap();
    a.records
        .lift_legal_hold(&mut tx, &holding, hold2, now)
        .await
        .unwrap();
    a.records
        .offboard_tenant(&mut tx, &storage, &schedule, later)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    a.checkpoint(t).await;
    a.export(t).await;
    a.export(plenum::store::PLATFORM_LOG).await;

    let statements = plenum::store::statement_log::statements();
    let postgres: Vec<&String> = statements.iter().filter(|s| !s.contains('?')).collect();
    assert!(
        postgres.len() > 25,
        "the workload ran the library's statements: {postgres:#?}"
    );
    let offending: Vec<&&String> = postgres
        .iter()
        .filter(|s| {
            let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
            !names_one_tenant(s) && !TENANT_FREE.iter().any(|(t, _)| *t == one_line)
        })
        .collect();
    assert!(
        offending.is_empty(),
        "statements that do not name one tenant by equality (docs/scaling.md): {offending:#?}"
    );
}

#[tokio::test]
async fn every_key_index_and_foreign_key_leads_with_tenant_id() {
    let env = Env::postgres().await;
    let db = env.db.as_ref().unwrap();
    let su = db.superuser().await;
    // Every index (primary keys and unique constraints are indexes) and every foreign key of
    // the library's and the record types' tables, with its first column.
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT c.relname::text, i.relname::text, a.attname::text \
         FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid \
         JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = x.indkey[0] \
         WHERE n.nspname IN ('plenum', 'app') \
         UNION ALL \
         SELECT c.relname::text, k.conname::text, a.attname::text \
         FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.conkey[1] \
         WHERE k.contype = 'f' AND n.nspname IN ('plenum', 'app')",
    )
    .fetch_all(&su)
    .await
    .unwrap();
    // Platform tables, one row per tenant or none: reference tables on a sharded database.
    let platform = ["tenants", "admin_audit", "context_key", "_sqlx_migrations"];
    let scoped: Vec<&(String, String, String)> = rows
        .iter()
        .filter(|(table, _, _)| !platform.contains(&table.as_str()))
        .collect();
    assert!(
        scoped.len() > 15,
        "the catalog query found the keys: {rows:#?}"
    );
    let offending: Vec<_> = scoped
        .iter()
        .filter(|(_, _, first)| first != "tenant_id")
        .collect();
    assert!(
        offending.is_empty(),
        "keys not led by tenant_id: {offending:#?}"
    );
    su.close().await;
}

/// The checker itself: what it accepts and refuses.
#[test]
fn the_shape_check_refuses_statements_that_could_fan_out() {
    for ok in [
        "SELECT id FROM app.customers WHERE tenant_id = $1 AND id = $2",
        "UPDATE plenum.keys SET state = $1 WHERE tenant_id = $2 AND scope = $3",
        "INSERT INTO app.customers (tenant_id, id, email) VALUES ($1, $2, $3)",
        "INSERT INTO plenum.keys (tenant_id, scope) SELECT $1, 3 FROM unnest($2::uuid[]) AS k(s)",
    ] {
        assert!(names_one_tenant(ok), "{ok}");
    }
    for bad in [
        "SELECT id FROM app.customers WHERE id = $1",
        "SELECT id FROM app.customers WHERE tenant_id IN ($1, $2)",
        "DELETE FROM app.customers WHERE tenant_id <> $1",
        "INSERT INTO app.customers (id, tenant_id) VALUES ($1, 'literal')",
        "INSERT INTO app.customers (tenant_id, id) SELECT tenant_id, id FROM app.other",
    ] {
        assert!(!names_one_tenant(bad), "{bad}");
    }
}
