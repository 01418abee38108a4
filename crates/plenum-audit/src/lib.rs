//! Audit events, sinks and the per-tenant tamper-evident log.
//!
//! Not built yet: this crate is reserved so that the dependency graph is fixed from the start.

#![forbid(unsafe_code)]
