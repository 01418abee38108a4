//! The crate's one error type and its kinds. Messages name keys and kinds, never the rejected
//! input.

/// Everything that can go wrong in `plenum-consent`.
///
/// Messages name keys and kinds, never the rejected input.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A purpose key is not one of Plenum's purposes.
    #[error("unknown purpose")]
    UnknownPurpose,
    /// A legal basis key is not known.
    #[error("unknown legal basis")]
    UnknownLegalBasis,
    /// A data subject kind key is not known.
    #[error("unknown data subject kind")]
    UnknownSubjectKind,
    /// A consent event kind or method key is not known.
    #[error("unknown consent {0}")]
    UnknownConsentTerm(&'static str),
    /// A policy change would allow more than the policy it narrows.
    #[error("a tenant policy may only be stricter than the default: {0}")]
    Wider(&'static str),
    /// A data-subject request cannot move from its state to the one asked for.
    #[error("a request cannot move from {from} to {to}")]
    IllegalTransition {
        /// The request's state.
        from: &'static str,
        /// The state asked for.
        to: &'static str,
    },
    /// A request's transition is dated before its previous one (or before its receipt).
    #[error("a request's transition cannot be dated before the previous one")]
    TransitionBeforePrevious,
    /// A request's deadline can only be extended before it has passed.
    #[error("a request's deadline can only be extended before it has passed")]
    ExtensionAfterDeadline,
}

impl Error {
    /// The category of this error, for callers that branch on it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownPurpose
            | Self::UnknownLegalBasis
            | Self::UnknownSubjectKind
            | Self::UnknownConsentTerm(_) => ErrorKind::UnknownTerm,
            Self::Wider(_) => ErrorKind::PolicyWidening,
            Self::IllegalTransition { .. }
            | Self::TransitionBeforePrevious
            | Self::ExtensionAfterDeadline => ErrorKind::IllegalTransition,
        }
    }
}

/// The category of an [`Error`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A key of the vocabulary was not recognised.
    UnknownTerm,
    /// A policy would be loosened.
    PolicyWidening,
    /// A data-subject request was moved in a way its state machine does not allow.
    IllegalTransition,
}
