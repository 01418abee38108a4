//! Tenant isolation on PostgreSQL, end to end: `cargo run --example postgres_tenancy`.
//!
//! Needs a local server and a superuser URL in `PLENUM_EXAMPLE_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). It creates the contract's roles with the prefix
//! `plenum_example` in that database (idempotent), migrates, and then works only as the
//! unprivileged runtime role.

#![expect(clippy::print_stdout, reason = "an example's job is to show output")]

use plenum::prelude::*;
use plenum::store::postgres::{ContextKey, PgPoolConfig, bootstrap_sql, migrate};
use plenum::store::{Roles, SqlType, TableSpec};
use sqlx::{AssertSqlSafe, Executor as _};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let superuser = std::env::var("PLENUM_EXAMPLE_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let (base, database) = superuser.rsplit_once('/').ok_or("URL without a database")?;
    let host = base.rsplit_once('@').map_or(base, |(_, h)| h);
    let roles = Roles::with_prefix("plenum_example")?;
    let as_role = |role: String| format!("postgres://{role}@{host}/{database}");

    // 1. Once per database, as a superuser: roles and schemas.
    let su = sqlx::PgPool::connect(&superuser).await?;
    for statement in bootstrap_sql(&roles, database)? {
        su.execute(AssertSqlSafe(statement)).await?;
    }
    su.close().await;

    // 2. On deploy, as the migrator: library migrations and the service's tables.
    let customers = TableSpec::new(record_type!("example_customers"))
        .column(field_name!("email"), SqlType::Text, false)
        .unique(field_name!("email"));
    // The key that authenticates tenant contexts: from the secret store in production.
    let context_key = ContextKey::generate();
    migrate(
        &as_role(roles.migrator()),
        &roles,
        &context_key,
        &[customers],
    )
    .await?;

    // 3. At boot, as the runtime role: refuse to start unless the contract holds.
    let pool = TenantPool::connect_postgres_verified(
        &as_role(roles.app()),
        &PgPoolConfig::default().with_context_key(context_key),
        &roles,
    )
    .await?;
    println!("contract verified; connected as {}", roles.app());

    // 4. Per request: a tenant-scoped transaction. Two tenants with the same natural key.
    let (a, b) = (TenantId::generate(), TenantId::generate());
    for (tenant, name) in [(a, "A"), (b, "B")] {
        pool.register_tenant(tenant).await?;
        let mut tx = pool.begin(tenant).await?;
        sqlx::query("INSERT INTO app.example_customers (tenant_id, id, email) VALUES ($1, $2, $3)")
            .bind(tenant.as_uuid())
            .bind(RecordId::generate().as_uuid())
            .bind("same@example.com")
            .execute(tx.dangerous_postgres().ok_or("not postgres")?)
            .await?;
        tx.commit().await?;
        println!("tenant {name} ({tenant}) inserted same@example.com");
    }

    // Even a query that forgets its tenant predicate sees only its own tenant: RLS filters it.
    let mut tx = pool.begin(a).await?;
    let visible: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT tenant_id FROM app.example_customers")
            .fetch_all(tx.dangerous_postgres().ok_or("not postgres")?)
            .await?;
    println!(
        "as A, an unfiltered SELECT returns {} row(s), all of tenant A: {}",
        visible.len(),
        visible.iter().all(|t| t == a.as_uuid())
    );
    // And writing into B is refused by the database.
    let refused = sqlx::query(
        "INSERT INTO app.example_customers (tenant_id, id, email) VALUES ($1, $2, 'x')",
    )
    .bind(b.as_uuid())
    .bind(RecordId::generate().as_uuid())
    .execute(tx.dangerous_postgres().ok_or("not postgres")?)
    .await;
    println!(
        "as A, inserting a row for B: {}",
        match refused {
            Ok(_) => "accepted?!".to_owned(),
            Err(e) => format!(
                "refused ({})",
                e.as_database_error()
                    .and_then(|d| d.code())
                    .unwrap_or_default()
            ),
        }
    );
    Ok(())
}
