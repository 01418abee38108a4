//! The Plenum tour: run with `cargo run --example quickstart` (no database server needed).
//!
//! It grows with the library: the core vocabulary, tenant-scoped transactions, PII field
//! encryption. Typed repositories, purposes and audit join as they land.

#![expect(clippy::print_stdout, reason = "an example's job is to show output")]

use std::sync::Arc;

use plenum::crypto::{
    Backend, FieldLocator, Keyring, KeyringConfig, LocalKeyProvider, MemoryKeyStore, Normaliser,
    Owner, secrecy::SecretBox,
};
use plenum::prelude::*;

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

    // 2. Tenant-scoped transactions. The embedded default is SQLite in memory: the same API as
    // PostgreSQL, without row-level security underneath (the library's own predicates are the
    // barrier there; on PostgreSQL the database enforces the boundary again).
    println!("\n-- tenant-scoped transactions (SQLite) --");
    let customers = plenum::store::TableSpec::new(record_type!("customers"))
        .column(
            field_name!("email_bidx"),
            plenum::store::SqlType::Bytes,
            false,
        )
        .unique(field_name!("email_bidx"));
    let pool = TenantPool::sqlite(None, &[customers]).await?;
    pool.register_tenant(tenant).await?;
    let tx = pool.begin(tenant).await?;
    println!(
        "transaction for tenant {} on {:?}",
        tx.tenant(),
        tx.backend()
    );
    tx.commit().await?;
    // Background work carries its tenant as data, never as ambient state.
    let job = TenantBound::new(tenant, "send-reminders");
    println!("job payload {}", serde_json::to_string(&job)?);

    // 3. PII field encryption. A root key (here a fixed demo key; in production from a KMS or a
    // secret store) wraps per-tenant keys, which wrap per-subject keys.
    println!("\n-- PII field encryption --");
    let root = LocalKeyProvider::new(Backend::default(), 1, &SecretBox::new(Box::new([7u8; 32])))?;
    let keyring = Keyring::new(Arc::new(root), KeyringConfig::default());
    let keys = MemoryKeyStore::new();

    let email = Pii::new(String::from("Ada.Lovelace@Example.com"));
    println!("Debug of a Pii value: {email:?}");

    let locator = FieldLocator {
        tenant,
        record_type: record_type!("customer"),
        field: field_name!("email"),
        owner: Owner::Subject(homeowner),
    };
    let sealed = keyring.seal(&keys, &locator, customer, &email).await?;
    let hex: String = sealed
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!("sealed     {} bytes: {hex}", sealed.as_bytes().len());
    println!("           {sealed:?}");
    let opened: Pii<String> = keyring
        .open(&keys, &locator, customer, sealed.as_bytes())
        .await?;
    println!("opened     {} (via expose())", opened.expose());

    // The envelope is bound to its row: the same bytes under another record id do not open.
    let elsewhere =
        keyring.open::<String>(&keys, &locator, RecordId::generate(), sealed.as_bytes());
    println!(
        "moved      {}",
        elsewhere
            .await
            .err()
            .map_or("opened?!".into(), |e| e.to_string())
    );

    // Blind index: equality search without decrypting, case and spacing insensitive.
    let indexer = keyring
        .blind_indexer(
            &keys,
            tenant,
            &locator.record_type,
            &locator.field,
            Normaliser::Email,
        )
        .await?;
    let stored = indexer.compute(email.expose())?;
    let query = indexer.compute("  ada.lovelace@EXAMPLE.com ")?;
    println!(
        "index      {} (what the email column's index stores)",
        stored.to_hex()
    );
    println!(
        "lookup     {} -> match: {}",
        query.to_hex(),
        stored == query
    );

    // Erasure: destroying the homeowner's key makes every copy of their data unreadable.
    keyring
        .destroy_scope(&keys, tenant, plenum::crypto::KeyScope::Subject(homeowner))
        .await?;
    let erased = keyring
        .open::<String>(&keys, &locator, customer, sealed.as_bytes())
        .await;
    println!(
        "erased     {}",
        erased.err().map_or("opened?!".into(), |e| e.to_string())
    );
    Ok(())
}
