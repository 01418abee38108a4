//! Retention through the public API with an injected clock, on PostgreSQL (as the runtime role)
//! and SQLite: trigger events recorded and append-only, the plan of what the privacy policy's
//! schedule makes due as years pass, legal holds keeping what they cover, and audit bodies that
//! the database keeps for two years whatever clock the caller passes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures: a failed set-up is a failed test"
)]

use chrono::{DateTime, Duration, Months, TimeZone as _, Utc};
use plenum::consent::{
    HoldScope, Purpose, RefusalReason, RequestChannel, Requester, RetentionClass,
    RetentionSchedule, Right, Step, SubjectRequest, Trigger,
};
use plenum::prelude::*;
use plenum::store::{ErrorKind, Request, RetentionPlan};

use crate::audit::{Audited, staff};

fn item(plan: &RetentionPlan, class: RetentionClass) -> (u64, u64) {
    let i = plan.items.iter().find(|i| i.class == class).unwrap();
    (i.due, i.held)
}

/// Each rule of the policy, as time passes: an account closed is due 30 days later, a
/// terminated tenant after its 30-day export window, an answered request after 24 months,
/// audit bodies after two years; a legal hold keeps what it covers; classes no record type
/// declares are said to be not counted.
#[tokio::test]
async fn the_plan_follows_each_rule_as_time_passes() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let name = a.env.name();
        let job = Request::new(t, staff("counsel"));
        let holds = a.gate.grant(&job, Purpose::LegalHold).unwrap();
        let ops = Request::new(t, staff("privacy"));
        let rights = a.gate.grant(&ops, Purpose::RightsFulfilment).unwrap();
        let storage = crate::fixtures::grant(t);
        let schedule = RetentionSchedule::plenum_default();
        let t0: DateTime<Utc> = Utc::now();
        let (closed, kept) = (SubjectId::generate(), SubjectId::generate());
        let mut tx = a.env.pool.begin(t).await.unwrap();
        for s in [closed, kept] {
            a.records
                .record_retention_event(&mut tx, &storage, Trigger::AccountClosed, Some(s), t0)
                .await
                .unwrap();
        }
        a.records
            .place_legal_hold(&mut tx, &holds, HoldScope::Subject(kept), "case-9", t0)
            .await
            .unwrap();
        let request = SubjectRequest::received(
            t,
            closed,
            Right::Access,
            Requester::Subject,
            RequestChannel::Web,
            t0,
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
                Step::Refuse(RefusalReason::ManifestlyUnfounded),
                t0,
            )
            .await
            .unwrap();
        let at = |days: i64| t0 + Duration::days(days);
        let p = a
            .records
            .retention_plan(&mut tx, &storage, &schedule, at(29))
            .await
            .unwrap();
        assert_eq!(
            item(&p, RetentionClass::AccountData),
            (0, 0),
            "{name}: day 29"
        );
        let p = a
            .records
            .retention_plan(&mut tx, &storage, &schedule, at(31))
            .await
            .unwrap();
        assert_eq!(
            item(&p, RetentionClass::AccountData),
            (2, 1),
            "{name}: day 31, one held"
        );
        assert_eq!(
            item(&p, RetentionClass::TenantBusinessData),
            (0, 0),
            "{name}: no termination"
        );
        assert_eq!(item(&p, RetentionClass::SubjectRequests), (0, 0));
        assert_eq!(
            item(&p, RetentionClass::MarketingData),
            (0, 0),
            "{name}: no marketing profiles"
        );
        assert!(
            p.items.iter().all(|i| i.not_counted.is_none()),
            "{name}: every class is counted: the HVAC records declare each that rows hold"
        );

        a.records
            .record_retention_event(&mut tx, &storage, Trigger::ContractTerminated, None, at(40))
            .await
            .unwrap();
        let p = a
            .records
            .retention_plan(&mut tx, &storage, &schedule, at(69))
            .await
            .unwrap();
        assert_eq!(
            item(&p, RetentionClass::TenantBusinessData),
            (0, 0),
            "{name}: export window"
        );
        let p = a
            .records
            .retention_plan(&mut tx, &storage, &schedule, at(71))
            .await
            .unwrap();
        assert_eq!(
            item(&p, RetentionClass::TenantBusinessData),
            (1, 0),
            "{name}: window over"
        );

        let later = t0.checked_add_months(Months::new(24)).unwrap() + Duration::days(1);
        let p = a
            .records
            .retention_plan(&mut tx, &storage, &schedule, later)
            .await
            .unwrap();
        assert_eq!(
            item(&p, RetentionClass::SubjectRequests),
            (1, 0),
            "{name}: 24 months on"
        );
        let (bodies, _) = item(&p, RetentionClass::AuditLogBodies);
        assert!(
            bodies > 0,
            "{name}: every body written today is due two years on"
        );
        let p = a
            .records
            .retention_plan(&mut tx, &storage, &schedule, at(1))
            .await
            .unwrap();
        assert_eq!(item(&p, RetentionClass::AuditLogBodies), (0, 0));
        tx.commit().await.unwrap();

        // Whatever the caller's clock says, the database keeps bodies for two years.
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let err = a
            .records
            .sweep_audit_bodies(&mut tx, &storage, &schedule, later)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Audit, "{name}");
        drop(tx);
    }
}

/// Only the service's own triggers are recorded through the API, under
/// `compliance.legal_obligation`, append-only.
#[tokio::test]
async fn trigger_events_are_typed_screened_and_append_only() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let name = a.env.name();
        let storage = crate::fixtures::grant(t);
        let ops = Request::new(t, staff("privacy"));
        let rights = a.gate.grant(&ops, Purpose::RightsFulfilment).unwrap();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        for (trigger, subject) in [
            (Trigger::AccountClosed, None),
            (Trigger::ContractTerminated, Some(SubjectId::generate())),
            (Trigger::Created, None),
        ] {
            let err = a
                .records
                .record_retention_event(&mut tx, &storage, trigger, subject, Utc::now())
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name}: {trigger:?}");
        }
        let err = a
            .records
            .record_retention_event(
                &mut tx,
                &rights,
                Trigger::ContractTerminated,
                None,
                Utc::now(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Denied, "{name}: another purpose");
        a.records
            .record_retention_event(
                &mut tx,
                &storage,
                Trigger::ContractTerminated,
                None,
                Utc::now(),
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let table = a.env.library_table("retention_events");
        for statement in [
            format!("UPDATE {table} SET at = at"),
            format!("DELETE FROM {table}"),
        ] {
            let result = a.env.raw_in_tenant(t, &statement).await;
            assert!(result.is_err(), "{name}: {statement} was allowed");
        }
    }
}

/// Records of answered requests go 24 months after the answer, with their history; open
/// requests and those of a held subject stay; and the database, not the caller's clock, has the
/// last word: until it recorded the answer 24 months ago, the deletion is refused.
#[tokio::test]
async fn answered_requests_are_swept_after_24_months_and_not_before() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let name = a.env.name();
        let storage = crate::fixtures::grant(t);
        let ops = Request::new(t, staff("privacy"));
        let rights = a.gate.grant(&ops, Purpose::RightsFulfilment).unwrap();
        let counsel = Request::new(t, staff("counsel"));
        let holds = a.gate.grant(&counsel, Purpose::LegalHold).unwrap();
        let schedule = RetentionSchedule::plenum_default();
        let t0 = Utc::now();
        let held_subject = SubjectId::generate();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let mut ids = Vec::new();
        for (subject, answer) in [
            (SubjectId::generate(), true),
            (SubjectId::generate(), false),
            (held_subject, true),
        ] {
            let r = SubjectRequest::received(
                t,
                subject,
                Right::Access,
                Requester::Subject,
                RequestChannel::Web,
                t0,
            );
            let id = a
                .records
                .receive_request(&mut tx, &rights, &r)
                .await
                .unwrap();
            if answer {
                a.records
                    .advance_request(
                        &mut tx,
                        &rights,
                        id,
                        Step::Refuse(RefusalReason::ManifestlyUnfounded),
                        t0,
                    )
                    .await
                    .unwrap();
            }
            ids.push(id);
        }
        a.records
            .place_legal_hold(
                &mut tx,
                &holds,
                HoldScope::Subject(held_subject),
                "case-3",
                t0,
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let later = t0.checked_add_months(Months::new(25)).unwrap();

        // The caller's clock says 25 months; the database recorded the answer just now.
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let refused = a
            .records
            .sweep_subject_requests(&mut tx, &storage, &schedule, later)
            .await;
        assert!(
            refused.is_err(),
            "{name}: deleted before the database's 24 months"
        );
        drop(tx);

        // 25 months pass for the database too (the steps' recording time moved back).
        match &a.env.db {
            Some(db) => {
                let su = db.superuser().await;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE plenum.subject_request_steps SET recorded_at = recorded_at - interval '25 months' \
                     WHERE tenant_id = '{t}'"
                )))
                .execute(&su)
                .await
                .unwrap();
                su.close().await;
            }
            None => {
                let mut tx = a.env.pool.begin(t).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP TRIGGER plenum_subject_request_steps_no_update; \
                     UPDATE plenum_subject_request_steps SET recorded_at = \
                     strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-25 months') WHERE tenant_id = x'{}'",
                    t.as_uuid().simple()
                )))
                .execute(tx.dangerous_sqlite().unwrap())
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
        }
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let swept = a
            .records
            .sweep_subject_requests(&mut tx, &storage, &schedule, later)
            .await
            .unwrap();
        assert_eq!(swept, [ids[0]], "{name}: the answered, unheld one");
        let err = a
            .records
            .subject_request(&mut tx, &rights, ids[0])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        for kept in &ids[1..] {
            a.records
                .subject_request(&mut tx, &rights, *kept)
                .await
                .unwrap();
        }
        // Idempotent: a second sweep finds nothing more to do.
        let again = a
            .records
            .sweep_subject_requests(&mut tx, &storage, &schedule, later)
            .await
            .unwrap();
        assert!(again.is_empty(), "{name}");
        tx.commit().await.unwrap();
    }
}

/// Financial records (invoices, `retention = "financial_records", counted_from = "due_on"`) go
/// seven years after their date, in batches that a crash can interrupt and a rerun finishes
/// without repeating anything; a legal hold on a record keeps it until lifted.
#[tokio::test]
async fn financial_records_are_swept_after_seven_years_in_resumable_batches() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let name = a.env.name();
        let storage = crate::fixtures::grant(t);
        let counsel = Request::new(t, staff("counsel"));
        let holds = a.gate.grant(&counsel, Purpose::LegalHold).unwrap();
        let schedule = RetentionSchedule::plenum_default();
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 0).unwrap();
        let c = crate::fixtures::customer(t, "ledger@example.com", "2175550142");
        let invoice = |y, m, d| plenum_hvac::Invoice {
            id: RecordId::generate(),
            tenant: t,
            subject: c.subject,
            customer_id: c.id,
            amount_cents: Encrypted::new(100),
            currency: "USD".to_owned(),
            due_on: chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap(),
            paid: true,
        };
        // Three past seven years (one held), one seven years less a day ago, one recent.
        let old = [
            invoice(2018, 5, 1),
            invoice(2019, 1, 1),
            invoice(2019, 12, 2),
        ];
        let young = [invoice(2019, 12, 3), invoice(2026, 11, 1)];
        let mut tx = a.env.pool.begin(t).await.unwrap();
        a.records
            .repository::<plenum_hvac::Customer>()
            .insert(&mut tx, &storage, &c)
            .await
            .unwrap();
        let all: Vec<_> = old.iter().chain(&young).cloned().collect();
        a.records
            .repository::<plenum_hvac::Invoice>()
            .insert_many(&mut tx, &storage, &all)
            .await
            .unwrap();
        let hold = a
            .records
            .place_legal_hold(
                &mut tx,
                &holds,
                HoldScope::Record(plenum::core::record_type!("invoices"), old[0].id),
                "audit-2026",
                now - Duration::days(1),
            )
            .await
            .unwrap();
        let p = a
            .records
            .retention_plan(&mut tx, &storage, &schedule, now)
            .await
            .unwrap();
        assert_eq!(
            item(&p, RetentionClass::FinancialRecords),
            (3, 1),
            "{name}: 3 due, 1 held"
        );
        tx.commit().await.unwrap();

        // A batch of one, then the process dies before the commit: nothing was lost.
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let first = a
            .records
            .sweep_records(&mut tx, &storage, &schedule, now, 1)
            .await
            .unwrap();
        assert_eq!(first, [("invoices".to_owned(), 1)], "{name}");
        drop(tx);
        let mut runs = Vec::new();
        loop {
            let mut tx = a.env.pool.begin(t).await.unwrap();
            let done = a
                .records
                .sweep_records(&mut tx, &storage, &schedule, now, 1)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            let n: u64 = done.iter().map(|(_, n)| n).sum();
            runs.push(n);
            if n == 0 || runs.len() > 5 {
                break;
            }
        }
        assert_eq!(
            runs,
            [1, 1, 0],
            "{name}: the two unheld old invoices, one per batch, then none"
        );
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let invoices = a.records.repository::<plenum_hvac::Invoice>();
        let left: Vec<RecordId> = invoices
            .list(&mut tx, &storage, None, 10)
            .await
            .unwrap()
            .items
            .iter()
            .map(|i| i.id)
            .collect();
        let mut expected = vec![old[0].id, young[0].id, young[1].id];
        expected.sort();
        let mut left_sorted = left.clone();
        left_sorted.sort();
        assert_eq!(
            left_sorted, expected,
            "{name}: the held one and the young ones stay"
        );
        a.records
            .lift_legal_hold(&mut tx, &holds, hold, now)
            .await
            .unwrap();
        let done = a
            .records
            .sweep_records(&mut tx, &storage, &schedule, now, 10)
            .await
            .unwrap();
        assert_eq!(
            done,
            [("invoices".to_owned(), 1)],
            "{name}: lifted, then swept"
        );
        tx.commit().await.unwrap();
    }
}

/// Tenant offboarding end to end: nothing before the contract's termination or during the
/// 30-day export window (in which the whole tenant exports), nothing under a tenant-wide hold;
/// then every row deleted and every key destroyed, another tenant untouched, and the tenant's
/// audit log still there with the offboarding on record.
#[tokio::test]
async fn a_terminated_tenant_exports_then_is_shredded_after_its_window() {
    for a in Audited::both().await {
        let (t, other) = (a.env.tenant().await, a.env.tenant().await);
        let name = a.env.name();
        let storage = crate::fixtures::grant(t);
        let counsel = Request::new(t, staff("counsel"));
        let holds = a.gate.grant(&counsel, Purpose::LegalHold).unwrap();
        let schedule = RetentionSchedule::plenum_default();
        let t0 = Utc::now();
        let customers = a.records.repository::<plenum_hvac::Customer>();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        for i in 0..3 {
            let c = crate::fixtures::customer(t, &format!("c{i}@example.com"), "2175550142");
            customers.insert(&mut tx, &storage, &c).await.unwrap();
            let p = crate::fixtures::property(&c);
            a.records
                .repository::<plenum_hvac::Property>()
                .insert(&mut tx, &storage, &p)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        let theirs = crate::fixtures::customer(other, "other@example.com", "2175550199");
        let mut tx = a.env.pool.begin(other).await.unwrap();
        customers
            .insert(&mut tx, &crate::fixtures::grant(other), &theirs)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let mut tx = a.env.pool.begin(t).await.unwrap();
        let err = a
            .records
            .offboard_tenant(&mut tx, &storage, &schedule, t0)
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidInput,
            "{name}: not terminated"
        );
        a.records
            .record_retention_event(&mut tx, &storage, Trigger::ContractTerminated, None, t0)
            .await
            .unwrap();
        let err = a
            .records
            .offboard_tenant(&mut tx, &storage, &schedule, t0 + Duration::days(29))
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidInput,
            "{name}: the export window is open"
        );
        // The window's export: every record of the tenant.
        let mut out = plenum::store::JsonExport::new(Vec::new());
        let summary = a
            .records
            .export_tenant(&mut tx, &storage, &mut out)
            .await
            .unwrap();
        assert!(
            summary.records.contains(&("customers".to_owned(), 3)),
            "{name}: {:?}",
            summary.records
        );
        assert!(summary.records.contains(&("properties".to_owned(), 3)));
        let export: serde_json::Value = serde_json::from_slice(&out.into_inner()).unwrap();
        assert_eq!(export["subject"], serde_json::Value::Null);
        let text = export.to_string();
        assert!(text.contains("c2@example.com") && !text.contains("other@example.com"));
        let hold = a
            .records
            .place_legal_hold(&mut tx, &holds, HoldScope::Tenant, "case-77", t0)
            .await
            .unwrap();
        let after = t0 + Duration::days(31);
        let err = a
            .records
            .offboard_tenant(&mut tx, &storage, &schedule, after)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Denied, "{name}: held");
        a.records
            .lift_legal_hold(&mut tx, &holds, hold, t0 + Duration::days(30))
            .await
            .unwrap();
        let done = a
            .records
            .offboard_tenant(&mut tx, &storage, &schedule, after)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(
            done.records.contains(&("customers".to_owned(), 3)),
            "{name}: {:?}",
            done.records
        );
        assert!(done.records.contains(&("properties".to_owned(), 3)));
        assert!(
            done.keys_destroyed >= 2,
            "{name}: data and index keys at least"
        );
        // The operator's log says which tenant went, once: the refused attempts left nothing
        // there (their refusals are in the tenant's own log).
        let platform = a.export(plenum::store::PLATFORM_LOG).await;
        let offboarded: Vec<&str> = platform
            .entries
            .iter()
            .filter_map(|e| e.body.as_deref())
            .filter(|b| b.contains("\"action\":\"tenant.offboard\""))
            .collect();
        assert_eq!(offboarded.len(), 1, "{name}: {offboarded:?}");
        assert!(
            offboarded[0].contains(&t.to_string()),
            "{name}: the platform log names the tenant"
        );

        let mut tx = a.env.pool.begin(t).await.unwrap();
        assert!(
            customers
                .list(&mut tx, &storage, None, 10)
                .await
                .unwrap()
                .items
                .is_empty()
        );
        tx.commit().await.unwrap();
        let mut tx = a.env.pool.begin(other).await.unwrap();
        let still = customers
            .get(&mut tx, &crate::fixtures::grant(other), theirs.id)
            .await
            .unwrap();
        assert_eq!(
            still.email.open().unwrap().expose(),
            "other@example.com",
            "{name}"
        );
        tx.commit().await.unwrap();
        let log = a.export(t).await;
        let text: String = log.entries.iter().filter_map(|e| e.body.clone()).collect();
        assert!(
            text.contains("\"action\":\"retention\""),
            "{name}: the offboarding is on record"
        );
    }
}

fn ping(t: TenantId, technician: SubjectId, at: DateTime<Utc>) -> plenum_hvac::LocationPing {
    plenum_hvac::LocationPing {
        id: RecordId::generate(),
        tenant: t,
        technician,
        recorded_at: at,
        latitude_micro: Encrypted::new(40_112_233),
        longitude_micro: Encrypted::new(-88_207_421),
    }
}

/// A closed account's holder keeps their data 30 days, then is erased as a request would erase
/// them (their rows by each record type's rule, their keys destroyed), once: a sweep whose
/// transaction is lost is redone, a finished one is not repeated, and a legal hold keeps its
/// subject until lifted.
#[tokio::test]
async fn closed_accounts_are_erased_thirty_days_on_once() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let name = a.env.name();
        let storage = crate::fixtures::grant(t);
        let counsel = Request::new(t, staff("counsel"));
        let holds = a.gate.grant(&counsel, Purpose::LegalHold).unwrap();
        let schedule = RetentionSchedule::plenum_default();
        let t0 = Utc::now();
        let (gone, held) = (SubjectId::generate(), SubjectId::generate());
        let pings = a.records.repository::<plenum_hvac::LocationPing>();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        pings
            .insert_many(
                &mut tx,
                &storage,
                &[ping(t, gone, t0), ping(t, gone, t0), ping(t, held, t0)],
            )
            .await
            .unwrap();
        for s in [gone, held] {
            a.records
                .record_retention_event(&mut tx, &storage, Trigger::AccountClosed, Some(s), t0)
                .await
                .unwrap();
        }
        let hold = a
            .records
            .place_legal_hold(&mut tx, &holds, HoldScope::Subject(held), "case-12", t0)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let at = |days: i64| t0 + Duration::days(days);

        let mut tx = a.env.pool.begin(t).await.unwrap();
        let early = a
            .records
            .sweep_closed_accounts(&mut tx, &storage, &schedule, at(29), 10)
            .await
            .unwrap();
        assert!(early.is_empty(), "{name}: day 29 keeps everything");
        // Day 31, and the sweep's transaction is lost: the keys are already destroyed (the
        // key store commits on its own), the rows are back.
        let lost = a
            .records
            .sweep_closed_accounts(&mut tx, &storage, &schedule, at(31), 10)
            .await
            .unwrap();
        assert_eq!(lost, [gone], "{name}: the held subject is skipped");
        drop(tx);
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let redone = a
            .records
            .sweep_closed_accounts(&mut tx, &storage, &schedule, at(31), 10)
            .await
            .unwrap();
        assert_eq!(redone, [gone], "{name}: the rows left behind are due again");
        tx.commit().await.unwrap();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let again = a
            .records
            .sweep_closed_accounts(&mut tx, &storage, &schedule, at(31), 10)
            .await
            .unwrap();
        assert!(
            again.is_empty(),
            "{name}: an erased subject is not due again"
        );
        let p = a
            .records
            .retention_plan(&mut tx, &storage, &schedule, at(31))
            .await
            .unwrap();
        assert_eq!(
            item(&p, RetentionClass::AccountData),
            (1, 1),
            "{name}: only the held subject is left"
        );
        let left: Vec<SubjectId> = pings
            .list(&mut tx, &storage, None, 10)
            .await
            .unwrap()
            .items
            .iter()
            .map(|p| p.technician)
            .collect();
        assert_eq!(
            left,
            [held],
            "{name}: the erased subject's pings are deleted"
        );
        a.records
            .lift_legal_hold(&mut tx, &holds, hold, at(31))
            .await
            .unwrap();
        let lifted = a
            .records
            .sweep_closed_accounts(&mut tx, &storage, &schedule, at(32), 10)
            .await
            .unwrap();
        assert_eq!(lifted, [held], "{name}: lifted, then erased");
        tx.commit().await.unwrap();
        let log = a.export(t).await;
        let erasures = log
            .entries
            .iter()
            .filter_map(|e| e.body.as_deref())
            .filter(|b| {
                b.contains("\"action\":\"retention\"") && b.contains("\"record_type\":\"keys\"")
            })
            .count();
        assert_eq!(
            erasures, 3,
            "{name}: each erasure (the lost one too: its keys went) is on record as retention"
        );
    }
}

/// Marketing profiles stay while the homeowner's consent to some marketing purpose is live
/// and go once it has ended for every one (withdrawn, or never given); a hold keeps them.
#[tokio::test]
async fn marketing_data_goes_when_marketing_consent_ends() {
    use plenum::consent::{ConsentEvent, EventKind};

    use crate::audit::evidence;
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let name = a.env.name();
        let storage = crate::fixtures::grant(t);
        let counsel = Request::new(t, staff("counsel"));
        let holds = a.gate.grant(&counsel, Purpose::LegalHold).unwrap();
        let schedule = RetentionSchedule::plenum_default();
        // Consenting, withdrawn, never asked, one channel of two withdrawn, withdrawn but held.
        let people: Vec<_> = (0..5)
            .map(|i| {
                crate::fixtures::customer(
                    t,
                    &format!("m{i}@example.com"),
                    &format!("21755501{i:02}"),
                )
            })
            .collect();
        let s = |i: usize| people[i].subject;
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let customers = a.records.repository::<plenum_hvac::Customer>();
        customers
            .insert_many(&mut tx, &storage, &people)
            .await
            .unwrap();
        let profiles: Vec<_> = people
            .iter()
            .map(|c| plenum_hvac::MarketingProfile {
                id: RecordId::generate(),
                tenant: t,
                subject: c.subject,
                customer_id: c.id,
                interests: Encrypted::new("heat pumps".to_owned()),
                recorded_at: Utc::now(),
            })
            .collect();
        let marketing = a.records.repository::<plenum_hvac::MarketingProfile>();
        marketing
            .insert_many(&mut tx, &storage, &profiles)
            .await
            .unwrap();
        let consent = |i: usize, kind, purpose| {
            if kind == EventKind::Given {
                ConsentEvent::given(s(i), purpose, evidence())
            } else {
                ConsentEvent::about(s(i), kind, purpose, evidence())
            }
        };
        let events = [
            consent(0, EventKind::Given, Purpose::MarketingEmail),
            consent(1, EventKind::Given, Purpose::MarketingEmail),
            consent(1, EventKind::Withdrawn, Purpose::MarketingEmail),
            consent(3, EventKind::Given, Purpose::MarketingEmail),
            consent(3, EventKind::Given, Purpose::MarketingSms),
            consent(3, EventKind::Withdrawn, Purpose::MarketingEmail),
            consent(4, EventKind::Given, Purpose::MarketingSms),
            consent(4, EventKind::Withdrawn, Purpose::MarketingSms),
        ];
        for e in &events {
            a.records
                .record_consent(&mut tx, &storage, e)
                .await
                .unwrap();
        }
        let now = Utc::now() + Duration::seconds(1);
        let hold = a
            .records
            .place_legal_hold(&mut tx, &holds, HoldScope::Subject(s(4)), "case-13", now)
            .await
            .unwrap();
        let p = a
            .records
            .retention_plan(&mut tx, &storage, &schedule, now)
            .await
            .unwrap();
        assert_eq!(
            item(&p, RetentionClass::MarketingData),
            (3, 1),
            "{name}: withdrawn, never asked and held are due; one held"
        );
        let done = a
            .records
            .sweep_marketing_data(&mut tx, &storage, &schedule, now, 1)
            .await
            .unwrap();
        assert_eq!(
            done,
            [("marketing_profiles".to_owned(), 1)],
            "{name}: a batch of one"
        );
        let done = a
            .records
            .sweep_marketing_data(&mut tx, &storage, &schedule, now, 10)
            .await
            .unwrap();
        assert_eq!(
            done,
            [("marketing_profiles".to_owned(), 1)],
            "{name}: the rest"
        );
        let done = a
            .records
            .sweep_marketing_data(&mut tx, &storage, &schedule, now, 10)
            .await
            .unwrap();
        assert_eq!(
            done,
            [("marketing_profiles".to_owned(), 0)],
            "{name}: then none"
        );
        let mut left: Vec<SubjectId> = marketing
            .list(&mut tx, &storage, None, 10)
            .await
            .unwrap()
            .items
            .iter()
            .map(|p| p.subject)
            .collect();
        left.sort();
        let mut kept = vec![s(0), s(3), s(4)];
        kept.sort();
        assert_eq!(
            left, kept,
            "{name}: live consent on a channel, or a hold, keeps a profile"
        );
        a.records
            .lift_legal_hold(&mut tx, &holds, hold, now)
            .await
            .unwrap();
        a.records
            .record_consent(
                &mut tx,
                &storage,
                &consent(0, EventKind::Withdrawn, Purpose::MarketingEmail),
            )
            .await
            .unwrap();
        let later = Utc::now() + Duration::seconds(2);
        let done = a
            .records
            .sweep_marketing_data(&mut tx, &storage, &schedule, later, 10)
            .await
            .unwrap();
        assert_eq!(
            done,
            [("marketing_profiles".to_owned(), 2)],
            "{name}: the unsubscribed and the no longer held"
        );
        tx.commit().await.unwrap();
    }
}
