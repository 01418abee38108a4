//! Names shared by the generated schema, the runtime and the verifier.

use plenum_core::TenantId;

use crate::error::Error;

/// Schema holding the library's own objects: the context function, the tenant registry, wrapped
/// keys, audit and consent tables, and the migration history.
pub const LIBRARY_SCHEMA: &str = "plenum";
/// Schema holding record tables (one per record type).
pub const DATA_SCHEMA: &str = "app";
/// The transaction-local setting that carries the current tenant.
pub const TENANT_SETTING: &str = "plenum.tenant_id";
/// The transaction-local setting that names the committed audit row of an admin session.
pub const ADMIN_AUDIT_SETTING: &str = "plenum.admin_audit_id";
/// The context function every policy calls: `STABLE`, returns `uuid`, NULL without a tenant.
pub const CONTEXT_FUNCTION: &str = "plenum.current_tenant_id";

/// The log admin transactions are recorded in: a reserved tenant id that holds no data, is
/// registered by migration 4, and whose log is sequenced, checkpointed, exported and verified
/// like any tenant's (`TenantPool::begin(PLATFORM_LOG)` as the runtime role). The admin role may
/// append to this log and to no other.
pub const PLATFORM_LOG: TenantId = TenantId::from_trusted_uuid(uuid::Uuid::from_u128(
    0x0000_0000_0000_7000_8000_0000_0000_0a0d,
));

/// The PostgreSQL roles of the database contract.
///
/// Role names are cluster-wide, so they carry a prefix: one cluster can host several
/// environments (and the test suite gives every test database its own set).
///
/// | role | attributes | may |
/// |---|---|---|
/// | `<prefix>_owner` | NOLOGIN | own schemas, tables, functions |
/// | `<prefix>_migrator` | LOGIN, member of the owner | apply migrations (as the owner) |
/// | `<prefix>_app` | LOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT, member of nothing | read and write tenant rows under RLS |
/// | `<prefix>_admin` | LOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT | read across tenants, through audited `AdminTx` only |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    prefix: String,
}

impl Default for Roles {
    fn default() -> Self {
        Self {
            prefix: "plenum".to_owned(),
        }
    }
}

impl Roles {
    /// Roles named `<prefix>_owner`, `<prefix>_migrator`, `<prefix>_app`, `<prefix>_admin`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] unless `prefix` matches `[a-z][a-z0-9_]*` and is at most 40 bytes.
    pub fn with_prefix(prefix: &str) -> Result<Self, Error> {
        let ok = !prefix.is_empty()
            && prefix.len() <= 40
            && prefix.as_bytes()[0].is_ascii_lowercase()
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            return Err(Error::Config(
                "role prefix must match [a-z][a-z0-9_]* (at most 40 bytes)",
            ));
        }
        Ok(Self {
            prefix: prefix.to_owned(),
        })
    }

    /// The owner role (NOLOGIN).
    pub fn owner(&self) -> String {
        format!("{}_owner", self.prefix)
    }

    /// The migration login role, a member of the owner.
    pub fn migrator(&self) -> String {
        format!("{}_migrator", self.prefix)
    }

    /// The runtime application role.
    pub fn app(&self) -> String {
        format!("{}_app", self.prefix)
    }

    /// The read-only, audited cross-tenant role.
    pub fn admin(&self) -> String {
        format!("{}_admin", self.prefix)
    }
}
