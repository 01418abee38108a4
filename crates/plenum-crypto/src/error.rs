//! The crate's one error type and its kinds. No variant carries plaintext, key bytes or
//! ciphertext; every authentication failure is the one opaque `DecryptionFailed`.

use core::fmt;

use crate::keys::KeyScopeKind;

/// Everything that can go wrong in `plenum-crypto`.
///
/// No variant carries plaintext, key bytes or ciphertext bytes, and none says *which* check of
/// an authenticated decryption failed: an oracle that distinguishes a bad tag from a bad
/// context helps an attacker and no legitimate caller.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not a well-formed envelope (or wrapped key) of a version this library reads.
    ///
    /// Raised before any cryptography runs; says which structural rule failed.
    #[error("malformed ciphertext: {0}")]
    Malformed(Malformed),

    /// Authenticated decryption failed: wrong key, wrong context (tenant, record type, field,
    /// record or subject), or modified bytes. Deliberately says nothing more.
    #[error("decryption failed")]
    DecryptionFailed,

    /// The key needed to open this value was destroyed, for example by erasure of its data
    /// subject. This is expected after erasure and is not a sign of tampering.
    #[error("the {scope} key (version {version}) was destroyed")]
    KeyDestroyed {
        /// Which kind of key.
        scope: KeyScopeKind,
        /// Its version.
        version: u32,
    },

    /// The envelope names a key version the key store does not have.
    #[error("no {scope} key with version {version}")]
    KeyNotFound {
        /// Which kind of key.
        scope: KeyScopeKind,
        /// The version asked for.
        version: u32,
    },

    /// The operation needs a key in another state (for example rotating a destroyed key).
    #[error("the {scope} key (version {version}) is {state}, which does not allow this")]
    KeyState {
        /// Which kind of key.
        scope: KeyScopeKind,
        /// Its version.
        version: u32,
        /// The state it is in.
        state: crate::KeyState,
    },

    /// A value could not be normalised for a blind index (for example a phone number with too
    /// few digits). The value itself is not included.
    #[error("value cannot be normalised as {normaliser}")]
    Normalisation {
        /// The normaliser that refused it.
        normaliser: crate::Normaliser,
    },

    /// Decrypted bytes did not decode as the requested plaintext type (for example not UTF-8).
    /// Authenticated, so this is a caller type mismatch, not tampering.
    #[error("decrypted value does not decode as {type_name}")]
    PlaintextType {
        /// The type asked for.
        type_name: &'static str,
    },

    /// A tenant key version has sealed as many values as AES-GCM with random nonces allows
    /// ([`KeyringConfig::usage_limit`](crate::KeyringConfig::usage_limit)): it must be rotated.
    #[error("the {scope} key (version {version}) has reached its seal limit; rotate it")]
    UsageLimit {
        /// The key's scope.
        scope: KeyScopeKind,
        /// The version.
        version: u32,
    },

    /// Key material handed to the library was unusable (wrong length, bad base64, missing
    /// environment variable). The material itself is not included.
    #[error("invalid key material: {0}")]
    KeyMaterial(&'static str),

    /// The key provider (root key, KMS) failed.
    #[error("key provider failed")]
    Provider(#[source] Box<dyn std::error::Error + Send + Sync>),

    /// The key store failed.
    #[error("key store failed")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),

    /// The caller broke a documented rule of the API; never caused by untrusted data.
    #[error("API misuse: {0}")]
    ApiMisuse(&'static str),

    /// A signature did not verify under the key: wrong key, modified message or modified
    /// signature.
    #[error("signature verification failed")]
    BadSignature,
}

impl Error {
    /// The category of this error, for callers that branch on it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Malformed(_) => ErrorKind::Malformed,
            Self::DecryptionFailed => ErrorKind::DecryptionFailed,
            Self::KeyDestroyed { .. } => ErrorKind::KeyDestroyed,
            Self::KeyNotFound { .. } | Self::KeyState { .. } | Self::UsageLimit { .. } => {
                ErrorKind::KeyUnavailable
            }
            Self::Normalisation { .. } | Self::PlaintextType { .. } | Self::KeyMaterial(_) => {
                ErrorKind::InvalidInput
            }
            Self::Provider(_) | Self::Store(_) => ErrorKind::Environment,
            Self::ApiMisuse(_) => ErrorKind::ApiMisuse,
            Self::BadSignature => ErrorKind::BadSignature,
        }
    }
}

/// The category of an [`Error`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Structurally invalid ciphertext.
    Malformed,
    /// Authentication failed.
    DecryptionFailed,
    /// The key was destroyed (erasure).
    KeyDestroyed,
    /// The key is missing or in the wrong state.
    KeyUnavailable,
    /// Input the library cannot use.
    InvalidInput,
    /// A key provider or key store failed.
    Environment,
    /// A caller bug.
    ApiMisuse,
    /// A signature did not verify.
    BadSignature,
}

/// Which structural rule a malformed envelope or wrapped key broke.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than a header plus a tag.
    TooShort,
    /// The format version byte is not one this library reads.
    UnknownVersion,
    /// The algorithm suite byte is not one this library reads.
    UnknownSuite,
    /// The key scope byte is not one this library reads.
    UnknownKeyScope,
    /// A key version of zero (versions start at 1).
    ZeroKeyVersion,
    /// Bytes after the end of a fixed-length structure.
    TrailingBytes,
    /// The envelope's key scope does not match the field's owner (a tenant-owned field with a
    /// subject key, or the reverse).
    ScopeMismatch,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooShort => "too short",
            Self::UnknownVersion => "unknown format version",
            Self::UnknownSuite => "unknown algorithm suite",
            Self::UnknownKeyScope => "unknown key scope",
            Self::ZeroKeyVersion => "key version 0",
            Self::TrailingBytes => "trailing bytes",
            Self::ScopeMismatch => "key scope does not match the field's owner",
        })
    }
}
