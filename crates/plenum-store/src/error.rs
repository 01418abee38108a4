//! The crate's one error type and its kinds. `Display` never formats the server's message
//! (which can quote values); the sqlx error is only a `source()`.

use core::fmt;

/// Everything that can go wrong in `plenum-store`.
///
/// Messages name tables, fields and SQLSTATE codes, never values: a unique violation says which
/// logical field collided, not with what. The underlying `sqlx::Error`, whose database message can
/// quote a value, is reachable only through [`std::error::Error::source`] and is never formatted
/// into this error's `Display`.
#[non_exhaustive]
#[derive(thiserror::Error)]
pub enum Error {
    /// A row the operation needs does not exist in this tenant (or exists only in another).
    #[error("{record_type} not found")]
    NotFound {
        /// The record type looked up.
        record_type: String,
    },

    /// A unique constraint was violated (SQLSTATE 23505).
    #[error("unique violation on {record_type}.{field}")]
    UniqueViolation {
        /// The record type (table).
        record_type: String,
        /// The logical field whose unique constraint was violated, if it could be identified.
        field: String,
    },

    /// A foreign key was violated (SQLSTATE 23503): the referenced row does not exist in this
    /// tenant.
    #[error("foreign key violation on {record_type}")]
    ForeignKeyViolation {
        /// The record type (table) being written.
        record_type: String,
    },

    /// The database refused the operation for lack of privilege or because a row-level security
    /// policy rejected it (SQLSTATE 42501).
    #[error("permission denied by the database (SQLSTATE 42501)")]
    PermissionDenied(#[source] sqlx::Error),

    /// A row came back whose tenant is not the transaction's tenant. No data is returned. This
    /// means a bug in a query or a broken database contract, and is always worth an alert.
    #[error("isolation violation: a row of another tenant reached a {record_type} read")]
    IsolationViolation {
        /// The record type being read.
        record_type: String,
    },

    /// A row found through a blind index opens to another value than the one searched for:
    /// its index value was moved from another row (tampering). Nothing is returned.
    #[error(
        "a {record_type} found by its blind index holds another value: the index was tampered with"
    )]
    IndexMismatch {
        /// The record type searched.
        record_type: String,
    },

    /// A record of another tenant was passed to a write in this tenant's transaction. Nothing
    /// was written.
    #[error("a {record_type} of another tenant was written in this tenant's transaction")]
    TenantMismatch {
        /// The record type.
        record_type: String,
    },

    /// A record declaration, or a record handed to a write, cannot be used as it is.
    #[error("invalid {record_type}: {reason}")]
    InvalidRecord {
        /// The record type.
        record_type: String,
        /// What is wrong.
        reason: &'static str,
    },

    /// A stored column did not decode as its field's type (the schema and the declaration
    /// disagree).
    #[error("{record_type}.{field} does not decode as its declared type")]
    Decode {
        /// The record type.
        record_type: String,
        /// The field.
        field: String,
    },

    /// A stored row does not decode as its record type's declared types: it was changed
    /// outside the library (or the schema and the declaration disagree). A list leaves it out
    /// and names it in [`Page::unreadable`](crate::Page::unreadable); a get of it is this error.
    #[error("a stored {record_type} row ({record}) does not decode as its declared types")]
    Undecodable {
        /// The record type.
        record_type: String,
        /// The row's id.
        record: plenum_core::RecordId,
    },

    /// The purpose may not do this: the actor is not authorised, the policy disables the
    /// purpose or withholds a plain field it would need, or the subject's consent, objection
    /// or restriction forbids it. Nothing was read.
    #[error("denied for purpose {purpose}: {reason}")]
    Denied {
        /// The purpose key.
        purpose: &'static str,
        /// Why ([`Denial::as_str`](crate::Denial::as_str) is its stable key).
        reason: crate::Denial,
    },

    /// The field was withheld from this read: its category is not one the purpose may see. It
    /// was never decrypted.
    #[error("field withheld from this purpose")]
    Withheld,

    /// The boot-time catalog verification found problems; each finding says how to fix it.
    #[cfg(feature = "postgres")]
    #[error("database contract violated: {}", Findings(.0))]
    Contract(Vec<crate::postgres::Finding>),

    /// Writing the audit row of an admin transaction failed; the transaction was rolled back.
    #[error("admin audit row could not be written; nothing was done")]
    AdminAudit(#[source] sqlx::Error),

    /// An audit event could not be recorded, so the operation it describes fails (for a read:
    /// nothing is returned).
    #[error("audit event could not be recorded: {0}")]
    Audit(&'static str),

    /// Writing or reading the audit log failed in the database.
    #[error("audit log database error ({})", db_error_class(.0))]
    AuditLog(#[source] sqlx::Error),

    /// A configuration value is unusable (a role name, a pool option).
    #[error("invalid configuration: {0}")]
    Config(&'static str),

    /// An export's writer failed (the I/O error's kind; the export is incomplete and must not
    /// be handed out).
    #[error("export writer failed ({0:?})")]
    Export(std::io::ErrorKind),

    /// A cryptographic operation failed (decryption, keys).
    #[error(transparent)]
    Crypto(#[from] plenum_crypto::Error),

    /// Any other database error. The message is sqlx's kind, not the server's text.
    #[error("database error ({})", db_error_class(.0))]
    Database(#[source] sqlx::Error),
}

#[cfg(feature = "postgres")]
struct Findings<'a>(&'a [crate::postgres::Finding]);

#[cfg(feature = "postgres")]
impl fmt::Display for Findings<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} finding(s)", self.0.len())?;
        for finding in self.0 {
            write!(f, "; {finding}")?;
        }
        Ok(())
    }
}

/// A short, value-free description of a sqlx error.
fn db_error_class(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("SQLSTATE {code}"),
            None => "database".to_owned(),
        },
        sqlx::Error::PoolTimedOut => "pool timed out".to_owned(),
        sqlx::Error::PoolClosed => "pool closed".to_owned(),
        sqlx::Error::Io(_) => "i/o".to_owned(),
        sqlx::Error::Tls(_) => "tls".to_owned(),
        sqlx::Error::Protocol(_) => "protocol".to_owned(),
        sqlx::Error::RowNotFound => "row not found".to_owned(),
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => "decode".to_owned(),
        sqlx::Error::Configuration(_) => "configuration".to_owned(),
        sqlx::Error::Migrate(_) => "migration".to_owned(),
        _ => "other".to_owned(),
    }
}

/// `Debug` shows the kind and the (value-free) message only: a derived `Debug` would print the
/// wrapped `sqlx::Error`, whose server detail can quote a failing row ("Failing row contains ...").
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind())
            .field("message", &self.to_string())
            .field("sqlstate", &self.sqlstate())
            .finish()
    }
}

impl Error {
    /// The category of this error, for callers that branch on it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::UniqueViolation { .. } => ErrorKind::Conflict,
            Self::ForeignKeyViolation { .. } => ErrorKind::Conflict,
            Self::PermissionDenied(_) => ErrorKind::PermissionDenied,
            Self::IsolationViolation { .. } | Self::TenantMismatch { .. } => {
                ErrorKind::IsolationViolation
            }
            Self::IndexMismatch { .. } | Self::Undecodable { .. } => ErrorKind::Tampered,
            Self::InvalidRecord { .. } => ErrorKind::InvalidInput,
            Self::Denied { .. } => ErrorKind::Denied,
            Self::Withheld => ErrorKind::Withheld,
            Self::Decode { .. } => ErrorKind::Database,
            #[cfg(feature = "postgres")]
            Self::Contract(_) => ErrorKind::Contract,
            Self::AdminAudit(_) | Self::Audit(_) | Self::AuditLog(_) => ErrorKind::Audit,
            Self::Config(_) => ErrorKind::Config,
            Self::Export(_) => ErrorKind::Export,
            Self::Crypto(e) => match e.kind() {
                plenum_crypto::ErrorKind::KeyDestroyed => ErrorKind::KeyDestroyed,
                plenum_crypto::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
                plenum_crypto::ErrorKind::DecryptionFailed
                | plenum_crypto::ErrorKind::Malformed => ErrorKind::DecryptionFailed,
                _ => ErrorKind::Crypto,
            },
            Self::Database(_) => ErrorKind::Database,
        }
    }

    /// The SQLSTATE code behind this error, if it came from the database.
    pub fn sqlstate(&self) -> Option<String> {
        let source = match self {
            Self::PermissionDenied(e)
            | Self::AdminAudit(e)
            | Self::AuditLog(e)
            | Self::Database(e) => e,
            _ => return None,
        };
        match source {
            sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
            _ => None,
        }
    }

    /// Classifies an error from SQL run against `record_type` (hand-written SQL in a
    /// [`TenantTx`](crate::TenantTx) included): SQLSTATE 42501, 23503 and 23505 become their own
    /// variants; a unique violation names the logical field from the constraint name, never the
    /// value the server's message quotes.
    pub fn from_sqlx(e: sqlx::Error, record_type: &str) -> Self {
        let code = match &e {
            sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
            _ => None,
        };
        match code.as_deref() {
            Some("42501") => Self::PermissionDenied(e),
            // PostgreSQL, and SQLite's extended SQLITE_CONSTRAINT_FOREIGNKEY.
            Some("23503" | "787") => Self::ForeignKeyViolation {
                record_type: record_type.to_owned(),
            },
            Some("23505") => {
                let field = match &e {
                    sqlx::Error::Database(db) => db
                        .constraint()
                        .map(|c| constraint_field(c, record_type))
                        .unwrap_or_else(|| "unknown".to_owned()),
                    _ => "unknown".to_owned(),
                };
                Self::UniqueViolation {
                    record_type: record_type.to_owned(),
                    field,
                }
            }
            // SQLITE_CONSTRAINT_UNIQUE and _PRIMARYKEY. SQLite names no constraint, but its
            // message lists the columns ("UNIQUE constraint failed: t.tenant_id, t.email_bidx"),
            // never the values, so the column is read from there.
            Some("2067" | "1555") => {
                let field = match &e {
                    sqlx::Error::Database(db) => sqlite_unique_column(db.message()),
                    _ => None,
                };
                Self::UniqueViolation {
                    record_type: record_type.to_owned(),
                    field: field.unwrap_or_else(|| "unknown".to_owned()),
                }
            }
            _ => Self::Database(e),
        }
    }
}

/// The last non-tenant column of a SQLite unique-constraint message.
fn sqlite_unique_column(message: &str) -> Option<String> {
    let columns = message.strip_prefix("UNIQUE constraint failed: ")?;
    columns
        .split(", ")
        .filter_map(|c| c.rsplit('.').next())
        .filter(|c| *c != "tenant_id")
        .last()
        .map(str::to_owned)
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Self::from_sqlx(e, "?")
    }
}

/// Recovers the logical field from a constraint name generated by `TableSpec`
/// (`<table>_<field>_key`); any other name is reported as it is (names are identifiers, not data).
fn constraint_field(constraint: &str, table: &str) -> String {
    constraint
        .strip_prefix(table)
        .and_then(|rest| rest.strip_prefix('_'))
        .and_then(|rest| rest.strip_suffix("_key"))
        .unwrap_or(constraint)
        .to_owned()
}

/// The category of an [`Error`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// No such row in this tenant.
    NotFound,
    /// A unique or foreign-key constraint.
    Conflict,
    /// The database refused (privilege or RLS policy).
    PermissionDenied,
    /// A row of another tenant was returned and withheld.
    IsolationViolation,
    /// Stored data was tampered with in a way the library caught (a blind index value moved
    /// between rows).
    Tampered,
    /// The database contract is broken (boot-time verification).
    Contract,
    /// An audit write failed.
    Audit,
    /// Bad configuration.
    Config,
    /// A record or value the library cannot use (no data was changed).
    InvalidInput,
    /// The purpose may not do this (authorisation, policy, consent, objection, restriction).
    Denied,
    /// A field the purpose may not see was asked for.
    Withheld,
    /// A value could not be decrypted (tampered, moved, or wrong key).
    DecryptionFailed,
    /// The value's key was destroyed (erased subject).
    KeyDestroyed,
    /// Another cryptographic failure.
    Crypto,
    /// Another database failure.
    Database,
    /// An export's writer failed.
    Export,
}

impl ErrorKind {
    /// A stable snake-case key (`not_found`, `denied`, ...), for audit events and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::PermissionDenied => "permission_denied",
            Self::IsolationViolation => "isolation_violation",
            Self::Tampered => "tampered",
            Self::Contract => "contract",
            Self::Audit => "audit",
            Self::Config => "config",
            Self::InvalidInput => "invalid_input",
            Self::Denied => "denied",
            Self::Withheld => "withheld",
            Self::DecryptionFailed => "decryption_failed",
            Self::KeyDestroyed => "key_destroyed",
            Self::Crypto => "crypto",
            Self::Database => "database",
            Self::Export => "export",
        }
    }
}
