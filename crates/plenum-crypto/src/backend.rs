//! The AEAD and MAC primitives behind one small enum per object, so the rest of the crate is
//! written once and every backend produces and accepts the same bytes.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use hmac::Mac as _;

/// A cryptographic backend: which library performs AES-256-GCM and HMAC-SHA256.
///
/// Both produce and accept identical envelopes and blind indexes; the choice is about speed and
/// certification, not format. Key derivation (HKDF-SHA256) always uses RustCrypto: it runs on
/// the cold path only.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    /// RustCrypto `aes-gcm` and `hmac`: pure Rust, audited, runtime AES-NI/CLMUL detection.
    #[default]
    RustCrypto,
    /// AWS-LC through `aws-lc-rs` (feature `aws-lc`).
    #[cfg(feature = "aws-lc")]
    AwsLc,
}

impl Backend {
    /// Every backend compiled into this build, default first. Test suites iterate over this, as
    /// rustls runs its API tests once per crypto provider.
    pub fn all() -> &'static [Self] {
        &[
            Self::RustCrypto,
            #[cfg(feature = "aws-lc")]
            Self::AwsLc,
        ]
    }
}

pub(crate) const KEY_LEN: usize = 32;
pub(crate) const NONCE_LEN: usize = 12;
pub(crate) const TAG_LEN: usize = 16;

/// An AES-256-GCM key with its schedule computed once.
pub(crate) enum PreparedAead {
    RustCrypto(Box<aes_gcm::Aes256Gcm>),
    #[cfg(feature = "aws-lc")]
    AwsLc(aws_lc_rs::aead::LessSafeKey),
}

/// Opaque failure of an AEAD operation; mapped to `Error::DecryptionFailed` by callers.
#[derive(Debug)]
pub(crate) struct AeadFailure;

impl PreparedAead {
    pub(crate) fn new(backend: Backend, key: &[u8; KEY_LEN]) -> Result<Self, AeadFailure> {
        match backend {
            Backend::RustCrypto => aes_gcm::Aes256Gcm::new_from_slice(key)
                .map(|c| Self::RustCrypto(Box::new(c)))
                .map_err(|_| AeadFailure),
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, key)
                .map(|k| Self::AwsLc(aws_lc_rs::aead::LessSafeKey::new(k)))
                .map_err(|_| AeadFailure),
        }
    }

    /// Encrypts `buf` in place and returns the tag.
    pub(crate) fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], AeadFailure> {
        match self {
            Self::RustCrypto(c) => c
                .encrypt_in_place_detached(nonce.into(), aad, buf)
                .map(Into::into)
                .map_err(|_| AeadFailure),
            #[cfg(feature = "aws-lc")]
            Self::AwsLc(k) => {
                let tag = k
                    .seal_in_place_separate_tag(
                        aws_lc_rs::aead::Nonce::assume_unique_for_key(*nonce),
                        aws_lc_rs::aead::Aad::from(aad),
                        buf,
                    )
                    .map_err(|_| AeadFailure)?;
                tag.as_ref().try_into().map_err(|_| AeadFailure)
            }
        }
    }

    /// Verifies `tag` and decrypts `buf` in place. On failure `buf` holds unspecified bytes
    /// (callers keep it in a wiping wrapper and discard it).
    pub(crate) fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), AeadFailure> {
        match self {
            Self::RustCrypto(c) => c
                .decrypt_in_place_detached(nonce.into(), aad, buf, tag.into())
                .map_err(|_| AeadFailure),
            #[cfg(feature = "aws-lc")]
            Self::AwsLc(k) => k
                .open_in_place_separate_tag(
                    aws_lc_rs::aead::Nonce::assume_unique_for_key(*nonce),
                    aws_lc_rs::aead::Aad::from(aad),
                    tag,
                    buf,
                )
                .map(|_| ())
                .map_err(|_| AeadFailure),
        }
    }
}

/// An HMAC-SHA256 key, ready to authenticate many messages.
pub(crate) enum PreparedMac {
    RustCrypto(Box<hmac::Hmac<sha2::Sha256>>),
    #[cfg(feature = "aws-lc")]
    AwsLc(Box<aws_lc_rs::hmac::Key>),
}

impl PreparedMac {
    pub(crate) fn new(backend: Backend, key: &[u8; KEY_LEN]) -> Result<Self, AeadFailure> {
        match backend {
            Backend::RustCrypto => <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key)
                .map(|m| Self::RustCrypto(Box::new(m)))
                .map_err(|_| AeadFailure),
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => Ok(Self::AwsLc(Box::new(aws_lc_rs::hmac::Key::new(
                aws_lc_rs::hmac::HMAC_SHA256,
                key,
            )))),
        }
    }

    /// HMAC-SHA256 over the concatenation of `parts`.
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        match self {
            Self::RustCrypto(m) => {
                let mut m = (**m).clone();
                for part in parts {
                    m.update(part);
                }
                m.finalize().into_bytes().into()
            }
            #[cfg(feature = "aws-lc")]
            Self::AwsLc(k) => {
                let mut ctx = aws_lc_rs::hmac::Context::with_key(k);
                for part in parts {
                    ctx.update(part);
                }
                let mut out = [0u8; 32];
                out.copy_from_slice(ctx.sign().as_ref());
                out
            }
        }
    }
}
