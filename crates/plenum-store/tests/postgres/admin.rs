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
    assert_eq!(
        rows.len(),
        1,
        "the rolled-back transaction took its audit row with it"
    );
    assert_eq!(rows[0].0, *committed_id.as_uuid());
    assert_ne!(rows[0].0, *audit_id.as_uuid());
    assert_eq!(rows[0].1, serde_json::to_value(&actor).unwrap());
    assert_eq!(rows[0].2, "retention_sweep");
    assert_eq!(rows[0].3, None);
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
