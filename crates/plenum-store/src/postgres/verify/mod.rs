//! The boot-time verifier: reads the catalog as the runtime role and reports every way the
//! database contract is broken, each with the statement that fixes it. This file holds the
//! vocabulary ([`Check`], [`Finding`], [`Report`]) and the order the checks run in;
//! `catalog.rs` reads the catalog, `checks.rs` holds one function per check, each with its
//! finding and fix text, so a new check is one new function and one line here. Nothing here
//! changes the database.

mod catalog;
mod checks;
mod privileges;

use core::fmt;

use sqlx::postgres::PgPool;

use crate::contract::Roles;
use crate::error::Error;
use crate::postgres::ContextKey;

/// Which rule a finding breaks.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Check {
    /// The context function is missing, not `STABLE`, does not return `uuid`, lacks
    /// `SET search_path = ''`, is not `SECURITY DEFINER` (it must read the context key), has
    /// another body than the contract's, or does not accept the pool's context key.
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
    /// The trigger that keeps key states moving forward (and `destroyed` final) is missing or
    /// disabled: erasure could be undone by writing old wrapped bytes back.
    KeyStateGuard,
    /// A `SECURITY DEFINER` function in a contract schema is executable by the runtime role: it
    /// runs with its owner's rights, outside the runtime role's policies.
    SecurityDefinerFunction,
    /// Default privileges would grant future objects to the runtime role or to `PUBLIC`.
    DefaultPrivileges,
    /// The runtime role carries role-level settings (other than the contract's own), which
    /// change every session it opens (a `statement_timeout` of 1 ms stops every instance).
    RoleSettings,
    /// `PUBLIC` may connect to the database or create temporary tables in it, or the runtime
    /// role may create temporary tables.
    DatabasePrivileges,
    /// The migration history table is not owned by the owner role.
    MigrationHistoryOwner,
    /// The admin role bypasses RLS, is a superuser, may create roles or databases, or holds a
    /// write privilege beyond its audit rows.
    AdminRole,
    /// A channel between tenants sharing the runtime role is open: large objects, terminating
    /// or cancelling another backend, or other backends' statement text in `pg_stat_activity`.
    SideChannel,
    /// A foreign key's referencing columns have no index leading with them.
    UnindexedForeignKey,
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

    pub(super) fn push(
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

/// Verifies the database contract as the runtime role of `pool`. See [`Check`] for the rules.
///
/// # Errors
///
/// Database failures while reading the catalog (findings are in the report, not errors).
pub(crate) async fn verify(
    pool: &PgPool,
    roles: &Roles,
    key: Option<&ContextKey>,
) -> Result<Report, Error> {
    let mut report = Report::default();
    checks::context_function(pool, &mut report).await?;
    if let Some(key) = key {
        checks::context_key(pool, key, &mut report).await?;
    }
    let me = checks::runtime_role(pool, roles, &mut report).await?;
    checks::schema_create(pool, &me, &mut report).await?;
    privileges::security_definer_functions(pool, &me, &mut report).await?;
    privileges::default_privileges(pool, &me, &mut report).await?;
    privileges::role_settings(pool, &me, &mut report).await?;
    privileges::database_privileges(pool, &me, &mut report).await?;
    privileges::migration_history_owner(pool, roles, &mut report).await?;
    privileges::admin_role(pool, roles, &mut report).await?;
    privileges::side_channels(pool, &me, &mut report).await?;
    let relations = catalog::relations(pool).await?;
    let policies = catalog::policies(pool).await?;
    for (name, rel) in &relations {
        checks::dangerous_privileges(name, rel, &me, &mut report);
        if checks::view_like(name, rel, &me, &mut report) {
            continue;
        }
        let Some(column) = rel.tenant_column.as_deref() else {
            checks::unscoped_relation(name, rel, &me, &mut report);
            continue;
        };
        if rel.partition {
            checks::partition(name, rel, policies.contains_key(name), &me, &mut report);
            continue;
        }
        report.tenant_tables += 1;
        checks::row_security(name, rel, roles, &me, &mut report);
        let empty = Vec::new();
        let table_policies = policies.get(name).unwrap_or(&empty);
        checks::policies(name, column, table_policies, roles, &mut report);
    }
    checks::key_state_guard(pool, &mut report).await?;
    checks::unique_indexes(pool, &relations, &mut report).await?;
    checks::foreign_keys(pool, &relations, &mut report).await?;
    report
        .findings
        .sort_by(|a, b| (a.check, &a.object).cmp(&(b.check, &b.object)));
    Ok(report)
}
