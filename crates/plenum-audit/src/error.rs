//! The crate's one error type and its kinds. Errors name what failed, never an event body.

use thiserror::Error as ThisError;

/// Everything that can go wrong in `plenum-audit`. No variant carries an event body: bodies
/// hold no values, but a verifier's error is the wrong place to repeat them anyway.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, ThisError)]
pub enum Error {
    /// A value is outside canonical JSON (`docs/audit-format.md`).
    #[error("not canonical JSON: {0}")]
    NotCanonical(&'static str),
    /// A signed checkpoint (note) is not in the C2SP format.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(&'static str),
    /// A verifier key string is not `<name>+<hex key id>+<base64 key>`.
    #[error("malformed verifier key: {0}")]
    MalformedKey(&'static str),
    /// No signature on a checkpoint verifies under a trusted key.
    #[error("no valid signature from a trusted key")]
    Unsigned,
    /// A signature line names a trusted key (name and key id) but does not verify: the note is
    /// refused whatever its other lines say.
    #[error("a signature from a trusted key does not verify")]
    BadSignature,
    /// The log does not verify: what broke and at which entry or checkpoint.
    #[error("log does not verify: {problem} (at {at})")]
    Verification {
        /// What is wrong.
        problem: Problem,
        /// The sequence number (for entries) or checkpoint index (for checkpoints).
        at: u64,
    },
}

/// What a verifier found wrong.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, ThisError)]
pub enum Problem {
    /// Sequence numbers do not run 0, 1, 2, ... (a missing, repeated or reordered entry).
    #[error("sequence gap or reorder")]
    Sequence,
    /// A body does not hash to its stored leaf hash (modified body or hash).
    #[error("leaf hash mismatch")]
    LeafHash,
    /// A body is not canonical JSON or not an event of this schema.
    #[error("malformed event")]
    Event,
    /// An event names another tenant.
    #[error("event of another tenant")]
    Tenant,
    /// The same event id appears twice.
    #[error("duplicate event id")]
    DuplicateEvent,
    /// A checkpoint's origin is not this tenant's log.
    #[error("checkpoint of another log")]
    Origin,
    /// A checkpoint commits to more entries than the log holds: the tail was cut off.
    #[error("log truncated below a checkpoint")]
    Truncated,
    /// A checkpoint's root differs from the root of the entries it covers.
    #[error("root mismatch")]
    Root,
    /// Checkpoint sizes or times go backwards.
    #[error("checkpoints out of order")]
    CheckpointOrder,
    /// An event is dated after the first checkpoint that covers it.
    #[error("event time after its checkpoint")]
    Time,
    /// An inclusion or consistency proof does not verify.
    #[error("proof does not verify")]
    Proof,
    /// The log has no signed checkpoint at all: nothing commits to it.
    #[error("no signed checkpoint")]
    NoCheckpoint,
}

impl Error {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotCanonical(_) | Self::MalformedCheckpoint(_) | Self::MalformedKey(_) => {
                ErrorKind::Malformed
            }
            Self::Unsigned => ErrorKind::Unsigned,
            Self::BadSignature => ErrorKind::Tampered,
            Self::Verification { .. } => ErrorKind::Tampered,
        }
    }

    pub(crate) fn at(problem: Problem, at: u64) -> Self {
        Self::Verification { problem, at }
    }
}

/// The category of an [`Error`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Input not in the documented format.
    Malformed,
    /// A checkpoint without a trusted signature.
    Unsigned,
    /// The log or a proof does not verify: modified, reordered, inserted, deleted or truncated.
    Tampered,
}
