//! Wrap format 1 for key providers whose root key lives outside the process (a PKCS#11 token,
//! a KMS): the header, the associated data and the layout, so that what such a provider wraps
//! is byte for byte the format `docs/envelope-format.md` ("Wrapped keys") describes, and the
//! context binding (tenant, scope, version) holds whoever runs the AEAD. The provider runs
//! AES-256-GCM with its own key over the 32 key bytes; this module does everything else.

use secrecy::ExposeSecret as _;
use zeroize::Zeroize as _;

use crate::backend::{KEY_LEN, NONCE_LEN, TAG_LEN};
use crate::error::Error;
use crate::format::{
    SUITE_AES256GCM_HKDF, WRAP_HEADER_LEN, WRAP_V1, WRAPPED_LEN, key_wrap_aad, parse_wrapped,
};
use crate::keys::{KeyMaterial, WrappedKey};

/// How many bytes an external AEAD returns for a wrapped key: the sealed key and its tag.
pub const SEALED_LEN: usize = KEY_LEN + TAG_LEN;

/// One wrap under way: the associated data to give the external AEAD, and the layout to put
/// its output in.
#[derive(Debug)]
pub struct ExternalWrap {
    header: [u8; WRAP_HEADER_LEN],
    aad: Vec<u8>,
}

impl ExternalWrap {
    /// A wrap under root key version `root_version` of the key named by `context` (the bytes
    /// the keyring passes to [`KeyProvider::wrap`](crate::KeyProvider::wrap)).
    ///
    /// # Errors
    ///
    /// [`Error::KeyMaterial`] if `root_version` is 0.
    pub fn new(root_version: u32, context: &[u8]) -> Result<Self, Error> {
        if root_version == 0 {
            return Err(Error::KeyMaterial("root key versions start at 1"));
        }
        let v = root_version.to_be_bytes();
        let header = [WRAP_V1, SUITE_AES256GCM_HKDF, v[0], v[1], v[2], v[3]];
        let aad = key_wrap_aad(&header, context);
        Ok(Self { header, aad })
    }

    /// The associated data the external AEAD must bind (never empty).
    pub fn aad(&self) -> &[u8] {
        &self.aad
    }

    /// The wrapped key, from the 96-bit nonce the AEAD used and its output (ciphertext then
    /// 128-bit tag, [`SEALED_LEN`] bytes).
    ///
    /// # Errors
    ///
    /// [`Error::KeyMaterial`] if `sealed` is not [`SEALED_LEN`] bytes.
    pub fn finish(self, nonce: [u8; NONCE_LEN], sealed: &[u8]) -> Result<WrappedKey, Error> {
        if sealed.len() != SEALED_LEN {
            return Err(Error::KeyMaterial(
                "an external wrap must return the sealed key and a 128-bit tag",
            ));
        }
        let mut out = Vec::with_capacity(WRAPPED_LEN);
        out.extend_from_slice(&self.header);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(sealed);
        Ok(WrappedKey::from_bytes(out))
    }
}

/// One unwrap under way: which root key version, the nonce, the sealed bytes and the
/// associated data to give the external AEAD.
#[derive(Debug)]
pub struct ExternalUnwrap<'a> {
    root_version: u32,
    nonce: [u8; NONCE_LEN],
    sealed: &'a [u8],
    aad: Vec<u8>,
}

impl<'a> ExternalUnwrap<'a> {
    /// Parses `wrapped` (format 1) for the key named by `context`.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] for anything but a well-formed format 1 wrap.
    pub fn parse(wrapped: &'a WrappedKey, context: &[u8]) -> Result<Self, Error> {
        let bytes = wrapped.as_bytes();
        let root_version = parse_wrapped(bytes)?;
        let mut header = [0u8; WRAP_HEADER_LEN];
        header.copy_from_slice(&bytes[..WRAP_HEADER_LEN]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[WRAP_HEADER_LEN..WRAP_HEADER_LEN + NONCE_LEN]);
        Ok(Self {
            root_version,
            nonce,
            sealed: &bytes[WRAP_HEADER_LEN + NONCE_LEN..],
            aad: key_wrap_aad(&header, context),
        })
    }

    /// The root key version that wrapped it.
    pub fn root_version(&self) -> u32 {
        self.root_version
    }

    /// The 96-bit nonce.
    pub fn nonce(&self) -> &[u8; NONCE_LEN] {
        &self.nonce
    }

    /// The sealed key and its tag, for the external AEAD.
    pub fn sealed(&self) -> &[u8] {
        self.sealed
    }

    /// The associated data the external AEAD must check (never empty).
    pub fn aad(&self) -> &[u8] {
        &self.aad
    }

    /// The key, from the external AEAD's output; `opened` is wiped whatever happens.
    ///
    /// # Errors
    ///
    /// [`Error::DecryptionFailed`] if `opened` is not 32 bytes.
    pub fn key(opened: &mut [u8]) -> Result<KeyMaterial, Error> {
        if opened.len() != KEY_LEN {
            opened.zeroize();
            return Err(Error::DecryptionFailed);
        }
        let mut key = secrecy::SecretBox::new(Box::new([0u8; KEY_LEN]));
        secrecy::ExposeSecretMut::expose_secret_mut(&mut key).copy_from_slice(opened);
        opened.zeroize();
        debug_assert_eq!(key.expose_secret().len(), KEY_LEN);
        Ok(key)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]
mod tests {
    use super::*;
    use crate::backend::Backend;
    use crate::primitives::{prepare, unwrap_key};

    /// A wrap assembled from an external AEAD's output is what the local provider opens: the
    /// same layout and associated data, so the format has one definition.
    #[test]
    fn an_external_wrap_is_format_one() {
        let root = secrecy::SecretBox::new(Box::new([7u8; 32]));
        let aead = prepare(Backend::default(), &root).unwrap();
        let key = [9u8; 32];
        let wrap = ExternalWrap::new(3, b"ctx").unwrap();
        let nonce = [5u8; NONCE_LEN];
        let mut body = key.to_vec();
        let tag = aead.seal_in_place(&nonce, wrap.aad(), &mut body).unwrap();
        body.extend_from_slice(&tag);
        let wrapped = wrap.finish(nonce, &body).unwrap();
        let opened = unwrap_key(&aead, &wrapped, b"ctx").unwrap();
        assert_eq!(opened.expose_secret(), &key);
        let parsed = ExternalUnwrap::parse(&wrapped, b"ctx").unwrap();
        assert_eq!(parsed.root_version(), 3);
        assert_eq!(parsed.sealed(), &body[..]);
        assert!(unwrap_key(&aead, &wrapped, b"other").is_err());
    }
}
