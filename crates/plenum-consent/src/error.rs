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
}
