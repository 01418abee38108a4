//! An HVAC service on Plenum in a few lines per route (`app.rs`): `cargo run --example
//! hvac_service` serves it on 127.0.0.1:3000 over the embedded SQLite, or over PostgreSQL with
//! `DATABASE_URL` (the runtime role's URL; `PLENUM_CONTEXT_KEY` as `plenum migrate` installed
//! it). It prints two session tokens (an office user and a marketer of one tenant) to try it:
//!
//! ```text
//! curl -H "Authorization: Bearer $OFFICE" -H 'content-type: application/json' \
//!      -d '{"name":"Ada","email":"ada@example.com","phone":"2175550142","address":"1 Elm"}' \
//!      http://127.0.0.1:3000/customers
//! ```

#![expect(clippy::print_stdout, reason = "an example prints what it does")]

#[path = "app.rs"]
mod app;

use plenum::core::{Actor, ActorId, ActorKind, TenantId, role};
use plenum::store::TenantPool;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = match std::env::var("DATABASE_URL") {
        Ok(url) => {
            let mut config = plenum::store::postgres::PgPoolConfig::with_max_connections(8);
            if let Ok(key) = std::env::var("PLENUM_CONTEXT_KEY") {
                config = config.with_context_key(plenum::store::postgres::ContextKey::from_base64(
                    &plenum::crypto::secrecy::SecretString::from(key),
                )?);
            }
            TenantPool::connect_postgres(&url, &config).await?
        }
        Err(_) => TenantPool::sqlite(None, &plenum_hvac::tables()).await?,
    };
    let tenant = TenantId::generate();
    pool.register_tenant(tenant).await?;
    let mut sessions = app::Sessions::default();
    let user = |r| Actor::new(ActorKind::AccountUser, ActorId::generate()).with_role(r);
    let office = sessions.open(tenant, user(role!("office")));
    let marketer = sessions.open(tenant, user(role!("marketer")));
    let router = app::router(pool, sessions)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("hvac_service on http://127.0.0.1:3000 for tenant {tenant}");
    println!("  office token:   {office}\n  marketer token: {marketer}");
    axum::serve(listener, router).await?;
    Ok(())
}
