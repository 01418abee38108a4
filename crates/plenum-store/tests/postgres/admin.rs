//! Audited cross-tenant access.

use plenum_core::{Actor, ActorId, ActorKind};
use plenum_store::ErrorKind;
use plenum_store::postgres::{AdminPool, AdminPurpose, AdminReason, PgPoolConfig};
use uuid::Uuid;

use crate::fixtures::{sqlstate, world};

fn support_actor() -> Actor {
    Actor::new(ActorKind::Support, ActorId::generate()).with_role(plenum_core::role!("support"))
}

#[tokio::test]
async fn an_admin_transaction_writes_its_audit_row_first() {
    let w = world().await;
    let admin = AdminPool::connect(&w.db.url(&w.db.roles.admin()), &PgPoolConfig::default())
        .await
        .unwrap();
    let actor = support_actor();
    let reason = AdminReason::with_reference(AdminPurpose::SupportRequest, "SUP-1234").unwrap();
    let mut tx = admin.begin(&actor, &reason).await.unwrap();
    let audit_id = tx.audit_id();
    // Reads across tenants.
    let tenants: Vec<Uuid> = sqlx::query_scalar("SELECT DISTINCT tenant_id FROM app.customers")
        .fetch_all(tx.connection())
        .await
        .unwrap();
    assert_eq!(tenants.len(), 2);
    // But cannot write.
    let write = sqlx::query("UPDATE app.customers SET name = 'x'")
        .execute(tx.connection())
        .await;
    assert_eq!(sqlstate(write), "42501");
    drop(tx);

    // A committed admin transaction leaves exactly its row, with the actor and the reason.
    let mut tx = admin
        .begin(&actor, &AdminReason::new(AdminPurpose::RetentionSweep))
        .await
        .unwrap();
    let committed_id = tx.audit_id();
    let _: i64 = sqlx::query_scalar("SELECT count(*) FROM app.orders")
        .fetch_one(tx.connection())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let su = w.db.superuser().await;
    let rows: Vec<(Uuid, serde_json::Value, String, Option<String>)> =
        sqlx::query_as("SELECT id, actor, purpose, reference FROM plenum.admin_audit ORDER BY at")
            .fetch_all(&su)
            .await
            .unwrap();
    // The audit row is committed before the read: dropping (rolling back) the reading
    // transaction does not take it back.
    assert_eq!(rows.len(), 2, "both sessions stay recorded");
    assert_eq!(rows[0].0, *audit_id.as_uuid());
    assert_eq!(rows[0].2, "support_request");
    assert_eq!(rows[0].3.as_deref(), Some("SUP-1234"));
    assert_eq!(rows[1].0, *committed_id.as_uuid());
    assert_eq!(rows[1].1, serde_json::to_value(&actor).unwrap());
    assert_eq!(rows[1].2, "retention_sweep");
    assert_eq!(rows[1].3, None);
}

#[tokio::test]
async fn a_failed_audit_insert_aborts_the_admin_transaction() {
    let w = world().await;
    w.db.as_owner(&[&format!(
        "REVOKE INSERT ON plenum.admin_audit FROM {}",
        w.db.roles.admin()
    )])
    .await;
    let admin = AdminPool::connect(&w.db.url(&w.db.roles.admin()), &PgPoolConfig::default())
        .await
        .unwrap();
    let err = admin
        .begin(
            &support_actor(),
            &AdminReason::new(AdminPurpose::Maintenance),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Audit);
    assert_eq!(err.sqlstate().as_deref(), Some("42501"));
    let su = w.db.superuser().await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM plenum.admin_audit")
        .fetch_one(&su)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

/// Logging in with the admin credentials directly (not through `AdminPool::begin`) reads
/// nothing until the session has a committed audit row of its own: the database, not the
/// library, requires the record before the read. An audit row written in the reading
/// transaction itself does not count (a rollback would take it back), nor does another
/// backend's, nor can the admin role choose the row's backend, time or transaction.
#[tokio::test]
async fn the_database_refuses_an_admin_read_without_a_committed_audit_row() {
    let w = world().await;
    let raw = w.db.raw_pool(&w.db.roles.admin(), 1).await;
    let count = |sql: &'static str| {
        let raw = raw.clone();
        async move {
            let mut tx = raw.begin().await.unwrap();
            let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut *tx).await.unwrap();
            n
        }
    };
    assert_eq!(count("SELECT count(*) FROM app.customers").await, 0);

    // An audit row inserted in the reading transaction itself: still nothing.
    let id = Uuid::now_v7();
    let mut tx = raw.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO plenum.admin_audit (id, actor, purpose) VALUES ($1, '{}', 'maintenance')",
    )
    .bind(id)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("SELECT set_config('plenum.admin_audit_id', $1, true)")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM app.customers")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 0, "an uncommitted audit row does not open reads");
    tx.rollback().await.unwrap();

    // The row's backend, time and transaction are the database's, not the admin's.
    let forged = sqlx::query(
        "INSERT INTO plenum.admin_audit (id, actor, purpose, backend_pid, txid) \
         VALUES ($1, '{}', 'maintenance', pg_backend_pid(), 0)",
    )
    .bind(Uuid::now_v7())
    .execute(&raw)
    .await;
    assert_eq!(sqlstate(forged), "42501");

    // Committed first, in its own transaction on this backend: then the read is allowed, and
    // the record of it exists whatever the reading transaction does.
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO plenum.admin_audit (id, actor, purpose) VALUES ($1, '{}', 'maintenance')",
    )
    .bind(id)
    .execute(&raw)
    .await
    .unwrap();
    let mut tx = raw.begin().await.unwrap();
    sqlx::query("SELECT set_config('plenum.admin_audit_id', $1, true)")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM app.customers")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 3, "A's and B's customers");
    tx.rollback().await.unwrap();

    // Another backend cannot use that row.
    let other = w.db.raw_pool(&w.db.roles.admin(), 1).await;
    let mut tx = other.begin().await.unwrap();
    sqlx::query("SELECT set_config('plenum.admin_audit_id', $1, true)")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM app.customers")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 0, "another backend's audit row does not open reads");
    let su = w.db.superuser().await;
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM plenum.admin_audit")
        .fetch_one(&su)
        .await
        .unwrap();
    assert_eq!(
        kept, 1,
        "the committed row stays; the rolled-back one is gone"
    );
}
