//! [`Pkcs11KeyProvider`]: wrap format 1 with AES-256-GCM run by the token under a
//! non-extractable root key object per version; the highest version wraps, every version
//! unwraps. Token calls are serialised on one logged-in session.

use core::fmt;
use std::collections::BTreeMap;
use std::sync::Mutex;

use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use plenum_crypto::{
    BoxFuture, ExternalUnwrap, ExternalWrap, KeyMaterial, KeyProvider, WrappedKey,
};
use secrecy::ExposeSecret as _;
use zeroize::Zeroizing;

use crate::config::Pkcs11Config;
use crate::error::Error;
use crate::token;

/// GCM's tag, in bits.
const TAG_BITS: u64 = 128;

/// What a token says about a root key object ([`Pkcs11KeyProvider::root_key_exposure`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyExposure {
    /// `CKA_SENSITIVE`: the value may not be revealed in plaintext.
    pub sensitive: bool,
    /// `CKA_EXTRACTABLE`: the key may be wrapped out of the token.
    pub extractable: bool,
    /// Whether asking for `CKA_VALUE` returned the key's bytes.
    pub value_readable: bool,
}

/// A [`KeyProvider`] whose root keys are non-extractable AES-256 keys on a PKCS#11 token.
pub struct Pkcs11KeyProvider {
    session: Mutex<Session>,
    prefix: String,
    /// Root key objects by version, found at open or created since.
    keys: Mutex<BTreeMap<u32, ObjectHandle>>,
}

impl fmt::Debug for Pkcs11KeyProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11KeyProvider")
            .field("prefix", &self.prefix)
            .field("versions", &self.root_versions())
            .finish_non_exhaustive()
    }
}

impl Pkcs11KeyProvider {
    /// Loads the module, finds the token by label, logs in and finds the root key objects
    /// (`<prefix><version>`). Every problem of set-up shows here, before any key is wrapped.
    ///
    /// # Errors
    ///
    /// [`Error::Module`] (not found, not a PKCS#11 module), [`Error::TokenNotFound`],
    /// [`Error::TokenLocked`], [`Error::PinRejected`], [`Error::Token`].
    pub fn open(config: &Pkcs11Config) -> Result<Self, Error> {
        let ctx = token::context(&config.module)?;
        let session = token::open_session(&ctx, &config.token_label, &config.pin)?;
        let keys = find_root_keys(&session, &config.key_label_prefix)?;
        Ok(Self {
            session: Mutex::new(session),
            prefix: config.key_label_prefix.clone(),
            keys: Mutex::new(keys),
        })
    }

    /// The root key versions on the token, lowest first.
    pub fn root_versions(&self) -> Vec<u32> {
        self.lock_keys().keys().copied().collect()
    }

    /// Generates root key version `version` inside the token: AES-256, a token object,
    /// private, sensitive and not extractable (its value can never be read out), usable only
    /// to encrypt and decrypt. The new version wraps from now on if it is the highest.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroVersion`], [`Error::RootKeyExists`], [`Error::Token`].
    pub fn create_root_key(&self, version: u32) -> Result<(), Error> {
        if version == 0 {
            return Err(Error::ZeroVersion);
        }
        let mut keys = self.lock_keys();
        let label = format!("{}{version}", self.prefix);
        // On the token, not only in this process: another process may have created it since.
        let existing = self
            .lock_session()
            .find_objects(&[Attribute::Label(label.clone().into_bytes())])
            .map_err(Error::Token)?;
        if keys.contains_key(&version) || !existing.is_empty() {
            return Err(Error::RootKeyExists { version });
        }
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Label(label.into_bytes()),
        ];
        let handle = self
            .lock_session()
            .generate_key(&Mechanism::AesKeyGen, &template)
            .map_err(Error::Token)?;
        keys.insert(version, handle);
        Ok(())
    }

    /// What the token says about root key version `version`: whether it is sensitive and
    /// extractable, and whether its value can be read out (it never should). For operators'
    /// status reports and for tests that check the token, not this library, keeps the key in.
    ///
    /// # Errors
    ///
    /// [`Error::RootKeyMissing`], [`Error::Token`].
    pub fn root_key_exposure(&self, version: u32) -> Result<KeyExposure, Error> {
        let handle = *self
            .lock_keys()
            .get(&version)
            .ok_or(Error::RootKeyMissing { version })?;
        let attributes = self
            .lock_session()
            .get_attributes(
                handle,
                &[
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::Value,
                ],
            )
            .map_err(Error::Token)?;
        let mut exposure = KeyExposure {
            sensitive: false,
            extractable: true,
            value_readable: false,
        };
        for attribute in attributes {
            match attribute {
                Attribute::Sensitive(b) => exposure.sensitive = b,
                Attribute::Extractable(b) => exposure.extractable = b,
                Attribute::Value(mut v) => {
                    exposure.value_readable = !v.is_empty();
                    zeroize::Zeroize::zeroize(&mut v);
                }
                _ => {}
            }
        }
        Ok(exposure)
    }

    fn lock_session(&self) -> std::sync::MutexGuard<'_, Session> {
        // A panic while holding the session leaves nothing half-done on our side: each token
        // call is one PKCS#11 function.
        self.session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_keys(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, ObjectHandle>> {
        self.keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn current(&self) -> Result<(u32, ObjectHandle), plenum_crypto::Error> {
        self.lock_keys()
            .iter()
            .next_back()
            .map(|(v, h)| (*v, *h))
            .ok_or_else(|| Error::RootKeyMissing { version: 1 }.into())
    }

    fn wrap_now(
        &self,
        key: &KeyMaterial,
        context: &[u8],
    ) -> Result<WrappedKey, plenum_crypto::Error> {
        let (version, handle) = self.current()?;
        let wrap = ExternalWrap::new(version, context)?;
        let nonce: [u8; 12] = plenum_crypto::digest::random_bytes();
        let mut iv = nonce;
        let params = GcmParams::new(&mut iv, wrap.aad(), TAG_BITS.into()).map_err(Error::Token)?;
        let sealed = self
            .lock_session()
            .encrypt(&Mechanism::AesGcm(params), handle, key.expose_secret())
            .map_err(Error::Token)?;
        wrap.finish(nonce, &sealed)
    }

    fn unwrap_now(
        &self,
        wrapped: &WrappedKey,
        context: &[u8],
    ) -> Result<KeyMaterial, plenum_crypto::Error> {
        let parts = ExternalUnwrap::parse(wrapped, context)?;
        let handle = *self
            .lock_keys()
            .get(&parts.root_version())
            .ok_or(Error::RootKeyMissing {
                version: parts.root_version(),
            })?;
        let mut iv = *parts.nonce();
        let params = GcmParams::new(&mut iv, parts.aad(), TAG_BITS.into()).map_err(Error::Token)?;
        // A token reports a wrong context (tag mismatch) as a general error on some modules
        // (SoftHSM2): those are the one opaque decryption failure. A token that is gone, logged
        // out or failing otherwise is a provider error, so a read fails instead of showing the
        // field as unreadable.
        let mut opened = Zeroizing::new(
            self.lock_session()
                .decrypt(&Mechanism::AesGcm(params), handle, parts.sealed())
                .map_err(|e| match e {
                    cryptoki::error::Error::Pkcs11(
                        RvError::GeneralError
                        | RvError::EncryptedDataInvalid
                        | RvError::EncryptedDataLenRange
                        | RvError::FunctionFailed,
                        _,
                    ) => plenum_crypto::Error::DecryptionFailed,
                    other => Error::Token(other).into(),
                })?,
        );
        ExternalUnwrap::key(&mut opened)
    }
}

impl KeyProvider for Pkcs11KeyProvider {
    fn wrap<'a>(
        &'a self,
        key: &'a KeyMaterial,
        context: &'a [u8],
    ) -> BoxFuture<'a, Result<WrappedKey, plenum_crypto::Error>> {
        Box::pin(async move { self.wrap_now(key, context) })
    }

    fn unwrap<'a>(
        &'a self,
        wrapped: &'a WrappedKey,
        context: &'a [u8],
    ) -> BoxFuture<'a, Result<KeyMaterial, plenum_crypto::Error>> {
        Box::pin(async move { self.unwrap_now(wrapped, context) })
    }

    fn needs_rewrap(&self, wrapped: &WrappedKey) -> bool {
        match (ExternalUnwrap::parse(wrapped, &[]), self.current()) {
            (Ok(parts), Ok((current, _))) => parts.root_version() != current,
            _ => false,
        }
    }
}

/// The AES secret keys on the token labelled `<prefix><version>`, by version.
fn find_root_keys(session: &Session, prefix: &str) -> Result<BTreeMap<u32, ObjectHandle>, Error> {
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
    ];
    let mut keys = BTreeMap::new();
    for handle in session.find_objects(&template).map_err(Error::Token)? {
        let attributes = session
            .get_attributes(handle, &[AttributeType::Label])
            .map_err(Error::Token)?;
        for attribute in attributes {
            if let Attribute::Label(label) = attribute {
                let version = core::str::from_utf8(&label)
                    .ok()
                    .and_then(|l| l.strip_prefix(prefix))
                    .and_then(|v| v.parse::<u32>().ok())
                    .filter(|v| *v > 0);
                if let Some(v) = version
                    && keys.insert(v, handle).is_some()
                {
                    // Two objects under one label: which one wrapped a key is unknowable.
                    return Err(Error::RootKeyExists { version: v });
                }
            }
        }
    }
    Ok(keys)
}
