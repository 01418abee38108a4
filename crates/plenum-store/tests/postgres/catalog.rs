//! The boot-time verifier passes on the generated schema and fails on each deliberate break,
//! naming the fix.

use plenum_store::postgres::{Check, Report};
use plenum_store::{ErrorKind, TenantPool};
use plenum_test::pg::TestDb;
use sqlx::{AssertSqlSafe, Executor as _};

use crate::fixtures::tables;

async fn report(db: &TestDb) -> Report {
    db.app(1).await.verify(&db.roles).await.unwrap()
}

#[tokio::test]
async fn the_generated_schema_satisfies_every_invariant() {
    let db = TestDb::create(&tables()).await;
    let report = report(&db).await;
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    assert_eq!(
        report.tenant_tables, 15,
        "plenum.tenants, plenum.keys, plenum.consent_events, plenum.audit_heads, plenum.audit_log, \
         plenum.audit_checkpoints, plenum.subject_requests, plenum.subject_request_steps, \
         plenum.legal_holds, plenum.legal_hold_lifts, plenum.retention_events, \
         plenum.reencryptions, plenum.key_usage, app.customers, app.orders"
    );
    // And the boot path accepts it.
    TenantPool::connect_postgres_verified(&db.url(&db.roles.app()), &db.pool_config(2), &db.roles)
        .await
        .unwrap();
    // Migrations are idempotent: applying them again changes nothing and still verifies.
    plenum_store::postgres::migrate(
        &db.url(&db.roles.migrator()),
        &db.roles,
        &db.context_key,
        &tables(),
    )
    .await
    .unwrap();
    assert!(report_after(&db).await.findings.is_empty());
}

async fn report_after(db: &TestDb) -> Report {
    report(db).await
}

/// Applies `break_sql` (as the owner, or as the superuser for role changes) to a fresh, clean
/// database and asserts the verifier reports `check` with a fix, and that boot refuses.
async fn assert_break_detected(name: &str, break_sql: &[String], as_superuser: bool, check: Check) {
    let db = TestDb::create(&tables()).await;
    assert!(
        report(&db).await.findings.is_empty(),
        "{name}: clean before the break"
    );
    let break_sql: Vec<String> = break_sql
        .iter()
        .map(|s| {
            s.replace("{app}", &db.roles.app())
                .replace("{owner}", &db.roles.owner())
                .replace("{admin}", &db.roles.admin())
                .replace("{migrator}", &db.roles.migrator())
                .replace("{db}", &db.name)
        })
        .collect();
    if as_superuser {
        let su = db.superuser().await;
        for s in break_sql {
            su.execute(AssertSqlSafe(s.clone()))
                .await
                .unwrap_or_else(|e| panic!("{name}: {s}: {e}"));
        }
    } else {
        let statements: Vec<&str> = break_sql.iter().map(String::as_str).collect();
        db.as_owner(&statements).await;
    }
    let report = report(&db).await;
    let found: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.check == check)
        .collect();
    assert!(
        !found.is_empty(),
        "{name}: expected {check:?}, got {:#?}",
        report.findings
    );
    for f in &found {
        assert!(
            !f.fix.is_empty() && !f.problem.is_empty(),
            "{name}: finding without a fix: {f:?}"
        );
    }
    let err = TenantPool::connect_postgres_verified(
        &db.url(&db.roles.app()),
        &db.pool_config(2),
        &db.roles,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Contract, "{name}");
    assert!(err.to_string().contains("fix:"), "{name}: {err}");
}

#[tokio::test]
async fn break_no_force() {
    assert_break_detected(
        "NO FORCE",
        &["ALTER TABLE app.customers NO FORCE ROW LEVEL SECURITY".into()],
        false,
        Check::RlsNotForced,
    )
    .await;
}

#[tokio::test]
async fn break_rls_disabled() {
    assert_break_detected(
        "RLS disabled",
        &["ALTER TABLE app.orders DISABLE ROW LEVEL SECURITY".into()],
        false,
        Check::RlsDisabled,
    )
    .await;
}

#[tokio::test]
async fn break_extra_permissive_policy() {
    // Created TO PUBLIC: the restrictive floor still holds the app back, but the verifier must
    // flag the policy all the same.
    assert_break_detected(
        "extra permissive USING (true)",
        &[
            "CREATE POLICY leak ON app.customers AS PERMISSIVE FOR SELECT TO PUBLIC USING (true)"
                .into(),
        ],
        false,
        Check::UnexpectedPolicy,
    )
    .await;
}

#[tokio::test]
async fn break_immutable_context_function() {
    assert_break_detected(
        "IMMUTABLE context function",
        &["ALTER FUNCTION plenum.current_tenant_id() IMMUTABLE".into()],
        false,
        Check::ContextFunction,
    )
    .await;
}

#[tokio::test]
async fn break_unique_index_without_tenant() {
    assert_break_detected(
        "unique index without tenant_id",
        &["CREATE UNIQUE INDEX customers_email_global ON app.customers (email)".into()],
        false,
        Check::UnscopedUniqueIndex,
    )
    .await;
}

#[tokio::test]
async fn break_unscoped_foreign_key() {
    assert_break_detected(
        "foreign key without tenant_id",
        &[
            "CREATE UNIQUE INDEX customers_id_only ON app.customers (tenant_id, id, email)".into(),
            "ALTER TABLE app.customers ADD CONSTRAINT customers_id_key UNIQUE (id)".into(),
            "ALTER TABLE app.orders ADD CONSTRAINT orders_customer_global_fkey FOREIGN KEY (customer_id) REFERENCES app.customers (id)".into(),
        ],
        false,
        Check::UnscopedForeignKey,
    )
    .await;
}

#[tokio::test]
async fn break_unpoliced_partition() {
    assert_partition_break(vec![
        "CREATE TABLE app.events (tenant_id uuid NOT NULL REFERENCES plenum.tenants (id), id uuid NOT NULL, at date NOT NULL, PRIMARY KEY (tenant_id, id, at)) PARTITION BY RANGE (at)".to_owned(),
        "CREATE TABLE app.events_2026 PARTITION OF app.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')".to_owned(),
        // Replaced below: policies name this database's roles.
        "__POLICE__".to_owned(),
    ])
    .await;
}

async fn assert_partition_break(template: Vec<String>) {
    let db = TestDb::create(&tables()).await;
    let app = db.roles.app();
    let mut statements = Vec::new();
    for s in template {
        if s == "__POLICE__" {
            statements.extend([
                "ALTER TABLE app.events ENABLE ROW LEVEL SECURITY".to_owned(),
                "ALTER TABLE app.events FORCE ROW LEVEL SECURITY".to_owned(),
                format!("CREATE POLICY events_tenant_isolation ON app.events AS PERMISSIVE FOR ALL TO {app} USING (tenant_id = (SELECT plenum.current_tenant_id())) WITH CHECK (tenant_id = (SELECT plenum.current_tenant_id()))"),
                format!("CREATE POLICY events_tenant_floor ON app.events AS RESTRICTIVE FOR ALL TO {app} USING (tenant_id = (SELECT plenum.current_tenant_id())) WITH CHECK (tenant_id = (SELECT plenum.current_tenant_id()))"),
                format!("GRANT SELECT, INSERT ON app.events TO {app}"),
            ]);
        } else {
            statements.push(s);
        }
    }
    let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
    db.as_owner(&refs).await;
    // The parent alone is fine.
    let clean = report(&db).await;
    assert!(clean.findings.is_empty(), "{:#?}", clean.findings);
    // Granting the partition itself to the app opens a door around the parent's policies.
    db.as_owner(&[&format!("GRANT SELECT ON app.events_2026 TO {app}")])
        .await;
    let broken = report(&db).await;
    assert!(
        broken.has(Check::ReadablePartition),
        "{:#?}",
        broken.findings
    );
}

#[tokio::test]
async fn break_view_without_security_invoker() {
    let db = TestDb::create(&tables()).await;
    let app = db.roles.app();
    db.as_owner(&[
        "CREATE VIEW app.customer_emails AS SELECT tenant_id, email FROM app.customers",
        &format!("GRANT SELECT ON app.customer_emails TO {app}"),
    ])
    .await;
    let broken = report(&db).await;
    assert!(
        broken.has(Check::ViewWithoutSecurityInvoker),
        "{:#?}",
        broken.findings
    );
    // The fix it names works.
    db.as_owner(&["ALTER VIEW app.customer_emails SET (security_invoker = true)"])
        .await;
    assert!(!report(&db).await.has(Check::ViewWithoutSecurityInvoker));
}

#[tokio::test]
async fn break_truncate_granted() {
    assert_break_detected(
        "TRUNCATE granted",
        &["GRANT TRUNCATE ON app.orders TO {app}".into()],
        false,
        Check::DangerousPrivilege,
    )
    .await;
}

#[tokio::test]
async fn break_app_role_member_of_owner() {
    assert_break_detected(
        "app role member of the owner",
        &["GRANT {owner} TO {app}".into()],
        true,
        Check::RuntimeRole,
    )
    .await;
}

#[tokio::test]
async fn break_runtime_role_with_bypassrls() {
    assert_break_detected(
        "app role with BYPASSRLS",
        &["ALTER ROLE {app} BYPASSRLS".into()],
        true,
        Check::RuntimeRole,
    )
    .await;
}

#[tokio::test]
async fn break_key_state_guard_dropped() {
    assert_break_detected(
        "key state trigger dropped",
        &["DROP TRIGGER keys_forward_only ON plenum.keys".into()],
        false,
        Check::KeyStateGuard,
    )
    .await;
}

#[tokio::test]
async fn break_key_state_guard_disabled() {
    assert_break_detected(
        "key state trigger disabled",
        &["ALTER TABLE plenum.keys DISABLE TRIGGER keys_forward_only".into()],
        false,
        Check::KeyStateGuard,
    )
    .await;
}

#[tokio::test]
async fn break_security_definer_function_for_the_runtime_role() {
    // Owned by a superuser (no RLS applies to it), callable by the runtime role: it counts
    // every tenant's rows from inside one tenant's transaction.
    assert_break_detected(
        "SECURITY DEFINER function",
        &[
            "CREATE FUNCTION app.count_all() RETURNS bigint LANGUAGE sql SECURITY DEFINER \
             AS 'SELECT count(*) FROM app.customers'"
                .into(),
            "GRANT USAGE ON SCHEMA app TO {app}".into(),
            "GRANT EXECUTE ON FUNCTION app.count_all() TO {app}".into(),
        ],
        true,
        Check::SecurityDefinerFunction,
    )
    .await;
}

#[tokio::test]
async fn break_context_function_with_a_fallback_tenant() {
    assert_break_detected(
        "context function falling back to a fixed tenant",
        &[
            "CREATE OR REPLACE FUNCTION plenum.current_tenant_id() RETURNS uuid \
           LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = '' AS $$ BEGIN \
           RETURN coalesce(nullif(pg_catalog.current_setting('plenum.tenant_id', true), ''), \
           '00000000-0000-7000-8000-000000000001')::pg_catalog.uuid; END $$"
                .into(),
        ],
        false,
        Check::ContextFunction,
    )
    .await;
}

#[tokio::test]
async fn break_default_privileges_for_the_runtime_role() {
    assert_break_detected(
        "default privileges granting future tables",
        &["ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO {app}".into()],
        false,
        Check::DefaultPrivileges,
    )
    .await;
}

#[tokio::test]
async fn break_role_setting_on_the_runtime_role() {
    assert_break_detected(
        "role-level setting",
        &["ALTER ROLE {app} SET statement_timeout = '1min'".into()],
        true,
        Check::RoleSettings,
    )
    .await;
}

#[tokio::test]
async fn break_public_temp_on_the_database() {
    assert_break_detected(
        "PUBLIC keeps TEMP",
        &["GRANT TEMP ON DATABASE {db} TO PUBLIC".into()],
        true,
        Check::DatabasePrivileges,
    )
    .await;
}

#[tokio::test]
async fn break_public_connect_on_the_database() {
    assert_break_detected(
        "PUBLIC keeps CONNECT",
        &["GRANT CONNECT ON DATABASE {db} TO PUBLIC".into()],
        true,
        Check::DatabasePrivileges,
    )
    .await;
}

#[tokio::test]
async fn break_migration_history_owned_by_a_login() {
    assert_break_detected(
        "_sqlx_migrations owned by the migrator",
        &["ALTER TABLE plenum._sqlx_migrations OWNER TO {migrator}".into()],
        true,
        Check::MigrationHistoryOwner,
    )
    .await;
}

#[tokio::test]
async fn break_admin_role_with_bypassrls() {
    assert_break_detected(
        "admin role with BYPASSRLS",
        &["ALTER ROLE {admin} BYPASSRLS".into()],
        true,
        Check::AdminRole,
    )
    .await;
}

#[tokio::test]
async fn break_admin_role_with_update() {
    assert_break_detected(
        "admin role granted UPDATE",
        &["GRANT UPDATE ON app.customers TO {admin}".into()],
        false,
        Check::AdminRole,
    )
    .await;
}

#[tokio::test]
async fn break_large_objects_for_public() {
    assert_break_detected(
        "large objects callable",
        &["GRANT EXECUTE ON FUNCTION lo_from_bytea(oid, bytea) TO PUBLIC".into()],
        true,
        Check::SideChannel,
    )
    .await;
}

#[tokio::test]
async fn break_statement_text_visible_to_the_runtime_role() {
    assert_break_detected(
        "track_activities back on",
        &["ALTER ROLE {app} RESET track_activities".into()],
        true,
        Check::SideChannel,
    )
    .await;
}

#[tokio::test]
async fn break_unindexed_foreign_key() {
    assert_break_detected(
        "foreign key without an index",
        &["DROP INDEX app.orders_customer_id_idx".into()],
        false,
        Check::UnindexedForeignKey,
    )
    .await;
}

#[tokio::test]
async fn break_admin_reads_without_an_audit_row() {
    assert_break_detected(
        "admin read policy back to USING (true)",
        &["ALTER POLICY customers_admin_read ON app.customers USING (true)".into()],
        false,
        Check::UnexpectedPolicy,
    )
    .await;
}

#[tokio::test]
async fn break_sequencer_body_changed() {
    // A sequencer that numbers in reverse append order would have checkpoints sign a reordered
    // log: its body is pinned like the context function's.
    assert_break_detected(
        "sequencer body changed",
        &[
            "CREATE OR REPLACE FUNCTION plenum.audit_sequence() RETURNS bigint \
           LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' \
           AS $$ BEGIN RETURN 0; END $$"
                .into(),
        ],
        false,
        Check::SecurityDefinerFunction,
    )
    .await;
}
