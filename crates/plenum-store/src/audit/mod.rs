//! Capture: every repository operation, consent change and key operation becomes an audit
//! event in the tenant's tamper-evident log (`plenum.audit_log`; `docs/audit-format.md`).
//!
//! - `auditor.rs`: [`Auditor`], the [`AccessHook`](crate::AccessHook) that turns an
//!   [`Access`](crate::Access) into a [`plenum_audit::Event`] (subjects as keyed pseudonyms)
//!   and hands it to its sinks. Builds events; stores nothing itself.
//! - `sinks.rs`: [`AuditSink`], the one-method trait sinks implement: [`DbLog`] (the default),
//!   [`TracingSink`], [`MemorySink`], and explicitly [`DiscardEvents`].
//! - `log.rs`: [`AuditLog`], the database log: append, sequence, checkpoint, export, expire
//!   bodies, find events about a subject.
//! - `unsettled.rs`: the events a transaction owes the log if it does not commit (data that
//!   reached the caller, refused attempts), written in a transaction of their own then.

mod auditor;
mod log;
mod sinks;
mod unsettled;

pub use self::auditor::Auditor;
pub use self::log::AuditLog;
#[cfg(feature = "postgres")]
pub(crate) use self::log::append_platform;
#[cfg(feature = "sqlite")]
pub(crate) use self::log::append_platform_in;
pub use self::sinks::{AuditSink, DbLog, DiscardEvents, MemorySink, TracingSink};
pub(crate) use self::unsettled::Unsettled;
