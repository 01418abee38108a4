//! The audit log through the public API, on PostgreSQL (as the unprivileged runtime role) and
//! SQLite: one event per operation, written atomically with it, verifiable, tamper-evident,
//! retention-safe.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test fixtures: a failed set-up is a failed test"
)]

use std::sync::Arc;

use chrono::{Duration, Utc};
use plenum::audit::checkpoint::CheckpointSigner;
use plenum::audit::verify::{self, Export};
use plenum::audit::{ErrorKind as AuditErrorKind, Problem, Report, VerifierKey};
use plenum::consent::{ConsentEvent, Evidence, Method, Policy, Purpose};
use plenum::core::role;
use plenum::crypto::signing::SigningKey;
use plenum::prelude::*;
use plenum::store::{
    AuditLog, AuditSink, Auditor, Authorisation, BackendKind, DbLog, ErrorKind, Gate, MemorySink,
    Request,
};
use plenum_hvac::Customer;
use plenum_test::{CANARY_EMAIL, CANARY_PHONE, assert_no_canary};
use serde_json::Value;

use crate::fixtures::{Env, customer, keyring};

pub(crate) struct Audited {
    pub(crate) env: Env,
    pub(crate) records: Records,
    pub(crate) memory: Arc<MemorySink>,
    signer: CheckpointSigner,
    pub(crate) gate: Gate,
}

impl Audited {
    pub(crate) async fn both() -> [Self; 2] {
        let [pg, lite] = Env::both().await;
        [Self::new(pg), Self::new(lite)]
    }

    pub(crate) fn new(env: Env) -> Self {
        let memory = Arc::new(MemorySink::new());
        let keyring = keyring(&env.keys);
        let sinks: Vec<Arc<dyn AuditSink>> = vec![
            Arc::new(DbLog::keeping_refusals(env.pool.clone())),
            memory.clone(),
        ];
        let auditor = Auditor::with_sinks(keyring.clone(), "audit-tests", sinks).unwrap();
        let records =
            Records::new(keyring, Arc::new(auditor)).with_record_types(plenum_hvac::record_types());
        let gate = Gate::new(
            Policy::plenum_default(),
            Authorisation::new()
                .allow(role!("dispatcher"), [Purpose::Scheduling])
                .allow(role!("marketer"), [Purpose::MarketingEmail])
                .allow(role!("privacy"), [Purpose::RightsFulfilment])
                .allow(role!("counsel"), [Purpose::LegalHold])
                .allow(role!("security"), [Purpose::SecurityProtection]),
        );
        let signer = CheckpointSigner::new("plenum.audit.test", SigningKey::generate()).unwrap();
        Self {
            env,
            records,
            memory,
            signer,
            gate,
        }
    }

    fn name(&self) -> &'static str {
        self.env.name()
    }

    fn trusted(&self) -> Vec<VerifierKey> {
        vec![self.signer.verifier()]
    }

    pub(crate) async fn export(&self, t: TenantId) -> Export {
        let mut tx = self.env.pool.begin(t).await.unwrap();
        AuditLog::sequence(&mut tx).await.unwrap();
        let export = AuditLog::export(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
        export
    }

    pub(crate) async fn checkpoint(&self, t: TenantId) {
        let mut tx = self.env.pool.begin(t).await.unwrap();
        AuditLog::checkpoint(&mut tx, &self.signer).await.unwrap();
        tx.commit().await.unwrap();
    }

    async fn verify(&self, t: TenantId) -> Result<Report, plenum::audit::Error> {
        verify::verify_log(&self.export(t).await, &self.trusted())
    }

    /// `n` customers inserted one per transaction, then a checkpoint.
    pub(crate) async fn seeded(&self, n: usize) -> TenantId {
        let t = self.env.tenant().await;
        let office = Request::new(t, staff("dispatcher"));
        let grant = self.gate.grant(&office, Purpose::Scheduling).unwrap();
        let repo = self.records.repository::<Customer>();
        for i in 0..n {
            let mut tx = self.env.pool.begin(t).await.unwrap();
            let c = customer(t, &format!("c{i}@example.com"), "2175550142");
            repo.insert(&mut tx, &grant, &c).await.unwrap();
            tx.commit().await.unwrap();
        }
        self.checkpoint(t).await;
        t
    }

    /// Raw SQL with the library's guards off: PostgreSQL as the superuser with triggers
    /// disabled for the session; SQLite with the audit triggers dropped.
    async fn attacker(&self, sql: &str) {
        match &self.env.db {
            Some(db) => {
                let su = db.superuser().await;
                let sql = format!("SET session_replication_role = replica; {sql}");
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&su)
                    .await
                    .unwrap();
                su.close().await;
            }
            None => {
                let sql = format!(
                    "DROP TRIGGER IF EXISTS plenum_audit_log_no_delete; \
                     DROP TRIGGER IF EXISTS plenum_audit_log_append_only; \
                     DROP TRIGGER IF EXISTS plenum_audit_log_two_years; {}",
                    sql.replace("plenum.audit_log", "plenum_audit_log")
                );
                let mut tx = self.env.pool.begin(TenantId::generate()).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(tx.dangerous_sqlite().unwrap())
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        }
    }
}

pub(crate) fn staff(r: &str) -> Actor {
    Actor::new(ActorKind::AccountUser, ActorId::generate()).with_role(Role::new(r).unwrap())
}

pub(crate) fn evidence() -> Evidence {
    Evidence {
        notice_version: "privacy-2026-11".to_owned(),
        notice_sha256: [3; 32],
        method: Method::Ui,
        actor: ActorId::generate(),
        at: Utc::now(),
    }
}

fn bodies(export: &Export) -> Vec<Value> {
    export
        .entries
        .iter()
        .map(|e| serde_json::from_str(e.body.as_deref().unwrap()).unwrap())
        .collect()
}

fn uuid_literal(t: TenantId) -> String {
    format!("'{t}'")
}

fn problem(result: Result<Report, plenum::audit::Error>) -> Problem {
    match result {
        Err(plenum::audit::Error::Verification { problem, .. }) => problem,
        other => panic!("expected the verifier to fail, got {other:?}"),
    }
}

#[tokio::test]
async fn every_operation_yields_exactly_one_event_with_the_right_fields_and_no_values() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let office = Request::new(t, staff("dispatcher"));
        let marketer = Request::new(t, staff("marketer"));
        let officer = Request::new(t, staff("privacy"));
        let scheduling = a.gate.grant(&office, Purpose::Scheduling).unwrap();
        let marketing = a.gate.grant(&marketer, Purpose::MarketingEmail).unwrap();
        let rights = a.gate.grant(&officer, Purpose::RightsFulfilment).unwrap();
        let repo = a.records.repository::<Customer>();
        let c = customer(t, CANARY_EMAIL, CANARY_PHONE);
        let gone = customer(t, "gone@example.com", "2175550100");

        let mut tx = a.env.pool.begin(t).await.unwrap();
        repo.insert_many(&mut tx, &scheduling, &[c.clone(), gone.clone()])
            .await
            .unwrap();
        let mut loaded = repo.get(&mut tx, &scheduling, c.id).await.unwrap();
        repo.list(&mut tx, &scheduling, None, 10).await.unwrap();
        repo.find(&mut tx, &scheduling, Customer::EMAIL_INDEX, CANARY_EMAIL)
            .await
            .unwrap();
        repo.count(&mut tx, &scheduling).await.unwrap();
        loaded.phone.set("2175550199".to_owned());
        repo.update(&mut tx, &scheduling, &loaded).await.unwrap();
        // A denied attempt: marketing without consent.
        let denied = repo.get(&mut tx, &marketing, c.id).await.unwrap_err();
        assert_eq!(denied.kind(), ErrorKind::Denied);
        a.records
            .record_consent(
                &mut tx,
                &marketing,
                &ConsentEvent::given(c.subject, Purpose::MarketingEmail, evidence()),
            )
            .await
            .unwrap();
        repo.delete(&mut tx, &scheduling, gone.id).await.unwrap();
        tx.commit().await.unwrap();

        // Who accessed this customer's data, before erasure: every event naming them (numbered
        // first, so the answer carries sequence numbers).
        a.export(t).await;
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let about = AuditLog::events_about(&mut tx, a.records.keyring(), c.subject)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let seqs: Vec<Option<u64>> = about.iter().map(|(seq, _)| *seq).collect();
        let expected: Vec<Option<u64>> = [0, 1, 2, 3, 4, 6, 7, 8].into_iter().map(Some).collect();
        assert_eq!(seqs, expected, "{}", a.name());

        let mut tx = a.env.pool.begin(t).await.unwrap();
        a.records
            .erase_subject(&mut tx, &rights, c.subject)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let export = a.export(t).await;
        let events = bodies(&export);
        let actions: Vec<&str> = events
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            [
                "key.create",
                "insert",
                "read",
                "list",
                "search",
                "count",
                "update",
                "read",
                "consent.given",
                "delete",
                "erase"
            ],
            "{}",
            a.name()
        );
        assert_eq!(events[0]["subjects"]["refs"].as_array().unwrap().len(), 2);
        assert_eq!(events[0]["record_type"], "keys");
        let insert = &events[1];
        assert_eq!(insert["tenant"], t.to_string());
        assert_eq!(insert["service"], "audit-tests");
        assert_eq!(insert["actor"]["id"], office.actor().id().to_string());
        assert_eq!(insert["actor"]["roles"], serde_json::json!(["dispatcher"]));
        assert_eq!(insert["request"], office.id().to_string());
        assert_eq!(insert["purpose"]["key"], "service.scheduling");
        assert_eq!(insert["legal_basis"], "contract");
        assert_eq!(insert["policy"], "plenum-default-1");
        assert_eq!(insert["rows"], 2);
        assert_eq!(insert["subjects"]["refs"].as_array().unwrap().len(), 2);
        assert_eq!(
            insert["records"]["ids"],
            serde_json::json!([c.id.to_string(), gone.id.to_string()])
        );
        let categories: Vec<&str> = insert["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["category"].as_str().unwrap())
            .collect();
        assert!(categories.contains(&"user.contact.email"), "{categories:?}");
        assert_eq!(
            events[5]["fields"],
            serde_json::json!([]),
            "a count touches no field"
        );
        let update_fields: Vec<&str> = events[6]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert!(update_fields.contains(&"phone") && !update_fields.contains(&"email"));
        let refusal = &events[7];
        assert_eq!(refusal["outcome"]["status"], "denied");
        assert_eq!(refusal["outcome"]["detail"], "consent_missing");
        assert_eq!(refusal["purpose"]["key"], "marketing.email");
        assert_eq!(refusal["legal_basis"], "consent");
        assert_eq!(
            refusal["records"]["ids"],
            serde_json::json!([c.id.to_string()])
        );
        assert_eq!(events[8]["purpose"]["key"], "marketing.email");
        let same_subject = |i: usize| events[i]["subjects"]["refs"][0].clone();
        assert_eq!(
            same_subject(2),
            same_subject(8),
            "one pseudonym per subject"
        );
        assert_eq!(events[10]["purpose"]["key"], "compliance.rights_fulfilment");
        // The sinks saw the same events, in order.
        let seen: Vec<String> = a.memory.take().iter().map(|e| e.id.to_string()).collect();
        let logged: Vec<String> = events
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(seen, logged);
        // No value anywhere: not the canaries, not the name, not the address.
        let all: String = export
            .entries
            .iter()
            .filter_map(|e| e.body.clone())
            .collect();
        assert_no_canary("audit bodies", &all);
        for value in [
            "Ada Lovelace",
            "Furnace Lane",
            "2175550199",
            "gone@example.com",
        ] {
            assert!(!all.contains(value), "{}: {value} in the log", a.name());
        }

        // After erasure the subject's events can no longer be found by pseudonym.
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let about = AuditLog::events_about(&mut tx, a.records.keyring(), c.subject)
            .await
            .unwrap();
        assert!(about.is_empty(), "{}", a.name());
        // Reading the erased customer is recorded with the subject unlinked.
        repo.get(&mut tx, &scheduling, c.id).await.unwrap();
        tx.commit().await.unwrap();
        let last = bodies(&a.export(t).await).pop().unwrap();
        assert_eq!(last["subjects"]["refs"], serde_json::json!([]));
        assert_eq!(last["subjects"]["unlinked"], 1);

        // The whole log verifies, and one event can be proven on its own.
        a.checkpoint(t).await;
        let export = a.export(t).await;
        let report = verify::verify_log(&export, &a.trusted()).unwrap();
        assert_eq!((report.entries, report.covered), (12, 12), "{}", a.name());
        let proof = verify::prove_inclusion(&export, 7, 0, &a.trusted()).unwrap();
        let body = export.entries[7].body.as_deref();
        assert!(verify::verify_inclusion(&proof, body, &a.trusted()).is_ok());
        assert!(
            verify::verify_inclusion(&proof, export.entries[6].body.as_deref(), &a.trusted())
                .is_err()
        );
    }
}

#[tokio::test]
async fn key_operations_are_audited_and_need_their_purpose() {
    for a in Audited::both().await {
        let t = a.seeded(1).await;
        let (office, security) = (
            Request::new(t, staff("dispatcher")),
            Request::new(t, staff("security")),
        );
        let scheduling = a.gate.grant(&office, Purpose::Scheduling).unwrap();
        let protection = a
            .gate
            .grant(&security, Purpose::SecurityProtection)
            .unwrap();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let rotated = a
            .records
            .rotate_key(&mut tx, &protection, plenum::crypto::KeyScope::TenantIndex)
            .await
            .unwrap();
        assert_eq!(rotated.version, 2, "{}", a.name());
        let epoch = a
            .records
            .advance_erasure_epoch(&mut tx, &protection)
            .await
            .unwrap();
        assert_eq!(epoch.active, 2, "{}", a.name());
        assert_eq!(
            a.records
                .advance_erasure_epoch(&mut tx, &scheduling)
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::Denied
        );
        let err = a
            .records
            .rotate_key(&mut tx, &scheduling, plenum::crypto::KeyScope::TenantIndex)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Denied);
        let err = a
            .records
            .erase_subject(&mut tx, &scheduling, SubjectId::generate())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("erasure_needs_rights_fulfilment"),
            "{err}"
        );
        tx.commit().await.unwrap();
        let events = bodies(&a.export(t).await);
        let tail: Vec<(&str, &str)> = events[2..]
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap(),
                    e["outcome"]["status"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            tail,
            [
                ("key.rotate", "success"),
                ("key.rotate", "success"),
                ("key.rotate", "denied"),
                ("key.rotate", "denied"),
                ("erase", "denied")
            ],
            "{}",
            a.name()
        );
        assert_eq!(events[2]["purpose"]["key"], "security.protection");
        assert_eq!(events[2]["subjects"]["refs"], serde_json::json!([]));
    }
}

#[tokio::test]
async fn refused_and_failed_attempts_stay_recorded_when_the_caller_rolls_back() {
    let a = Audited::new(Env::postgres().await);
    let t = a.seeded(1).await;
    let (office, marketer) = (
        Request::new(t, staff("dispatcher")),
        Request::new(t, staff("marketer")),
    );
    let scheduling = a.gate.grant(&office, Purpose::Scheduling).unwrap();
    let marketing = a.gate.grant(&marketer, Purpose::MarketingEmail).unwrap();
    let repo = a.records.repository::<Customer>();
    let mut tx = a.env.pool.begin(t).await.unwrap();
    let id = repo
        .list(&mut tx, &scheduling, None, 1)
        .await
        .unwrap()
        .items[0]
        .id;
    tx.commit().await.unwrap();
    // A refusal, then the caller's `?` drops the transaction.
    let mut tx = a.env.pool.begin(t).await.unwrap();
    let err = repo.get(&mut tx, &marketing, id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Denied);
    tx.rollback().await.unwrap();
    // A failure that aborts the PostgreSQL transaction (a duplicate email).
    let mut tx = a.env.pool.begin(t).await.unwrap();
    let dup = customer(t, "c0@example.com", "2175550142");
    let err = repo.insert(&mut tx, &scheduling, &dup).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    drop(tx);
    let events = bodies(&a.export(t).await);
    let tail: Vec<(&str, &str, &str)> = events[3..]
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["outcome"]["status"].as_str().unwrap(),
                e["outcome"]["detail"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        tail,
        [
            ("read", "denied", "consent_missing"),
            ("insert", "failed", "conflict")
        ]
    );
    a.checkpoint(t).await;
    assert!(a.verify(t).await.is_ok());
}

/// How many events of `action` with outcome `status` the tenant's log holds, polled for up to
/// five seconds (a dropped transaction's events are written by a spawned task).
async fn eventually(a: &Audited, t: TenantId, action: &str, status: &str, want: usize) -> usize {
    let mut seen = 0;
    for _ in 0..50 {
        seen = bodies(&a.export(t).await)
            .iter()
            .filter(|e| e["action"] == action && e["outcome"]["status"] == status)
            .count();
        if seen >= want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    seen
}

/// Terminates the backend serving `tx` from a superuser session, as an operator or a crash
/// would.
async fn kill_backend(db: &plenum_test::pg::TestDb, tx: &mut TenantTx) {
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(tx.dangerous_postgres().unwrap())
        .await
        .unwrap();
    let su = db.superuser().await;
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&su)
        .await
        .unwrap();
    assert!(killed);
}

/// Asserts the log holds `reads` successful reads (after `what`).
async fn assert_reads(a: &Audited, t: TenantId, reads: usize, what: &str) {
    assert_eq!(
        eventually(a, t, "read", "success", reads).await,
        reads,
        "{}: {what}",
        a.name()
    );
}

/// A read whose data reached the caller is on record whatever the caller then does with its
/// transaction: rolls it back, drops it, panics with it, or loses its connection so that the
/// commit fails. On SQLite too, and for a refusal (which SQLite used to lose on rollback).
#[tokio::test]
async fn a_read_stays_recorded_whatever_the_caller_does_with_its_transaction() {
    for a in Audited::both().await {
        let t = a.seeded(1).await;
        let office = Request::new(t, staff("dispatcher"));
        let marketer = Request::new(t, staff("marketer"));
        let grant = a.gate.grant(&office, Purpose::Scheduling).unwrap();
        let marketing = a.gate.grant(&marketer, Purpose::MarketingEmail).unwrap();
        let repo = a.records.repository::<Customer>();
        let id = {
            let mut tx = a.env.pool.begin(t).await.unwrap();
            let id = repo.list(&mut tx, &grant, None, 1).await.unwrap().items[0].id;
            tx.commit().await.unwrap();
            id
        };
        let mut reads = 0;

        // Rolled back.
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let c = repo.get(&mut tx, &grant, id).await.unwrap();
        assert!(c.phone.open().is_ok(), "the plaintext reached the caller");
        tx.rollback().await.unwrap();
        reads += 1;
        assert_reads(&a, t, reads, "rollback").await;

        // Dropped (an early return, a `?`).
        let mut tx = a.env.pool.begin(t).await.unwrap();
        repo.get(&mut tx, &grant, id).await.unwrap();
        drop(tx);
        reads += 1;
        assert_reads(&a, t, reads, "drop").await;

        // A panic unwinding through the transaction, in a task of its own.
        let (pool, records) = (a.env.pool.clone(), a.records.clone());
        let gate = a.gate.clone();
        let panicked = tokio::spawn(async move {
            let office = Request::new(t, staff("dispatcher"));
            let grant = gate.grant(&office, Purpose::Scheduling).unwrap();
            let mut tx = pool.begin(t).await.unwrap();
            let c = records
                .repository::<Customer>()
                .get(&mut tx, &grant, id)
                .await
                .unwrap();
            if c.id == id {
                panic!("a handler panics holding the plaintext");
            }
        })
        .await;
        assert!(panicked.unwrap_err().is_panic());
        reads += 1;
        assert_reads(&a, t, reads, "panic").await;

        // A refusal, then a rollback.
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let err = repo.get(&mut tx, &marketing, id).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Denied);
        tx.rollback().await.unwrap();
        assert_eq!(
            eventually(&a, t, "read", "denied", 1).await,
            1,
            "{}: refusal",
            a.name()
        );

        // The connection killed after the read: the commit fails.
        if let Some(db) = &a.env.db {
            let mut tx = a.env.pool.begin(t).await.unwrap();
            repo.get(&mut tx, &grant, id).await.unwrap();
            kill_backend(db, &mut tx).await;
            assert!(tx.commit().await.is_err(), "the connection is gone");
            reads += 1;
            assert_reads(&a, t, reads, "killed").await;
        }

        // Committed reads are recorded once, not twice.
        let mut tx = a.env.pool.begin(t).await.unwrap();
        repo.get(&mut tx, &grant, id).await.unwrap();
        tx.commit().await.unwrap();
        reads += 1;
        assert_reads(&a, t, reads, "commit").await;
        a.checkpoint(t).await;
        let report = a.verify(t).await.unwrap();
        assert_eq!(report.entries, report.covered, "{}", a.name());
    }
}

#[tokio::test]
async fn a_rolled_back_write_leaves_no_event_and_no_gap() {
    for a in Audited::both().await {
        let t = a.seeded(2).await;
        let office = Request::new(t, staff("dispatcher"));
        let grant = a.gate.grant(&office, Purpose::Scheduling).unwrap();
        let repo = a.records.repository::<Customer>();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        repo.insert(
            &mut tx,
            &grant,
            &customer(t, "rolled@example.com", "2175550142"),
        )
        .await
        .unwrap();
        tx.rollback().await.unwrap();
        // Two customers seeded: a key event and an insert event each. The rolled-back insert
        // leaves no insert event; the key it created committed on its own, and so does its
        // event (on PostgreSQL at once, on SQLite once the caller's transaction ends).
        let events = bodies(&a.export(t).await);
        let actions: Vec<&str> = events
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        let expected = vec!["key.create", "insert", "key.create", "insert", "key.create"];
        assert_eq!(actions, expected, "{}", a.name());
        let mut tx = a.env.pool.begin(t).await.unwrap();
        repo.count(&mut tx, &grant).await.unwrap();
        tx.commit().await.unwrap();
        a.checkpoint(t).await;
        let report = a.verify(t).await.unwrap();
        assert_eq!(
            report.entries, 6,
            "no number was used by the rolled-back insert"
        );
    }
}

#[tokio::test]
async fn a_failing_audit_write_fails_the_read() {
    for a in Audited::both().await {
        let t = a.seeded(1).await;
        let office = Request::new(t, staff("dispatcher"));
        let grant = a.gate.grant(&office, Purpose::Scheduling).unwrap();
        let repo = a.records.repository::<Customer>();
        let id = {
            let mut tx = a.env.pool.begin(t).await.unwrap();
            let page = repo.list(&mut tx, &grant, None, 1).await.unwrap();
            tx.commit().await.unwrap();
            page.items[0].id
        };
        // The audit table stops accepting rows (a full disk, a revoked grant, a broken sink).
        match &a.env.db {
            Some(db) => {
                db.as_owner(&[
                    "CREATE FUNCTION plenum.refuse() RETURNS trigger LANGUAGE plpgsql \
                     AS $$ BEGIN RAISE EXCEPTION 'audit storage unavailable'; END $$",
                    "CREATE TRIGGER refuse BEFORE INSERT ON plenum.audit_log \
                     FOR EACH ROW EXECUTE FUNCTION plenum.refuse()",
                ])
                .await;
            }
            None => {
                let mut tx = a.env.pool.begin(t).await.unwrap();
                sqlx::query(
                    "CREATE TRIGGER refuse BEFORE INSERT ON plenum_audit_log \
                     BEGIN SELECT RAISE(ABORT, 'audit storage unavailable'); END",
                )
                .execute(tx.dangerous_sqlite().unwrap())
                .await
                .unwrap();
                tx.commit().await.unwrap();
            }
        }
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let err = repo.get(&mut tx, &grant, id).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Audit, "{}: {err}", a.name());
        drop(tx);
        let mut tx = a.env.pool.begin(t).await.unwrap();
        assert!(repo.list(&mut tx, &grant, None, 10).await.is_err());
    }
}

#[tokio::test]
async fn killing_the_connection_mid_transaction_leaves_neither_access_nor_event() {
    let a = Audited::new(Env::postgres().await);
    let t = a.seeded(1).await;
    let office = Request::new(t, staff("dispatcher"));
    let grant = a.gate.grant(&office, Purpose::Scheduling).unwrap();
    let repo = a.records.repository::<Customer>();
    let c = customer(t, "killed@example.com", "2175550142");
    let mut tx = a.env.pool.begin(t).await.unwrap();
    repo.insert(&mut tx, &grant, &c).await.unwrap();
    kill_backend(a.env.db.as_ref().unwrap(), &mut tx).await;
    assert!(tx.commit().await.is_err(), "the connection is gone");
    let export = a.export(t).await;
    assert_eq!(
        bodies(&export).last().unwrap()["action"],
        "key.create",
        "the new subject's key committed on its own, and so did its event"
    );
    assert_eq!(
        export.entries.len(),
        3,
        "the seeding key event and insert, and the killed insert's key event"
    );
    let mut tx = a.env.pool.begin(t).await.unwrap();
    let err = repo.get(&mut tx, &grant, c.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    tx.commit().await.unwrap();
    a.checkpoint(t).await;
    assert!(a.verify(t).await.is_ok());
}

#[tokio::test]
async fn tampering_in_the_database_is_detected() {
    for a in Audited::both().await {
        let cases: [(&str, &str, Problem); 5] = [
            (
                "modify",
                "UPDATE plenum.audit_log SET body = replace(body, '\"insert\"', '\"list\"') \
                 WHERE tenant_id = {t} AND seq = 1",
                Problem::LeafHash,
            ),
            (
                "delete",
                "DELETE FROM plenum.audit_log WHERE tenant_id = {t} AND seq = 1",
                Problem::Sequence,
            ),
            (
                "truncate",
                "DELETE FROM plenum.audit_log WHERE tenant_id = {t} AND seq >= 2",
                Problem::Truncated,
            ),
            (
                "reorder",
                "UPDATE plenum.audit_log SET seq = 100 WHERE tenant_id = {t} AND seq = 0; \
                 UPDATE plenum.audit_log SET seq = 0 WHERE tenant_id = {t} AND seq = 1; \
                 UPDATE plenum.audit_log SET seq = 1 WHERE tenant_id = {t} AND seq = 100",
                Problem::Root,
            ),
            (
                "insert",
                "UPDATE plenum.audit_log SET seq = seq + 1000 WHERE tenant_id = {t} AND seq >= 3; \
                 UPDATE plenum.audit_log SET seq = seq - 999 WHERE tenant_id = {t} AND seq >= 1000; \
                 INSERT INTO plenum.audit_log (tenant_id, seq, event_id, at, leaf_hash, body) \
                 SELECT tenant_id, 3, event_id, at, leaf_hash, body FROM plenum.audit_log \
                 WHERE tenant_id = {t} AND seq = 2",
                Problem::DuplicateEvent,
            ),
        ];
        for (what, sql, expected) in cases {
            let t = a.seeded(4).await;
            assert!(a.verify(t).await.is_ok());
            let literal = match a.env.pool.backend() {
                BackendKind::Postgres => uuid_literal(t),
                _ => format!("X'{}'", t.as_uuid().simple()),
            };
            let sql = sql.replace("{t}", &literal);
            a.attacker(&sql).await;
            let found = problem(a.verify(t).await);
            if what == "insert" {
                // An inserted duplicate is caught either as a broken root or, here, as the
                // signed size being exceeded.
                assert!(
                    matches!(
                        found,
                        Problem::Truncated | Problem::Root | Problem::DuplicateEvent
                    ),
                    "{}: {what}: {found:?}",
                    a.name()
                );
            } else {
                assert_eq!(found, expected, "{}: {what}", a.name());
            }
        }
    }
}

#[tokio::test]
async fn checkpoints_are_issued_when_idle_and_bodies_expire_without_breaking_the_log() {
    let a = Audited::new(Env::postgres().await);
    let t = a.seeded(6).await;
    // Idle: nothing happened, yet a fresh checkpoint shows the logger is alive (the timer's
    // round over every tenant).
    let round = AuditLog::checkpoint_all(&a.env.pool, &a.signer, &[t]).await;
    assert!(round.iter().all(|(_, r)| r.is_ok()));
    let export = a.export(t).await;
    assert_eq!(export.checkpoints.len(), 2);
    let report = verify::verify_log(&export, &a.trusted()).unwrap();
    assert_eq!((report.checkpoints, report.covered), (2, 12));

    // The runtime role cannot rewrite or delete the log, nor expire young bodies.
    let mut tx = a.env.pool.begin(t).await.unwrap();
    for sql in [
        "UPDATE plenum.audit_log SET body = '{}' WHERE seq = 0",
        "DELETE FROM plenum.audit_log WHERE seq = 0",
        "UPDATE plenum.audit_heads SET size = 0",
        "DELETE FROM plenum.audit_checkpoints",
    ] {
        let mut sp = a.env.pool.begin(t).await.unwrap();
        let refused = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(sp.dangerous_postgres().unwrap())
            .await;
        assert!(refused.is_err(), "{sql} was allowed");
        drop(sp);
    }
    let err = AuditLog::expire_bodies(&mut tx, Utc::now())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Audit, "{err}");
    drop(tx);

    // Two years pass for the first three events.
    a.attacker(&format!(
        "UPDATE plenum.audit_log SET recorded_at = now() - interval '3 years' \
         WHERE tenant_id = {} AND seq < 3",
        uuid_literal(t)
    ))
    .await;
    let mut tx = a.env.pool.begin(t).await.unwrap();
    let expired = AuditLog::expire_bodies(&mut tx, Utc::now() - Duration::days(2 * 365))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(expired, 3);
    let export = a.export(t).await;
    assert!(export.entries[..3].iter().all(|e| e.body.is_none()));
    let report = verify::verify_log(&export, &a.trusted()).unwrap();
    assert_eq!((report.entries, report.bodies), (12, 9));
    write_interop_files(&a, &export);
}

#[tokio::test]
async fn forged_checkpoint_rows_and_body_less_events_get_nowhere() {
    let a = Audited::new(Env::postgres().await);
    let t = a.seeded(2).await;
    let mut tx = a.env.pool.begin(t).await.unwrap();
    // The runtime role cannot append an event without a body (one it could never be held to).
    let bodiless = sqlx::query(
        "INSERT INTO plenum.audit_log (tenant_id, event_id, at, leaf_hash) \
         VALUES ($1, gen_random_uuid(), now(), decode(repeat('00', 32), 'hex'))",
    )
    .bind(t.as_uuid())
    .execute(tx.dangerous_postgres().unwrap())
    .await;
    assert!(bodiless.is_err());
    drop(tx);
    // It can insert a checkpoint row: a forged note, a made-up frontier, a time far ahead.
    let mut tx = a.env.pool.begin(t).await.unwrap();
    sqlx::query(
        "INSERT INTO plenum.audit_checkpoints (tenant_id, size, issued_at, note, frontier) \
         VALUES ($1, 4, now() + interval '10 years', 'forged', decode(repeat('ab', 32), 'hex'))",
    )
    .bind(t.as_uuid())
    .execute(tx.dangerous_postgres().unwrap())
    .await
    .unwrap();
    tx.commit().await.unwrap();
    // The next checkpoint ignores it: the right root, signed at the right time.
    a.checkpoint(t).await;
    let export = a.export(t).await;
    assert!(
        verify::verify_log(&export, &a.trusted()).is_err(),
        "the forged note is refused"
    );
    let mut genuine = export.clone();
    genuine.checkpoints.retain(|n| n != "forged");
    let report = verify::verify_log(&genuine, &a.trusted()).unwrap();
    assert_eq!((report.covered, report.checkpoints), (4, 2));
    let last =
        plenum::audit::checkpoint::open(genuine.checkpoints.last().unwrap(), &a.trusted()).unwrap();
    assert!(
        last.time <= Utc::now().timestamp() + 1,
        "not dated into the future"
    );
}

#[tokio::test]
async fn every_admin_transaction_lands_in_the_platform_log() {
    use plenum::store::PLATFORM_LOG;
    use plenum::store::postgres::{AdminPool, AdminPurpose, AdminReason, PgPoolConfig};
    let a = Audited::new(Env::postgres().await);
    let db = a.env.db.as_ref().unwrap();
    let admin = AdminPool::connect(&db.url(&db.roles.admin()), &PgPoolConfig::default())
        .await
        .unwrap();
    let support = Actor::new(ActorKind::Support, ActorId::generate()).with_role(role!("support"));
    let reason = AdminReason::with_reference(AdminPurpose::SupportRequest, "SUP-1234").unwrap();
    let tx = admin.begin(&support, &reason).await.unwrap();
    let committed = tx.audit_id();
    tx.commit().await.unwrap();
    let rolled_back = admin
        .begin(&support, &AdminReason::new(AdminPurpose::Maintenance))
        .await
        .unwrap();
    let dropped = rolled_back.audit_id();
    drop(rolled_back);
    // The platform log is sequenced, checkpointed and verified like any tenant's.
    let round = AuditLog::checkpoint_all(&a.env.pool, &a.signer, &[PLATFORM_LOG]).await;
    assert!(round.iter().all(|(_, r)| r.is_ok()), "{round:?}");
    let export = a.export(PLATFORM_LOG).await;
    assert!(verify::verify_log(&export, &a.trusted()).is_ok());
    let events = bodies(&export);
    // Both sessions are in the log: the event is committed before the session reads anything,
    // so rolling the reading transaction back does not take it along.
    assert_eq!(
        events.len(),
        2,
        "a rolled-back admin session stays recorded"
    );
    assert_eq!(
        events[1]["records"]["ids"],
        serde_json::json!([dropped.to_string()])
    );
    assert_eq!(events[1]["unrestricted"], "maintenance");
    let e = &events[0];
    assert_eq!(e["action"], "admin.transaction");
    assert_eq!(e["actor"]["kind"], "support");
    assert_eq!(e["actor"]["id"], support.id().to_string());
    assert_eq!(e["unrestricted"], "support_request SUP-1234");
    assert_eq!(
        e["records"]["ids"],
        serde_json::json!([committed.to_string()])
    );
    // The admin role can append to the platform log only.
    let raw = db.raw_pool(&db.roles.admin(), 1).await;
    let other = sqlx::query(
        "INSERT INTO plenum.audit_log (tenant_id, event_id, at, leaf_hash, body) \
         VALUES ($1, gen_random_uuid(), now(), decode(repeat('00', 32), 'hex'), '{}')",
    )
    .bind(a.env.tenant().await.as_uuid())
    .execute(&raw)
    .await;
    assert!(other.is_err());
}

#[tokio::test]
async fn one_hot_tenant_gets_gapless_sequence_numbers_under_concurrency() {
    let a = Arc::new(Audited::new(Env::postgres().await));
    let t = a.env.tenant().await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            let office = Request::new(t, staff("dispatcher"));
            let grant = a.gate.grant(&office, Purpose::Scheduling).unwrap();
            let repo = a.records.repository::<Customer>();
            for _ in 0..15 {
                let mut tx = a.env.pool.begin(t).await.unwrap();
                repo.count(&mut tx, &grant).await.unwrap();
                tx.commit().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    a.checkpoint(t).await;
    let report = a.verify(t).await.unwrap();
    assert_eq!((report.entries, report.covered), (120, 120));
}

#[tokio::test]
async fn an_open_transaction_does_not_hold_up_its_tenants_other_requests() {
    let a = Audited::new(Env::postgres().await);
    let t = a.seeded(1).await;
    let office = Request::new(t, staff("dispatcher"));
    let grant = a.gate.grant(&office, Purpose::Scheduling).unwrap();
    let repo = a.records.repository::<Customer>();
    // A request that reads (its event appended) and then dawdles without committing.
    let mut slow = a.env.pool.begin(t).await.unwrap();
    repo.count(&mut slow, &grant).await.unwrap();
    // Another request of the same tenant is audited and commits meanwhile.
    let other = async {
        let mut tx = a.env.pool.begin(t).await.unwrap();
        repo.count(&mut tx, &grant).await.unwrap();
        tx.commit().await.unwrap();
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), other)
        .await
        .expect("the second request waited for the first");
    a.checkpoint(t).await;
    assert_eq!(
        a.verify(t).await.unwrap().entries,
        3,
        "the open one is not numbered yet"
    );
    slow.commit().await.unwrap();
    a.checkpoint(t).await;
    let report = a.verify(t).await.unwrap();
    assert_eq!((report.entries, report.covered), (4, 4));
}

/// Leaves a verified export, a tampered copy and the verifier key where `.ci/interop.sh` runs
/// the independent Python verifier over them.
fn write_interop_files(a: &Audited, export: &Export) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/audit-interop");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("export.json"),
        serde_json::to_string_pretty(export).unwrap(),
    )
    .unwrap();
    let mut tampered = export.clone();
    let body = tampered.entries[9].body.take().unwrap();
    tampered.entries[9].body = Some(body.replacen("\"success\"", "\"denied\"", 1));
    std::fs::write(
        dir.join("tampered.json"),
        serde_json::to_string_pretty(&tampered).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("key.txt"), format!("{}\n", a.signer.verifier())).unwrap();
    assert_eq!(
        verify::verify_log(&tampered, &a.trusted())
            .unwrap_err()
            .kind(),
        AuditErrorKind::Tampered
    );
}
