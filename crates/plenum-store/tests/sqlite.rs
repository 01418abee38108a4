//! The embedded backend: the same transaction API, with no row-level security underneath.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use plenum_core::{TenantId, field_name, record_type};
use plenum_store::{BackendKind, SqlType, TableSpec, TenantBound, TenantPool};
use uuid::Uuid;

fn customers() -> TableSpec {
    TableSpec::new(record_type!("customers"))
        .column(field_name!("email"), SqlType::Text, false)
        .unique(field_name!("email"))
}

async fn count(pool: &TenantPool, tenant: TenantId) -> i64 {
    let mut tx = pool.begin(tenant).await.unwrap();
    // Raw SQL on SQLite must filter by tenant itself: nothing else will.
    sqlx::query_scalar("SELECT count(*) FROM customers WHERE tenant_id = ?1")
        .bind(tenant.as_uuid())
        .fetch_one(tx.dangerous_sqlite().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn tenant_transactions_commit_and_roll_back() {
    let pool = TenantPool::sqlite(None, &[customers()]).await.unwrap();
    assert_eq!(pool.backend(), BackendKind::Sqlite);
    let (a, b) = (TenantId::generate(), TenantId::generate());
    pool.register_tenant(a).await.unwrap();
    pool.register_tenant(b).await.unwrap();
    pool.register_tenant(a).await.unwrap();

    let mut tx = pool.begin(a).await.unwrap();
    assert_eq!(tx.tenant(), a);
    assert!(tx.dangerous_postgres().is_none());
    sqlx::query("INSERT INTO customers (tenant_id, id, email) VALUES (?1, ?2, 'same@example.com')")
        .bind(a.as_uuid())
        .bind(Uuid::now_v7())
        .execute(tx.dangerous_sqlite().unwrap())
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // The same natural key in another tenant is fine: uniqueness is per tenant here too.
    let mut tx = pool.begin(b).await.unwrap();
    sqlx::query("INSERT INTO customers (tenant_id, id, email) VALUES (?1, ?2, 'same@example.com')")
        .bind(b.as_uuid())
        .bind(Uuid::now_v7())
        .execute(tx.dangerous_sqlite().unwrap())
        .await
        .unwrap();
    tx.rollback().await.unwrap();

    assert_eq!(count(&pool, a).await, 1);
    assert_eq!(count(&pool, b).await, 0);

    // A row for an unregistered tenant violates the registry foreign key.
    let stranger = TenantId::generate();
    let mut tx = pool.begin(stranger).await.unwrap();
    let r = sqlx::query("INSERT INTO customers (tenant_id, id, email) VALUES (?1, ?2, 'x')")
        .bind(stranger.as_uuid())
        .bind(Uuid::now_v7())
        .execute(tx.dangerous_sqlite().unwrap())
        .await;
    assert!(r.is_err());
}

#[tokio::test]
async fn tenant_bound_payloads_round_trip_and_open_their_tenant() {
    let pool = TenantPool::sqlite(None, &[customers()]).await.unwrap();
    let tenant = TenantId::generate();
    pool.register_tenant(tenant).await.unwrap();
    let job = TenantBound::new(tenant, vec![1u32, 2, 3]);
    let json = serde_json::to_string(&job).unwrap();
    assert_eq!(
        json,
        format!(r#"{{"tenant":"{tenant}","payload":[1,2,3]}}"#)
    );
    let back: TenantBound<Vec<u32>> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, job);
    let (tx, payload) = back.begin(&pool).await.unwrap();
    assert_eq!(tx.tenant(), tenant);
    assert_eq!(payload, vec![1, 2, 3]);
    // A payload with a malformed tenant is refused at deserialisation.
    assert!(serde_json::from_str::<TenantBound<u8>>(r#"{"tenant":"nope","payload":1}"#).is_err());
}

#[tokio::test]
async fn keys_persist_in_sqlite() {
    use std::sync::Arc;

    use plenum_core::{RecordId, SubjectId};
    use plenum_crypto::{
        Backend, FieldLocator, KeyScope, Keyring, KeyringConfig, LocalKeyProvider, Owner, Pii,
        secrecy::SecretBox,
    };
    use plenum_store::DbKeyStore;

    let pool = TenantPool::sqlite(None, &[customers()]).await.unwrap();
    let tenant = TenantId::generate();
    pool.register_tenant(tenant).await.unwrap();
    let store = DbKeyStore::new(pool.clone());
    let ring = || {
        Keyring::new(
            Arc::new(
                LocalKeyProvider::new(Backend::default(), 1, &SecretBox::new(Box::new([3u8; 32])))
                    .unwrap(),
            ),
            Arc::new(store.clone()),
            KeyringConfig::default(),
        )
    };
    let subject = SubjectId::generate();
    let loc = FieldLocator {
        tenant,
        record_type: record_type!("customers"),
        field: field_name!("email"),
        owner: Owner::Subject(subject),
    };
    let record = RecordId::generate();
    let sealed = ring()
        .seal(&loc, record, &Pii::new("x@y.z".to_owned()))
        .await
        .unwrap();
    let opened: Pii<String> = ring()
        .dangerous_open(&loc, record, sealed.as_bytes())
        .await
        .unwrap();
    assert_eq!(opened.expose(), "x@y.z");
    ring()
        .destroy_scope(tenant, KeyScope::Subject(subject))
        .await
        .unwrap();
    assert!(
        ring()
            .dangerous_open::<String>(&loc, record, sealed.as_bytes())
            .await
            .is_err()
    );
}
