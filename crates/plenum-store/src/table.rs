//! Record tables declared once and rendered for each backend, so the database contract is
//! generated, never hand-written.

use plenum_core::{FieldName, RecordType};

use crate::contract::{CONTEXT_FUNCTION, DATA_SCHEMA, LIBRARY_SCHEMA, Roles};

/// The storage type of a column.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlType {
    /// `uuid` / `blob` (16 bytes).
    Uuid,
    /// `text`.
    Text,
    /// `bytea` / `blob`: ciphertext envelopes and blind indexes.
    Bytes,
    /// `bigint` / `integer`.
    BigInt,
    /// `integer` / `integer`: a 32-bit column, read and bound as [`Value::BigInt`](crate::Value).
    Int,
    /// `boolean` / `integer`.
    Bool,
    /// `timestamptz` / `text` (RFC 3339).
    Timestamp,
}

impl SqlType {
    fn postgres(self) -> &'static str {
        match self {
            Self::Uuid => "uuid",
            Self::Text => "text",
            Self::Bytes => "bytea",
            Self::BigInt => "bigint",
            Self::Int => "integer",
            Self::Bool => "boolean",
            Self::Timestamp => "timestamptz",
        }
    }

    fn sqlite(self) -> &'static str {
        match self {
            Self::Uuid | Self::Bytes => "blob",
            Self::Text | Self::Timestamp => "text",
            Self::BigInt | Self::Int | Self::Bool => "integer",
        }
    }
}

/// One column of a record table (besides `tenant_id` and `id`, which every table has).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: FieldName,
    /// Its type.
    pub ty: SqlType,
    /// Whether it may be NULL.
    pub nullable: bool,
}

/// A foreign key to another record table of the same tenant: rendered as the composite
/// `(tenant_id, column) REFERENCES other (tenant_id, id)`, so a row cannot reference another
/// tenant's row (the reference would not exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    /// The referencing column.
    pub column: FieldName,
    /// The referenced record type.
    pub references: RecordType,
}

/// A record table: `tenant_id` and `id` first, then the declared columns; every key and index
/// led by `tenant_id`; row-level security enabled, forced and policed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    name: RecordType,
    columns: Vec<Column>,
    unique: Vec<FieldName>,
    indexes: Vec<FieldName>,
    foreign_keys: Vec<ForeignKey>,
}

impl TableSpec {
    /// A table for `record_type` with only `tenant_id` and `id`.
    pub fn new(record_type: RecordType) -> Self {
        Self {
            name: record_type,
            columns: Vec::new(),
            unique: Vec::new(),
            indexes: Vec::new(),
            foreign_keys: Vec::new(),
        }
    }

    /// Adds a column.
    #[must_use]
    pub fn column(mut self, name: FieldName, ty: SqlType, nullable: bool) -> Self {
        self.columns.push(Column { name, ty, nullable });
        self
    }

    /// Makes `column` unique within a tenant: `UNIQUE (tenant_id, column)`, never global, so no
    /// tenant learns whether a value exists in another.
    #[must_use]
    pub fn unique(mut self, column: FieldName) -> Self {
        self.unique.push(column);
        self
    }

    /// Adds an index `(tenant_id, column)`.
    #[must_use]
    pub fn index(mut self, column: FieldName) -> Self {
        self.indexes.push(column);
        self
    }

    /// Adds a same-tenant foreign key.
    #[must_use]
    pub fn foreign_key(mut self, column: FieldName, references: RecordType) -> Self {
        self.foreign_keys.push(ForeignKey { column, references });
        self
    }

    /// The record type (and table name).
    pub fn record_type(&self) -> &RecordType {
        &self.name
    }

    /// The declared columns.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The schema-qualified PostgreSQL table name.
    pub fn qualified_name(&self) -> String {
        format!("{DATA_SCHEMA}.{}", self.name)
    }

    /// The name of the unique constraint on `column` (what `Error::UniqueViolation` maps back).
    pub fn unique_constraint_name(&self, column: &FieldName) -> String {
        format!("{}_{}_key", self.name, column)
    }

    /// PostgreSQL DDL, idempotent, to be run by the owner: the table, its keys and indexes, RLS
    /// enabled and forced, the canonical policies, and the grants of the contract.
    pub fn postgres_ddl(&self, roles: &Roles) -> Vec<String> {
        let t = self.qualified_name();
        let mut ddl = self.create_ddl(Dialect::Postgres);
        ddl.extend(police(&t, self.name.as_str(), "tenant_id", roles));
        ddl.push(format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON {t} TO {}",
            roles.app()
        ));
        ddl.push(format!("GRANT SELECT ON {t} TO {}", roles.admin()));
        ddl
    }

    /// SQLite DDL, idempotent. SQLite has no row-level security: the library's explicit
    /// `tenant_id = ?` predicates and row checks are the only barrier there.
    pub fn sqlite_ddl(&self) -> Vec<String> {
        self.create_ddl(Dialect::Sqlite)
    }

    /// The table and its indexes; everything but the policies and grants.
    fn create_ddl(&self, d: Dialect) -> Vec<String> {
        let name = self.name.as_str();
        let t = d.table(name);
        let mut cols = vec![
            format!(
                "tenant_id {} NOT NULL REFERENCES {} (id)",
                d.ty(SqlType::Uuid),
                d.tenants()
            ),
            format!("id {} NOT NULL", d.ty(SqlType::Uuid)),
        ];
        for c in &self.columns {
            let null = if c.nullable { "" } else { " NOT NULL" };
            cols.push(format!("{} {}{null}", c.name, d.ty(c.ty)));
        }
        cols.push(format!(
            "CONSTRAINT {name}_pkey PRIMARY KEY (tenant_id, id)"
        ));
        for u in &self.unique {
            cols.push(format!(
                "CONSTRAINT {} UNIQUE (tenant_id, {u})",
                self.unique_constraint_name(u)
            ));
        }
        for fk in &self.foreign_keys {
            cols.push(format!(
                "CONSTRAINT {name}_{col}_fkey FOREIGN KEY (tenant_id, {col}) \
                 REFERENCES {other} (tenant_id, id)",
                col = fk.column,
                other = d.table(fk.references.as_str()),
            ));
        }
        let mut ddl = vec![format!(
            "CREATE TABLE IF NOT EXISTS {t} (\n    {}\n)",
            cols.join(",\n    ")
        )];
        // Every referencing column gets an index too (unless a unique constraint already leads
        // with it): deleting or re-keying a referenced row otherwise scans the whole table.
        let fk_columns = self
            .foreign_keys
            .iter()
            .map(|fk| &fk.column)
            .filter(|c| !self.indexes.contains(c) && !self.unique.contains(c));
        for i in self.indexes.iter().chain(fk_columns) {
            ddl.push(format!(
                "CREATE INDEX IF NOT EXISTS {name}_{i}_idx ON {t} (tenant_id, {i})"
            ));
        }
        ddl
    }
}

/// Where the two backends' SQL differs: schemas, type names, placeholders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    pub(crate) fn table(self, name: &str) -> String {
        match self {
            Self::Postgres => format!("{DATA_SCHEMA}.{name}"),
            Self::Sqlite => name.to_owned(),
        }
    }

    /// A table of the library's own (`plenum.<name>`; `plenum_<name>` on SQLite).
    pub(crate) fn library(self, name: &str) -> String {
        match self {
            Self::Postgres => format!("{LIBRARY_SCHEMA}.{name}"),
            Self::Sqlite => format!("plenum_{name}"),
        }
    }

    fn tenants(self) -> String {
        self.library("tenants")
    }

    pub(crate) fn ty(self, ty: SqlType) -> &'static str {
        match self {
            Self::Postgres => ty.postgres(),
            Self::Sqlite => ty.sqlite(),
        }
    }
}

/// The canonical tenant predicate, as every policy states it. The function returns `uuid`, so
/// there is no per-row cast; the scalar subquery makes it an initplan evaluated once.
pub(crate) fn tenant_predicate(column: &str) -> String {
    format!("{column} = (SELECT {CONTEXT_FUNCTION}())")
}

/// The admin role's read predicate: a durable audit row of this admin session exists
/// (`plenum.admin_audited()`, migration 1).
pub(crate) fn admin_predicate() -> String {
    format!("(SELECT {LIBRARY_SCHEMA}.admin_audited())")
}

/// ENABLE + FORCE row-level security and the canonical policies for one table whose tenant
/// column is `column`.
pub(crate) fn police(table: &str, short: &str, column: &str, roles: &Roles) -> Vec<String> {
    let (app, admin) = (roles.app(), roles.admin());
    let p = tenant_predicate(column);
    vec![
        format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"),
        format!("ALTER TABLE {table} FORCE ROW LEVEL SECURITY"),
        format!("DROP POLICY IF EXISTS {short}_tenant_isolation ON {table}"),
        format!(
            "CREATE POLICY {short}_tenant_isolation ON {table} AS PERMISSIVE FOR ALL TO {app} \
             USING ({p}) WITH CHECK ({p})"
        ),
        format!("DROP POLICY IF EXISTS {short}_tenant_floor ON {table}"),
        format!(
            "CREATE POLICY {short}_tenant_floor ON {table} AS RESTRICTIVE FOR ALL TO {app} \
             USING ({p}) WITH CHECK ({p})"
        ),
        format!("DROP POLICY IF EXISTS {short}_admin_read ON {table}"),
        format!(
            "CREATE POLICY {short}_admin_read ON {table} AS PERMISSIVE FOR SELECT TO {admin} \
             USING ({})",
            admin_predicate()
        ),
        format!("REVOKE ALL ON {table} FROM PUBLIC"),
        format!("REVOKE TRUNCATE, REFERENCES, TRIGGER ON {table} FROM {app}, {admin}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use plenum_core::{field_name, record_type};

    #[test]
    fn every_key_and_index_leads_with_tenant_id() {
        let spec = TableSpec::new(record_type!("orders"))
            .column(field_name!("customer_id"), SqlType::Uuid, false)
            .column(field_name!("email_bidx"), SqlType::Bytes, true)
            .unique(field_name!("email_bidx"))
            .index(field_name!("customer_id"))
            .foreign_key(field_name!("customer_id"), record_type!("customers"));
        let ddl = spec.postgres_ddl(&Roles::default()).join(";\n");
        assert!(ddl.contains("PRIMARY KEY (tenant_id, id)"));
        assert!(ddl.contains("UNIQUE (tenant_id, email_bidx)"));
        assert!(ddl.contains("ON app.orders (tenant_id, customer_id)"));
        assert!(ddl.contains(
            "FOREIGN KEY (tenant_id, customer_id) REFERENCES app.customers (tenant_id, id)"
        ));
        assert!(ddl.contains("FORCE ROW LEVEL SECURITY"));
        assert!(ddl.contains("AS RESTRICTIVE FOR ALL TO plenum_app"));
        assert!(ddl.contains("USING (tenant_id = (SELECT plenum.current_tenant_id()))"));
        assert!(!ddl.contains(" OR "));
        assert_eq!(
            spec.unique_constraint_name(&field_name!("email_bidx")),
            "orders_email_bidx_key"
        );
    }

    #[test]
    fn sqlite_ddl_has_the_same_keys() {
        let spec = TableSpec::new(record_type!("customers"))
            .column(field_name!("email"), SqlType::Bytes, false)
            .unique(field_name!("email"));
        let ddl = spec.sqlite_ddl().join(";\n");
        assert!(ddl.contains("PRIMARY KEY (tenant_id, id)"));
        assert!(ddl.contains("UNIQUE (tenant_id, email)"));
    }
}
