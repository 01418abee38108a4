//! The HVAC example service under load on loopback (the load test of the axum issue): 8
//! concurrent clients each read customers over HTTP, through the library's route (identity,
//! purpose, tenant transaction under RLS, four fields opened, the read audited) and through a
//! plaintext route of the same server (the same columns as text in a table without RLS, one
//! hand-written `SELECT`, no audit), and through the floor of an audited read (the same
//! `SELECT` plus one durable insert of an event row, committed). Each iteration is one round of 8 x 25 requests; the ratio
//! of the round's medians is the throughput ratio, and each variant's p99 latency over every
//! request it served is printed at the end.
//!
//! Run with `cargo bench -p plenum-benches --bench http`; under `cargo test --benches` (the CI
//! smoke) a round is 2 x 2 requests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs,
    reason = "bench harness: a panic aborts the bench, criterion's macros generate items, and the p99 is printed"
)]

#[path = "../examples/hvac_service/app.rs"]
#[allow(
    dead_code,
    unreachable_pub,
    reason = "the example's app, included whole"
)]
mod app;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use plenum::core::{Actor, ActorId, ActorKind, RecordId, role};
use plenum_test::pg::TestDb;
use sqlx::PgPool;

fn measuring() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// The baseline route: plaintext columns by hand, no identity, no purpose, no audit.
async fn plain_customer(
    State(pool): State<PgPool>,
    Path(id): Path<uuid::Uuid>,
) -> axum::Json<serde_json::Value> {
    let (name, email, phone, address): (String, String, String, String) = sqlx::query_as(
        "SELECT name, email, phone, address FROM bench_plain_customers WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    axum::Json(serde_json::json!({
        "id": id, "name": name, "email": email, "phone": phone, "address": address,
    }))
}

/// The floor of an audited read: the same plaintext read, plus one durable write of an event
/// row (what a read that must stay on record costs at least), in one transaction.
async fn floor_customer(
    State(pool): State<PgPool>,
    Path(id): Path<uuid::Uuid>,
) -> axum::Json<serde_json::Value> {
    let mut tx = pool.begin().await.unwrap();
    let (name, email, phone, address): (String, String, String, String) = sqlx::query_as(
        "SELECT name, email, phone, address FROM bench_plain_customers WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    sqlx::query("INSERT INTO bench_events (id, record, body) VALUES (gen_random_uuid(), $1, $2)")
        .bind(id)
        .bind("{\"action\":\"read\",\"record_type\":\"customers\"}")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    axum::Json(serde_json::json!({
        "id": id, "name": name, "email": email, "phone": phone, "address": address,
    }))
}

fn http(c: &mut Criterion) {
    let (clients, per_client, customers): (usize, usize, usize) =
        if measuring() { (8, 25, 200) } else { (2, 2, 4) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (_db, base, token, ids) = rt.block_on(async {
        let db = TestDb::create(&plenum_hvac::tables()).await;
        let pool = db.app(8).await;
        let tenant = plenum::core::TenantId::generate();
        pool.register_tenant(tenant).await.unwrap();
        let mut sessions = app::Sessions::default();
        let token = sessions.open(
            tenant,
            Actor::new(ActorKind::AccountUser, ActorId::generate()).with_role(role!("office")),
        );
        let plain = db.superuser().await;
        sqlx::query(
            "CREATE TABLE bench_plain_customers (id uuid PRIMARY KEY, name text, email text, \
             phone text, address text)",
        )
        .execute(&plain)
        .await
        .unwrap();
        sqlx::query("CREATE TABLE bench_events (id uuid PRIMARY KEY, record uuid, body text)")
            .execute(&plain)
            .await
            .unwrap();
        let router = app::router(pool, sessions).unwrap().merge(
            axum::Router::new()
                .route("/plain/customers/{id}", axum::routing::get(plain_customer))
                .route("/floor/customers/{id}", axum::routing::get(floor_customer))
                .with_state(plain.clone()),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        let client = reqwest::Client::new();
        let mut ids = Vec::new();
        for i in 0..customers {
            let body = serde_json::json!({
                "name": format!("Customer {i}"), "email": format!("c{i}@example.com"),
                "phone": format!("+1217555{i:04}"), "address": format!("{i} Furnace Lane"),
            });
            let created: serde_json::Value = client
                .post(format!("{base}/customers"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let id: RecordId = created["id"].as_str().unwrap().parse().unwrap();
            sqlx::query("INSERT INTO bench_plain_customers VALUES ($1, $2, $3, $4, $5)")
                .bind(id.as_uuid())
                .bind(body["name"].as_str())
                .bind(body["email"].as_str())
                .bind(body["phone"].as_str())
                .bind(body["address"].as_str())
                .execute(&plain)
                .await
                .unwrap();
            ids.push(id);
        }
        (db, base, token, ids)
    });
    let client = reqwest::Client::new();
    let latencies: Vec<Arc<Mutex<Vec<Duration>>>> =
        (0..3).map(|_| Arc::new(Mutex::new(Vec::new()))).collect();
    let mut g = c.benchmark_group("http");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    for (variant, path, recorded) in [
        ("plaintext-no-audit", "/plain/customers", &latencies[0]),
        (
            "floor-plaintext+durable-event",
            "/floor/customers",
            &latencies[2],
        ),
        ("plenum", "/customers", &latencies[1]),
    ] {
        g.bench_function(
            format!("get-customer/{variant}/{clients}x{per_client}"),
            |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        rt.block_on(async {
                            let mut tasks = Vec::new();
                            for k in 0..clients {
                                let (client, base, token) =
                                    (client.clone(), base.clone(), token.clone());
                                let ids = ids.clone();
                                let recorded = recorded.clone();
                                tasks.push(tokio::spawn(async move {
                                    for j in 0..per_client {
                                        let id = ids[(k * per_client + j) % ids.len()];
                                        let t = Instant::now();
                                        let response = client
                                            .get(format!("{base}{path}/{id}"))
                                            .bearer_auth(&token)
                                            .send()
                                            .await
                                            .unwrap();
                                        assert!(response.status().is_success());
                                        response.bytes().await.unwrap();
                                        recorded.lock().unwrap().push(t.elapsed());
                                    }
                                }));
                            }
                            for t in tasks {
                                t.await.unwrap();
                            }
                        });
                    }
                    start.elapsed()
                });
            },
        );
    }
    g.finish();
    for (variant, recorded) in [
        ("plaintext-no-audit", &latencies[0]),
        ("floor-plaintext+durable-event", &latencies[2]),
        ("plenum", &latencies[1]),
    ] {
        let mut all = recorded.lock().unwrap().clone();
        all.sort();
        if let Some(p99) = all.get(all.len() * 99 / 100) {
            println!("http {variant}: p99 {p99:?} over {} requests", all.len());
        }
    }
}

criterion_group!(benches, http);
criterion_main!(benches);
