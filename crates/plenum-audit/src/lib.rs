//! Audit events, sinks and the per-tenant tamper-evident log.
//!
//! Built so far: [`merkle`], the RFC 6962 / RFC 9162 Merkle tree the log is made of (root,
//! inclusion and consistency proofs and their verification), checked against the RFC 6962
//! reference data. Events, their canonical serialisation, capture in the access hook, signed
//! checkpoints and the verifier come with the audit issue.

#![forbid(unsafe_code)]

pub mod merkle;
