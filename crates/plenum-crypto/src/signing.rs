//! Ed25519 signatures (RFC 8032) for the audit log's checkpoints, so that only this crate names
//! a signature implementation. The private half never leaves [`SigningKey`]: it has no
//! accessor, no `Clone`, and its `Debug` prints the public key only.

use core::fmt;

use ed25519_dalek::Signer as _;
use secrecy::{ExposeSecret as _, SecretBox};

use crate::error::Error;

/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// An Ed25519 private key. Zeroised on drop (`ed25519-dalek`'s `zeroize` feature).
pub struct SigningKey {
    inner: ed25519_dalek::SigningKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.verifying_key())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        Self {
            inner: ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    /// The key whose RFC 8032 seed is `seed` (from a secret store or KMS).
    pub fn from_seed(seed: &SecretBox<[u8; 32]>) -> Self {
        Self {
            inner: ed25519_dalek::SigningKey::from_bytes(seed.expose_secret()),
        }
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey {
            inner: self.inner.verifying_key(),
        }
    }

    /// The signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.inner.sign(message).to_bytes()
    }
}

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerifyingKey {
    inner: ed25519_dalek::VerifyingKey,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.to_bytes();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        f.debug_tuple("VerifyingKey").field(&hex).finish()
    }
}

impl VerifyingKey {
    /// The key encoded as `bytes` (RFC 8032 §5.1.5).
    ///
    /// # Errors
    ///
    /// [`Error::KeyMaterial`] if the bytes are not a valid point.
    pub fn from_bytes(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<Self, Error> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map(|inner| Self { inner })
            .map_err(|_| Error::KeyMaterial("not an Ed25519 public key"))
    }

    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.inner.to_bytes()
    }

    /// Checks `signature` over `message` (strict verification: no malleable signatures, no
    /// small-order keys).
    ///
    /// # Errors
    ///
    /// [`Error::BadSignature`].
    pub fn verify(&self, message: &[u8], signature: &[u8; SIGNATURE_LEN]) -> Result<(), Error> {
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        self.inner
            .verify_strict(message, &signature)
            .map_err(|_| Error::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8032_test_1_signs_and_verifies() {
        // RFC 8032 §7.1, TEST 1 (empty message).
        let seed: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let key = SigningKey::from_seed(&SecretBox::new(Box::new(seed)));
        assert_eq!(
            hex::encode(key.verifying_key().to_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = key.sign(b"");
        assert_eq!(
            hex::encode(sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
             5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        key.verifying_key().verify(b"", &sig).unwrap();
        assert!(matches!(
            key.verifying_key().verify(b"x", &sig),
            Err(Error::BadSignature)
        ));
        let mut bad = sig;
        bad[0] ^= 1;
        assert!(matches!(
            key.verifying_key().verify(b"", &bad),
            Err(Error::BadSignature)
        ));
        assert!(!format!("{key:?}").contains("9d61b1"), "no seed in Debug");
    }
}
