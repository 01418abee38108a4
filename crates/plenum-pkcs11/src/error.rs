//! The provider's errors: what went wrong at start (module, token, PIN) said plainly, and every
//! failure of a cryptographic call folded into one opaque error, since a token reports a wrong
//! context and a fault alike.

/// An error of the PKCS#11 provider. Never holds key material or the PIN.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The module could not be loaded: the path is wrong or the library is not installed (on
    /// Debian, `apt-get install softhsm2` provides `/usr/lib/softhsm/libsofthsm2.so`).
    #[error("the PKCS#11 module could not be loaded from the configured path")]
    Module(#[source] cryptoki::error::Error),
    /// No token with the configured label is present.
    #[error("no PKCS#11 token is labelled {label:?}: check the label, or initialise the token")]
    TokenNotFound {
        /// The label looked for.
        label: String,
    },
    /// The token refused the PIN.
    #[error("the token refused the PIN")]
    PinRejected,
    /// The token's user PIN is locked (too many failed attempts) or not initialised.
    #[error(
        "the token's user PIN is locked or not initialised: the security officer must reset it"
    )]
    TokenLocked,
    /// No root key object of this version is on the token.
    #[error("no root key version {version} on the token")]
    RootKeyMissing {
        /// The version asked for.
        version: u32,
    },
    /// A root key object of this version is already on the token (or, at open, two objects
    /// carry its label).
    #[error("root key version {version} already exists on the token")]
    RootKeyExists {
        /// The version asked for.
        version: u32,
    },
    /// Root key versions start at 1.
    #[error("root key versions start at 1")]
    ZeroVersion,
    /// Any other failure of the module or token.
    #[error("the PKCS#11 token failed")]
    Token(#[source] cryptoki::error::Error),
}

/// What kind of error, to match on without the details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// [`Error::Module`].
    Module,
    /// [`Error::TokenNotFound`].
    TokenNotFound,
    /// [`Error::PinRejected`].
    PinRejected,
    /// [`Error::TokenLocked`].
    TokenLocked,
    /// [`Error::RootKeyMissing`].
    RootKeyMissing,
    /// [`Error::RootKeyExists`].
    RootKeyExists,
    /// [`Error::ZeroVersion`].
    ZeroVersion,
    /// [`Error::Token`].
    Token,
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Module(_) => ErrorKind::Module,
            Self::TokenNotFound { .. } => ErrorKind::TokenNotFound,
            Self::PinRejected => ErrorKind::PinRejected,
            Self::TokenLocked => ErrorKind::TokenLocked,
            Self::RootKeyMissing { .. } => ErrorKind::RootKeyMissing,
            Self::RootKeyExists { .. } => ErrorKind::RootKeyExists,
            Self::ZeroVersion => ErrorKind::ZeroVersion,
            Self::Token(_) => ErrorKind::Token,
        }
    }
}

impl From<Error> for plenum_crypto::Error {
    fn from(e: Error) -> Self {
        plenum_crypto::Error::Provider(Box::new(e))
    }
}
