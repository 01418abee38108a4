//! The admin path: `AdminPool`/`AdminTx`, cross-tenant reads on separate credentials, each
//! transaction recorded in `plenum.admin_audit` and the platform log before it reads anything.

use core::fmt;

use plenum_core::{Actor, RecordId};
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Postgres, SqlSafeStr as _, Transaction};

use super::{PgPoolConfig, connect_admin_pool};
use crate::contract::ADMIN_AUDIT_SETTING;
use crate::error::Error;

/// Why cross-tenant access is needed. A closed set, so the audit row never holds free text that
/// could carry personal data.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminPurpose {
    /// A retention job finding what has expired across tenants (reading only: the admin role
    /// may only `SELECT`; deleting or pseudonymising is done per tenant through the audited
    /// repository path).
    RetentionSweep,
    /// A support request from a tenant.
    SupportRequest,
    /// A data-subject request (access, erasure) that spans tenants.
    DataSubjectRequest,
    /// A legal request or obligation.
    LegalRequest,
    /// Operational maintenance (re-encryption sweeps, consistency checks).
    Maintenance,
}

impl AdminPurpose {
    /// The stable string form stored in the audit row.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RetentionSweep => "retention_sweep",
            Self::SupportRequest => "support_request",
            Self::DataSubjectRequest => "data_subject_request",
            Self::LegalRequest => "legal_request",
            Self::Maintenance => "maintenance",
        }
    }
}

/// The reason for an admin transaction: a purpose and an optional reference (a ticket id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminReason {
    purpose: AdminPurpose,
    reference: Option<String>,
}

impl AdminReason {
    /// A reason without a reference (scheduled jobs).
    pub fn new(purpose: AdminPurpose) -> Self {
        Self {
            purpose,
            reference: None,
        }
    }

    /// A reason with a reference such as `SUP-1234`: 1 to 64 characters of `A-Z a-z 0-9 . _ : # -`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for any other reference (it is stored verbatim, so it may not be prose).
    pub fn with_reference(purpose: AdminPurpose, reference: &str) -> Result<Self, Error> {
        let ok = !reference.is_empty()
            && reference.len() <= 64
            && reference
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:_#-".contains(&b));
        if !ok {
            return Err(Error::Config(
                "admin reference must be 1-64 of A-Z a-z 0-9 . _ : # -",
            ));
        }
        Ok(Self {
            purpose,
            reference: Some(reference.to_owned()),
        })
    }

    /// The purpose.
    pub fn purpose(&self) -> AdminPurpose {
        self.purpose
    }
}

/// A pool of the read-only admin role, on its own credentials.
#[derive(Clone)]
pub struct AdminPool {
    pool: PgPool,
}

impl fmt::Debug for AdminPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminPool").finish_non_exhaustive()
    }
}

impl AdminPool {
    /// Connects as the admin role.
    ///
    /// # Errors
    ///
    /// Connection failures.
    pub async fn connect(url: &str, config: &PgPoolConfig) -> Result<Self, Error> {
        Ok(Self {
            pool: connect_admin_pool(url, config).await?,
        })
    }

    /// Begins an admin transaction. Before anything else, in a transaction of its own that
    /// commits first, it appends an audit row naming the actor and the reason to
    /// `plenum.admin_audit` and an `admin.transaction` event to the platform log
    /// ([`PLATFORM_LOG`](crate::PLATFORM_LOG)); if either cannot be written, nothing happens
    /// (fail closed). The reading transaction then names that row, and the admin read policy
    /// (`plenum.admin_audited()`) lets it read only on the backend that wrote the row, within
    /// the hour.
    ///
    /// # Errors
    ///
    /// [`Error::AdminAudit`] if the audit row cannot be written, [`Error::AuditLog`] if the
    /// platform log event cannot; connection failures.
    pub async fn begin(&self, actor: &Actor, reason: &AdminReason) -> Result<AdminTx, Error> {
        // One connection for both steps: the database ties the read permission to the backend
        // that wrote the audit row.
        let mut conn = self.pool.acquire().await.map_err(Error::Database)?;
        let actor_json = serde_json::to_value(actor)
            .map_err(|_| Error::Config("actor could not be serialised"))?;
        let id = RecordId::generate();
        // Step 1, committed before anything is read: the audit row and its platform-log event,
        // in a transaction of their own, so that no rollback of the reading transaction (or a
        // dropped `AdminTx`) can take them back.
        let mut audit = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(Error::Database)?;
        sqlx::query(
            "INSERT INTO plenum.admin_audit (id, actor, purpose, reference) VALUES ($1, $2, $3, $4)",
        )
        .bind(id.as_uuid())
        .bind(actor_json)
        .bind(reason.purpose.as_str())
        .bind(reason.reference.as_deref())
        .execute(&mut *audit)
        .await
        .map_err(Error::AdminAudit)?;
        let mut event = plenum_audit::Event::new(
            crate::contract::PLATFORM_LOG,
            actor.clone(),
            "admin.transaction",
        );
        event.service = "admin".to_owned();
        event.record_type = Some("admin_audit".to_owned());
        event.records = vec![id];
        event.unrestricted = Some(match &reason.reference {
            Some(reference) => format!("{} {reference}", reason.purpose.as_str()),
            None => reason.purpose.as_str().to_owned(),
        });
        crate::audit::append_platform(&mut audit, &event).await?;
        audit.commit().await.map_err(Error::AdminAudit)?;
        // Step 2: the reading transaction names its audit row; the admin read policy checks it.
        // `Transaction::begin` over the owned connection is sqlx's own (hidden) constructor,
        // which keeps rollback-on-drop; the id is a UUID, so the statement cannot inject.
        let statement = format!("BEGIN; SET LOCAL {ADMIN_AUDIT_SETTING} = '{id}'");
        let tx = Transaction::begin(conn, Some(sqlx::AssertSqlSafe(statement).into_sql_str()))
            .await
            .map_err(Error::Database)?;
        Ok(AdminTx { tx, audit_id: id })
    }
}

/// A cross-tenant, read-only transaction whose audit row is already committed: it stays recorded
/// however this transaction ends, and the database lets it read only because that row exists.
pub struct AdminTx {
    tx: Transaction<'static, Postgres>,
    audit_id: RecordId,
}

impl fmt::Debug for AdminTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminTx")
            .field("audit_id", &self.audit_id)
            .finish_non_exhaustive()
    }
}

impl AdminTx {
    /// The id of this transaction's audit row.
    pub fn audit_id(&self) -> RecordId {
        self.audit_id
    }

    /// The connection, for reads across tenants (the admin role can only `SELECT`).
    pub fn connection(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    /// Commits.
    ///
    /// # Errors
    ///
    /// Database failures.
    pub async fn commit(self) -> Result<(), Error> {
        self.tx.commit().await.map_err(Error::Database)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_restricted() {
        assert!(AdminReason::with_reference(AdminPurpose::SupportRequest, "SUP-1234").is_ok());
        for bad in ["", "jane doe called", "a;drop", &"x".repeat(65)] {
            assert!(AdminReason::with_reference(AdminPurpose::SupportRequest, bad).is_err());
        }
    }
}
