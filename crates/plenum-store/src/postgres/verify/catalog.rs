//! Reading the catalog for the verifier: the contract schemas' relations (with what the runtime
//! role may do to each) and their policies. Reads only; judges nothing.

use std::collections::BTreeMap;

use sqlx::Row as _;
use sqlx::postgres::PgPool;

use crate::contract::{CONTEXT_FUNCTION, DATA_SCHEMA, LIBRARY_SCHEMA};
use crate::error::Error;

/// The schemas the contract governs.
pub(super) const SCHEMAS: [&str; 2] = [LIBRARY_SCHEMA, DATA_SCHEMA];

/// Whitespace-free form of a policy expression, for comparison with the canonical one.
pub(super) fn squash(expr: &str) -> String {
    expr.chars().filter(|c| !c.is_whitespace()).collect()
}

/// What `pg_get_expr` prints for the canonical predicate on `column`.
pub(super) fn canonical(column: &str) -> String {
    squash(&format!(
        "({column} = ( SELECT {CONTEXT_FUNCTION}() AS current_tenant_id))"
    ))
}

/// One row of `pg_policies`, expressions without white space.
pub(super) struct Policy {
    pub(super) name: String,
    pub(super) permissive: String,
    pub(super) roles: Vec<String>,
    pub(super) cmd: String,
    pub(super) qual: String,
    pub(super) with_check: String,
}

pub(super) struct Relation {
    pub(super) kind: String,
    pub(super) rls: bool,
    pub(super) forced: bool,
    pub(super) partition: bool,
    pub(super) app_owns: bool,
    pub(super) app_access: bool,
    pub(super) dangerous: Vec<&'static str>,
    pub(super) tenant_column: Option<String>,
    pub(super) options: String,
}

/// Every relation of the contract schemas, by schema-qualified name.
pub(super) async fn relations(pool: &PgPool) -> Result<BTreeMap<String, Relation>, Error> {
    let schemas = SCHEMAS;
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

    Ok(relations)
}

/// Every policy of the contract schemas, grouped by table.
pub(super) async fn policies(pool: &PgPool) -> Result<BTreeMap<String, Vec<Policy>>, Error> {
    let schemas = SCHEMAS;
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

    Ok(by_table)
}
