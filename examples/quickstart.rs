//! The Plenum tour: run with `cargo run --example quickstart` (no database server needed).
//!
//! It grows with the library: today it shows the core vocabulary that every other part builds on.

#![expect(clippy::print_stdout, reason = "an example's job is to show output")]

use plenum::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("== Plenum quickstart ==\n");

    // Ids are opaque, time-ordered UUIDv7 values with one canonical string form.
    let tenant = TenantId::generate();
    let customer = RecordId::generate();
    println!("tenant   {tenant}");
    println!("record   {customer}");

    // Untrusted input is parsed strictly, and errors never echo the input back.
    for input in ["", "not-a-uuid", "00000000-0000-0000-0000-000000000000"] {
        match input.parse::<TenantId>() {
            Ok(id) => println!("parse {input:?} -> unexpectedly accepted as {id}"),
            Err(err) => println!("parse {input:?} -> error: {err}"),
        }
    }

    // Every access is made by an actor, recorded later in the audit log.
    let dispatcher = Actor::new(ActorKind::AccountUser, ActorId::generate())
        .with_role(plenum::core::role!("dispatcher"));
    println!("\nactor    {}", serde_json::to_string(&dispatcher)?);
    Ok(())
}
