//! Root key providers: the `KeyProvider` trait that wraps and unwraps tenant keys bound to a
//! context, and `LocalKeyProvider` (root keys in process memory, by version).

use core::fmt;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use base64::Engine as _;
use secrecy::{ExposeSecret as _, SecretBox, SecretString};

use crate::backend::{Backend, PreparedAead};
use crate::error::Error;
use crate::keys::{KeyMaterial, WrappedKey};
use crate::primitives::{prepare, unwrap_key, wrap_key, wrapping_version};

/// A boxed, sendable future: what the object-safe async traits of this crate return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The root of the key hierarchy: wraps and unwraps tenant keys.
///
/// A local implementation ([`LocalKeyProvider`]) holds the root key in process; a cloud KMS
/// implementation sends the key to the KMS's encrypt/decrypt (or wrap/unwrap) call instead, so the
/// root key never leaves the KMS. The methods are async for that reason, and are called only on
/// the cold path: when a tenant key is created, first used in a process, or re-wrapped.
///
/// `context` is an opaque byte string naming the key being wrapped (tenant, scope, version). An
/// implementation must bind it (as AEAD associated data, or a KMS encryption context) so a
/// wrapped key cannot be swapped for another tenant's.
pub trait KeyProvider: Send + Sync {
    /// Wraps `key` under the provider's current root key.
    fn wrap<'a>(
        &'a self,
        key: &'a KeyMaterial,
        context: &'a [u8],
    ) -> BoxFuture<'a, Result<WrappedKey, Error>>;

    /// Unwraps a key wrapped by this provider with the same `context`.
    fn unwrap<'a>(
        &'a self,
        wrapped: &'a WrappedKey,
        context: &'a [u8],
    ) -> BoxFuture<'a, Result<KeyMaterial, Error>>;

    /// Whether `wrapped` is wrapped under an older root key and should be re-wrapped.
    fn needs_rewrap(&self, wrapped: &WrappedKey) -> bool;
}

/// A [`KeyProvider`] holding 32-byte root keys in process, by version.
///
/// The newest version wraps; every version unwraps. Rotating the root key = add a version, call
/// [`Keyring::rewrap_tenant_keys`](crate::Keyring::rewrap_tenant_keys) for every tenant, then
/// drop the old version. Tenant keys are re-wrapped; no data is re-encrypted.
pub struct LocalKeyProvider {
    backend: Backend,
    versions: BTreeMap<u32, PreparedAead>,
}

impl fmt::Debug for LocalKeyProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKeyProvider")
            .field("versions", &self.versions.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl LocalKeyProvider {
    /// A provider with one root key version.
    ///
    /// # Errors
    ///
    /// [`Error::KeyMaterial`] if `version` is 0.
    pub fn new(backend: Backend, version: u32, root_key: &KeyMaterial) -> Result<Self, Error> {
        Self {
            backend,
            versions: BTreeMap::new(),
        }
        .with_version(version, root_key)
    }

    /// Decodes a root key from standard base64 (with or without padding) of exactly 32 bytes.
    ///
    /// # Errors
    ///
    /// [`Error::KeyMaterial`] for bad base64 or a wrong length; the input is never echoed.
    pub fn key_from_base64(encoded: &SecretString) -> Result<KeyMaterial, Error> {
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let mut decoded = zeroize::Zeroizing::new(
            engine
                .decode(encoded.expose_secret().trim())
                .map_err(|_| Error::KeyMaterial("root key is not valid base64"))?,
        );
        if decoded.len() != 32 {
            return Err(Error::KeyMaterial(
                "root key must decode to exactly 32 bytes",
            ));
        }
        let mut key = SecretBox::new(Box::new([0u8; 32]));
        secrecy::ExposeSecretMut::expose_secret_mut(&mut key).copy_from_slice(&decoded);
        zeroize::Zeroize::zeroize(&mut *decoded);
        Ok(key)
    }

    /// A provider whose single root key (version 1) is read from an environment variable holding
    /// base64.
    ///
    /// # Errors
    ///
    /// [`Error::KeyMaterial`] if the variable is missing or does not hold a valid key.
    pub fn from_env(backend: Backend, var: &str) -> Result<Self, Error> {
        let value = std::env::var(var)
            .map_err(|_| Error::KeyMaterial("root key environment variable is not set"))?;
        let key = Self::key_from_base64(&SecretString::from(value))?;
        Self::new(backend, 1, &key)
    }

    /// Adds a root key version; the highest version wraps from now on.
    ///
    /// # Errors
    ///
    /// [`Error::KeyMaterial`] if `version` is 0.
    pub fn with_version(mut self, version: u32, root_key: &KeyMaterial) -> Result<Self, Error> {
        if version == 0 {
            return Err(Error::KeyMaterial("root key versions start at 1"));
        }
        self.versions
            .insert(version, prepare(self.backend, root_key)?);
        Ok(self)
    }

    fn current(&self) -> Result<(u32, &PreparedAead), Error> {
        self.versions
            .iter()
            .next_back()
            .map(|(v, a)| (*v, a))
            .ok_or(Error::KeyMaterial("no root key"))
    }
}

impl KeyProvider for LocalKeyProvider {
    fn wrap<'a>(
        &'a self,
        key: &'a KeyMaterial,
        context: &'a [u8],
    ) -> BoxFuture<'a, Result<WrappedKey, Error>> {
        Box::pin(async move {
            let (version, aead) = self.current()?;
            wrap_key(aead, version, key, context)
        })
    }

    fn unwrap<'a>(
        &'a self,
        wrapped: &'a WrappedKey,
        context: &'a [u8],
    ) -> BoxFuture<'a, Result<KeyMaterial, Error>> {
        Box::pin(async move {
            let version = wrapping_version(wrapped)?;
            let aead = self.versions.get(&version).ok_or(Error::KeyMaterial(
                "the wrapped key names a root key version this provider does not hold",
            ))?;
            unwrap_key(aead, wrapped, context)
        })
    }

    fn needs_rewrap(&self, wrapped: &WrappedKey) -> bool {
        match (wrapping_version(wrapped), self.current()) {
            (Ok(v), Ok((current, _))) => v != current,
            _ => false,
        }
    }
}
