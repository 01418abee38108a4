//! The retention sweep against the local PostgreSQL: how fast it deletes due rows, and what it
//! does to a tenant's ordinary traffic while it runs.
//!
//! - **sweep**: 1,000 tenants with 1,000 invoices each past their seven years (1,000,000 rows,
//!   inserted by SQL as the superuser). Each iteration sweeps the next tenant's 1,000 rows with
//!   `Records::sweep_records` (one batch: select, delete one by one, the batch's audit event)
//!   and commits. Rows per second = 1,000 / the median.
//! - **point-read**: a customer `get` in another tenant, paired: each iteration runs the read
//!   with no sweep (`quiet`) and with a sweep of another tenant running on its own connection
//!   at the same moment (`during-sweep`), and times only its own variant. A sweep that held
//!   locks a tenant's reads wait on would show as a ratio far above what sharing two cores
//!   costs.
//!
//! Run with `cargo bench -p plenum-benches --bench retention`; under `cargo test --benches`
//! (the CI smoke) the data set is 5 tenants of 20 rows.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "bench harness: a panic aborts the bench, and criterion's macros generate items"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use plenum::consent::{Policy, Purpose, RetentionSchedule};
use plenum::core::{Actor, ActorId, ActorKind, RecordId, TenantId, role};
use plenum::crypto::secrecy::SecretBox;
use plenum::crypto::{Backend, Keyring, KeyringConfig, LocalKeyProvider};
use plenum::store::{
    Auditor, Authorisation, DbKeyStore, Encrypted, Gate, Records, Request, TenantPool,
};
use plenum_hvac::Customer;
use plenum_test::pg::TestDb;

/// Whether criterion runs for measurement (`--bench`) or as the test-mode smoke.
fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

static GATE: std::sync::LazyLock<Gate> = std::sync::LazyLock::new(|| {
    Gate::new(
        Policy::plenum_default(),
        Authorisation::new()
            .allow(role!("retention"), [Purpose::LegalObligation])
            .allow(role!("office"), [Purpose::Scheduling]),
    )
});

fn request(tenant: TenantId, r: plenum::core::Role) -> Request {
    Request::new(
        tenant,
        Actor::new(ActorKind::SystemJob, ActorId::generate()).with_role(r),
    )
}

/// Inserts `rows` invoices due in 2015 for one customer in each of `tenants`, by SQL.
async fn seed(db: &TestDb, tenants: &[TenantId], rows: u32) {
    let su = db.superuser().await;
    let ids: Vec<uuid::Uuid> = tenants.iter().map(|t| *t.as_uuid()).collect();
    sqlx::query(
        "INSERT INTO app.customers (tenant_id, id, subject_id, name, email, email_bidx, phone, \
         phone_bidx, service_address, created_at) \
         SELECT t, gen_random_uuid(), gen_random_uuid(), '\\x00', '\\x00', \
         decode(md5(t::text), 'hex'), '\\x00', decode(md5(t::text || 'p'), 'hex'), '\\x00', now() \
         FROM unnest($1::uuid[]) AS t",
    )
    .bind(&ids)
    .execute(&su)
    .await
    .unwrap();
    invoices(&su, &ids, rows).await;
    sqlx::query("VACUUM ANALYZE app.invoices")
        .execute(&su)
        .await
        .unwrap();
    su.close().await;
}

/// Sweeps one tenant's due invoices (at most `batch`) and commits; returns the rows deleted.
async fn sweep(records: &Records, pool: &TenantPool, tenant: TenantId, batch: u32) -> u64 {
    let r = request(tenant, role!("retention"));
    let grant = GATE.grant(&r, Purpose::LegalObligation).unwrap();
    let mut tx = pool.begin(tenant).await.unwrap();
    let done = records
        .sweep_records(
            &mut tx,
            &grant,
            &RetentionSchedule::plenum_default(),
            Utc::now(),
            batch,
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    done.iter().map(|(_, n)| n).sum()
}

fn retention(c: &mut Criterion) {
    let (tenant_count, rows): (usize, u32) = if measuring() { (1_000, 1_000) } else { (5, 20) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (db, pool, sweeper_pool, records, tenants, reader_tenant, reader_id) = rt.block_on(async {
        let db = TestDb::create(&plenum_hvac::tables()).await;
        let pool = db.app(2).await;
        let sweeper_pool = db.app(1).await;
        let root = SecretBox::new(Box::new([7u8; 32]));
        let keyring = Arc::new(Keyring::new(
            Arc::new(LocalKeyProvider::new(Backend::default(), 1, &root).unwrap()),
            Arc::new(DbKeyStore::new(pool.clone())),
            KeyringConfig::default(),
        ));
        let auditor = Auditor::new(keyring.clone(), &pool, "retention-bench").unwrap();
        let records =
            Records::new(keyring, Arc::new(auditor)).with_record_types(plenum_hvac::record_types());
        let tenants: Vec<TenantId> = (0..tenant_count).map(|_| TenantId::generate()).collect();
        for t in &tenants {
            pool.register_tenant(*t).await.unwrap();
        }
        seed(&db, &tenants, rows).await;
        // The reader's tenant: one real customer, read through the library.
        let reader = TenantId::generate();
        pool.register_tenant(reader).await.unwrap();
        let customer = Customer {
            id: RecordId::generate(),
            tenant: reader,
            subject: plenum::core::SubjectId::generate(),
            name: Encrypted::new("Ada Lovelace".to_owned()),
            email: Encrypted::new("ada@example.com".to_owned()),
            phone: Encrypted::new("+12175550142".to_owned()),
            service_address: Encrypted::new("12 Furnace Lane".to_owned()),
            created_at: Utc::now(),
        };
        let r = request(reader, role!("office"));
        let grant = GATE.grant(&r, Purpose::Scheduling).unwrap();
        let mut tx = pool.begin(reader).await.unwrap();
        records
            .repository::<Customer>()
            .insert(&mut tx, &grant, &customer)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        (
            db,
            pool,
            sweeper_pool,
            records,
            tenants,
            reader,
            customer.id,
        )
    });

    let mut g = c.benchmark_group("retention");
    g.sampling_mode(SamplingMode::Flat);
    // Each iteration consumes one tenant's due rows; re-seeded (untimed) when all are swept.
    let next = AtomicUsize::new(0);
    let take = || {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i > 0 && i.is_multiple_of(tenants.len()) {
            rt.block_on(seed_again(&db, &tenants, rows));
        }
        tenants[i % tenants.len()]
    };
    g.bench_function(format!("sweep/invoices/{rows}-rows"), |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let tenant = take();
                let start = Instant::now();
                let n = rt.block_on(sweep(&records, &sweeper_pool, tenant, rows));
                timed += start.elapsed();
                assert_eq!(n, u64::from(rows), "a seeded tenant had every row due");
            }
            timed
        });
    });

    let read = || async {
        let r = request(reader_tenant, role!("office"));
        let grant = GATE.grant(&r, Purpose::Scheduling).unwrap();
        let mut tx = pool.begin(reader_tenant).await.unwrap();
        records
            .repository::<Customer>()
            .get(&mut tx, &grant, reader_id)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    };
    // Paired: each iteration reads once quietly and once while a sweep of another tenant runs
    // on its own connection, timing only the variant being measured.
    for during in [false, true] {
        let label = if during { "during-sweep" } else { "quiet" };
        g.bench_function(format!("point-read/{label}/customer"), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    for variant in [!during, during] {
                        let tenant = take();
                        let start = Instant::now();
                        if variant {
                            let sweeping = rt.spawn({
                                let (records, pool) = (records.clone(), sweeper_pool.clone());
                                async move { sweep(&records, &pool, tenant, rows).await }
                            });
                            rt.block_on(read());
                            let elapsed = start.elapsed();
                            rt.block_on(sweeping).unwrap();
                            if variant == during {
                                timed += elapsed;
                            }
                        } else {
                            rt.block_on(read());
                            if variant == during {
                                timed += start.elapsed();
                            }
                        }
                    }
                }
                timed
            });
        });
    }
    g.finish();
}

/// `rows` invoices due in 2015 for each of `tenants`' customers.
async fn invoices(su: &sqlx::PgPool, tenants: &[uuid::Uuid], rows: u32) {
    sqlx::query(
        "INSERT INTO app.invoices (tenant_id, id, subject_id, customer_id, amount_cents, \
         currency, due_on, paid) \
         SELECT c.tenant_id, gen_random_uuid(), c.subject_id, c.id, '\\x00', 'USD', '2015-01-01', \
         true FROM app.customers c CROSS JOIN generate_series(1, $2) \
         WHERE c.tenant_id = ANY($1::uuid[])",
    )
    .bind(tenants)
    .bind(i32::try_from(rows).unwrap())
    .execute(su)
    .await
    .unwrap();
}

/// Every tenant's invoices again, once all were swept (outside any timing).
async fn seed_again(db: &TestDb, tenants: &[TenantId], rows: u32) {
    let su = db.superuser().await;
    let ids: Vec<uuid::Uuid> = tenants.iter().map(|t| *t.as_uuid()).collect();
    invoices(&su, &ids, rows).await;
    su.close().await;
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .sample_size(10)
}

criterion_group! { name = benches; config = config(); targets = retention }
criterion_main!(benches);
