//! The boot-time verifier: reads the catalog as the runtime role and reports every way the
//! database contract is broken, each with the statement that fixes it.

use core::fmt;
use std::collections::BTreeMap;

use sqlx::Row as _;
use sqlx::postgres::PgPool;

use crate::contract::{CONTEXT_FUNCTION, DATA_SCHEMA, LIBRARY_SCHEMA, Roles};
use crate::error::Error;

/// Which rule a finding breaks.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Check {
    /// The context function is missing, not `STABLE`, does not return `uuid`, or lacks
    /// `SET search_path = ''`.
    ContextFunction,
    /// The runtime role is a superuser, bypasses RLS, inherits, or is a member of another role.
    RuntimeRole,
    /// The runtime role owns (or is a member of the owner of) a table.
    RuntimeRoleOwnsTable,
    /// Row-level security is not enabled on a tenant table.
    RlsDisabled,
    /// Row-level security is not forced on a tenant table (the owner would bypass it).
    RlsNotForced,
    /// A canonical policy is missing.
    MissingPolicy,
    /// A policy that is not one of the canonical ones exists.
    UnexpectedPolicy,
    /// A unique index does not lead with the tenant column (a cross-tenant existence oracle).
    UnscopedUniqueIndex,
    /// A foreign key does not lead with the tenant column on both sides.
    UnscopedForeignKey,
    /// A partition can be read directly by the runtime role without policies of its own.
    ReadablePartition,
    /// A view readable by the runtime role runs as its owner (no `security_invoker`).
    ViewWithoutSecurityInvoker,
    /// The runtime role holds TRUNCATE, REFERENCES or TRIGGER on a table.
    DangerousPrivilege,
    /// The runtime role may create objects in a schema.
    SchemaCreate,
    /// A relation without a tenant column is readable or writable by the runtime role.
    UnscopedRelation,
}

/// One problem found by [`TenantPool::verify`](crate::TenantPool::verify), with the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule broken.
    pub check: Check,
    /// The object (schema-qualified table, index, policy, role or function).
    pub object: String,
    /// What is wrong.
    pub problem: String,
    /// How to fix it (SQL to run as the owner, or the step to take).
    pub fix: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} {}: {} (fix: {})",
            self.check, self.object, self.problem, self.fix
        )
    }
}

/// The outcome of [`TenantPool::verify`](crate::TenantPool::verify).
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Every finding; empty when the contract holds.
    pub findings: Vec<Finding>,
    /// How many tenant tables were checked.
    pub tenant_tables: usize,
}

impl Report {
    /// `Ok` when there are no findings, else [`Error::Contract`] with all of them.
    ///
    /// # Errors
    ///
    /// [`Error::Contract`].
    pub fn ensure_clean(self) -> Result<Self, Error> {
        if self.findings.is_empty() {
            Ok(self)
        } else {
            Err(Error::Contract(self.findings))
        }
    }

    /// Whether a finding of `check` was reported.
    pub fn has(&self, check: Check) -> bool {
        self.findings.iter().any(|f| f.check == check)
    }

    fn push(
        &mut self,
        check: Check,
        object: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.findings.push(Finding {
            check,
            object: object.into(),
            problem: problem.into(),
            fix: fix.into(),
        });
    }
}

/// Whitespace-free form of a policy expression, for comparison with the canonical one.
fn squash(expr: &str) -> String {
    expr.chars().filter(|c| !c.is_whitespace()).collect()
}

/// What `pg_get_expr` prints for the canonical predicate on `column`.
fn canonical(column: &str) -> String {
    squash(&format!(
        "({column} = ( SELECT {CONTEXT_FUNCTION}() AS current_tenant_id))"
    ))
}

/// One row of `pg_policies`, expressions without white space.
struct Policy {
    name: String,
    permissive: String,
    roles: Vec<String>,
    cmd: String,
    qual: String,
    with_check: String,
}

struct Relation {
    kind: String,
    rls: bool,
    forced: bool,
    partition: bool,
    app_owns: bool,
    app_access: bool,
    dangerous: Vec<&'static str>,
    tenant_column: Option<String>,
    options: String,
}

/// Verifies the database contract as the runtime role of `pool`. See [`Check`] for the rules.
///
/// # Errors
///
/// Database failures while reading the catalog (findings are in the report, not errors).
pub(crate) async fn verify(pool: &PgPool, roles: &Roles) -> Result<Report, Error> {
    let mut report = Report::default();
    let (app, admin) = (roles.app(), roles.admin());
    let schemas = [LIBRARY_SCHEMA, DATA_SCHEMA];

    // The context function.
    let function = sqlx::query(
        "SELECT p.provolatile::text AS vol, p.prorettype::regtype::text AS ret, \
                coalesce(array_to_string(p.proconfig, ','), '') AS config, p.prosecdef AS definer \
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
            if definer {
                report.push(
                    Check::ContextFunction,
                    &f,
                    "is SECURITY DEFINER",
                    format!("ALTER FUNCTION {f} SECURITY INVOKER"),
                );
            }
        }
    }

    // The runtime role.
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

    // Schemas.
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

    // Relations.
    let rows = sqlx::query(
        "SELECT n.nspname::text || '.' || c.relname::text AS name, c.relkind::text AS kind, \
                c.relrowsecurity AS rls, c.relforcerowsecurity AS forced, c.relispartition AS part, \
                pg_has_role(current_user, c.relowner, 'MEMBER') AS owns, \
                (has_table_privilege(current_user, c.oid, 'SELECT') \
                 OR has_table_privilege(current_user, c.oid, 'INSERT') \
                 OR has_table_privilege(current_user, c.oid, 'UPDATE') \
                 OR has_table_privilege(current_user, c.oid, 'DELETE')) AS access, \
                has_table_privilege(current_user, c.oid, 'TRUNCATE') AS can_truncate, \
                has_table_privilege(current_user, c.oid, 'REFERENCES') AS can_reference, \
                has_table_privilege(current_user, c.oid, 'TRIGGER') AS can_trigger, \
                (SELECT a.attname::text FROM pg_catalog.pg_attribute a \
                  WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped) AS tenant_col, \
                coalesce(array_to_string(c.reloptions, ','), '') AS options \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
         ORDER BY 1",
    )
    .bind(&schemas[..])
    .fetch_all(pool)
    .await?;
    let mut relations = BTreeMap::new();
    for row in rows {
        let name: String = row.try_get("name")?;
        let mut dangerous = Vec::new();
        for (col, privilege) in [
            ("can_truncate", "TRUNCATE"),
            ("can_reference", "REFERENCES"),
            ("can_trigger", "TRIGGER"),
        ] {
            if row.try_get::<bool, _>(col)? {
                dangerous.push(privilege);
            }
        }
        let mut tenant_column: Option<String> = row.try_get("tenant_col")?;
        if name == format!("{LIBRARY_SCHEMA}.tenants") {
            // The registry is keyed by the tenant itself.
            tenant_column = Some("id".to_owned());
        }
        relations.insert(
            name,
            Relation {
                kind: row.try_get("kind")?,
                rls: row.try_get("rls")?,
                forced: row.try_get("forced")?,
                partition: row.try_get("part")?,
                app_owns: row.try_get("owns")?,
                app_access: row.try_get("access")?,
                dangerous,
                tenant_column,
                options: row.try_get("options")?,
            },
        );
    }

    // Policies, grouped by table.
    let policies = sqlx::query(
        "SELECT schemaname::text || '.' || tablename::text AS tbl, policyname::text AS name, \
                permissive::text AS permissive, roles::text[] AS roles, cmd::text AS cmd, \
                coalesce(qual, '') AS qual, coalesce(with_check, '') AS with_check \
         FROM pg_catalog.pg_policies WHERE schemaname = ANY($1)",
    )
    .bind(&schemas[..])
    .fetch_all(pool)
    .await?;
    let mut by_table: BTreeMap<String, Vec<Policy>> = BTreeMap::new();
    for p in policies {
        by_table.entry(p.try_get("tbl")?).or_default().push(Policy {
            name: p.try_get("name")?,
            permissive: p.try_get("permissive")?,
            roles: p.try_get("roles")?,
            cmd: p.try_get("cmd")?,
            qual: squash(&p.try_get::<String, _>("qual")?),
            with_check: squash(&p.try_get::<String, _>("with_check")?),
        });
    }

    for (name, rel) in &relations {
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
                continue;
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
                continue;
            }
            _ => {}
        }
        let Some(column) = rel.tenant_column.as_deref() else {
            if rel.app_access {
                report.push(
                    Check::UnscopedRelation,
                    name,
                    "a table without a tenant column is accessible to the runtime role",
                    format!("REVOKE ALL ON {name} FROM {me}, or add tenant_id and policies"),
                );
            }
            continue;
        };
        if rel.partition {
            let policed = rel.rls && rel.forced && by_table.contains_key(name);
            if rel.app_access && !policed {
                report.push(
                    Check::ReadablePartition,
                    name,
                    "a partition can be queried directly, bypassing its parent's policies",
                    format!("REVOKE ALL ON {name} FROM {me}"),
                );
            }
            continue;
        }
        report.tenant_tables += 1;
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
        let expected = canonical(column);
        let platform_append = squash(&format!(
            "(tenant_id = '{}'::uuid)",
            crate::contract::PLATFORM_LOG
        ));
        let empty = Vec::new();
        let table_policies = by_table.get(name).unwrap_or(&empty);
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
                && qual == "true"
                && check.is_empty()
            {
                // The admin role's read policy, used only through audited AdminTx.
            } else if name == "plenum.audit_log"
                && permissive == "PERMISSIVE"
                && cmd == "INSERT"
                && only(&admin)
                && qual.is_empty()
                && *check == platform_append
            {
                // The admin role appends its transactions to the platform log, and only there.
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
        if !isolation {
            report.push(
                Check::MissingPolicy,
                name,
                "no canonical permissive tenant policy for the runtime role",
                "re-apply the table's DDL (TableSpec::postgres_ddl / migrate)",
            );
        }
        if !floor {
            report.push(
                Check::MissingPolicy,
                name,
                "no restrictive tenant floor policy",
                "re-apply the table's DDL (TableSpec::postgres_ddl / migrate)",
            );
        }
    }

    // Unique indexes must lead with the tenant column.
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

    // Foreign keys must lead with the tenant column on both sides.
    let fks = sqlx::query(
        "SELECT n.nspname::text || '.' || c.relname::text AS tbl, con.conname::text AS name, \
                fn.nspname::text || '.' || fc.relname::text AS ref_tbl, \
                (SELECT attname::text FROM pg_catalog.pg_attribute WHERE attrelid = con.conrelid AND attnum = con.conkey[1]) AS col, \
                (SELECT attname::text FROM pg_catalog.pg_attribute WHERE attrelid = con.confrelid AND attnum = con.confkey[1]) AS ref_col \
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
    }

    report
        .findings
        .sort_by(|a, b| (a.check, &a.object).cmp(&(b.check, &b.object)));
    Ok(report)
}
