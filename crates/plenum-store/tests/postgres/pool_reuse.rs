//! One pooled connection, reused: whatever a transaction did or how it ended, the next checkout
//! carries no tenant context.

use std::time::Duration;

use plenum_store::{TenantPool, TenantTx};
use sqlx::Executor as _;

use crate::fixtures::{World, world};

/// The session-level value of the tenant setting underneath the current transaction: `SET LOCAL
/// ... TO DEFAULT` reverts the transaction's own value to whatever the session holds.
async fn session_tenant(tx: &mut TenantTx) -> Option<String> {
    let conn = tx.dangerous_postgres().unwrap();
    conn.execute("SET LOCAL plenum.tenant_id TO DEFAULT")
        .await
        .unwrap();
    let v: Option<String> = sqlx::query_scalar("SELECT current_setting('plenum.tenant_id', true)")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    v.filter(|s| !s.is_empty())
}

/// Asserts the (single) pooled connection is clean: no session tenant, and with the local value
/// removed the transaction sees no rows.
async fn assert_clean(pool: &TenantPool, w: &World, after: &str) {
    let mut tx = pool.begin(w.c).await.unwrap();
    assert_eq!(
        session_tenant(&mut tx).await,
        None,
        "{after}: a tenant context survived"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM app.customers")
        .fetch_one(tx.dangerous_postgres().unwrap())
        .await
        .unwrap();
    assert_eq!(rows, 0, "{after}");
}

async fn read_a(pool: &TenantPool, w: &World) -> Result<i64, plenum_store::Error> {
    let mut tx = pool.begin(w.a.tenant).await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM app.customers")
        .fetch_one(tx.dangerous_postgres().unwrap())
        .await?;
    // Early return: `?` on a failing statement drops `tx` without commit.
    sqlx::query("SELECT 1/0")
        .execute(tx.dangerous_postgres().unwrap())
        .await?;
    tx.commit().await?;
    Ok(n)
}

#[tokio::test]
async fn every_way_a_transaction_ends_leaves_no_context_behind() {
    let w = world().await;
    let pool = w.db.app(1).await;

    // Committed.
    let mut tx = pool.begin(w.a.tenant).await.unwrap();
    sqlx::query("UPDATE app.customers SET name = 'c'")
        .execute(tx.dangerous_postgres().unwrap())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_clean(&pool, &w, "commit").await;

    // Rolled back.
    let tx = pool.begin(w.a.tenant).await.unwrap();
    tx.rollback().await.unwrap();
    assert_clean(&pool, &w, "rollback").await;

    // Dropped by an early return.
    assert!(read_a(&pool, &w).await.is_err());
    assert_clean(&pool, &w, "early return").await;

    // Panicked while holding the transaction.
    let p = pool.clone();
    let tenant = w.a.tenant;
    let panicked = tokio::spawn(async move {
        let mut tx = p.begin(tenant).await.unwrap();
        sqlx::query("SELECT 1")
            .execute(tx.dangerous_postgres().unwrap())
            .await
            .unwrap();
        panic!("handler bug");
    })
    .await;
    assert!(panicked.is_err());
    assert_clean(&pool, &w, "panic").await;

    // Cancelled mid-statement by a timeout.
    let p = pool.clone();
    let timed_out = tokio::time::timeout(Duration::from_millis(200), async move {
        let mut tx = p.begin(tenant).await.unwrap();
        sqlx::query("SELECT pg_sleep(5)")
            .execute(tx.dangerous_postgres().unwrap())
            .await
            .unwrap();
        tx.commit().await.unwrap();
    })
    .await;
    assert!(
        timed_out.is_err(),
        "the statement should have been cancelled"
    );
    assert_clean(&pool, &w, "cancellation").await;
}

#[tokio::test]
async fn a_poisoned_session_setting_is_reset_before_the_next_transaction() {
    let w = world().await;
    let pool = w.db.app(1).await;
    // Raw SQL can set the tenant at session level (the library never does): poison the
    // connection with A, then hand it back.
    let mut tx = pool.begin(w.a.tenant).await.unwrap();
    let conn = tx.dangerous_postgres().unwrap();
    sqlx::query("SELECT set_config('plenum.tenant_id', $1, false)")
        .bind(w.a.tenant.to_string())
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("SET plan_cache_mode = force_generic_plan")
        .execute(&mut *conn)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // The next checkout of the same connection is clean: its BEGIN ran RESET ALL first.
    assert_clean(&pool, &w, "session-level poisoning").await;
    let mut tx = pool.begin(w.c).await.unwrap();
    let mode: String = sqlx::query_scalar("SHOW plan_cache_mode")
        .fetch_one(tx.dangerous_postgres().unwrap())
        .await
        .unwrap();
    assert_eq!(mode, "auto");
}

#[tokio::test]
async fn without_the_reset_a_poisoned_session_would_leak() {
    // The control experiment: the same poisoning on a plain sqlx pool, whose transactions do not
    // start with the library's reset, leaves A's context on the connection. This is what the
    // reset prevents.
    let w = world().await;
    let raw = w.db.raw_pool(&w.db.roles.app(), 1).await;
    let mut tx = raw.begin().await.unwrap();
    sqlx::query("SELECT set_config('plenum.tenant_id', $1, false)")
        .bind(w.db.context_key.token(w.a.tenant))
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let leaked: i64 = sqlx::query_scalar("SELECT count(*) FROM app.customers")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(leaked, 1, "a plain pool hands A's context to the next user");
}

/// A's raw SQL leaves A's (valid) token as the session's tenant and a holdable cursor of A's rows.
async fn poison(conn: &mut sqlx::PgConnection, token: String) {
    sqlx::query("SELECT set_config('plenum.tenant_id', $1, false)")
        .bind(token)
        .execute(&mut *conn)
        .await
        .unwrap();
    conn.execute("DECLARE stash CURSOR WITH HOLD FOR SELECT email FROM app.customers")
        .await
        .unwrap();
}

/// B's raw SQL rolls its transaction back, then counts the customers it can see and tries A's
/// cursor: (rows seen, whether the cursor answered).
async fn roll_back_and_read(conn: &mut sqlx::PgConnection) -> (i64, bool) {
    conn.execute("ROLLBACK").await.unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM app.customers")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let cursor = sqlx::query_scalar::<_, String>("FETCH ALL FROM stash")
        .fetch_all(&mut *conn)
        .await;
    (seen, cursor.is_ok())
}

/// Raw SQL in B's transaction ends it early (`ROLLBACK`) and reads on, outside any transaction:
/// the reset of what A left in the session was committed before B's `BEGIN`, so the rollback
/// cannot bring A's session tenant or A's holdable cursor back. The control shows the same
/// steps with the reset inside the transaction (`BEGIN; RESET ALL; ...`) handing B A's rows.
#[tokio::test]
async fn a_rollback_in_the_next_transaction_does_not_restore_the_last_session() {
    let w = world().await;
    let key = &w.db.context_key;
    let pool = w.db.app(1).await;
    let mut a = pool.begin(w.a.tenant).await.unwrap();
    poison(a.dangerous_postgres().unwrap(), key.token(w.a.tenant)).await;
    a.commit().await.unwrap();
    let mut b = pool.begin(w.b.tenant).await.unwrap();
    let (seen, cursor) = roll_back_and_read(b.dangerous_postgres().unwrap()).await;
    assert_eq!(seen, 0, "A's session tenant came back with the rollback");
    assert!(!cursor, "A's holdable cursor came back with the rollback");
    drop(b);

    // Control: the reset inside the transaction, on a raw connection of the runtime role.
    let raw = w.db.raw_pool(&w.db.roles.app(), 1).await;
    let mut conn = raw.acquire().await.unwrap();
    poison(&mut conn, key.token(w.a.tenant)).await;
    conn.execute(sqlx::AssertSqlSafe(format!(
        "BEGIN; RESET ALL; SET LOCAL plenum.tenant_id = '{}'",
        key.token(w.b.tenant)
    )))
    .await
    .unwrap();
    let (seen, cursor) = roll_back_and_read(&mut conn).await;
    assert_eq!(
        seen, 1,
        "the control should see A's row through the restored setting"
    );
    assert!(cursor, "the control's CLOSE-less reset leaves A's cursor");
}

#[tokio::test]
async fn in_pgbouncer_mode_the_reset_happens_at_begin() {
    // Behind PgBouncer in transaction mode a release hook would reach a server connection that
    // another client may hold by then; there, as everywhere, the reset is in the BEGIN round trip.
    let w = world().await;
    let mut config = w.db.pool_config(1);
    config.pgbouncer_transaction_mode = true;
    let pool = TenantPool::connect_postgres(&w.db.url(&w.db.roles.app()), &config)
        .await
        .unwrap();
    let mut tx = pool.begin(w.a.tenant).await.unwrap();
    sqlx::query("SELECT set_config('plenum.tenant_id', $1, false)")
        .bind(w.a.tenant.to_string())
        .execute(tx.dangerous_postgres().unwrap())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_clean(&pool, &w, "pgbouncer mode").await;
}
