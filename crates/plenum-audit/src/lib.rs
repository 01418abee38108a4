//! Audit events and the per-tenant tamper-evident log they are appended to.
//!
//! - [`event`]: the event schema (version 1). Events hold names, ids, data categories, counts
//!   and keyed subject pseudonyms, never values.
//! - [`canonical`]: the canonical JSON form events are stored and hashed in.
//! - [`merkle`]: the RFC 6962 / RFC 9162 tree (leaf `SHA-256(0x00 || body)`, node
//!   `SHA-256(0x01 || left || right)`), proofs, and the [`merkle::Frontier`] checkpoints are
//!   computed with.
//! - [`checkpoint`]: C2SP checkpoints signed as C2SP signed notes (Ed25519).
//! - [`verify`]: the verifier over an export, inclusion and consistency proofs.
//!
//! Capture (writing an event in the same transaction as the access it describes) lives in
//! `plenum-store`, which owns the transactions. The format is specified byte for byte in
//! `docs/audit-format.md`; `plenum audit verify` (the `plenum-cli` crate) verifies exports and
//! proofs from the command line.

#![forbid(unsafe_code)]

pub mod canonical;
pub mod checkpoint;
mod error;
pub mod event;
pub mod merkle;
pub mod verify;

pub use crate::checkpoint::{Checkpoint, CheckpointSigner, VerifierKey};
pub use crate::error::{Error, ErrorKind, Problem};
pub use crate::event::{Event, Outcome, Pseudonym};
pub use crate::verify::{Entry, Export, Report, verify_log, verify_log_with};
