//! Tenant-scoped transactions and typed repositories on PostgreSQL (with Row-Level Security) and
//! on embedded SQLite.
//!
//! Not built yet: this crate is reserved so that the dependency graph is fixed from the start.
//! It is the only crate in the workspace that will depend on sqlx.

#![forbid(unsafe_code)]
