//! Wrapped keys in the database: under RLS, committed on their own, shared by processes.

use std::sync::Arc;

use plenum_core::{RecordId, SubjectId, TenantId, field_name, record_type};
use plenum_crypto::{
    Backend, ErrorKind as CryptoErrorKind, FieldLocator, KeyScope, Keyring, KeyringConfig,
    LocalKeyProvider, Owner, Pii, secrecy::SecretBox,
};
use plenum_store::DbKeyStore;
use uuid::Uuid;

use crate::fixtures::world;

/// A keyring over `store`: each call is another process's keyring (cold caches).
fn keyring(store: &DbKeyStore) -> Keyring {
    let root = SecretBox::new(Box::new([0x24u8; 32]));
    Keyring::new(
        Arc::new(LocalKeyProvider::new(Backend::default(), 1, &root).unwrap()),
        Arc::new(store.clone()),
        KeyringConfig::default(),
    )
}

fn email(tenant: TenantId, subject: SubjectId) -> FieldLocator {
    FieldLocator {
        tenant,
        record_type: record_type!("customers"),
        field: field_name!("email"),
        owner: Owner::Subject(subject),
    }
}

#[tokio::test]
async fn keys_live_in_the_database_under_rls_and_erasure_destroys_them() {
    let w = world().await;
    let store = DbKeyStore::new(w.app.clone());
    let ring = keyring(&store);
    let subject = SubjectId::generate();
    let loc = email(w.a.tenant, subject);
    let record = RecordId::generate();
    let sealed = ring
        .seal(&loc, record, &Pii::new("ada@example.com".to_owned()))
        .await
        .unwrap();

    // Another process (fresh caches) reads the same keys from the database.
    let other = keyring(&store);
    let opened: Pii<String> = other
        .dangerous_open(&loc, record, sealed.as_bytes())
        .await
        .unwrap();
    assert_eq!(opened.expose(), "ada@example.com");

    let su = w.db.superuser().await;
    // (scope, subject, version, state, wrapped)
    type KeyRow = (i16, Uuid, i32, String, Option<Vec<u8>>);
    let rows: Vec<KeyRow> = sqlx::query_as(
        "SELECT scope, subject_id, version, state, wrapped FROM plenum.keys WHERE tenant_id = $1 ORDER BY scope",
    )
    .bind(w.a.tenant.as_uuid())
    .fetch_all(&su)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2, "the subject key and the subject-wrap key");
    assert_eq!((rows[0].0, rows[0].1), (3, *subject.as_uuid()));
    assert_eq!((rows[1].0, rows[1].1), (4, Uuid::nil()));
    assert!(
        rows.iter()
            .all(|r| r.3 == "active" && r.4.as_ref().is_some_and(|w| w.len() == 66))
    );

    // Tenant B cannot see or touch A's keys.
    let mut tx = w.app.begin(w.b.tenant).await.unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM plenum.keys WHERE tenant_id = $1")
        .bind(w.a.tenant.as_uuid())
        .fetch_one(tx.dangerous_postgres().unwrap())
        .await
        .unwrap();
    assert_eq!(seen, 0);
    let wiped = sqlx::query(
        "UPDATE plenum.keys SET wrapped = NULL, state = 'destroyed' WHERE tenant_id = $1",
    )
    .bind(w.a.tenant.as_uuid())
    .execute(tx.dangerous_postgres().unwrap())
    .await
    .unwrap();
    assert_eq!(wiped.rows_affected(), 0);
    drop(tx);

    // Erasure: the subject's key row keeps its place but loses its material.
    ring.destroy_scope(w.a.tenant, KeyScope::Subject(subject))
        .await
        .unwrap();
    let state: (String, Option<Vec<u8>>) =
        sqlx::query_as("SELECT state, wrapped FROM plenum.keys WHERE tenant_id = $1 AND scope = 3")
            .bind(w.a.tenant.as_uuid())
            .fetch_one(&su)
            .await
            .unwrap();
    assert_eq!(state, ("destroyed".to_owned(), None));
    let err = keyring(&store)
        .dangerous_open::<String>(&loc, record, sealed.as_bytes())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), CryptoErrorKind::KeyDestroyed);
}

/// Erasure cannot be undone through raw SQL: the runtime role, inside the tenant's own
/// transaction, writes the wrapped bytes it saved before erasure back and marks the key active.
/// Before migration 5 this succeeded and the erased fields opened again.
#[tokio::test]
async fn the_runtime_role_cannot_un_erase_a_subject() {
    let w = world().await;
    let store = DbKeyStore::new(w.app.clone());
    let ring = keyring(&store);
    let subject = SubjectId::generate();
    let loc = email(w.a.tenant, subject);
    let record = RecordId::generate();
    let sealed = ring
        .seal(&loc, record, &Pii::new("ada@example.com".to_owned()))
        .await
        .unwrap();
    let mut tx = w.app.begin(w.a.tenant).await.unwrap();
    let saved: Vec<u8> = sqlx::query_scalar(
        "SELECT wrapped FROM plenum.keys WHERE tenant_id = $1 AND scope = 3 AND subject_id = $2",
    )
    .bind(w.a.tenant.as_uuid())
    .bind(subject.as_uuid())
    .fetch_one(tx.dangerous_postgres().unwrap())
    .await
    .unwrap();
    tx.commit().await.unwrap();
    ring.destroy_scope(w.a.tenant, KeyScope::Subject(subject))
        .await
        .unwrap();

    let attempts = [
        "UPDATE plenum.keys SET state = 'active', wrapped = $3 \
         WHERE tenant_id = $1 AND scope = 3 AND subject_id = $2",
        "UPDATE plenum.keys SET state = 'retired', wrapped = $3 \
         WHERE tenant_id = $1 AND scope = 3 AND subject_id = $2",
        // A new version with the old bytes would be a key the subject never had: the
        // version-1 bytes are bound to version 1 by the wrap's context, so it cannot open.
        "UPDATE plenum.keys SET version = 2 \
         WHERE tenant_id = $1 AND scope = 3 AND subject_id = $2 AND $3::bytea IS NOT NULL",
    ];
    for sql in attempts {
        let mut tx = w.app.begin(w.a.tenant).await.unwrap();
        let err = sqlx::query(sql)
            .bind(w.a.tenant.as_uuid())
            .bind(subject.as_uuid())
            .bind(&saved)
            .execute(tx.dangerous_postgres().unwrap())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("destroyed") || err.to_string().contains("identity"),
            "{sql}: {err}"
        );
    }
    let err = keyring(&store)
        .dangerous_open::<String>(&loc, record, sealed.as_bytes())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), CryptoErrorKind::KeyDestroyed);

    // Nor can a rotated key go back: decrypt_only -> active is refused too.
    let other = SubjectId::generate();
    ring.dangerous_field_key(&email(w.a.tenant, other))
        .await
        .unwrap();
    ring.rotate(w.a.tenant, KeyScope::Subject(other))
        .await
        .unwrap();
    let mut tx = w.app.begin(w.a.tenant).await.unwrap();
    let err = sqlx::query(
        "UPDATE plenum.keys SET state = 'active' \
         WHERE tenant_id = $1 AND scope = 3 AND subject_id = $2 AND version = 1",
    )
    .bind(w.a.tenant.as_uuid())
    .bind(other.as_uuid())
    .execute(tx.dangerous_postgres().unwrap())
    .await
    .unwrap_err();
    assert!(err.to_string().contains("forward"), "{err}");
}

#[tokio::test]
async fn two_processes_racing_on_first_use_agree_on_one_key() {
    let w = world().await;
    let store = DbKeyStore::new(w.app.clone());
    let (p1, p2) = (keyring(&store), keyring(&store));
    let subject = SubjectId::generate();
    let loc = email(w.b.tenant, subject);
    let (r1, r2) = (RecordId::generate(), RecordId::generate());
    let v = Pii::new("same@example.com".to_owned());
    let (s1, s2) = tokio::join!(p1.seal(&loc, r1, &v), p2.seal(&loc, r2, &v));
    let (s1, s2) = (s1.unwrap(), s2.unwrap());
    // Each process opens what the other sealed.
    let a: Pii<String> = p2.dangerous_open(&loc, r1, s1.as_bytes()).await.unwrap();
    let b: Pii<String> = p1.dangerous_open(&loc, r2, s2.as_bytes()).await.unwrap();
    assert_eq!(
        (a.expose().as_str(), b.expose().as_str()),
        ("same@example.com", "same@example.com")
    );
    let su = w.db.superuser().await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM plenum.keys WHERE tenant_id = $1")
        .bind(w.b.tenant.as_uuid())
        .fetch_one(&su)
        .await
        .unwrap();
    assert_eq!(n, 2);
}

#[tokio::test]
async fn a_key_created_during_a_rolled_back_transaction_survives() {
    let w = world().await;
    let store = DbKeyStore::new(w.app.clone());
    let ring = keyring(&store);
    let loc = email(w.a.tenant, SubjectId::generate());
    let record = RecordId::generate();
    let data_tx = w.app.begin(w.a.tenant).await.unwrap();
    let sealed = ring
        .seal(&loc, record, &Pii::new("kept".to_owned()))
        .await
        .unwrap();
    data_tx.rollback().await.unwrap();
    // A fresh process still finds the key: it was committed on its own.
    let opened: Pii<String> = keyring(&store)
        .dangerous_open(&loc, record, sealed.as_bytes())
        .await
        .unwrap();
    assert_eq!(opened.expose(), "kept");
}

#[tokio::test]
async fn a_batch_of_new_subjects_keeps_the_key_another_process_stored_first() {
    let w = world().await;
    let store = DbKeyStore::new(w.app.clone());
    let (first, second) = (keyring(&store), keyring(&store));
    let (known, new) = (SubjectId::generate(), SubjectId::generate());
    let created = first
        .prepare_subjects(w.a.tenant, &[known], true)
        .await
        .unwrap();
    assert_eq!(created, vec![known]);
    let record = RecordId::generate();
    let sealed = first
        .seal(
            &email(w.a.tenant, known),
            record,
            &Pii::new("first".to_owned()),
        )
        .await
        .unwrap();
    // The second process's batch conflicts on `known`: its key is read back, not replaced,
    // and only `new` is reported as created (the audit log's key events).
    let created = second
        .prepare_subjects(w.a.tenant, &[known, new], true)
        .await
        .unwrap();
    assert_eq!(created, vec![new]);
    let opened: Pii<String> = second
        .dangerous_open(&email(w.a.tenant, known), record, sealed.as_bytes())
        .await
        .unwrap();
    assert_eq!(opened.expose(), "first");
    let su = w.db.superuser().await;
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM plenum.keys WHERE tenant_id = $1 AND scope = 3")
            .bind(w.a.tenant.as_uuid())
            .fetch_one(&su)
            .await
            .unwrap();
    assert_eq!(n, 2);
}
