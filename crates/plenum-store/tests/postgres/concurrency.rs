//! Many tasks over several tenants on a small pool: zero rows of the wrong tenant, and final
//! counts equal an in-memory model. Plus background jobs carrying their tenant as a value.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plenum_core::TenantId;
use plenum_store::TenantBound;
use rand::{Rng as _, SeedableRng as _};
use uuid::Uuid;

use crate::fixtures::world;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tasks_never_see_another_tenant() {
    let w = world().await;
    let mut config = w.db.pool_config(4);
    config.acquire_timeout = Duration::from_secs(600);
    let pool = plenum_store::TenantPool::connect_postgres(&w.db.url(&w.db.roles.app()), &config)
        .await
        .unwrap();
    let mut tenants = vec![w.a.tenant, w.b.tenant, w.c];
    for _ in 0..3 {
        let t = TenantId::generate();
        pool.register_tenant(t).await.unwrap();
        tenants.push(t);
    }
    // Rows already present per tenant (A: 1, B: 2, others: 0).
    let model: Arc<Mutex<HashMap<TenantId, i64>>> = Arc::new(Mutex::new(
        tenants
            .iter()
            .map(|t| {
                (
                    *t,
                    if *t == w.a.tenant {
                        1
                    } else if *t == w.b.tenant {
                        2
                    } else {
                        0
                    },
                )
            })
            .collect(),
    ));
    let mismatches = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let mut tasks = Vec::with_capacity(10_000);
    for i in 0..10_000u32 {
        let tenant = tenants[rng.gen_range(0..tenants.len())];
        let delay_us = rng.gen_range(0..2_000u64);
        let commit = rng.gen_bool(0.8);
        let (pool, model, mismatches) = (pool.clone(), model.clone(), mismatches.clone());
        tasks.push(tokio::spawn(async move {
            let mut tx = pool.begin(tenant).await.unwrap();
            let conn = tx.dangerous_postgres().unwrap();
            sqlx::query("INSERT INTO app.customers (tenant_id, id, email) VALUES ($1, $2, $3)")
                .bind(tenant.as_uuid())
                .bind(Uuid::now_v7())
                .bind(format!("task{i}@example.com"))
                .execute(&mut *conn)
                .await
                .unwrap();
            if delay_us > 1_000 {
                tokio::time::sleep(Duration::from_micros(delay_us)).await;
            } else {
                tokio::task::yield_now().await;
            }
            let seen: Vec<Uuid> =
                sqlx::query_scalar("SELECT tenant_id FROM app.customers ORDER BY id DESC LIMIT 20")
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap();
            let wrong = seen.iter().filter(|t| *t != tenant.as_uuid()).count();
            mismatches.fetch_add(wrong as u64, std::sync::atomic::Ordering::Relaxed);
            if commit {
                tx.commit().await.unwrap();
                *model.lock().unwrap().get_mut(&tenant).unwrap() += 1;
            } else {
                tx.rollback().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(mismatches.load(std::sync::atomic::Ordering::Relaxed), 0);
    let model = model.lock().unwrap().clone();
    for tenant in tenants {
        let mut tx = pool.begin(tenant).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM app.customers")
            .fetch_one(tx.dangerous_postgres().unwrap())
            .await
            .unwrap();
        assert_eq!(n, model[&tenant], "tenant {tenant}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_for_a_sees_only_a_while_a_request_for_b_is_in_flight() {
    let w = world().await;
    // The job was enqueued earlier: its payload carries the tenant as data.
    let job = serde_json::to_string(&TenantBound::new(w.a.tenant, "send-reminders")).unwrap();

    let (b_started_tx, b_started) = tokio::sync::oneshot::channel::<()>();
    let (job_done_tx, job_done) = tokio::sync::oneshot::channel::<()>();
    let request_pool = w.app.clone();
    let b = w.b.tenant;
    let request = tokio::spawn(async move {
        let mut tx = request_pool.begin(b).await.unwrap();
        let before: i64 = sqlx::query_scalar("SELECT count(*) FROM app.customers")
            .fetch_one(tx.dangerous_postgres().unwrap())
            .await
            .unwrap();
        b_started_tx.send(()).unwrap();
        job_done.await.unwrap();
        let after: i64 = sqlx::query_scalar("SELECT count(*) FROM app.customers")
            .fetch_one(tx.dangerous_postgres().unwrap())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        (before, after)
    });

    b_started.await.unwrap();
    let bound: TenantBound<String> = serde_json::from_str(&job).unwrap();
    let (mut tx, payload) = bound.begin(&w.app).await.unwrap();
    assert_eq!(payload, "send-reminders");
    let seen: Vec<Uuid> = sqlx::query_scalar("SELECT tenant_id FROM app.customers")
        .fetch_all(tx.dangerous_postgres().unwrap())
        .await
        .unwrap();
    assert_eq!(seen, vec![*w.a.tenant.as_uuid()]);
    tx.commit().await.unwrap();
    job_done_tx.send(()).unwrap();

    let (before, after) = request.await.unwrap();
    assert_eq!(
        (before, after),
        (2, 2),
        "the request for B saw only B throughout"
    );
}
