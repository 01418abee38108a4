//! A Plenum root key provider over PKCS#11: tenant keys are wrapped and unwrapped by a
//! non-extractable AES-256 key that lives inside a token (a hardware security module, a cloud
//! HSM, or SoftHSM2 in CI) and never leaves it.
//!
//! [`Pkcs11KeyProvider`] implements [`plenum_crypto::KeyProvider`]: the wraps it makes are
//! byte for byte wrap format 1 of `docs/envelope-format.md` (AES-256-GCM in the token, the
//! keyring's context as associated data, so a wrapped key cannot be moved to another tenant or
//! scope), one root key version per token object labelled `<prefix><version>`. It is called on
//! the keyring's cold path only (a tenant key created, first used in a process, or re-wrapped):
//! each call is one blocking round trip to the token, tens of microseconds on SoftHSM2.
//!
//! ```no_run
//! # fn main() -> Result<(), plenum_pkcs11::Error> {
//! use plenum_pkcs11::{Pkcs11Config, Pkcs11KeyProvider};
//! let config = Pkcs11Config::new(
//!     "/usr/lib/softhsm/libsofthsm2.so",
//!     "plenum-prod",
//!     secrecy::SecretString::from(std::env::var("PLENUM_HSM_PIN").unwrap_or_default()),
//! );
//! let provider = Pkcs11KeyProvider::open(&config)?;
//! if provider.root_versions().is_empty() {
//!     provider.create_root_key(1)?;
//! }
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod config;
mod error;
mod provider;
mod token;

pub use crate::config::Pkcs11Config;
pub use crate::error::{Error, ErrorKind};
pub use crate::provider::{KeyExposure, Pkcs11KeyProvider};
