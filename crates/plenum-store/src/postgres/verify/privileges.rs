//! The verifier's role-, database- and function-level checks: what the runtime and admin roles
//! may do beyond the tables' policies (definer functions, default privileges, role settings,
//! database privileges, the migration history's owner, the admin role's attributes and grants,
//! and the side channels between tenants that share the runtime role). One function per check;
//! each finding says how to fix it.

use sqlx::Row as _;
use sqlx::postgres::PgPool;

use super::catalog::{SCHEMAS, squash};
use super::{Check, Report};
use crate::contract::{CONTEXT_FUNCTION, LIBRARY_SCHEMA, Roles};
use crate::error::Error;

/// No `SECURITY DEFINER` function of a contract schema is executable by the runtime role, but
/// the contract's own: the context function (whose body `checks::context_function` pins) and
/// the audit sequencer, with exactly the body migration 7 wrote.
pub(super) async fn security_definer_functions(
    pool: &PgPool,
    me: &str,
    report: &mut Report,
) -> Result<(), Error> {
    let functions: Vec<(String, String)> = sqlx::query_as(
        "SELECT p.oid::regprocedure::text, p.prosrc FROM pg_catalog.pg_proc p \
         JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
         WHERE n.nspname = ANY($1) AND p.prosecdef \
           AND has_function_privilege(current_user, p.oid, 'EXECUTE') \
           AND p.oid <> $2::regprocedure ORDER BY 1",
    )
    .bind(&SCHEMAS[..])
    .bind(format!("{CONTEXT_FUNCTION}()"))
    .fetch_all(pool)
    .await?;
    let sequencer = format!("{LIBRARY_SCHEMA}.audit_sequence()");
    for (f, body) in functions {
        // The contract's own definer function, with exactly the contract's body.
        if f == sequencer && squash(&body) == squash(&crate::postgres::schema::sequencer_body()) {
            continue;
        }
        report.push(
            Check::SecurityDefinerFunction,
            &f,
            "runs with its owner's rights and the runtime role may call it",
            format!("REVOKE EXECUTE ON FUNCTION {f} FROM PUBLIC, {me}; or ALTER FUNCTION {f} SECURITY INVOKER"),
        );
    }
    Ok(())
}

/// No default privileges grant future objects to the runtime role or to `PUBLIC`.
pub(super) async fn default_privileges(
    pool: &PgPool,
    me: &str,
    report: &mut Report,
) -> Result<(), Error> {
    let rows = sqlx::query(
        "SELECT d.defaclrole::regrole::text AS grantor, \
                coalesce(d.defaclnamespace::regnamespace::text, '') AS schema, \
                d.defaclobjtype::text AS kind \
         FROM pg_catalog.pg_default_acl d \
         WHERE EXISTS (SELECT 1 FROM pg_catalog.aclexplode(d.defaclacl) a \
                       WHERE a.grantee = 0 OR a.grantee = (SELECT oid FROM pg_catalog.pg_roles \
                                                           WHERE rolname = current_user)) \
         ORDER BY 1, 2, 3",
    )
    .fetch_all(pool)
    .await?;
    for row in rows {
        let grantor: String = row.try_get("grantor")?;
        let schema: String = row.try_get("schema")?;
        let kind = match row.try_get::<String, _>("kind")?.as_str() {
            "r" => "TABLES",
            "S" => "SEQUENCES",
            "f" => "FUNCTIONS",
            "T" => "TYPES",
            _ => "SCHEMAS",
        };
        let scope = if schema.is_empty() {
            String::new()
        } else {
            format!(" IN SCHEMA {schema}")
        };
        report.push(
            Check::DefaultPrivileges,
            format!("default privileges of {grantor}{scope} on {kind}"),
            format!("future {kind} would be granted to {me} or PUBLIC"),
            format!(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {grantor}{scope} REVOKE ALL ON {kind} FROM {me}, PUBLIC"
            ),
        );
    }
    Ok(())
}

/// The settings the contract itself puts on the runtime role.
const CONTRACT_ROLE_SETTINGS: [&str; 1] = ["track_activities=off"];

/// The runtime role carries no role-level settings but the contract's.
pub(super) async fn role_settings(
    pool: &PgPool,
    me: &str,
    report: &mut Report,
) -> Result<(), Error> {
    let settings: Vec<String> = sqlx::query_scalar(
        "SELECT s.setting FROM pg_catalog.pg_db_role_setting r, \
                LATERAL unnest(r.setconfig) AS s(setting) \
         WHERE r.setrole = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) \
           AND r.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database \
                                     WHERE datname = current_database())) \
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    for setting in settings {
        if CONTRACT_ROLE_SETTINGS.contains(&setting.as_str()) {
            continue;
        }
        let name = setting.split('=').next().unwrap_or_default();
        report.push(
            Check::RoleSettings,
            me,
            format!("the role carries the setting {name}, applied to every session it opens"),
            format!("ALTER ROLE {me} RESET {name} (as a superuser; set it per session instead)"),
        );
    }
    Ok(())
}

/// Only the contract's roles connect; nobody creates temporary tables.
pub(super) async fn database_privileges(
    pool: &PgPool,
    me: &str,
    report: &mut Report,
) -> Result<(), Error> {
    let row = sqlx::query(
        "SELECT current_database()::text AS db, \
                has_database_privilege('public', current_database(), 'CONNECT') AS public_connect, \
                has_database_privilege('public', current_database(), 'TEMP') AS public_temp, \
                has_database_privilege(current_user, current_database(), 'TEMP') AS my_temp",
    )
    .fetch_one(pool)
    .await?;
    let db: String = row.try_get("db")?;
    for (column, who, what) in [
        ("public_connect", "PUBLIC", "CONNECT"),
        ("public_temp", "PUBLIC", "TEMP"),
        ("my_temp", me, "TEMP"),
    ] {
        if row.try_get::<bool, _>(column)? {
            report.push(
                Check::DatabasePrivileges,
                &db,
                format!("{who} holds {what} on the database"),
                format!("REVOKE {what} ON DATABASE {db} FROM PUBLIC, {me}"),
            );
        }
    }
    Ok(())
}

/// The migration history belongs to the owner, not to a login.
pub(super) async fn migration_history_owner(
    pool: &PgPool,
    roles: &Roles,
    report: &mut Report,
) -> Result<(), Error> {
    let owner: Option<String> = sqlx::query_scalar(
        "SELECT c.relowner::regrole::text FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname = '_sqlx_migrations'",
    )
    .bind(LIBRARY_SCHEMA)
    .fetch_optional(pool)
    .await?;
    let expected = roles.owner();
    if let Some(owner) = owner.filter(|o| *o != expected) {
        let table = format!("{LIBRARY_SCHEMA}._sqlx_migrations");
        report.push(
            Check::MigrationHistoryOwner,
            &table,
            format!("owned by {owner}, not by {expected}"),
            format!("ALTER TABLE {table} OWNER TO {expected}"),
        );
    }
    Ok(())
}

/// The admin role reads through policies and writes nothing but its audit rows.
pub(super) async fn admin_role(
    pool: &PgPool,
    roles: &Roles,
    report: &mut Report,
) -> Result<(), Error> {
    let admin = roles.admin();
    let attrs = sqlx::query(
        "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb, rolinherit \
         FROM pg_catalog.pg_roles WHERE rolname = $1",
    )
    .bind(&admin)
    .fetch_optional(pool)
    .await?;
    let Some(attrs) = attrs else {
        report.push(
            Check::AdminRole,
            &admin,
            "the admin role does not exist",
            "run plenum_store::postgres::bootstrap_sql as a superuser",
        );
        return Ok(());
    };
    for (column, what, fix) in [
        ("rolsuper", "is a superuser", "NOSUPERUSER"),
        (
            "rolbypassrls",
            "has BYPASSRLS (reads without policies)",
            "NOBYPASSRLS",
        ),
        ("rolcreaterole", "may create roles", "NOCREATEROLE"),
        ("rolcreatedb", "may create databases", "NOCREATEDB"),
        (
            "rolinherit",
            "inherits the privileges of roles it is granted",
            "NOINHERIT",
        ),
    ] {
        if attrs.try_get::<bool, _>(column)? {
            report.push(
                Check::AdminRole,
                &admin,
                what,
                format!("ALTER ROLE {admin} {fix}"),
            );
        }
    }
    let writable: Vec<(String, String)> = sqlx::query_as(
        "SELECT n.nspname::text || '.' || c.relname::text, p.privilege \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         CROSS JOIN unnest(ARRAY['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) AS p(privilege) \
         WHERE n.nspname = ANY($2) AND c.relkind IN ('r', 'p') \
           AND has_table_privilege($1, c.oid, p.privilege) \
           AND NOT (p.privilege = 'INSERT' AND n.nspname = 'plenum' \
                    AND c.relname IN ('admin_audit', 'audit_log')) \
         ORDER BY 1, 2",
    )
    .bind(&admin)
    .bind(&SCHEMAS[..])
    .fetch_all(pool)
    .await?;
    for (table, privilege) in writable {
        report.push(
            Check::AdminRole,
            format!("{table} ({admin})"),
            format!("the admin role holds {privilege}: it may only read and append its audit"),
            format!("REVOKE {privilege} ON {table} FROM {admin}"),
        );
    }
    Ok(())
}

/// No large objects, no signalling other backends, no other backends' statement text.
pub(super) async fn side_channels(
    pool: &PgPool,
    me: &str,
    report: &mut Report,
) -> Result<(), Error> {
    let callable: Vec<String> = sqlx::query_scalar(
        "SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p \
         WHERE p.pronamespace = 'pg_catalog'::regnamespace \
           AND (p.proname LIKE 'lo\\_%' OR p.proname IN ('loread', 'lowrite', \
                'pg_terminate_backend', 'pg_cancel_backend')) \
           AND has_function_privilege(current_user, p.oid, 'EXECUTE') ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    for f in callable {
        report.push(
            Check::SideChannel,
            &f,
            format!("{me} may call it: a channel between tenants that share the role"),
            format!("REVOKE EXECUTE ON FUNCTION {f} FROM PUBLIC, {me}"),
        );
    }
    // What the role's next sessions get, not this pooled session's value: a session keeps the
    // setting it started with, so a role setting removed since would not show in it.
    let off_for_the_role: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_db_role_setting r, \
                LATERAL unnest(r.setconfig) AS s(setting) \
         WHERE r.setrole = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) \
           AND r.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database \
                                     WHERE datname = current_database())) \
           AND s.setting = 'track_activities=off')",
    )
    .fetch_one(pool)
    .await?;
    if !off_for_the_role {
        report.push(
            Check::SideChannel,
            me,
            "track_activities is on: the role's backends read each other's statement text (the tenant set with BEGIN) in pg_stat_activity",
            format!("ALTER ROLE {me} SET track_activities = off (as a superuser)"),
        );
    }
    Ok(())
}
