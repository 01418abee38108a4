//! The verifier's checks, one function each: what it looks at, the finding it reports and the
//! statement that fixes it. `mod.rs` decides the order; `catalog.rs` supplies what they read.

use std::collections::BTreeMap;

use sqlx::postgres::PgPool;
use sqlx::{AssertSqlSafe, Row as _};

use super::catalog::{Policy, Relation, SCHEMAS, canonical, squash};
use super::{Check, Report};
use crate::contract::{CONTEXT_FUNCTION, DATA_SCHEMA, LIBRARY_SCHEMA, Roles};
use crate::error::Error;
use crate::postgres::ContextKey;

/// The context function: present, `STABLE`, returns `uuid`, fixed `search_path`, invoker.
pub(super) async fn context_function(pool: &PgPool, report: &mut Report) -> Result<(), Error> {
    let function = sqlx::query(
        "SELECT p.provolatile::text AS vol, p.prorettype::regtype::text AS ret, \
                coalesce(array_to_string(p.proconfig, ','), '') AS config, p.prosecdef AS definer, \
                p.prosrc AS body \
         FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname = 'plenum' AND p.proname = 'current_tenant_id'",
    )
    .fetch_optional(pool)
    .await?;
    let f = format!("{CONTEXT_FUNCTION}()");
    match function {
        None => report.push(
            Check::ContextFunction,
            &f,
            "missing",
            "run the library migrations (plenum_store::postgres::migrate)",
        ),
        Some(row) => {
            let vol: String = row.try_get("vol")?;
            let ret: String = row.try_get("ret")?;
            let config: String = row.try_get("config")?;
            let definer: bool = row.try_get("definer")?;
            let body: String = row.try_get("body")?;
            if squash(&body) != squash(&crate::postgres::schema::context_function_body()) {
                report.push(
                    Check::ContextFunction,
                    &f,
                    "its body is not the contract's (a fallback tenant or default would serve \
                     rows without a context)",
                    "re-run the library migrations (CREATE OR REPLACE restores the body)",
                );
            }
            if vol != "s" {
                let what = if vol == "i" {
                    "IMMUTABLE (cached generic plans would serve one tenant's rows to another)"
                } else {
                    "VOLATILE (evaluated per row)"
                };
                report.push(
                    Check::ContextFunction,
                    &f,
                    format!("is {what}"),
                    format!("ALTER FUNCTION {f} STABLE"),
                );
            }
            if ret != "uuid" {
                report.push(
                    Check::ContextFunction,
                    &f,
                    format!("returns {ret}, not uuid (a per-row cast in every policy)"),
                    "re-run the library migrations",
                );
            }
            if !config.contains("search_path=\"\"") && !config.contains("search_path=''") {
                report.push(
                    Check::ContextFunction,
                    &f,
                    "has no fixed search_path",
                    format!("ALTER FUNCTION {f} SET search_path = ''"),
                );
            }
            if !definer {
                report.push(
                    Check::ContextFunction,
                    &f,
                    "is not SECURITY DEFINER: it cannot read the context key, so no token verifies",
                    "re-run the library migrations",
                );
            }
        }
    }

    Ok(())
}

/// The pool's context key is the database's: a token it mints for a fresh tenant id comes back
/// as that tenant, and a token under another key does not.
pub(super) async fn context_key(
    pool: &PgPool,
    key: &ContextKey,
    report: &mut Report,
) -> Result<(), Error> {
    let probe = plenum_core::TenantId::generate();
    // Any error (a replaced function that fails on a token) is a finding, not a failed boot.
    let seen: Option<uuid::Uuid> = async {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT set_config($1, $2, true)")
            .bind(crate::contract::TENANT_SETTING)
            .bind(key.token(probe))
            .execute(&mut *tx)
            .await?;
        let seen = sqlx::query_scalar(AssertSqlSafe(format!("SELECT {CONTEXT_FUNCTION}()")))
            .fetch_one(&mut *tx)
            .await;
        tx.rollback().await?;
        seen
    }
    .await
    .unwrap_or_default();
    if seen != Some(*probe.as_uuid()) {
        report.push(
            Check::ContextFunction,
            format!("{CONTEXT_FUNCTION}()"),
            "does not accept this pool's context key: every transaction would see no tenant",
            "give the pool the key `migrate` installed (PgPoolConfig::context_key), or migrate with this one",
        );
    }
    Ok(())
}

/// The runtime role's attributes and memberships; returns its name.
pub(super) async fn runtime_role(
    pool: &PgPool,
    roles: &Roles,
    report: &mut Report,
) -> Result<String, Error> {
    let app = roles.app();
    let role = sqlx::query(
        "SELECT current_user::text AS name, rolsuper, rolbypassrls, rolinherit \
         FROM pg_catalog.pg_roles WHERE rolname = current_user",
    )
    .fetch_one(pool)
    .await?;
    let me: String = role.try_get("name")?;
    if me != app {
        report.push(
            Check::RuntimeRole,
            &me,
            format!("the pool is connected as {me}, not the runtime role {app}"),
            format!("connect as {app}"),
        );
    }
    for (col, what, fix) in [
        ("rolsuper", "is a superuser (bypasses RLS)", "NOSUPERUSER"),
        ("rolbypassrls", "has BYPASSRLS", "NOBYPASSRLS"),
        (
            "rolinherit",
            "inherits the privileges of roles it is granted",
            "NOINHERIT",
        ),
    ] {
        if role.try_get::<bool, _>(col)? {
            report.push(
                Check::RuntimeRole,
                &me,
                what,
                format!("ALTER ROLE {me} {fix}"),
            );
        }
    }
    let memberships = sqlx::query_scalar::<_, String>(
        "SELECT r.rolname::text FROM pg_catalog.pg_auth_members m \
         JOIN pg_catalog.pg_roles r ON r.oid = m.roleid \
         WHERE m.member = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)",
    )
    .fetch_all(pool)
    .await?;
    for granted in memberships {
        report.push(
            Check::RuntimeRole,
            &me,
            format!("is a member of {granted}"),
            format!("REVOKE {granted} FROM {me}"),
        );
    }

    Ok(me)
}

/// No schema the runtime role may create objects in.
pub(super) async fn schema_create(
    pool: &PgPool,
    me: &str,
    report: &mut Report,
) -> Result<(), Error> {
    let creatable = sqlx::query_scalar::<_, String>(
        "SELECT nspname::text FROM pg_catalog.pg_namespace \
         WHERE has_schema_privilege(current_user, oid, 'CREATE') AND nspname NOT LIKE 'pg_temp%' \
           AND nspname NOT LIKE 'pg_toast_temp%'",
    )
    .fetch_all(pool)
    .await?;
    for schema in creatable {
        report.push(
            Check::SchemaCreate,
            &schema,
            format!("{me} may create objects here"),
            format!("REVOKE CREATE ON SCHEMA {schema} FROM {me}, PUBLIC"),
        );
    }

    Ok(())
}

/// The runtime role holds no TRUNCATE, REFERENCES or TRIGGER (they ignore RLS).
pub(super) fn dangerous_privileges(name: &str, rel: &Relation, me: &str, report: &mut Report) {
    if !rel.dangerous.is_empty() {
        report.push(
            Check::DangerousPrivilege,
            name,
            format!(
                "{me} holds {} (TRUNCATE and friends ignore RLS)",
                rel.dangerous.join(", ")
            ),
            format!("REVOKE TRUNCATE, REFERENCES, TRIGGER ON {name} FROM {me}"),
        );
    }
}

/// Views run as their invoker; materialized views and foreign tables (no RLS) are not
/// accessible at all. Returns whether `rel` is one of those kinds (nothing else applies).
pub(super) fn view_like(name: &str, rel: &Relation, me: &str, report: &mut Report) -> bool {
    match rel.kind.as_str() {
        "v" => {
            if rel.app_access
                && !rel.options.contains("security_invoker=true")
                && !rel.options.contains("security_invoker=on")
            {
                report.push(
                    Check::ViewWithoutSecurityInvoker,
                    name,
                    "a view readable by the runtime role runs with its owner's rights",
                    format!("ALTER VIEW {name} SET (security_invoker = true)"),
                );
            }
            true
        }
        "m" | "f" => {
            if rel.app_access {
                report.push(
                    Check::UnscopedRelation,
                    name,
                    "a materialized view or foreign table has no row-level security",
                    format!("REVOKE ALL ON {name} FROM {me}"),
                );
            }
            true
        }
        _ => false,
    }
}

/// A table without a tenant column is not accessible to the runtime role.
pub(super) fn unscoped_relation(name: &str, rel: &Relation, me: &str, report: &mut Report) {
    if rel.app_access {
        report.push(
            Check::UnscopedRelation,
            name,
            "a table without a tenant column is accessible to the runtime role",
            format!("REVOKE ALL ON {name} FROM {me}, or add tenant_id and policies"),
        );
    }
}

/// A partition is not queryable directly unless it is policed like its parent.
pub(super) fn partition(
    name: &str,
    rel: &Relation,
    has_policies: bool,
    me: &str,
    report: &mut Report,
) {
    let policed = rel.rls && rel.forced && has_policies;
    if rel.app_access && !policed {
        report.push(
            Check::ReadablePartition,
            name,
            "a partition can be queried directly, bypassing its parent's policies",
            format!("REVOKE ALL ON {name} FROM {me}"),
        );
    }
}

/// A tenant table is not the runtime role's, and has RLS enabled and forced.
pub(super) fn row_security(
    name: &str,
    rel: &Relation,
    roles: &Roles,
    me: &str,
    report: &mut Report,
) {
    if rel.app_owns {
        report.push(
            Check::RuntimeRoleOwnsTable,
            name,
            format!("{me} owns it (or is a member of its owner), so policies do not bind it"),
            format!("ALTER TABLE {name} OWNER TO {}", roles.owner()),
        );
    }
    if !rel.rls {
        report.push(
            Check::RlsDisabled,
            name,
            "row-level security is disabled",
            format!("ALTER TABLE {name} ENABLE ROW LEVEL SECURITY"),
        );
    }
    if !rel.forced {
        report.push(
            Check::RlsNotForced,
            name,
            "row-level security is not forced",
            format!("ALTER TABLE {name} FORCE ROW LEVEL SECURITY"),
        );
    }
}

/// A tenant table has exactly the canonical policies: the permissive isolation policy and the
/// restrictive floor for the runtime role, the admin role's read policy, and (on the audit log
/// only) the admin role's append to the platform log.
pub(super) fn policies(
    name: &str,
    column: &str,
    table_policies: &[Policy],
    roles: &Roles,
    report: &mut Report,
) {
    let (app, admin, owner) = (roles.app(), roles.admin(), roles.owner());
    let expected = canonical(column);
    let platform_append = squash(&format!(
        "(tenant_id = '{}'::uuid)",
        crate::contract::PLATFORM_LOG
    ));
    let admin_read = squash(&format!(
        "( SELECT {}.admin_audited() AS admin_audited)",
        LIBRARY_SCHEMA
    ));
    let mut isolation = false;
    let mut floor = false;
    for Policy {
        name: pname,
        permissive,
        roles: proles,
        cmd,
        qual,
        with_check: check,
    } in table_policies
    {
        let canonical_pair = *qual == expected && *check == expected;
        let only = |r: &str| proles.len() == 1 && proles[0] == r;
        if permissive == "PERMISSIVE" && cmd == "ALL" && only(&app) && canonical_pair {
            isolation = true;
        } else if permissive == "RESTRICTIVE" && cmd == "ALL" && only(&app) && canonical_pair {
            floor = true;
        } else if permissive == "PERMISSIVE"
            && cmd == "SELECT"
            && only(&admin)
            && *qual == admin_read
            && check.is_empty()
        {
            // The admin role's read policy: only in a session with a committed audit row.
        } else if name == "plenum.audit_log"
            && permissive == "PERMISSIVE"
            && cmd == "INSERT"
            && only(&admin)
            && qual.is_empty()
            && *check == platform_append
        {
            // The admin role appends its transactions to the platform log, and only there.
        } else if (name == "plenum.audit_log" || name == "plenum.audit_heads")
            && permissive == "PERMISSIVE"
            && cmd == "ALL"
            && only(&owner)
            && canonical_pair
        {
            // The sequencer (owned by the owner) numbers within the caller's verified tenant.
        } else {
            report.push(
                Check::UnexpectedPolicy,
                format!("{name} policy {pname}"),
                format!(
                    "{permissive} {cmd} TO {} USING ({qual}) is not a canonical policy",
                    proles.join(",")
                ),
                format!("DROP POLICY {pname} ON {name}"),
            );
        }
    }
    for (present, problem) in [
        (
            isolation,
            "no canonical permissive tenant policy for the runtime role",
        ),
        (floor, "no restrictive tenant floor policy"),
    ] {
        if !present {
            report.push(
                Check::MissingPolicy,
                name,
                problem,
                "re-apply the table's DDL (TableSpec::postgres_ddl / migrate)",
            );
        }
    }
}

/// The key table's forward-only trigger (migration 5) exists and fires.
pub(super) async fn key_state_guard(pool: &PgPool, report: &mut Report) -> Result<(), Error> {
    let enabled: Option<String> = sqlx::query_scalar(
        "SELECT t.tgenabled::text FROM pg_catalog.pg_trigger t \
         JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'plenum' AND c.relname = 'keys' AND t.tgname = 'keys_forward_only'",
    )
    .fetch_optional(pool)
    .await?;
    let table = format!("{LIBRARY_SCHEMA}.keys");
    match enabled.as_deref() {
        Some("O" | "A") => {}
        Some(_) => report.push(
            Check::KeyStateGuard,
            &table,
            "the trigger keys_forward_only is disabled: a destroyed key could be restored",
            format!("ALTER TABLE {table} ENABLE ALWAYS TRIGGER keys_forward_only"),
        ),
        None => report.push(
            Check::KeyStateGuard,
            &table,
            "the trigger keys_forward_only is missing: a destroyed key could be restored",
            "re-run the library migrations (plenum_store::postgres::migrate)",
        ),
    }
    Ok(())
}

/// Unique indexes must lead with the tenant column.
pub(super) async fn unique_indexes(
    pool: &PgPool,
    relations: &BTreeMap<String, Relation>,
    report: &mut Report,
) -> Result<(), Error> {
    let schemas = SCHEMAS;
    let uniques = sqlx::query(
        "SELECT n.nspname::text || '.' || c.relname::text AS tbl, i.relname::text AS idx, \
                a.attname::text AS first_col \
         FROM pg_catalog.pg_index ix \
         JOIN pg_catalog.pg_class c ON c.oid = ix.indrelid \
         JOIN pg_catalog.pg_class i ON i.oid = ix.indexrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = ix.indkey[0] \
         WHERE ix.indisunique AND n.nspname = ANY($1)",
    )
    .bind(&schemas[..])
    .fetch_all(pool)
    .await?;
    for u in uniques {
        let table: String = u.try_get("tbl")?;
        let Some(column) = relations.get(&table).and_then(|r| r.tenant_column.clone()) else {
            continue;
        };
        let first: Option<String> = u.try_get("first_col")?;
        if first.as_deref() != Some(column.as_str()) {
            let idx: String = u.try_get("idx")?;
            report.push(
                Check::UnscopedUniqueIndex,
                format!("{table} index {idx}"),
                format!(
                    "unique index does not lead with {column}: it reveals values of other tenants"
                ),
                format!(
                    "DROP INDEX {}.{idx}; recreate it as UNIQUE ({column}, ...)",
                    table.split('.').next().unwrap_or(DATA_SCHEMA)
                ),
            );
        }
    }

    Ok(())
}

/// Foreign keys must lead with the tenant column on both sides.
pub(super) async fn foreign_keys(
    pool: &PgPool,
    relations: &BTreeMap<String, Relation>,
    report: &mut Report,
) -> Result<(), Error> {
    let schemas = SCHEMAS;
    let fks = sqlx::query(
        "SELECT n.nspname::text || '.' || c.relname::text AS tbl, con.conname::text AS name, \
                fn.nspname::text || '.' || fc.relname::text AS ref_tbl, \
                (SELECT attname::text FROM pg_catalog.pg_attribute WHERE attrelid = con.conrelid AND attnum = con.conkey[1]) AS col, \
                (SELECT attname::text FROM pg_catalog.pg_attribute WHERE attrelid = con.confrelid AND attnum = con.confkey[1]) AS ref_col, \
                (SELECT string_agg(attname::text, ', ' ORDER BY k.ord) FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord) \
                  JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum) AS cols, \
                EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = con.conrelid \
                  AND (SELECT array_agg(u.k ORDER BY u.ord) FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS u(k, ord) \
                       WHERE u.ord <= cardinality(con.conkey)) = con.conkey) AS indexed \
         FROM pg_catalog.pg_constraint con \
         JOIN pg_catalog.pg_class c ON c.oid = con.conrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_catalog.pg_class fc ON fc.oid = con.confrelid \
         JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace \
         WHERE con.contype = 'f' AND n.nspname = ANY($1)",
    )
    .bind(&schemas[..])
    .fetch_all(pool)
    .await?;
    for fk in fks {
        let table: String = fk.try_get("tbl")?;
        let ref_table: String = fk.try_get("ref_tbl")?;
        let (Some(column), Some(ref_column)) = (
            relations.get(&table).and_then(|r| r.tenant_column.clone()),
            relations
                .get(&ref_table)
                .and_then(|r| r.tenant_column.clone()),
        ) else {
            continue;
        };
        let col: Option<String> = fk.try_get("col")?;
        let ref_col: Option<String> = fk.try_get("ref_col")?;
        if col.as_deref() != Some(column.as_str())
            || ref_col.as_deref() != Some(ref_column.as_str())
        {
            let cname: String = fk.try_get("name")?;
            report.push(Check::UnscopedForeignKey, format!("{table} constraint {cname}"), format!("foreign key to {ref_table} does not lead with the tenant column: a row could reference another tenant's row"), format!("ALTER TABLE {table} DROP CONSTRAINT {cname}; add FOREIGN KEY ({column}, ...) REFERENCES {ref_table} ({ref_column}, ...)"));
        }
        if !fk.try_get::<bool, _>("indexed")? {
            let cname: String = fk.try_get("name")?;
            let cols: Option<String> = fk.try_get("cols")?;
            let cols = cols.unwrap_or_default();
            report.push(
                Check::UnindexedForeignKey,
                format!("{table} constraint {cname}"),
                format!("no index leads with ({cols}): deleting or re-keying a row of {ref_table} scans {table}"),
                format!("CREATE INDEX ON {table} ({cols})"),
            );
        }
    }

    Ok(())
}
