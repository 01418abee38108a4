//! Cached plans never carry one tenant's context to another, and tenant queries use indexes.

use plenum_core::TenantId;
use plenum_store::TenantPool;
use serde_json::Value;
use sqlx::Executor as _;
use uuid::Uuid;

use crate::fixtures::{tables, world};

async fn ids_for_shared_email(pool: &TenantPool, tenant: TenantId, generic: bool) -> Vec<Uuid> {
    let mut tx = pool.begin(tenant).await.unwrap();
    let conn = tx.dangerous_postgres().unwrap();
    if generic {
        conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            .await
            .unwrap();
    }
    // A prepared statement (sqlx caches it per connection), relying on RLS alone to filter.
    let rows: Vec<Uuid> =
        sqlx::query_scalar("SELECT tenant_id FROM app.customers WHERE email = $1")
            .bind("shared@example.com")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    rows
}

#[tokio::test]
async fn with_an_immutable_context_function_the_same_test_would_catch_a_leak() {
    // The control experiment for the test below: break the function the way the verifier
    // forbids, and the cached generic plan serves A's rows to B.
    let w = world().await;
    w.db.as_owner(&["ALTER FUNCTION plenum.current_tenant_id() IMMUTABLE"])
        .await;
    let pool = w.db.app(1).await;
    // A cached plan survives until something invalidates it; catalog changes made by other
    // tests on the same server (shared catalogs, or an overflowing invalidation queue) can
    // reset every cached plan in between, so the experiment is repeated until the plan
    // survives once. One survival is enough to show the leak.
    let mut seen = Vec::new();
    for _ in 0..8 {
        for _ in 0..12 {
            ids_for_shared_email(&pool, w.a.tenant, true).await;
        }
        let as_b = ids_for_shared_email(&pool, w.b.tenant, true).await;
        if as_b == vec![*w.a.tenant.as_uuid()] {
            return;
        }
        seen.push(as_b);
    }
    panic!("the leak this contract exists to prevent never showed: {seen:?}");
}

#[tokio::test]
async fn the_plan_cache_does_not_leak_between_tenants() {
    let w = world().await;
    let pool = w.db.app(1).await;
    for generic in [false, true] {
        for _ in 0..12 {
            assert_eq!(
                ids_for_shared_email(&pool, w.a.tenant, generic).await,
                vec![*w.a.tenant.as_uuid()]
            );
        }
        for _ in 0..3 {
            assert_eq!(
                ids_for_shared_email(&pool, w.b.tenant, generic).await,
                vec![*w.b.tenant.as_uuid()],
                "generic plan: {generic}"
            );
        }
    }
}

fn walk<'a>(plan: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(plan);
    if let Some(children) = plan.get("Plans").and_then(Value::as_array) {
        for child in children {
            walk(child, out);
        }
    }
}

/// Runs EXPLAIN (FORMAT JSON) as the app role and fails on a sequential scan of a tenant table
/// or a per-row cast or setting lookup in a filter.
async fn assert_index_plan(pool: &TenantPool, tenant: TenantId, sql: &str, id: Option<Uuid>) {
    let mut tx = pool.begin(tenant).await.unwrap();
    let explain = format!("EXPLAIN (FORMAT JSON) {sql}");
    let mut q = sqlx::query_scalar::<_, Value>(sqlx::AssertSqlSafe(explain)).bind(tenant.as_uuid());
    if let Some(id) = id {
        q = q.bind(id);
    }
    let plan: Value = q.fetch_one(tx.dangerous_postgres().unwrap()).await.unwrap();
    let root = &plan[0]["Plan"];
    let mut nodes = Vec::new();
    walk(root, &mut nodes);
    assert!(
        nodes.iter().any(|n| n["Node Type"]
            .as_str()
            .is_some_and(|k| k.contains("Index") || k == "Bitmap Heap Scan")
            && n["Relation Name"] == "customers"),
        "{sql}: no index access to customers in {plan:#}"
    );
    for node in nodes {
        let kind = node["Node Type"].as_str().unwrap_or_default();
        let relation = node["Relation Name"].as_str().unwrap_or_default();
        assert!(
            !(kind == "Seq Scan" && ["customers", "orders"].contains(&relation)),
            "{sql}: seq scan in {plan:#}"
        );
        for key in ["Filter", "Index Cond", "Recheck Cond"] {
            if let Some(cond) = node[key].as_str() {
                assert!(
                    !cond.contains("current_setting"),
                    "{sql}: per-row setting lookup: {cond}"
                );
                assert!(!cond.contains("::text"), "{sql}: per-row cast: {cond}");
            }
        }
    }
}

#[tokio::test]
async fn tenant_queries_are_index_scans_without_per_row_casts() {
    let w = world().await;
    // Enough rows over enough tenants that the planner would rather scan without the index.
    let su = w.db.superuser().await;
    su.execute(
        "INSERT INTO plenum.tenants (id) SELECT gen_random_uuid() FROM generate_series(1, 200); \
         INSERT INTO app.customers (tenant_id, id, email) \
           SELECT t.id, gen_random_uuid(), 'c' || g || '@example.com' \
           FROM plenum.tenants t, generate_series(1, 100) g; \
         ANALYZE app.customers; ANALYZE plenum.tenants",
    )
    .await
    .unwrap();
    let _ = tables();
    assert_index_plan(
        &w.app,
        w.a.tenant,
        "SELECT * FROM app.customers WHERE tenant_id = $1 AND id = $2",
        Some(w.a.customer),
    )
    .await;
    assert_index_plan(
        &w.app,
        w.a.tenant,
        "SELECT * FROM app.customers WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT 50",
        Some(Uuid::nil()),
    )
    .await;
    assert_index_plan(
        &w.app,
        w.a.tenant,
        "SELECT count(*) FROM app.customers WHERE tenant_id = $1",
        None,
    )
    .await;
}
