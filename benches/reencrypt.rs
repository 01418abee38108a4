//! The re-encryption sweep against the local PostgreSQL: 10,000 customers (4 encrypted fields
//! each, under their subject's key), every subject's key rotated, swept a page of 500 rows per
//! transaction with `Records::reencrypt_page` (open under the old version, seal under the new,
//! optimistic write, read-back, the cursor and the page's audit event). Each iteration times
//! one page; the next page's subjects are rotated before it, untimed. Rows per second = 500 /
//! the median.
//!
//! Run with `cargo bench -p plenum-benches --bench reencrypt`; under `cargo test --benches`
//! (the CI smoke) the data set is 40 customers and pages of 20.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "bench harness: a panic aborts the bench, and criterion's macros generate items"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use plenum::consent::Policy;
use plenum::core::{Actor, ActorId, ActorKind, RecordId, SubjectId, TenantId, role};
use plenum::crypto::secrecy::SecretBox;
use plenum::crypto::{Backend, KeyScope, Keyring, KeyringConfig, LocalKeyProvider};
use plenum::store::{Auditor, Authorisation, DbKeyStore, Encrypted, Gate, Records, Request};
use plenum_hvac::Customer;
use plenum_test::pg::TestDb;

/// A customer row as the floor reads it: id and the four sealed columns.
type FloorRow = (uuid::Uuid, Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>);

fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn reencrypt(c: &mut Criterion) {
    let (count, page): (usize, u32) = if measuring() { (10_000, 500) } else { (40, 20) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let gate = Gate::new(
        Policy::plenum_default(),
        Authorisation::new().allow_unrestricted(role!("operator")),
    );
    let tenant = TenantId::generate();
    let request = Request::new(
        tenant,
        Actor::new(ActorKind::SystemJob, ActorId::generate()).with_role(role!("operator")),
    );
    let grant = gate.unrestricted(&request, "bench").unwrap();
    let (_db, pool, records, subjects) = rt.block_on(async {
        let db = TestDb::create(&plenum_hvac::tables()).await;
        let pool = db.app(2).await;
        let keyring = Arc::new(Keyring::new(
            Arc::new(
                LocalKeyProvider::new(Backend::default(), 1, &SecretBox::new(Box::new([7u8; 32])))
                    .unwrap(),
            ),
            Arc::new(DbKeyStore::new(pool.clone())),
            KeyringConfig::default(),
        ));
        let auditor = Auditor::new(keyring.clone(), &pool, "reencrypt-bench").unwrap();
        let records =
            Records::new(keyring, Arc::new(auditor)).with_record_types(plenum_hvac::record_types());
        pool.register_tenant(tenant).await.unwrap();
        let customers: Vec<Customer> = (0..count)
            .map(|i| Customer {
                id: RecordId::generate(),
                tenant,
                subject: SubjectId::generate(),
                name: Encrypted::new(format!("Customer {i}")),
                email: Encrypted::new(format!("c{i}@example.com")),
                phone: Encrypted::new(format!("+1217555{i:04}")),
                service_address: Encrypted::new(format!("{i} Furnace Lane")),
                created_at: Utc::now(),
            })
            .collect();
        for chunk in customers.chunks(500) {
            let mut tx = pool.begin(tenant).await.unwrap();
            records
                .repository::<Customer>()
                .insert_many(&mut tx, &grant, chunk)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        // In id order: the order the sweep walks.
        let mut subjects: Vec<(RecordId, SubjectId)> =
            customers.iter().map(|c| (c.id, c.subject)).collect();
        subjects.sort();
        (db, pool, records, subjects)
    });
    let record_type = plenum::core::record_type!("customers");
    let pages: Vec<Vec<SubjectId>> = subjects
        .chunks(page as usize)
        .map(|c| c.iter().map(|(_, s)| *s).collect())
        .collect();
    let mut next = 0usize;
    let mut g = c.benchmark_group("reencrypt");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.bench_function(format!("customers/page-{page}/4-fields"), |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let i = next % pages.len();
                next += 1;
                // Untimed: rotate this page's subjects so each of its values is due.
                rt.block_on(async {
                    for s in &pages[i] {
                        records
                            .keyring()
                            .rotate(tenant, KeyScope::Subject(*s))
                            .await
                            .unwrap();
                    }
                });
                let start = Instant::now();
                let done = rt.block_on(async {
                    let mut tx = pool.begin(tenant).await.unwrap();
                    let p = records
                        .reencrypt_page(&mut tx, &grant, &record_type, page)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                    p
                });
                timed += start.elapsed();
                assert_eq!(
                    done.resealed,
                    pages[i].len() as u64 * 4,
                    "every field was due"
                );
            }
            timed
        });
    });
    // The floor of this design, in the same run: the page read in one statement, then per row
    // one hand-written UPDATE of the four columns guarded by their current values and one
    // SELECT reading them back, as the runtime role in one transaction, with no cryptography
    // (the values written are those read).
    let ids: Vec<RecordId> = subjects.iter().map(|(id, _)| *id).collect();
    let id_pages: Vec<&[RecordId]> = ids.chunks(page as usize).collect();
    let mut next_floor = 0usize;
    g.bench_function(format!("floor-update-readback/page-{page}/4-fields"), |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let chunk = id_pages[next_floor % id_pages.len()];
                next_floor += 1;
                let start = Instant::now();
                rt.block_on(async {
                    let mut tx = pool.begin(tenant).await.unwrap();
                    let conn = tx.dangerous_postgres().unwrap();
                    let uuids: Vec<uuid::Uuid> = chunk.iter().map(|id| *id.as_uuid()).collect();
                    let rows: Vec<FloorRow> = sqlx::query_as(
                        "SELECT id, name, email, phone, service_address FROM app.customers \
                             WHERE tenant_id = $1 AND id = ANY($2) ORDER BY id",
                    )
                    .bind(tenant.as_uuid())
                    .bind(&uuids)
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap();
                    for row in &rows {
                        sqlx::query(
                            "UPDATE app.customers SET name = $3, email = $4, phone = $5, \
                             service_address = $6 WHERE tenant_id = $1 AND id = $2 AND name = $3 \
                             AND email = $4 AND phone = $5 AND service_address = $6",
                        )
                        .bind(tenant.as_uuid())
                        .bind(row.0)
                        .bind(&row.1)
                        .bind(&row.2)
                        .bind(&row.3)
                        .bind(&row.4)
                        .execute(&mut *conn)
                        .await
                        .unwrap();
                        let _: (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) = sqlx::query_as(
                            "SELECT name, email, phone, service_address FROM app.customers \
                             WHERE tenant_id = $1 AND id = $2",
                        )
                        .bind(tenant.as_uuid())
                        .bind(row.0)
                        .fetch_one(&mut *conn)
                        .await
                        .unwrap();
                    }
                    tx.commit().await.unwrap();
                });
                timed += start.elapsed();
            }
            timed
        });
    });
    g.finish();
}

criterion_group!(benches, reencrypt);
criterion_main!(benches);
