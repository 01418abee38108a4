//! The subject export (access and portability) through the public API, on PostgreSQL (as the
//! runtime role) and SQLite: every record of the subject in every registered record type with
//! its fields opened, the purposes, retention, consent history and access log; JSON parsed back
//! and compared with what was inserted; CSV through an independent reader; only under
//! `compliance.rights_fulfilment`; an unknown subject gets an empty export.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test fixtures: a failed set-up is a failed test"
)]

use chrono::NaiveDate;
use plenum::consent::{ConsentEvent, Purpose};
use plenum::prelude::*;
use plenum::store::{CsvExport, DbKeyStore, DiscardAccess, ErrorKind, JsonExport, Request};
use plenum_hvac::{Customer, Invoice, Property};
use serde_json::Value;

use crate::audit::{Audited, evidence, staff};
use crate::fixtures::{customer, grant, property};

fn invoice(c: &Customer, cents: i64) -> Invoice {
    Invoice {
        id: RecordId::generate(),
        tenant: c.tenant,
        subject: c.subject,
        customer_id: c.id,
        amount_cents: Encrypted::new(cents),
        currency: "USD".to_owned(),
        due_on: NaiveDate::from_ymd_opt(2026, 12, 15).unwrap(),
        paid: false,
    }
}

/// A customer with a property, two invoices and a marketing consent, read once by a
/// dispatcher: what the export must hold.
async fn seeded(a: &Audited) -> (TenantId, Customer, Property, Vec<Invoice>) {
    let t = a.env.tenant().await;
    let c = customer(t, "ada@example.com", "2175550142");
    let p = property(&c);
    let invoices = vec![invoice(&c, 12_950), invoice(&c, 4_000)];
    let mut tx = a.env.pool.begin(t).await.unwrap();
    let g = grant(t);
    a.records
        .repository::<Customer>()
        .insert(&mut tx, &g, &c)
        .await
        .unwrap();
    a.records
        .repository::<Property>()
        .insert(&mut tx, &g, &p)
        .await
        .unwrap();
    a.records
        .repository::<Invoice>()
        .insert_many(&mut tx, &g, &invoices)
        .await
        .unwrap();
    a.records
        .record_consent(
            &mut tx,
            &g,
            &ConsentEvent::given(c.subject, Purpose::MarketingEmail, evidence()),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let dispatcher = Request::new(t, staff("dispatcher"));
    let scheduling = a.gate.grant(&dispatcher, Purpose::Scheduling).unwrap();
    let mut tx = a.env.pool.begin(t).await.unwrap();
    a.records
        .repository::<Customer>()
        .get(&mut tx, &scheduling, c.id)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (t, c, p, invoices)
}

async fn export_json(a: &Audited, t: TenantId, subject: SubjectId) -> Value {
    let officer = Request::new(t, staff("privacy"));
    let rights = a.gate.grant(&officer, Purpose::RightsFulfilment).unwrap();
    let mut out = JsonExport::new(Vec::new());
    let mut tx = a.env.pool.begin(t).await.unwrap();
    a.records
        .export_subject(&mut tx, &rights, subject, &mut out)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    serde_json::from_slice(&out.into_inner()).expect("the export is one JSON document")
}

fn records_of<'v>(export: &'v Value, record_type: &str) -> &'v Vec<Value> {
    export["record_types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["record_type"] == record_type)
        .unwrap_or_else(|| panic!("no {record_type} in the export"))["records"]
        .as_array()
        .unwrap()
}

/// The JSON export holds every field of every record of the subject, opened, and parses back
/// into exactly what was inserted; plus purposes, retention, consent with evidence and the
/// access log.
#[tokio::test]
async fn the_json_export_round_trips_every_record_of_the_subject() {
    for a in Audited::both().await {
        let (t, c, p, invoices) = seeded(&a).await;
        // Someone else in the same tenant: never in this subject's export.
        let other = customer(t, "grace@example.com", "2175550199");
        let mut tx = a.env.pool.begin(t).await.unwrap();
        a.records
            .repository::<Customer>()
            .insert(&mut tx, &grant(t), &other)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let export = export_json(&a, t, c.subject).await;
        let name = a.env.name();
        assert_eq!(export["format"], "plenum.subject-export", "{name}");
        assert_eq!(export["version"], 1);
        assert_eq!(export["subject"], c.subject.to_string());

        let customers = records_of(&export, "customers");
        assert_eq!(customers.len(), 1, "{name}: only this subject's customer");
        let f = &customers[0]["fields"];
        assert_eq!(customers[0]["id"], c.id.to_string());
        assert_eq!(f["name"], "Ada Lovelace");
        assert_eq!(f["email"], "ada@example.com");
        assert_eq!(f["phone"], "2175550142");
        assert_eq!(f["service_address"], "12 Furnace Lane, Springfield");
        assert_eq!(f["created_at"], "2026-11-27T09:30:00.000000Z");
        let properties = records_of(&export, "properties");
        assert_eq!(properties[0]["fields"]["address"], "12 Furnace Lane");
        assert_eq!(properties[0]["fields"]["square_feet"], 1850);
        assert_eq!(properties[0]["id"], p.id.to_string());
        let mut amounts: Vec<i64> = records_of(&export, "invoices")
            .iter()
            .map(|i| i["fields"]["amount_cents"].as_i64().unwrap())
            .collect();
        amounts.sort_unstable();
        assert_eq!(
            amounts,
            [4_000, 12_950],
            "{name}: tenant-key fields opened too"
        );
        assert_eq!(invoices.len(), 2);

        let marketing = export["purposes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["purpose"] == "marketing.email")
            .unwrap();
        assert_eq!(marketing["applies"], true, "{name}: consent given");
        assert_eq!(marketing["legal_basis"], "consent");
        let invoices_rule = export["retention"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["record_type"] == "invoices")
            .unwrap();
        assert_eq!(invoices_rule["on_erasure"], "retain");
        assert_eq!(invoices_rule["ground"], "legal_obligation");
        assert_eq!(invoices_rule["class"], "financial_records");
        assert_eq!(invoices_rule["kept_for"], "7 years");
        assert_eq!(invoices_rule["counted_from"], "due_on");
        let customers_rule = export["retention"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["record_type"] == "customers")
            .unwrap();
        assert_eq!(customers_rule["class"], "tenant_business_data");
        assert_eq!(customers_rule["counted_from"], "contract_terminated");
        let consent = export["consent"].as_array().unwrap();
        assert_eq!(consent.len(), 1);
        assert_eq!(consent[0]["kind"], "given");
        assert_eq!(consent[0]["notice_version"], "privacy-2026-11");
        let reads: Vec<&Value> = export["access_log"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "read" && e["actor_role"] == "dispatcher")
            .collect();
        assert_eq!(reads.len(), 1, "{name}: the dispatcher's read is listed");
        assert_eq!(reads[0]["purpose"], "service.scheduling");
    }
}

/// The CSV export: one file per record type and section, read back by the `csv` crate's
/// reader with headers, the values equal to the JSON export's.
#[tokio::test]
async fn the_csv_export_holds_the_same_values() {
    for a in Audited::both().await {
        let (t, c, _, _) = seeded(&a).await;
        let dir = std::env::temp_dir().join(format!("plenum-export-{}", RecordId::generate()));
        std::fs::create_dir(&dir).unwrap();
        let officer = Request::new(t, staff("privacy"));
        let rights = a.gate.grant(&officer, Purpose::RightsFulfilment).unwrap();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        a.records
            .export_subject(&mut tx, &rights, c.subject, &mut CsvExport::new(&dir))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut reader = csv::Reader::from_path(dir.join("customers.csv")).unwrap();
        let headers = reader.headers().unwrap().clone();
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 1, "{}", a.env.name());
        let get = |name: &str| {
            let i = headers.iter().position(|h| h == name).unwrap();
            rows[0].get(i).unwrap().to_owned()
        };
        assert_eq!(get("email"), "ada@example.com");
        assert_eq!(get("service_address"), "12 Furnace Lane, Springfield");
        assert_eq!(get("erased"), "");
        for file in [
            "export",
            "properties",
            "invoices",
            "purposes",
            "retention",
            "consent",
            "access_log",
        ] {
            assert!(dir.join(format!("{file}.csv")).exists(), "{file}.csv");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// Only `compliance.rights_fulfilment` exports; the refusal is on record. A subject the tenant
/// holds nothing about gets an export with no records, the same shape as any other.
#[tokio::test]
async fn exports_need_the_rights_purpose_and_unknown_subjects_export_empty() {
    for a in Audited::both().await {
        let (t, c, _, _) = seeded(&a).await;
        let dispatcher = Request::new(t, staff("dispatcher"));
        let scheduling = a.gate.grant(&dispatcher, Purpose::Scheduling).unwrap();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let mut out = JsonExport::new(Vec::new());
        let err = a
            .records
            .export_subject(&mut tx, &scheduling, c.subject, &mut out)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Denied, "{}", a.env.name());
        assert!(
            out.into_inner().is_empty(),
            "nothing written before the refusal"
        );
        tx.commit().await.unwrap();

        let unknown = export_json(&a, t, SubjectId::generate()).await;
        for t in unknown["record_types"].as_array().unwrap() {
            assert!(t["records"].as_array().unwrap().is_empty());
        }
        assert!(unknown["consent"].as_array().unwrap().is_empty());
        // The only accesses on record are this export's own pages.
        for entry in unknown["access_log"].as_array().unwrap() {
            assert_eq!(entry["action"], "export", "{}", a.env.name());
        }
    }
}

/// After erasure the retained invoices are still exported under the subject's pseudonym... but
/// not under the subject: the subject's own export holds nothing, and no erased value leaks.
#[tokio::test]
async fn an_erased_subject_exports_nothing_readable() {
    for a in Audited::both().await {
        let (t, c, _, _) = seeded(&a).await;
        let officer = Request::new(t, staff("privacy"));
        let rights = a.gate.grant(&officer, Purpose::RightsFulfilment).unwrap();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        a.records
            .erase_subject(&mut tx, &rights, c.subject)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let export = export_json(&a, t, c.subject).await;
        let text = export.to_string();
        for value in [
            "Ada Lovelace",
            "ada@example.com",
            "2175550142",
            "Furnace Lane",
        ] {
            assert!(
                !text.contains(value),
                "{}: {value} in an erased subject's export",
                a.env.name()
            );
        }
    }
}

/// What is registered is what rights requests, exports and erasure reach: a record type with a
/// data subject that the `Records` it is written through does not know cannot hold subject
/// data (insert and update refused, nothing written).
#[tokio::test]
async fn a_record_type_not_registered_cannot_hold_subject_data() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let unregistered = Records::new(
            crate::fixtures::keyring(&a.env.keys),
            std::sync::Arc::new(DiscardAccess),
        )
        .with_record_types([Property::spec()]);
        let c = customer(t, "ada@example.com", "2175550142");
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let err = unregistered
            .repository::<Customer>()
            .insert(&mut tx, &grant(t), &c)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{}", a.env.name());
        assert!(err.to_string().contains("registered"), "{err}");
        // The same record through the registered `Records` goes in.
        a.records
            .repository::<Customer>()
            .insert(&mut tx, &grant(t), &c)
            .await
            .unwrap();
        let err = unregistered
            .repository::<Customer>()
            .update(&mut tx, &grant(t), &c)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        tx.commit().await.unwrap();
    }
}

/// A portal login: the subject's login email, and a credential verifier no one is given back.
#[derive(Debug, Clone, plenum::Record)]
#[plenum(record_type = "portal_logins", erasure = "delete")]
struct PortalLogin {
    #[plenum(id)]
    id: RecordId,
    #[plenum(tenant)]
    tenant: TenantId,
    #[plenum(subject)]
    subject: SubjectId,
    #[plenum(pii = "user.contact.email")]
    login: Encrypted<String>,
    #[plenum(
        pii = "user.authorization.credentials",
        not_exported = "a password verifier: useless to the subject, a risk if it left the system"
    )]
    password_hash: Encrypted<String>,
}

/// A field declared `not_exported` is listed with its reason and never has a value in the
/// export (JSON and CSV); the record's other fields are exported as usual.
#[tokio::test]
async fn a_field_declared_not_exported_is_withheld_with_its_reason() {
    let tables = [PortalLogin::spec().table()];
    let lite = TenantPool::sqlite(None, &tables).await.unwrap();
    let db = plenum_test::pg::TestDb::create(&tables).await;
    for pool in [db.app(2).await, lite] {
        let keys = std::sync::Arc::new(DbKeyStore::new(pool.clone()));
        let records = Records::new(
            crate::fixtures::keyring(&keys),
            std::sync::Arc::new(DiscardAccess),
        )
        .with_record_types([PortalLogin::spec()]);
        let t = TenantId::generate();
        pool.register_tenant(t).await.unwrap();
        let login = PortalLogin {
            id: RecordId::generate(),
            tenant: t,
            subject: SubjectId::generate(),
            login: Encrypted::new("ada@example.com".to_owned()),
            password_hash: Encrypted::new(
                "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
            ),
        };
        let mut tx = pool.begin(t).await.unwrap();
        records
            .repository::<PortalLogin>()
            .insert(&mut tx, &grant(t), &login)
            .await
            .unwrap();
        let mut out = JsonExport::new(Vec::new());
        records
            .export_subject(&mut tx, &grant(t), login.subject, &mut out)
            .await
            .unwrap();
        let dir = std::env::temp_dir().join(format!("plenum-withheld-{}", RecordId::generate()));
        std::fs::create_dir(&dir).unwrap();
        records
            .export_subject(&mut tx, &grant(t), login.subject, &mut CsvExport::new(&dir))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let bytes = out.into_inner();
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            !text.contains("argon2id"),
            "the verifier left in the JSON export"
        );
        let export: Value = serde_json::from_str(&text).unwrap();
        let t = &export["record_types"][0];
        let field = t["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "password_hash")
            .unwrap();
        assert!(
            field["withheld"]
                .as_str()
                .unwrap()
                .starts_with("a password verifier")
        );
        assert_eq!(t["records"][0]["fields"]["password_hash"], Value::Null);
        assert_eq!(t["records"][0]["fields"]["login"], "ada@example.com");
        let csv = std::fs::read_to_string(dir.join("portal_logins.csv")).unwrap();
        assert!(
            !csv.contains("argon2id") && csv.contains("ada@example.com"),
            "{csv}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
