//! Raw SQL as the runtime role: what the database itself refuses, whatever a service (or this
//! library) gets wrong.

use plenum_core::TenantId;
use plenum_store::postgres::ContextKey;
use sqlx::postgres::PgPool;
use sqlx::{AssertSqlSafe, Executor as _, Postgres, Transaction};
use uuid::Uuid;

use crate::fixtures::{World, sqlstate, world};

/// A transaction as the app role with the tenant context set the way the library sets it (a
/// token under the database's context key, for a value that is a tenant id), or set to the raw
/// value given (anything else), or none at all.
pub(crate) async fn tx(
    pool: &PgPool,
    key: &ContextKey,
    tenant: Option<&str>,
) -> Transaction<'static, Postgres> {
    let mut tx = pool.begin().await.unwrap();
    if let Some(t) = tenant {
        let value = match t.parse::<TenantId>() {
            Ok(id) => key.token(id),
            Err(_) => t.to_owned(),
        };
        sqlx::query("SELECT set_config('plenum.tenant_id', $1, true)")
            .bind(value)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx
}

pub(crate) async fn count(tx: &mut Transaction<'static, Postgres>, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&mut **tx).await.unwrap()
}

pub(crate) async fn raw_app(w: &World) -> PgPool {
    w.db.raw_pool(&w.db.roles.app(), 2).await
}

pub(crate) fn s(t: TenantId) -> String {
    t.to_string()
}

#[tokio::test]
async fn no_context_means_no_rows_and_no_writes() {
    let w = world().await;
    let pool = raw_app(&w).await;
    let mut t = tx(&pool, &w.db.context_key, None).await;
    assert_eq!(count(&mut t, "SELECT count(*) FROM app.customers").await, 0);
    assert_eq!(count(&mut t, "SELECT count(*) FROM app.orders").await, 0);
    assert_eq!(
        count(&mut t, "SELECT count(*) FROM plenum.tenants").await,
        0
    );
    let upd = sqlx::query("UPDATE app.customers SET name = 'x'")
        .execute(&mut *t)
        .await
        .unwrap();
    assert_eq!(upd.rows_affected(), 0);
    let del = sqlx::query("DELETE FROM app.orders")
        .execute(&mut *t)
        .await
        .unwrap();
    assert_eq!(del.rows_affected(), 0);
    let ins =
        sqlx::query("INSERT INTO app.customers (tenant_id, id, email) VALUES ($1, $2, 'n@x')")
            .bind(w.a.tenant.as_uuid())
            .bind(Uuid::now_v7())
            .execute(&mut *t)
            .await;
    assert_eq!(sqlstate(ins), "42501");
    // An empty context (a setting used once, then reset) is no context either.
    let mut t = tx(&pool, &w.db.context_key, Some("")).await;
    assert_eq!(count(&mut t, "SELECT count(*) FROM app.customers").await, 0);
}

#[tokio::test]
async fn a_cannot_read_or_write_b() {
    let w = world().await;
    let pool = raw_app(&w).await;
    let (a, b) = (w.a, w.b);
    let mut t = tx(&pool, &w.db.context_key, Some(&s(a.tenant))).await;

    // Reads: only A's rows, whatever the query asks for.
    let tenants: Vec<Uuid> = sqlx::query_scalar("SELECT tenant_id FROM app.customers")
        .fetch_all(&mut *t)
        .await
        .unwrap();
    assert_eq!(tenants, vec![*a.tenant.as_uuid()]);
    let by_tenant: i64 =
        sqlx::query_scalar("SELECT count(*) FROM app.customers WHERE tenant_id = $1")
            .bind(b.tenant.as_uuid())
            .fetch_one(&mut *t)
            .await
            .unwrap();
    assert_eq!(by_tenant, 0);
    let by_id: i64 = sqlx::query_scalar("SELECT count(*) FROM app.customers WHERE id = $1")
        .bind(b.customer)
        .fetch_one(&mut *t)
        .await
        .unwrap();
    assert_eq!(by_id, 0);

    // Writes into B: refused or invisible.
    let insert_b =
        sqlx::query("INSERT INTO app.customers (tenant_id, id, email) VALUES ($1, $2, 'x@b')")
            .bind(b.tenant.as_uuid())
            .bind(Uuid::now_v7())
            .execute(&mut *t)
            .await;
    assert_eq!(sqlstate(insert_b), "42501");
    let mut t = tx(&pool, &w.db.context_key, Some(&s(a.tenant))).await;
    let update_b = sqlx::query("UPDATE app.customers SET name = 'pwned' WHERE id = $1")
        .bind(b.customer)
        .execute(&mut *t)
        .await
        .unwrap();
    assert_eq!(update_b.rows_affected(), 0);
    let delete_b = sqlx::query("DELETE FROM app.orders WHERE id = $1")
        .bind(b.order)
        .execute(&mut *t)
        .await
        .unwrap();
    assert_eq!(delete_b.rows_affected(), 0);
    // Moving A's own row to B.
    let moved = sqlx::query("UPDATE app.customers SET tenant_id = $1 WHERE id = $2")
        .bind(b.tenant.as_uuid())
        .bind(a.customer)
        .execute(&mut *t)
        .await;
    assert_eq!(sqlstate(moved), "42501");
    drop(t);

    // Referencing B's parent row from A: the composite key makes it not exist.
    let mut t = tx(&pool, &w.db.context_key, Some(&s(a.tenant))).await;
    let fk = sqlx::query("INSERT INTO app.orders (tenant_id, id, customer_id) VALUES ($1, $2, $3)")
        .bind(a.tenant.as_uuid())
        .bind(Uuid::now_v7())
        .bind(b.customer)
        .execute(&mut *t)
        .await;
    assert_eq!(sqlstate(fk), "23503");
    drop(t);

    // No uniqueness oracle: a value that exists only in B inserts fine in A...
    let mut t = tx(&pool, &w.db.context_key, Some(&s(a.tenant))).await;
    sqlx::query(
        "INSERT INTO app.customers (tenant_id, id, email) VALUES ($1, $2, 'only-b@example.com')",
    )
    .bind(a.tenant.as_uuid())
    .bind(Uuid::now_v7())
    .execute(&mut *t)
    .await
    .unwrap();
    // ...while a duplicate within A is refused.
    let dup = sqlx::query(
        "INSERT INTO app.customers (tenant_id, id, email) VALUES ($1, $2, 'shared@example.com')",
    )
    .bind(a.tenant.as_uuid())
    .bind(Uuid::now_v7())
    .execute(&mut *t)
    .await;
    assert_eq!(sqlstate(dup), "23505");
    drop(t);

    // ON CONFLICT with B's natural key only ever touches A.
    let mut t = tx(&pool, &w.db.context_key, Some(&s(a.tenant))).await;
    sqlx::query(
        "INSERT INTO app.customers (tenant_id, id, email, name) VALUES ($1, $2, 'shared@example.com', 'upserted') \
         ON CONFLICT (tenant_id, email) DO UPDATE SET name = excluded.name",
    )
    .bind(a.tenant.as_uuid())
    .bind(Uuid::now_v7())
    .execute(&mut *t)
    .await
    .unwrap();
    t.commit().await.unwrap();

    // B is byte-identical afterwards.
    let mut t = tx(&pool, &w.db.context_key, Some(&s(b.tenant))).await;
    let rows: Vec<(Uuid, String, Option<String>)> =
        sqlx::query_as("SELECT id, email, name FROM app.customers ORDER BY email")
            .fetch_all(&mut *t)
            .await
            .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|(_, _, name)| name.is_none()), "{rows:?}");
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM app.orders")
        .fetch_one(&mut *t)
        .await
        .unwrap();
    assert_eq!(orders, 1);
}

#[tokio::test]
async fn the_runtime_role_cannot_escape_rls() {
    let w = world().await;
    let pool = raw_app(&w).await;
    let owner = w.db.roles.owner();
    let cases: Vec<(String, &str)> = vec![
        ("TRUNCATE app.orders".into(), "42501"),
        (
            "SET row_security = off; SELECT * FROM app.customers".into(),
            "42501",
        ),
        (format!("SET ROLE {owner}"), "42501"),
        (
            "ALTER TABLE app.customers DISABLE ROW LEVEL SECURITY".into(),
            "42501",
        ),
        (
            "ALTER TABLE app.customers NO FORCE ROW LEVEL SECURITY".into(),
            "42501",
        ),
        (
            "CREATE POLICY mine ON app.customers FOR SELECT USING (true)".into(),
            "42501",
        ),
        (
            "DROP POLICY customers_tenant_floor ON app.customers".into(),
            "42501",
        ),
        (
            "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'".into(),
            "42501",
        ),
        ("CREATE TABLE app.mine (x int)".into(), "42501"),
        ("SELECT * FROM plenum.admin_audit".into(), "42501"),
        (
            "ALTER FUNCTION plenum.current_tenant_id() IMMUTABLE".into(),
            "42501",
        ),
    ];
    for (sql, expected) in cases {
        let mut t = tx(&pool, &w.db.context_key, Some(&s(w.a.tenant))).await;
        let r = t.execute(AssertSqlSafe(sql.clone())).await;
        assert_eq!(sqlstate(r), expected, "{sql}");
    }
    // COPY FROM is refused under RLS.
    let mut t = tx(&pool, &w.db.context_key, Some(&s(w.a.tenant))).await;
    let r = t
        .execute("COPY app.customers (tenant_id, id, email) FROM STDIN")
        .await;
    assert!(r.is_err());
}

#[tokio::test]
async fn a_malformed_context_never_returns_rows() {
    let w = world().await;
    let pool = raw_app(&w).await;
    for bad in [
        "not-a-uuid",
        "' OR true --",
        "00000000-0000-0000-0000-00000000000g",
    ] {
        let mut t = tx(&pool, &w.db.context_key, Some(bad)).await;
        assert_eq!(
            count(&mut t, "SELECT count(*) FROM app.customers").await,
            0,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn the_empty_tenant_sees_nothing_and_admin_cannot_write() {
    let w = world().await;
    let pool = raw_app(&w).await;
    let mut t = tx(&pool, &w.db.context_key, Some(&s(w.c))).await;
    assert_eq!(count(&mut t, "SELECT count(*) FROM app.customers").await, 0);
    assert_eq!(count(&mut t, "SELECT count(*) FROM app.orders").await, 0);
    assert_eq!(
        count(&mut t, "SELECT count(*) FROM plenum.tenants").await,
        1,
        "its own registry row"
    );
    drop(t);
    // A role with no grants (the admin role's write side) is refused outright.
    let admin = w.db.raw_pool(&w.db.roles.admin(), 1).await;
    let r = sqlx::query("INSERT INTO app.customers (tenant_id, id, email) VALUES ($1, $2, 'x')")
        .bind(w.a.tenant.as_uuid())
        .bind(Uuid::now_v7())
        .execute(&admin)
        .await;
    assert_eq!(sqlstate(r), "42501");
    let r = sqlx::query("DELETE FROM app.customers")
        .execute(&admin)
        .await;
    assert_eq!(sqlstate(r), "42501");
}

#[tokio::test]
async fn the_library_transaction_sets_context_in_the_first_statement() {
    let w = world().await;
    let mut tx = w.app.begin(w.b.tenant).await.unwrap();
    let conn = tx.dangerous_postgres().unwrap();
    let setting: Option<String> =
        sqlx::query_scalar("SELECT current_setting('plenum.tenant_id', true)")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    // A token naming B (its first 16 bytes), authenticated by the context key.
    let hex: String =
        w.b.tenant
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
    assert!(
        setting
            .as_deref()
            .is_some_and(|t| t.len() == 112 && t.starts_with(&hex)),
        "{setting:?}"
    );
    let emails: Vec<String> = sqlx::query_scalar("SELECT email FROM app.customers ORDER BY email")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    assert_eq!(emails, vec!["only-b@example.com", "shared@example.com"]);
}

#[tokio::test]
async fn database_errors_name_fields_never_values() {
    let w = world().await;
    let mut tx = w.app.begin(w.a.tenant).await.unwrap();
    let secret = "shared@example.com";
    let dup = sqlx::query("INSERT INTO app.customers (tenant_id, id, email) VALUES ($1, $2, $3)")
        .bind(w.a.tenant.as_uuid())
        .bind(Uuid::now_v7())
        .bind(secret)
        .execute(tx.dangerous_postgres().unwrap())
        .await
        .unwrap_err();
    // (PostgreSQL already withholds key values from errors on RLS tables.) The library's error
    // names the logical field.
    let err = plenum_store::Error::from_sqlx(dup, "customers");
    assert_eq!(err.kind(), plenum_store::ErrorKind::Conflict);
    assert_eq!(err.to_string(), "unique violation on customers.email");
    assert!(!format!("{err}").contains(secret));
    drop(tx);
    let mut tx = w.app.begin(w.a.tenant).await.unwrap();
    let denied =
        sqlx::query("INSERT INTO app.customers (tenant_id, id, email) VALUES ($1, $2, 'x')")
            .bind(w.b.tenant.as_uuid())
            .bind(Uuid::now_v7())
            .execute(tx.dangerous_postgres().unwrap())
            .await
            .unwrap_err();
    let err = plenum_store::Error::from_sqlx(denied, "customers");
    assert_eq!(err.kind(), plenum_store::ErrorKind::PermissionDenied);
    assert_eq!(err.sqlstate().as_deref(), Some("42501"));
}

#[tokio::test]
async fn debug_output_of_errors_carries_no_row_data() {
    let w = world().await;
    // On a table without RLS the server's detail quotes the failing row; make one fail.
    let su = w.db.superuser().await;
    let secret = "Canary Name 7f3a91";
    let failed =
        sqlx::query("INSERT INTO plenum.admin_audit (id, actor, purpose) VALUES ($1, NULL, $2)")
            .bind(Uuid::now_v7())
            .bind(secret)
            .execute(&su)
            .await
            .unwrap_err();
    assert!(
        format!("{failed:?}").contains(secret),
        "the raw sqlx error quotes the row"
    );
    let err = plenum_store::Error::from_sqlx(failed, "admin_audit");
    for shown in [format!("{err}"), format!("{err:?}"), format!("{err:#?}")] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert_eq!(err.sqlstate().as_deref(), Some("23502"));
}

/// The side channels between tenants that share the runtime role are closed by the contract
/// (bootstrap): large objects (tenant-less storage written in A's transaction, readable in B's),
/// signalling another backend, and reading another backend's statement text (which carries the
/// tenant it set) in `pg_stat_activity`. `catalog::break_large_objects_for_public` and
/// `catalog::break_statement_text_visible_to_the_runtime_role` show the verifier refusing boot
/// when they are reopened.
#[tokio::test]
async fn side_channels_between_tenants_are_closed() {
    let w = world().await;
    let pool = raw_app(&w).await;
    let mut a = tx(&pool, &w.db.context_key, Some(&s(w.a.tenant))).await;
    for sql in [
        "SELECT lo_from_bytea(0, '\\x6869'::bytea)",
        "SELECT lo_create(0)",
        "SELECT lo_get(1)",
    ] {
        let result = sqlx::query(sql).execute(&mut *a).await;
        assert_eq!(sqlstate(result), "42501", "{sql}");
        a.rollback().await.unwrap();
        a = tx(&pool, &w.db.context_key, Some(&s(w.a.tenant))).await;
    }

    // Tenant B's transaction on another backend of the same role, its last statement the
    // tenant setting as a literal (what a simple-protocol `BEGIN; SET LOCAL ...` sends).
    let mut b = pool.begin().await.unwrap();
    let b_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *b)
        .await
        .unwrap();
    let b_token = w.db.context_key.token(w.b.tenant);
    b.execute(AssertSqlSafe(format!(
        "SET LOCAL plenum.tenant_id = '{b_token}'"
    )))
    .await
    .unwrap();
    let seen: Vec<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT query, state FROM pg_stat_activity WHERE pid = $1")
            .bind(b_pid)
            .fetch_all(&mut *a)
            .await
            .unwrap();
    assert!(
        seen.iter()
            .all(|(q, _)| q.as_deref().is_none_or(|q| !q.contains(&b_token))),
        "another backend's statement text (with its tenant) is visible: {seen:?}"
    );
    let result = sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(b_pid)
        .execute(&mut *a)
        .await;
    assert_eq!(sqlstate(result), "42501");
    a.rollback().await.unwrap();
    let mut a = tx(&pool, &w.db.context_key, Some(&s(w.a.tenant))).await;
    let result = sqlx::query("SELECT pg_cancel_backend($1)")
        .bind(b_pid)
        .execute(&mut *a)
        .await;
    assert_eq!(sqlstate(result), "42501");
    // B's transaction is still alive.
    assert_eq!(count(&mut b, "SELECT count(*) FROM app.customers").await, 2);
}

/// A cursor declared `WITH HOLD` keeps its rows in the session after its transaction commits;
/// on a pooled connection the next transaction may be another tenant's. B's raw SQL holds B's
/// rows open, and A's next transaction on the same connection finds no cursor: every transaction
/// closes every cursor before it begins (`SESSION_RESET` in `begin_statement`). Without that, A fetches
/// B's rows (shown on a raw connection, which does not reset).
#[tokio::test]
async fn a_holdable_cursor_does_not_outlive_its_tenant() {
    let w = world().await;
    let hold = "DECLARE stash CURSOR WITH HOLD FOR SELECT email FROM app.customers ORDER BY email";
    // The path, on one raw connection of the runtime role that nothing resets.
    let raw = w.db.raw_pool(&w.db.roles.app(), 1).await;
    let mut b = tx(&raw, &w.db.context_key, Some(&s(w.b.tenant))).await;
    b.execute(hold).await.unwrap();
    b.commit().await.unwrap();
    let mut a = tx(&raw, &w.db.context_key, Some(&s(w.a.tenant))).await;
    let stolen: Vec<String> = sqlx::query_scalar("FETCH ALL FROM stash")
        .fetch_all(&mut *a)
        .await
        .unwrap();
    assert_eq!(stolen, ["only-b@example.com", "shared@example.com"]);
    a.rollback().await.unwrap();
    // The library's pool, one connection: the same two transactions.
    let one = w.db.app(1).await;
    let mut b = one.begin(w.b.tenant).await.unwrap();
    b.dangerous_postgres().unwrap().execute(hold).await.unwrap();
    b.commit().await.unwrap();
    let mut a = one.begin(w.a.tenant).await.unwrap();
    let fetched = sqlx::query_scalar::<_, String>("FETCH ALL FROM stash")
        .fetch_all(a.dangerous_postgres().unwrap())
        .await;
    assert_eq!(
        sqlstate(fetched),
        "34000",
        "invalid_cursor_name: the cursor is gone"
    );
}

/// Tenant switch from raw SQL inside a library transaction for A (injection, a compromised
/// dependency): every way of naming B in the context setting without the context key leaves
/// the transaction with no tenant at all, so it reads, changes, moves, re-keys and audits
/// nothing of B's. Before migration 6 the first attempt (B's id as the setting) read B's rows.
#[tokio::test]
async fn raw_sql_cannot_switch_the_tenant_of_a_library_transaction() {
    let w = world().await;
    let key = &w.db.context_key;
    let b_hex: String =
        w.b.tenant
            .as_bytes()
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect();
    let own = key.token(w.a.tenant);
    let forged = [
        ("B's id as in the old contract", s(w.b.tenant)),
        (
            "A's token with B's id spliced in",
            format!("{b_hex}{}", &own[32..]),
        ),
        (
            "B's token under another key",
            ContextKey::generate().token(w.b.tenant),
        ),
        (
            "B's token, expired",
            key.token_expiring(w.b.tenant, chrono::Utc::now().timestamp() - 5),
        ),
    ];
    for (what, value) in forged {
        let mut tx = w.app.begin(w.a.tenant).await.unwrap();
        let conn = tx.dangerous_postgres().unwrap();
        sqlx::query("SELECT set_config('plenum.tenant_id', $1, true)")
            .bind(&value)
            .execute(&mut *conn)
            .await
            .unwrap();
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM app.customers")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(seen, 0, "{what}: rows visible after the switch");
        let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM plenum.keys")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(keys, 0, "{what}: keys visible");
        let changed = sqlx::query("UPDATE app.customers SET name = 'x' WHERE tenant_id = $1")
            .bind(w.b.tenant.as_uuid())
            .execute(&mut *conn)
            .await
            .unwrap();
        assert_eq!(changed.rows_affected(), 0, "{what}: B's rows changed");
        let shredded = sqlx::query(
            "UPDATE plenum.keys SET state = 'destroyed', wrapped = NULL WHERE tenant_id = $1",
        )
        .bind(w.b.tenant.as_uuid())
        .execute(&mut *conn)
        .await
        .unwrap();
        assert_eq!(shredded.rows_affected(), 0, "{what}: B's keys changed");
        drop(tx);
        // A row moved into B, and an audit event appended to B's log: refused by the policy.
        for (sql, name) in [
            (
                "INSERT INTO app.customers (tenant_id, id, email) VALUES ($1, $2, 'moved@x')",
                "move",
            ),
            (
                "INSERT INTO plenum.audit_log (tenant_id, event_id, at, leaf_hash, body) \
                 VALUES ($1, $2, now(), '\\x00', 'forged')",
                "audit append",
            ),
        ] {
            let mut tx = w.app.begin(w.a.tenant).await.unwrap();
            let conn = tx.dangerous_postgres().unwrap();
            sqlx::query("SELECT set_config('plenum.tenant_id', $1, true)")
                .bind(&value)
                .execute(&mut *conn)
                .await
                .unwrap();
            let r = sqlx::query(sql)
                .bind(w.b.tenant.as_uuid())
                .bind(Uuid::now_v7())
                .execute(&mut *conn)
                .await;
            assert_eq!(sqlstate(r), "42501", "{what}: {name}");
        }
    }
    // The control: B's own token, minted with the key, does name B.
    let pool = raw_app(&w).await;
    let mut t = tx(&pool, key, Some(&s(w.b.tenant))).await;
    assert_eq!(count(&mut t, "SELECT count(*) FROM app.customers").await, 2);
}

/// Only the sequencer numbers audit events, and only in append order: the runtime role, in its
/// own tenant's transaction, cannot number pending events itself (in any order it likes) or move
/// the head, and cannot read `entry`, the append counter shared by all tenants. Before
/// migration 7 all three succeeded.
#[tokio::test]
async fn the_runtime_role_cannot_number_audit_events_or_see_the_shared_counter() {
    let w = world().await;
    let key = &w.db.context_key;
    let pool = raw_app(&w).await;
    let mut t = tx(&pool, key, Some(&s(w.a.tenant))).await;
    sqlx::query(
        "INSERT INTO plenum.audit_log (tenant_id, event_id, at, leaf_hash, body) \
         VALUES ($1, $2, now(), decode(repeat('00', 32), 'hex'), '{}')",
    )
    .bind(w.a.tenant.as_uuid())
    .bind(Uuid::now_v7())
    .execute(&mut *t)
    .await
    .unwrap();
    t.commit().await.unwrap();
    for sql in [
        "UPDATE plenum.audit_log SET seq = 7 WHERE seq IS NULL",
        "INSERT INTO plenum.audit_heads (tenant_id, size) VALUES ($1, 5)",
        "UPDATE plenum.audit_heads SET size = size + 5",
        "SELECT max(entry) FROM plenum.audit_log",
    ] {
        let mut t = tx(&pool, key, Some(&s(w.a.tenant))).await;
        let r = sqlx::query(sql)
            .bind(w.a.tenant.as_uuid())
            .execute(&mut *t)
            .await;
        assert_eq!(sqlstate(r), "42501", "{sql}");
    }
    // The sequencer numbers it, from 0, within the caller's tenant only.
    let mut t = tx(&pool, key, Some(&s(w.a.tenant))).await;
    let numbered: i64 = sqlx::query_scalar("SELECT plenum.audit_sequence()")
        .fetch_one(&mut *t)
        .await
        .unwrap();
    assert_eq!(numbered, 1);
    let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM plenum.audit_log")
        .fetch_one(&mut *t)
        .await
        .unwrap();
    assert_eq!(seq, Some(0));
    t.commit().await.unwrap();
    // Without a tenant context the sequencer refuses.
    let mut t = tx(&pool, key, None).await;
    let r = sqlx::query("SELECT plenum.audit_sequence()")
        .execute(&mut *t)
        .await;
    assert_eq!(sqlstate(r), "42501");
}
