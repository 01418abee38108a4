//! The paths the boot verifier's checks close, each shown open once its break is applied, and
//! then refused by the verifier. `catalog.rs` applies each break to a clean schema and asserts
//! the finding and the refused boot; this file shows what the break would have let through.

use plenum_store::postgres::{Check, migrate};
use plenum_store::{ErrorKind, TenantPool};
use plenum_test::pg::TestDb;
use sqlx::{AssertSqlSafe, Connection as _, Executor as _, PgConnection};
use uuid::Uuid;

use crate::fixtures::{sqlstate, tables, world};
use crate::raw_sql::{count, raw_app, s, tx};

/// The verifier reports `check` on `w`'s database (and so boot refuses it).
async fn assert_refused(w: &crate::fixtures::World, check: Check) {
    let report = w.app.verify(&w.db.roles).await.unwrap();
    assert!(report.has(check), "{check:?}: {:#?}", report.findings);
}

/// `Check::SecurityDefinerFunction`: a function owned by a role that bypasses RLS, callable by
/// the runtime role, counts every tenant's rows from inside A's transaction
/// (`catalog::break_security_definer_function_for_the_runtime_role`).
#[tokio::test]
async fn a_definer_function_would_read_across_tenants_and_the_verifier_refuses_it() {
    let w = world().await;
    let su = w.db.superuser().await;
    for sql in [
        "CREATE FUNCTION app.count_all() RETURNS bigint LANGUAGE sql SECURITY DEFINER \
         AS 'SELECT count(*) FROM app.customers'"
            .to_owned(),
        format!(
            "GRANT EXECUTE ON FUNCTION app.count_all() TO {}",
            w.db.roles.app()
        ),
    ] {
        su.execute(AssertSqlSafe(sql)).await.unwrap();
    }
    let pool = raw_app(&w).await;
    let mut t = tx(&pool, &w.db.context_key, Some(&s(w.a.tenant))).await;
    assert_eq!(count(&mut t, "SELECT count(*) FROM app.customers").await, 1);
    assert_eq!(
        count(&mut t, "SELECT app.count_all()").await,
        3,
        "A's transaction counts B's rows through the definer function"
    );
    assert_refused(&w, Check::SecurityDefinerFunction).await;
}

/// `Check::SideChannel` for large objects: reopened by a superuser, A stores bytes outside
/// every policy and B reads them back (`catalog::break_large_objects_for_public`).
#[tokio::test]
async fn reopened_large_objects_would_carry_data_across_tenants_and_the_verifier_refuses_it() {
    let w = world().await;
    let su = w.db.superuser().await;
    for sql in [
        "GRANT EXECUTE ON FUNCTION lo_from_bytea(oid, bytea) TO PUBLIC",
        "GRANT EXECUTE ON FUNCTION lo_get(oid) TO PUBLIC",
    ] {
        su.execute(sql).await.unwrap();
    }
    let pool = raw_app(&w).await;
    let mut a = tx(&pool, &w.db.context_key, Some(&s(w.a.tenant))).await;
    let oid: i64 = sqlx::query_scalar("SELECT lo_from_bytea(0, 'from A'::bytea)::bigint")
        .fetch_one(&mut *a)
        .await
        .unwrap();
    a.commit().await.unwrap();
    let mut b = tx(&pool, &w.db.context_key, Some(&s(w.b.tenant))).await;
    let read: Vec<u8> = sqlx::query_scalar("SELECT lo_get($1::bigint::oid)")
        .bind(oid)
        .fetch_one(&mut *b)
        .await
        .unwrap();
    assert_eq!(read, b"from A", "B read what A stored");
    assert_refused(&w, Check::SideChannel).await;
}

/// `Check::DefaultPrivileges`: a default grant written once hands every later table to the
/// runtime role. A table a later migration creates without RLS and without any grant of its
/// own is readable, across tenants, from A's transaction
/// (`catalog::break_default_privileges_for_the_runtime_role`).
#[tokio::test]
async fn default_privileges_would_hand_a_later_table_to_the_runtime_role_and_the_verifier_refuses_it()
 {
    let w = world().await;
    let app = w.db.roles.app();
    w.db.as_owner(&[
        &format!("ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO {app}"),
        "CREATE TABLE app.notes (tenant_id uuid NOT NULL, body text NOT NULL)",
    ])
    .await;
    let su = w.db.superuser().await;
    sqlx::query("INSERT INTO app.notes VALUES ($1, 'B only')")
        .bind(w.b.tenant.as_uuid())
        .execute(&su)
        .await
        .unwrap();
    let pool = raw_app(&w).await;
    let mut a = tx(&pool, &w.db.context_key, Some(&s(w.a.tenant))).await;
    let bodies: Vec<String> = sqlx::query_scalar("SELECT body FROM app.notes")
        .fetch_all(&mut *a)
        .await
        .unwrap();
    assert_eq!(
        bodies,
        ["B only"],
        "A reads B's note through a grant no migration wrote"
    );
    assert_refused(&w, Check::DefaultPrivileges).await;
}

/// `Check::RoleSettings`: the runtime role itself (a compromised service, no superuser) gives
/// its own role a default that every later session inherits; here every later instance can no
/// longer write. PostgreSQL 15 lets any role change its own defaults and fires no event trigger
/// for it, so this cannot be refused; boot reports it, naming the setting and its reset
/// (`catalog::break_role_setting_on_the_runtime_role`; SECURITY.md, compromised service).
#[tokio::test]
async fn a_role_default_set_by_the_runtime_role_reaches_every_later_session_and_boot_reports_it() {
    let w = world().await;
    let pool = raw_app(&w).await;
    pool.execute("ALTER ROLE CURRENT_USER SET default_transaction_read_only = on")
        .await
        .unwrap();
    let later = w.db.app(1).await;
    let mut t = later.begin(w.a.tenant).await.unwrap();
    let write =
        sqlx::query("INSERT INTO app.customers (tenant_id, id, email) VALUES ($1, $2, 'x')")
            .bind(w.a.tenant.as_uuid())
            .bind(Uuid::now_v7())
            .execute(t.dangerous_postgres().unwrap())
            .await;
    assert_eq!(
        sqlstate(write),
        "25006",
        "a later session inherits read-only"
    );
    drop(t);
    let err = TenantPool::connect_postgres_verified(
        &w.db.url(&w.db.roles.app()),
        &w.db.pool_config(1),
        &w.db.roles,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Contract);
    let message = err.to_string();
    assert!(
        message.contains("default_transaction_read_only") && message.contains("RESET"),
        "{message}"
    );
}

/// `Check::DatabasePrivileges` for TEMP: a temporary table lives in the session, outside every
/// policy, and a pooled session serves the next tenant. B stashes its rows, the connection goes
/// back to the pool (reset, as the library resets it), and A's next transaction on it reads
/// them (`catalog::break_public_temp_on_the_database`).
#[tokio::test]
async fn temporary_tables_would_carry_rows_across_tenants_through_the_pool_and_the_verifier_refuses_it()
 {
    let w = world().await;
    let su = w.db.superuser().await;
    su.execute(AssertSqlSafe(format!(
        "GRANT TEMP ON DATABASE {} TO PUBLIC",
        w.db.name
    )))
    .await
    .unwrap();
    let one = w.db.app(1).await;
    let mut b = one.begin(w.b.tenant).await.unwrap();
    b.dangerous_postgres()
        .unwrap()
        .execute("CREATE TEMP TABLE stash AS SELECT email FROM app.customers")
        .await
        .unwrap();
    b.commit().await.unwrap();
    let mut a = one.begin(w.a.tenant).await.unwrap();
    let mut emails: Vec<String> = sqlx::query_scalar("SELECT email FROM pg_temp.stash")
        .fetch_all(a.dangerous_postgres().unwrap())
        .await
        .unwrap();
    emails.sort();
    assert_eq!(
        emails,
        ["only-b@example.com", "shared@example.com"],
        "A's transaction reads the rows B stashed in the pooled session"
    );
    drop(a);
    assert_refused(&w, Check::DatabasePrivileges).await;
}

/// `Check::MigrationHistoryOwner`: sqlx creates its history table as the login that migrates.
/// Retiring that login the usual way (`DROP OWNED BY`) then drops the contract's history with
/// it, and the next `migrate` re-runs migration 1 over the live schema and fails; owned by the
/// owner, the history survives (`catalog::break_migration_history_owned_by_a_login`).
#[tokio::test]
async fn a_history_owned_by_a_login_would_go_with_the_login_and_the_verifier_refuses_it() {
    let history = "SELECT count(*) FROM pg_catalog.pg_class \
                   WHERE oid = pg_catalog.to_regclass('plenum._sqlx_migrations')";
    for owned_by_login in [false, true] {
        let db = TestDb::create(&tables()).await;
        let su = db.superuser().await;
        if owned_by_login {
            su.execute(AssertSqlSafe(format!(
                "ALTER TABLE plenum._sqlx_migrations OWNER TO {}",
                db.roles.migrator()
            )))
            .await
            .unwrap();
            let report = db.app(1).await.verify(&db.roles).await.unwrap();
            assert!(
                report.has(Check::MigrationHistoryOwner),
                "{:#?}",
                report.findings
            );
        }
        su.execute(AssertSqlSafe(format!(
            "DROP OWNED BY {}",
            db.roles.migrator()
        )))
        .await
        .unwrap();
        let left: i64 = sqlx::query_scalar(history).fetch_one(&su).await.unwrap();
        assert_eq!(
            left,
            i64::from(!owned_by_login),
            "owned by a login: {owned_by_login}"
        );
        if owned_by_login {
            // DROP OWNED also revoked the migrator's CONNECT; give it back to show what the
            // next deploy meets.
            su.execute(AssertSqlSafe(format!(
                "GRANT CONNECT ON DATABASE {} TO {}",
                db.name,
                db.roles.migrator()
            )))
            .await
            .unwrap();
            let again = migrate(
                &db.url(&db.roles.migrator()),
                &db.roles,
                &db.context_key,
                &tables(),
            )
            .await;
            assert!(again.is_err(), "migration 1 re-ran over the live schema");
        }
    }
}

/// Rows of `app.orders` read (sequentially or fetched through an index) so far, as the
/// statistics collector counts them, after flushing this session's counters.
async fn orders_rows_read(su: &mut PgConnection) -> i64 {
    su.execute("SELECT pg_stat_force_next_flush()")
        .await
        .unwrap();
    su.execute("SELECT pg_stat_clear_snapshot()").await.unwrap();
    sqlx::query_scalar(
        "SELECT (coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0))::bigint \
         FROM pg_stat_user_tables WHERE relid = 'app.orders'::regclass",
    )
    .fetch_one(&mut *su)
    .await
    .unwrap()
}

/// `Check::UnindexedForeignKey`: deleting a customer makes PostgreSQL look for orders that
/// reference it. With the index on `(tenant_id, customer_id)` that look-up reads nothing; without
/// it, it reads every order of the tenant, so one delete costs as much as the tenant's whole
/// order book (and holds its locks that long) (`catalog::break_unindexed_foreign_key`).
#[tokio::test]
async fn an_unindexed_foreign_key_would_make_each_delete_read_the_tenants_every_order_and_the_verifier_refuses_it()
 {
    let w = world().await;
    let options: sqlx::postgres::PgConnectOptions = plenum_test::pg::superuser_url()
        .parse::<sqlx::postgres::PgConnectOptions>()
        .unwrap()
        .database(&w.db.name);
    let mut su = PgConnection::connect_with(&options).await.unwrap();
    sqlx::query(
        "INSERT INTO app.orders (tenant_id, id, customer_id, note) \
         SELECT $1, gen_random_uuid(), $2, 'bulk' FROM generate_series(1, 5000)",
    )
    .bind(w.a.tenant.as_uuid())
    .bind(w.a.customer)
    .execute(&mut su)
    .await
    .unwrap();
    su.execute("ANALYZE app.orders").await.unwrap();
    let mut reads = Vec::new();
    for indexed in [true, false] {
        if !indexed {
            w.db.as_owner(&["DROP INDEX app.orders_customer_id_idx"])
                .await;
        }
        // A customer of A's with no orders, deleted the way the runtime role deletes it; the
        // foreign-key look-up runs as the table's owner whoever deletes.
        let customer = Uuid::now_v7();
        let mut t = w.app.begin(w.a.tenant).await.unwrap();
        sqlx::query("INSERT INTO app.customers (tenant_id, id, email) VALUES ($1, $2, 'gone')")
            .bind(w.a.tenant.as_uuid())
            .bind(customer)
            .execute(t.dangerous_postgres().unwrap())
            .await
            .unwrap();
        t.commit().await.unwrap();
        let before = orders_rows_read(&mut su).await;
        su.execute("BEGIN").await.unwrap();
        su.execute(AssertSqlSafe(format!(
            "SET LOCAL ROLE {}",
            w.db.roles.app()
        )))
        .await
        .unwrap();
        sqlx::query("SELECT set_config('plenum.tenant_id', $1, true)")
            .bind(w.db.context_key.token(w.a.tenant))
            .execute(&mut su)
            .await
            .unwrap();
        let deleted = sqlx::query("DELETE FROM app.customers WHERE tenant_id = $1 AND id = $2")
            .bind(w.a.tenant.as_uuid())
            .bind(customer)
            .execute(&mut su)
            .await
            .unwrap();
        assert_eq!(deleted.rows_affected(), 1);
        su.execute("COMMIT").await.unwrap();
        reads.push(orders_rows_read(&mut su).await - before);
    }
    assert!(
        reads[0] < 10,
        "indexed: the look-up reads no order: {reads:?}"
    );
    assert!(
        reads[1] >= 5000,
        "unindexed: the look-up reads every order of the tenant: {reads:?}"
    );
    assert_refused(&w, Check::UnindexedForeignKey).await;
}

/// `Check::ContextFunction`: a context function that falls back to a fixed tenant when the
/// setting is empty serves that tenant's rows to every transaction without a context
/// (`catalog::break_context_function_with_a_fallback_tenant`).
#[tokio::test]
async fn a_context_function_with_a_fallback_would_serve_that_tenant_and_the_verifier_refuses_it() {
    let w = world().await;
    let fallback = w.b.tenant;
    w.db.as_owner(&[&format!(
        "CREATE OR REPLACE FUNCTION plenum.current_tenant_id() RETURNS uuid \
         LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER SET search_path = '' AS $$ BEGIN \
         RETURN coalesce(nullif(pg_catalog.current_setting('plenum.tenant_id', true), ''), \
         '{fallback}')::pg_catalog.uuid; END $$"
    )])
    .await;
    let pool = raw_app(&w).await;
    let mut none = tx(&pool, &w.db.context_key, None).await;
    assert_eq!(
        count(&mut none, "SELECT count(*) FROM app.customers").await,
        2,
        "a transaction without a tenant reads B's rows"
    );
    assert_refused(&w, Check::ContextFunction).await;
}

/// `Check::KeyStateGuard`: without the trigger, the runtime role writes a destroyed key's old
/// wrapped bytes back and the erased subject's data opens again
/// (`catalog::break_key_state_guard_dropped`).
#[tokio::test]
async fn without_the_key_state_guard_erasure_could_be_undone_and_the_verifier_refuses_it() {
    let w = world().await;
    let subject = Uuid::now_v7();
    let pool = raw_app(&w).await;
    let mut t = tx(&pool, &w.db.context_key, Some(&s(w.a.tenant))).await;
    sqlx::query(
        "INSERT INTO plenum.keys (tenant_id, scope, subject_id, version, state, wrapped) \
         VALUES ($1, 3, $2, 1, 'active', '\\x0102')",
    )
    .bind(w.a.tenant.as_uuid())
    .bind(subject)
    .execute(&mut *t)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE plenum.keys SET state = 'destroyed', wrapped = NULL \
         WHERE tenant_id = $1 AND subject_id = $2",
    )
    .bind(w.a.tenant.as_uuid())
    .bind(subject)
    .execute(&mut *t)
    .await
    .unwrap();
    t.commit().await.unwrap();
    w.db.as_owner(&["DROP TRIGGER keys_forward_only ON plenum.keys"])
        .await;
    let mut t = tx(&pool, &w.db.context_key, Some(&s(w.a.tenant))).await;
    let undone = sqlx::query(
        "UPDATE plenum.keys SET state = 'active', wrapped = '\\x0102' \
         WHERE tenant_id = $1 AND subject_id = $2",
    )
    .bind(w.a.tenant.as_uuid())
    .bind(subject)
    .execute(&mut *t)
    .await
    .unwrap();
    assert_eq!(
        undone.rows_affected(),
        1,
        "the destroyed key is active again"
    );
    drop(t);
    assert_refused(&w, Check::KeyStateGuard).await;
}

/// `Check::AdminRole` for a write privilege: the admin role, meant to read only, changes a
/// tenant's row (`catalog::break_admin_role_with_update`).
#[tokio::test]
async fn an_admin_role_granted_update_would_change_tenant_rows_and_the_verifier_refuses_it() {
    let w = world().await;
    w.db.as_owner(&[
        &format!("GRANT UPDATE ON app.customers TO {}", w.db.roles.admin()),
        &format!(
            "CREATE POLICY customers_admin_write ON app.customers FOR UPDATE TO {} USING (true)",
            w.db.roles.admin()
        ),
    ])
    .await;
    let admin = w.db.raw_pool(&w.db.roles.admin(), 1).await;
    let changed = sqlx::query("UPDATE app.customers SET name = 'changed by admin'")
        .execute(&admin)
        .await
        .unwrap();
    assert!(
        changed.rows_affected() >= 3,
        "every tenant's customers changed"
    );
    assert_refused(&w, Check::AdminRole).await;
}

/// `Check::SideChannel` for statement text: with `track_activities` back on for the runtime
/// role, A's session reads B's context token in `pg_stat_activity`
/// (`catalog::break_statement_text_visible_to_the_runtime_role`).
#[tokio::test]
async fn statement_text_back_on_would_show_another_tenants_token_and_the_verifier_refuses_it() {
    let w = world().await;
    let su = w.db.superuser().await;
    su.execute(AssertSqlSafe(format!(
        "ALTER ROLE {} RESET track_activities",
        w.db.roles.app()
    )))
    .await
    .unwrap();
    let pool = w.db.raw_pool(&w.db.roles.app(), 2).await;
    let mut b = pool.begin().await.unwrap();
    let b_token = w.db.context_key.token(w.b.tenant);
    b.execute(AssertSqlSafe(format!(
        "SET LOCAL plenum.tenant_id = '{b_token}'"
    )))
    .await
    .unwrap();
    let mut a = tx(&pool, &w.db.context_key, Some(&s(w.a.tenant))).await;
    let seen: Vec<Option<String>> =
        sqlx::query_scalar("SELECT query FROM pg_stat_activity WHERE pid <> pg_backend_pid()")
            .fetch_all(&mut *a)
            .await
            .unwrap();
    assert!(
        seen.iter().flatten().any(|q| q.contains(&b_token)),
        "B's token is readable from A's session"
    );
    assert_refused(&w, Check::SideChannel).await;
}

/// `Check::UnexpectedPolicy` on the admin read policy: back to `USING (true)`, a direct login
/// with the admin credentials reads every tenant's rows with no audit row at all
/// (`catalog::break_admin_reads_without_an_audit_row`).
#[tokio::test]
async fn an_admin_read_policy_without_the_audit_check_would_read_unrecorded_and_the_verifier_refuses_it()
 {
    let w = world().await;
    let admin = w.db.raw_pool(&w.db.roles.admin(), 1).await;
    let unrecorded = "SELECT count(*) FROM app.customers";
    let n: i64 = sqlx::query_scalar(unrecorded)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(n, 0, "the contract: nothing without a committed audit row");
    w.db.as_owner(&["ALTER POLICY customers_admin_read ON app.customers USING (true)"])
        .await;
    let n: i64 = sqlx::query_scalar(unrecorded)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(n, 3, "every tenant's customers, and no record of the read");
    assert_refused(&w, Check::UnexpectedPolicy).await;
}
