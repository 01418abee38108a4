//! A homeowner's rights, end to end: run with `cargo run --example rights` (no database server).
//!
//! An HVAC company's customer asks for a copy of their data, then for its erasure. Each
//! request is received, the requester's identity checked by the service (the library records
//! only the outcome), answered within the 30 days the policy promises (an export in JSON and
//! CSV; an erasure with its receipt), and every step lands in the tenant's audit log.
//!
//! With a directory argument (`cargo run --example rights -- DIR`), the JSON export, the CSV
//! directory and the values inserted are written there (`export.json`, `csv/`,
//! `expected.json`), for the independent check in `.ci/check_export.py`.

#![expect(clippy::print_stdout, reason = "an example's job is to show output")]

use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use plenum::consent::{
    ConsentEvent, Evidence, Method, Purpose, RequestChannel, Requester, Right, SubjectRequest,
    Verification,
};
use plenum::crypto::BoxFuture;
use plenum::prelude::*;
use plenum::store::{CsvExport, IdentityVerifier, JsonExport};
use plenum_hvac::{Customer, Invoice, Property};

/// The service's identity check: here, "the request came from the customer's signed-in
/// account". A real service checks its own session, a callback or a signed link.
struct SignedInAccount {
    subject: SubjectId,
}

impl IdentityVerifier for SignedInAccount {
    fn verify<'a>(&'a self, request: &'a SubjectRequest) -> BoxFuture<'a, Verification> {
        Box::pin(async move {
            if request.subject() == self.subject {
                Verification::Verified {
                    method: "account_login".to_owned(),
                }
            } else {
                Verification::Failed
            }
        })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = std::env::args().nth(1).map(std::path::PathBuf::from);
    println!("== Plenum: a homeowner's rights ==\n");

    // The embedded default: SQLite in memory, the HVAC record types, an audited keyring.
    let pool = TenantPool::sqlite(None, &plenum_hvac::tables()).await?;
    let tenant = TenantId::generate();
    pool.register_tenant(tenant).await?;
    let root = LocalKeyProvider::new(
        plenum::crypto::Backend::default(),
        1,
        &plenum::crypto::secrecy::SecretBox::new(Box::new([7u8; 32])),
    )?;
    let keys = Arc::new(DbKeyStore::new(pool.clone()));
    let keyring = Arc::new(Keyring::new(Arc::new(root), keys, KeyringConfig::default()));
    let auditor = Auditor::new(keyring.clone(), &pool, "rights-example")?;
    let records =
        Records::new(keyring, Arc::new(auditor)).with_record_types(plenum_hvac::record_types());
    let gate = Gate::new(
        Policy::plenum_default(),
        Authorisation::new()
            .allow(role!("office"), [Purpose::Billing, Purpose::Scheduling])
            .allow(role!("privacy_officer"), [Purpose::RightsFulfilment]),
    );

    // The company's data about one homeowner: the customer, a property, two invoices, and a
    // marketing consent.
    let office = Request::new(
        tenant,
        Actor::new(ActorKind::AccountUser, ActorId::generate()).with_role(role!("office")),
    );
    let homeowner = SubjectId::generate();
    let customer = Customer {
        id: RecordId::generate(),
        tenant,
        subject: homeowner,
        name: Encrypted::new("Ada Lovelace".to_owned()),
        email: Encrypted::new("ada@example.com".to_owned()),
        phone: Encrypted::new("+12175550142".to_owned()),
        service_address: Encrypted::new("12 Furnace Lane, Springfield".to_owned()),
        created_at: Utc::now(),
    };
    let property = Property {
        id: RecordId::generate(),
        tenant,
        subject: homeowner,
        customer_id: customer.id,
        address: Encrypted::new("12 Furnace Lane".to_owned()),
        square_feet: Some(1850),
    };
    let invoices: Vec<Invoice> = [12_950i64, 4_000]
        .into_iter()
        .map(|cents| Invoice {
            id: RecordId::generate(),
            tenant,
            subject: homeowner,
            customer_id: customer.id,
            amount_cents: Encrypted::new(cents),
            currency: "USD".to_owned(),
            due_on: NaiveDate::from_ymd_opt(2026, 12, 15).unwrap_or_default(),
            paid: true,
        })
        .collect();
    let scheduling = gate.grant(&office, Purpose::Scheduling)?;
    let billing = gate.grant(&office, Purpose::Billing)?;
    let mut tx = pool.begin(tenant).await?;
    records
        .repository::<Customer>()
        .insert(&mut tx, &scheduling, &customer)
        .await?;
    records
        .repository::<Property>()
        .insert(&mut tx, &scheduling, &property)
        .await?;
    records
        .repository::<Invoice>()
        .insert_many(&mut tx, &billing, &invoices)
        .await?;
    let evidence = Evidence {
        notice_version: "privacy-2026-11".to_owned(),
        notice_sha256: [9; 32],
        method: Method::Ui,
        actor: ActorId::generate(),
        at: Utc::now(),
    };
    let officer = Request::new(
        tenant,
        Actor::new(ActorKind::AccountUser, ActorId::generate()).with_role(role!("privacy_officer")),
    );
    let rights = gate.grant(&officer, Purpose::RightsFulfilment)?;
    records
        .record_consent(
            &mut tx,
            &rights,
            &ConsentEvent::given(homeowner, Purpose::MarketingEmail, evidence),
        )
        .await?;
    tx.commit().await?;

    // 1. "Send me a copy of my data": received through the web form, identity checked, answered.
    println!("-- access request --");
    let verifier = SignedInAccount { subject: homeowner };
    let now = Utc::now();
    let mut tx = pool.begin(tenant).await?;
    let access = records
        .receive_request(
            &mut tx,
            &rights,
            &SubjectRequest::received(
                tenant,
                homeowner,
                Right::Access,
                Requester::Subject,
                RequestChannel::Web,
                now,
            ),
        )
        .await?;
    let request = records
        .verify_identity(&mut tx, &rights, access, &verifier, now)
        .await?;
    println!(
        "request {access}: {}, due {}",
        request.state().key(),
        request.due_at(now).date_naive()
    );
    let mut json = JsonExport::new(Vec::new());
    let summary = records
        .answer_access_request(&mut tx, &rights, access, &mut json, now)
        .await?;
    if let Some(dir) = &out_dir {
        let csv = dir.join("csv");
        std::fs::create_dir_all(&csv)?;
        records
            .export_subject(&mut tx, &rights, homeowner, &mut CsvExport::new(&csv))
            .await?;
    }
    tx.commit().await?;
    let json = json.into_inner();
    println!("export: {:?}", summary.records);
    println!("{}\n", String::from_utf8_lossy(&json));

    if let Some(dir) = &out_dir {
        std::fs::write(dir.join("export.json"), &json)?;
        let expected = serde_json::json!({
            "subject": homeowner.to_string(),
            "customers": [{
                "id": customer.id.to_string(),
                "name": "Ada Lovelace",
                "email": "ada@example.com",
                "phone": "+12175550142",
                "service_address": "12 Furnace Lane, Springfield",
            }],
            "properties": [{
                "id": property.id.to_string(),
                "address": "12 Furnace Lane",
                "square_feet": 1850,
            }],
            "invoices": invoices.iter().map(|i| serde_json::json!({
                "id": i.id.to_string(),
                "amount_cents": i.amount_cents.open().map(|a| *a.expose()).unwrap_or_default(),
                "currency": "USD",
                "due_on": "2026-12-15",
                "paid": true,
            })).collect::<Vec<_>>(),
            "consent": [{"kind": "given", "purpose": "marketing.email", "notice_version": "privacy-2026-11"}],
        });
        std::fs::write(
            dir.join("expected.json"),
            serde_json::to_vec_pretty(&expected)?,
        )?;
    }

    // 2. "Delete my data": the invoices must be kept seven years (a legal obligation), so the
    // request ends refused in part, with a receipt of what was done to each record type.
    println!("-- erasure request --");
    let mut tx = pool.begin(tenant).await?;
    let erasure = records
        .receive_request(
            &mut tx,
            &rights,
            &SubjectRequest::received(
                tenant,
                homeowner,
                Right::Erasure,
                Requester::Subject,
                RequestChannel::Email,
                now,
            ),
        )
        .await?;
    records
        .verify_identity(&mut tx, &rights, erasure, &verifier, now)
        .await?;
    let receipt = records
        .answer_erasure_request(&mut tx, &rights, erasure, now)
        .await?;
    tx.commit().await?;
    println!("outcome: {}", receipt.outcome.key());
    for r in &receipt.records {
        println!("  {:<12} {:?}: {} row(s)", r.record_type, r.erasure, r.rows);
    }
    println!("  keys destroyed: {}", receipt.keys_destroyed);
    if let Some(until) = receipt.retained_until {
        println!(
            "  retained under a legal obligation until {}",
            until.date_naive()
        );
    }

    // The invoices remain for the accountants, under a pseudonym, amounts readable; the
    // homeowner's name, email and phone are gone for good.
    let mut tx = pool.begin(tenant).await?;
    let left = records
        .repository::<Invoice>()
        .list(
            &mut tx,
            &gate.grant(&officer, Purpose::RightsFulfilment)?,
            None,
            10,
        )
        .await?;
    println!(
        "invoices kept: {} (subject now a pseudonym: {})",
        left.items.len(),
        left.items.iter().all(|i| i.subject != homeowner)
    );
    let requests = records.overdue_requests(&mut tx, &rights, now).await?;
    println!("overdue requests: {}", requests.len());
    tx.commit().await?;
    Ok(())
}
