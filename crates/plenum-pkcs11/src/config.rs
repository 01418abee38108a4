//! Where the token is and how to log in: the module path, the token's label and the user PIN
//! (a secret: never printed), and the label prefix of the root key objects.

use core::fmt;
use std::path::PathBuf;

use secrecy::SecretString;

/// How to reach the token holding the root keys.
#[derive(Clone)]
pub struct Pkcs11Config {
    /// The PKCS#11 module (shared library) to load, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The label of the token to use (tokens are chosen by label, never by slot index: slots
    /// are renumbered when tokens are added).
    pub token_label: String,
    /// The user PIN.
    pub pin: SecretString,
    /// The label prefix of the root key objects: version `n` is labelled `<prefix><n>`.
    pub key_label_prefix: String,
}

impl Pkcs11Config {
    /// The label prefix used unless another is set.
    pub const DEFAULT_KEY_LABEL_PREFIX: &'static str = "plenum-root-";

    /// A configuration with the default key label prefix.
    pub fn new(
        module: impl Into<PathBuf>,
        token_label: impl Into<String>,
        pin: SecretString,
    ) -> Self {
        Self {
            module: module.into(),
            token_label: token_label.into(),
            pin,
            key_label_prefix: Self::DEFAULT_KEY_LABEL_PREFIX.to_owned(),
        }
    }

    /// This configuration with another key label prefix (several environments on one token).
    #[must_use]
    pub fn with_key_label_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_label_prefix = prefix.into();
        self
    }
}

impl fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("pin", &"[redacted]")
            .field("key_label_prefix", &self.key_label_prefix)
            .finish()
    }
}
