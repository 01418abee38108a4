#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod backend;
mod blind;
mod cache;
pub mod digest;
mod envelope;
mod error;
mod external;
mod format;
#[doc(hidden)]
pub mod internal;
mod keyring;
mod keys;
mod pii;
mod primitives;
mod provider;
pub mod signing;
mod store;

pub use crate::backend::Backend;
pub use crate::blind::{
    BLIND_INDEX_LEN, BLIND_INDEX_LOWERCASE_UNICODE, BLIND_INDEX_UNICODE, BlindIndex, BlindIndexer,
    Normaliser,
};
pub use crate::envelope::{Envelope, FieldKey, FieldLocator, Owner};
pub use crate::error::{Error, ErrorKind, Malformed};
pub use crate::external::{ExternalUnwrap, ExternalWrap, SEALED_LEN};
pub use crate::format::ENVELOPE_OVERHEAD;
pub use crate::keyring::{EpochReport, Keyring, KeyringConfig};
pub use crate::keys::{
    KeyMaterial, KeyRef, KeyScope, KeyScopeKind, KeyState, StoredKey, WrappedKey,
};
pub use crate::pii::{Pii, PiiValue, SerializablePii, serialize_exposed};
pub use crate::provider::{BoxFuture, KeyProvider, LocalKeyProvider};
pub use crate::store::{KeyStore, MemoryKeyStore};
pub use secrecy;
