//! Tenant-scoped reads through the library (one-round-trip reset + BEGIN + tenant context, RLS,
//! explicit tenant predicate) against the same query hand-written with `WHERE tenant_id = $1`
//! on a table without RLS, and against the floor: the library's statements sent by hand on the
//! RLS table (what the database's side of the contract costs), in one run against the local
//! PostgreSQL. 1M rows over 1,000 tenants: five large tenants of 50,000 rows, the rest ~754 rows
//! each.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "bench harness: a panic aborts the bench, and criterion's macros generate items"
)]

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use plenum_benches::block_paired;
use plenum_core::{TenantId, field_name, record_type};
use plenum_store::postgres::ContextKey;
use plenum_store::{SqlType, TENANT_SETTING, TableSpec};
use plenum_test::pg::TestDb;
use sqlx::{AssertSqlSafe, Executor as _};
use uuid::Uuid;

fn items() -> TableSpec {
    TableSpec::new(record_type!("items")).column(field_name!("payload"), SqlType::Text, false)
}

struct Fixture {
    db: TestDb,
    small: (TenantId, Uuid),
    large: (TenantId, Uuid),
}

async fn fixture() -> Fixture {
    let db = TestDb::create(&[items()]).await;
    let app = db.roles.app();
    db.as_owner(&[
        "CREATE TABLE app.items_plain (tenant_id uuid NOT NULL, id uuid NOT NULL, payload text NOT NULL, PRIMARY KEY (tenant_id, id))",
        &format!("GRANT SELECT ON app.items_plain TO {app}"),
    ])
    .await;
    let su = db.superuser().await;
    su.execute(
        "INSERT INTO plenum.tenants (id) SELECT gen_random_uuid() FROM generate_series(1, 1000); \
         CREATE TEMP TABLE ranked AS SELECT id, row_number() OVER (ORDER BY id) AS n FROM plenum.tenants; \
         INSERT INTO app.items (tenant_id, id, payload) \
           SELECT r.id, gen_random_uuid(), md5(g::text) FROM ranked r, generate_series(1, 50000) g WHERE r.n <= 5; \
         INSERT INTO app.items (tenant_id, id, payload) \
           SELECT r.id, gen_random_uuid(), md5(g::text) FROM ranked r, generate_series(1, 754) g WHERE r.n > 5; \
         INSERT INTO app.items_plain SELECT * FROM app.items",
    )
    .await
    .unwrap();
    // VACUUM refuses to run in the implicit transaction of a multi-statement query.
    for table in ["app.items", "app.items_plain", "plenum.tenants"] {
        su.execute(AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
            .await
            .unwrap();
    }
    let pick = |large: bool| {
        let su = su.clone();
        async move {
            let sql = if large {
                "SELECT tenant_id, id FROM app.items WHERE tenant_id = (SELECT tenant_id FROM app.items GROUP BY tenant_id ORDER BY count(*) DESC LIMIT 1) ORDER BY id OFFSET 25000 LIMIT 1"
            } else {
                "SELECT tenant_id, id FROM app.items WHERE tenant_id = (SELECT tenant_id FROM app.items GROUP BY tenant_id ORDER BY count(*) ASC LIMIT 1) ORDER BY id OFFSET 300 LIMIT 1"
            };
            let (t, id): (Uuid, Uuid) = sqlx::query_as(AssertSqlSafe(sql.to_owned()))
                .fetch_one(&su)
                .await
                .unwrap();
            (TenantId::from_trusted_uuid(t), id)
        }
    };
    let small = pick(false).await;
    let large = pick(true).await;
    Fixture { db, small, large }
}

/// One round of the measured work: a transaction with one point get or one 50-row page.
#[derive(Clone, Copy)]
enum Work {
    Point(Uuid),
    Page,
}

/// The measured statements on `conn`, inside whatever transaction the caller began: on the
/// table without RLS (`plain`) or on the RLS table.
async fn statements(
    conn: &mut sqlx::PgConnection,
    plain: bool,
    tenant: TenantId,
    work: Work,
) -> usize {
    let (point, page) = if plain {
        (
            "SELECT id, payload FROM app.items_plain WHERE tenant_id = $1 AND id = $2",
            "SELECT id, payload FROM app.items_plain WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT 50",
        )
    } else {
        (
            "SELECT id, payload FROM app.items WHERE tenant_id = $1 AND id = $2",
            "SELECT id, payload FROM app.items WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT 50",
        )
    };
    match work {
        Work::Point(id) => {
            let _row: (Uuid, String) = sqlx::query_as(point)
                .bind(tenant.as_uuid())
                .bind(id)
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            1
        }
        Work::Page => sqlx::query_as::<_, (Uuid, String)>(page)
            .bind(tenant.as_uuid())
            .bind(Uuid::nil())
            .fetch_all(&mut *conn)
            .await
            .unwrap()
            .len(),
    }
}

async fn hand_written(raw: &sqlx::PgPool, tenant: TenantId, work: Work) -> usize {
    let mut tx = raw.begin().await.unwrap();
    let n = statements(&mut tx, true, tenant, work).await;
    tx.commit().await.unwrap();
    n
}

/// The database's side of the contract with nothing of the library's client: the same statements
/// on the RLS table, as the runtime role, with the authenticated tenant context set by hand in
/// the `BEGIN` round trip (a raw pool: no session reset). What RLS and the context function
/// cost the server is here; what the library's client adds is the distance to `plenum`.
async fn floor(raw: &sqlx::PgPool, key: &ContextKey, tenant: TenantId, work: Work) -> usize {
    let begin = format!(
        "BEGIN; SET LOCAL {TENANT_SETTING} = '{}'",
        key.token(tenant)
    );
    let mut tx = raw.begin_with(AssertSqlSafe(begin)).await.unwrap();
    let n = statements(&mut tx, false, tenant, work).await;
    tx.commit().await.unwrap();
    n
}

async fn through_plenum(pool: &plenum_store::TenantPool, tenant: TenantId, work: Work) -> usize {
    let mut tx = pool.begin(tenant).await.unwrap();
    let n = statements(tx.dangerous_postgres().unwrap(), false, tenant, work).await;
    tx.commit().await.unwrap();
    n
}

fn tenancy(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fx = rt.block_on(fixture());
    let (library, raw) = rt.block_on(async {
        (
            fx.db.app(2).await,
            fx.db.raw_pool(&fx.db.roles.app(), 2).await,
        )
    });

    // Paired by blocks (`block_paired`): the variants run on different pools, and alternating
    // pools run by run costs more than either variant (see `block_paired`).
    let mut g = c.benchmark_group("tenancy");
    for (label, (tenant, id)) in [("small-tenant", fx.small), ("large-tenant", fx.large)] {
        for (case, work) in [("point-get", Work::Point(id)), ("page-50", Work::Page)] {
            let key = &fx.db.context_key;
            g.bench_function(format!("{case}/hand-written/{label}"), |b| {
                block_paired(
                    &rt,
                    b,
                    || through_plenum(&library, tenant, work),
                    || hand_written(&raw, tenant, work),
                );
            });
            g.bench_function(format!("{case}/floor/{label}"), |b| {
                block_paired(
                    &rt,
                    b,
                    || hand_written(&raw, tenant, work),
                    || floor(&raw, key, tenant, work),
                );
            });
            g.bench_function(format!("{case}/plenum/{label}"), |b| {
                block_paired(
                    &rt,
                    b,
                    || hand_written(&raw, tenant, work),
                    || through_plenum(&library, tenant, work),
                );
            });
        }
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(40)
}

criterion_group! { name = benches; config = config(); targets = tenancy }
criterion_main!(benches);
