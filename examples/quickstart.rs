//! The Plenum tour: run with `cargo run --example quickstart` (no database server needed).
//!
//! The core vocabulary; a record declared once, stored encrypted in a tenant-scoped
//! transaction, found by email and read back; purposes and consent; erasure; and the audit
//! trail of all of it, verified.

#![expect(clippy::print_stdout, reason = "an example's job is to show output")]

use std::sync::Arc;

use plenum::consent::{ConsentEvent, EventKind, Evidence, Method};
use plenum::prelude::*;

/// A record, declared once: the table, its encrypted columns, the blind index and the keys all
/// follow from this.
#[derive(Debug, Record)]
#[plenum(record_type = "customers", erasure = "delete")]
struct Customer {
    #[plenum(id)]
    id: RecordId,
    #[plenum(tenant)]
    tenant: TenantId,
    /// The homeowner this row is about: their own key seals the PII below.
    #[plenum(subject)]
    homeowner: SubjectId,
    #[plenum(pii = "user.name")]
    name: Encrypted<String>,
    #[plenum(pii = "user.contact.email", blind_index = "email-v1", unique)]
    email: Encrypted<String>,
    #[plenum(pii = "user.contact.phone_number")]
    phone: Encrypted<String>,
    #[plenum(category = "system.operations")]
    visits: i64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("== Plenum quickstart ==\n");

    // 1. Vocabulary. Ids are opaque, time-ordered UUIDv7 values with one canonical string form.
    let tenant = TenantId::generate();
    let homeowner = SubjectId::generate();
    let customer = RecordId::generate();
    println!("tenant     {tenant}");
    println!("subject    {homeowner}");
    println!("record     {customer}");

    // Untrusted input is parsed strictly, and errors never echo the input back.
    for input in ["", "not-a-uuid", "00000000-0000-0000-0000-000000000000"] {
        match input.parse::<TenantId>() {
            Ok(id) => println!("parse {input:?} -> unexpectedly accepted as {id}"),
            Err(err) => println!("parse {input:?} -> error: {err}"),
        }
    }

    // Every access is made by an actor, recorded later in the audit log.
    let dispatcher =
        Actor::new(ActorKind::AccountUser, ActorId::generate()).with_role(role!("dispatcher"));
    println!("actor      {}", serde_json::to_string(&dispatcher)?);

    // 2. A record in a tenant-scoped transaction. The embedded default is SQLite in memory: the
    // same API as PostgreSQL, without row-level security underneath (the library's predicates
    // and row checks are the barrier there; on PostgreSQL the database enforces it again).
    println!("\n-- records (SQLite) --");
    let pool = TenantPool::sqlite(None, &[Customer::spec().table()]).await?;
    pool.register_tenant(tenant).await?;

    // A root key (a fixed demo key here; from a KMS or secret store in production) wraps
    // per-tenant keys, which wrap per-subject keys; wrapped keys live in the database.
    let root = LocalKeyProvider::new(
        plenum::crypto::Backend::default(),
        1,
        &plenum::crypto::secrecy::SecretBox::new(Box::new([7u8; 32])),
    )?;
    let keys = Arc::new(DbKeyStore::new(pool.clone()));
    let keyring = Arc::new(Keyring::new(Arc::new(root), keys, KeyringConfig::default()));
    // Every repository call is audited: one event per operation, in the same transaction, in
    // the tenant's tamper-evident log.
    let auditor = Auditor::new(keyring.clone(), &pool, "quickstart")?;
    // The record types erasure reaches, each with its declared `erasure` rule.
    let records =
        Records::new(keyring.clone(), Arc::new(auditor)).with_record_types([Customer::spec()]);
    let customers = records.repository::<Customer>();

    // Every repository call takes a grant to act for one purpose, minted by the gate (the
    // processing policy + which roles may act for which purposes) for one request.
    let gate = Gate::new(
        Policy::plenum_default(),
        Authorisation::new()
            .allow(role!("dispatcher"), [Purpose::Scheduling, Purpose::Support])
            .allow(role!("marketer"), [Purpose::MarketingEmail])
            .allow(role!("privacy_officer"), [Purpose::RightsFulfilment]),
    );
    let office = Request::new(tenant, dispatcher.clone());
    let scheduling = gate.grant(&office, Purpose::Scheduling)?;

    let ada = Customer {
        id: customer,
        tenant,
        homeowner,
        name: Encrypted::new("Ada Lovelace".to_owned()),
        email: Encrypted::new("Ada.Lovelace@Example.com".to_owned()),
        phone: Encrypted::new("+1 217 555 0142".to_owned()),
        visits: 3,
    };
    println!("Debug of a record: {ada:?}");
    let mut tx = pool.begin(tenant).await?;
    customers.insert(&mut tx, &scheduling, &ada).await?;
    tx.commit().await?;

    // Find by email: the blind index makes it case- and space-insensitive, without decrypting.
    let mut tx = pool.begin(tenant).await?;
    let found = customers
        .find(
            &mut tx,
            &scheduling,
            Customer::EMAIL_INDEX,
            "  ada.lovelace@EXAMPLE.com ",
        )
        .await?;
    let back = found.first().ok_or("not found")?;
    // Fields stay sealed until opened; plaintext leaves through open() and expose().
    println!(
        "found      {} <{}>, {} visits",
        back.name.open()?.expose(),
        back.email.open()?.expose(),
        back.visits
    );
    let again = customers.get(&mut tx, &scheduling, customer).await?;
    println!("get        {:?}", again.email);

    // What the database holds: envelopes and a blind index, never the plaintext.
    let raw: (Vec<u8>, Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT name, email, email_bidx FROM customers WHERE id = ?1")
            .bind(customer.as_uuid())
            .fetch_one(tx.dangerous_sqlite().ok_or("not SQLite")?)
            .await?;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    println!("stored     name  = {}", hex(&raw.0));
    println!("           email = {}", hex(&raw.1));
    println!("           index = {}", hex(&raw.2));
    let plaintext_stored = [&raw.0, &raw.1, &raw.2]
        .iter()
        .any(|col| col.windows(3).any(|w| w == b"Ada" || w == b"ada"));
    println!("plaintext in the stored bytes: {plaintext_stored}");
    tx.commit().await?;

    // Another tenant sees nothing, whatever it asks.
    let other = TenantId::generate();
    pool.register_tenant(other).await?;
    let their_office = Request::new(other, dispatcher.clone());
    let theirs_scheduling = gate.grant(&their_office, Purpose::Scheduling)?;
    let mut tx = pool.begin(other).await?;
    let theirs = customers
        .find(
            &mut tx,
            &theirs_scheduling,
            Customer::EMAIL_INDEX,
            "ada.lovelace@example.com",
        )
        .await?;
    println!(
        "other tenant finds {} row(s); get -> {}",
        theirs.len(),
        customers
            .get(&mut tx, &theirs_scheduling, customer)
            .await
            .err()
            .map_or("found?!".into(), |e| e.to_string())
    );
    tx.commit().await?;

    // Background work carries its tenant as data, never as ambient state.
    let job = TenantBound::new(tenant, customer);
    println!("job payload {}", serde_json::to_string(&job)?);

    // 3. Purposes and consent. Reads under a grant withhold the fields its purpose may not
    // see, and consent purposes see only consenting subjects.
    println!("\n-- purposes and consent --");
    let marketer =
        Actor::new(ActorKind::AccountUser, ActorId::generate()).with_role(role!("marketer"));
    let request = Request::new(tenant, marketer);
    let evidence = || Evidence {
        notice_version: "privacy-2026-11".to_owned(),
        notice_sha256: [0x5a; 32],
        method: Method::Ui,
        actor: ActorId::generate(),
        at: chrono::Utc::now(),
    };
    // The sign-up flow that collected the opt-in records it under its own purpose.
    let grant = gate.grant(&request, Purpose::MarketingEmail)?;
    let mut tx = pool.begin(tenant).await?;
    records
        .record_consent(
            &mut tx,
            &grant,
            &ConsentEvent::given(homeowner, Purpose::MarketingEmail, evidence()),
        )
        .await?;
    let for_marketing = customers.get(&mut tx, &grant, customer).await?;
    println!(
        "marketing.email sees email <{}>, name {}; visits {}; phone {:?} -> {}",
        for_marketing.email.open()?.expose(),
        for_marketing.name.open()?.expose(),
        for_marketing.visits,
        for_marketing.phone,
        for_marketing
            .phone
            .open()
            .err()
            .map_or("opened?!".into(), |e| e.to_string())
    );
    tx.commit().await?;

    // The homeowner withdraws; the very next read under the purpose is refused.
    let mut tx = pool.begin(tenant).await?;
    let mut withdrawal = ConsentEvent::about(
        homeowner,
        EventKind::Withdrawn,
        Purpose::MarketingEmail,
        evidence(),
    );
    withdrawal.evidence.at += chrono::Duration::milliseconds(1);
    // Anyone who hears "stop" may record it.
    records.record_consent(&mut tx, &grant, &withdrawal).await?;
    tx.commit().await?;
    let mut tx = pool.begin(tenant).await?;
    println!(
        "after withdrawal: get -> {}; list -> {} customer(s)",
        customers
            .get(&mut tx, &grant, customer)
            .await
            .err()
            .map_or("allowed?!".into(), |e| e.to_string()),
        customers
            .list(&mut tx, &grant, None, 100)
            .await?
            .items
            .len()
    );
    tx.commit().await?;

    // 4. Erasure: each record type with rows of the homeowner declares what erasure does to
    // them (customers: `delete`; invoices would be kept, their PII unreadable); the homeowner's
    // key is destroyed, so every copy of their PII that remains, a backup's too once the
    // erasure epoch advances, stays sealed for good.
    println!("\n-- erasure --");
    let officer =
        Actor::new(ActorKind::AccountUser, ActorId::generate()).with_role(role!("privacy_officer"));
    let dsr = Request::new(tenant, officer);
    let rights = gate.grant(&dsr, Purpose::RightsFulfilment)?;

    // Before erasing: "who accessed my data?" Events name subjects by keyed pseudonyms only.
    let mut tx = pool.begin(tenant).await?;
    let about = AuditLog::events_about(&mut tx, &keyring, homeowner).await?;
    println!(
        "events naming the homeowner before erasure: {}",
        about.len()
    );
    let destroyed = records.erase_subject(&mut tx, &rights, homeowner).await?;
    tx.commit().await?;
    let mut tx = pool.begin(tenant).await?;
    let after = match customers.get(&mut tx, &rights, customer).await {
        // The gate runs this tour: an erased customer still readable must fail it.
        Ok(_) => return Err("the erased customer is still readable".into()),
        Err(e) if e.kind() == plenum::store::ErrorKind::NotFound => e.to_string(),
        Err(e) => return Err(e.into()),
    };
    println!("after erasure: {destroyed} key version(s) destroyed; get the customer -> {after}");
    let about = AuditLog::events_about(&mut tx, &keyring, homeowner).await?;
    println!(
        "events naming the homeowner after erasure: {} (unlinked)",
        about.len()
    );
    tx.commit().await?;

    // 5. The audit trail: the tenant's log, a signed checkpoint (a demo key here; a KMS-held
    // key in production), and the verifier anyone can run from docs/audit-format.md.
    println!("\n-- audit trail --");
    let signer = plenum::audit::checkpoint::CheckpointSigner::new(
        "plenum.quickstart",
        plenum::crypto::signing::SigningKey::generate(),
    )?;
    let mut tx = pool.begin(tenant).await?;
    AuditLog::checkpoint(&mut tx, &signer).await?;
    let export = AuditLog::export(&mut tx).await?;
    tx.commit().await?;
    for entry in &export.entries {
        let event: serde_json::Value = serde_json::from_str(entry.body.as_deref().unwrap_or("{}"))?;
        println!(
            "  #{:<2} {:<18} {:<15} {:<29} {:<8} {} row(s) by {}",
            entry.seq,
            event["action"].as_str().unwrap_or("?"),
            event["record_type"].as_str().unwrap_or("-"),
            event["purpose"]["key"].as_str().unwrap_or("-"),
            event["outcome"]["status"].as_str().unwrap_or("?"),
            event["rows"],
            event["actor"]["roles"]
        );
    }
    let trusted = [signer.verifier()];
    let report = plenum::audit::verify::verify_log(&export, &trusted)?;
    println!(
        "verified: {} events, {} checkpoint(s), root signed by {}",
        report.entries,
        report.checkpoints,
        signer.verifier()
    );
    let proof = plenum::audit::verify::prove_inclusion(&export, 1, 0, &trusted)?;
    let checked = plenum::audit::verify::verify_inclusion(
        &proof,
        export.entries[1].body.as_deref(),
        &trusted,
    )?;
    println!(
        "event #1 proven in a log of {} with {} hashes",
        checked.size,
        proof.path.len()
    );
    let mut forged = export.clone();
    if let Some(entry) = forged.entries.get_mut(2) {
        entry.body = entry
            .body
            .as_ref()
            .map(|b| b.replacen("\"success\"", "\"denied\"", 1));
    }
    println!(
        "a copy with one event rewritten -> {}",
        plenum::audit::verify::verify_log(&forged, &trusted)
            .err()
            .map_or("verified?!".into(), |e| e.to_string())
    );
    Ok(())
}
