//! Purposes, legal bases, data categories, the consent ledger and the processing policy.
//!
//! Not built yet: this crate is reserved so that the dependency graph is fixed from the start
//! (`plenum-store` will depend on it to demand a purpose-bound capability for every access).

#![forbid(unsafe_code)]
