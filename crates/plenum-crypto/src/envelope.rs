//! Envelopes and field keys: a prepared per-field AES-256-GCM key seals a value into the v1
//! envelope (header, nonce, ciphertext, tag) with its context in the associated data, and opens
//! it again. No key lookup happens here; the keyring supplies the keys.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use plenum_core::{FieldName, RecordId, RecordType, SubjectId, TenantId};
use rand::RngCore as _;

use crate::backend::{NONCE_LEN, PreparedAead, TAG_LEN};
use crate::error::{Error, Malformed};
use crate::format::{AAD_DIGEST_LEN, HEADER_LEN, Header, context_digest, full_aad};
use crate::keys::KeyRef;
use crate::pii::{Pii, PiiValue};

/// Who owns the data in a field, and therefore which key seals it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    /// Business data of the tenant (an invoice's amounts): sealed under the tenant data key.
    Tenant,
    /// Personal data of one subject: sealed under that subject's key, so destroying the key
    /// erases it everywhere, backups included.
    Subject(SubjectId),
}

/// Where a sealed value lives: the context its envelope is bound to (together with the record
/// id, given per value).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldLocator {
    /// The tenant.
    pub tenant: TenantId,
    /// The record type (logical table).
    pub record_type: RecordType,
    /// The field (logical column).
    pub field: FieldName,
    /// Whose data it is.
    pub owner: Owner,
}

/// A sealed value: envelope format v1 (see `docs/envelope-format.md`).
///
/// Not secret (it is what the database stores), but `Debug` shows only the header, the length
/// of a ciphertext being a property of the plaintext.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope(Vec<u8>);

impl Envelope {
    /// Wraps bytes read from storage. Nothing is checked until the envelope is opened.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes to store, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The key version named in the header, if the header is well formed. Useful to find values
    /// still sealed under an old version.
    pub fn key_version(&self) -> Option<u32> {
        Self::peek_key_version(&self.0)
    }

    /// The key version named in the header of stored bytes, without copying them.
    pub fn peek_key_version(bytes: &[u8]) -> Option<u32> {
        Header::parse(bytes).ok().map(|h| h.key_version)
    }
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Header::parse(&self.0) {
            Ok(h) => write!(f, "Envelope(v1, {} key v{})", h.scope, h.key_version),
            Err(_) => f.write_str("Envelope(malformed)"),
        }
    }
}

/// A field encryption key, derived and prepared: seals and opens values of one field of one
/// record type, for one owner, under one key version.
///
/// Obtained from [`Keyring::dangerous_field_key`](crate::Keyring::dangerous_field_key) (the active version) or
/// [`Keyring::dangerous_open`](crate::Keyring::dangerous_open) (whatever version an envelope names). Cheap to clone.
#[derive(Clone)]
pub struct FieldKey {
    inner: Arc<FieldKeyInner>,
}

struct FieldKeyInner {
    key: KeyRef,
    header: [u8; HEADER_LEN],
    digest: [u8; AAD_DIGEST_LEN],
    aead: PreparedAead,
    usage: Arc<AtomicU64>,
    /// Seals refused from this count on (`u64::MAX` for subject keys).
    limit: u64,
}

impl fmt::Debug for FieldKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FieldKey")
            .field("scope", &self.inner.key.scope.kind())
            .field("version", &self.inner.key.version)
            .finish_non_exhaustive()
    }
}

impl FieldKey {
    pub(crate) fn new(
        key: KeyRef,
        locator: &FieldLocator,
        aead: PreparedAead,
        (usage, limit): (Arc<AtomicU64>, u64),
    ) -> Self {
        let header = Header {
            scope: key.scope.kind(),
            key_version: key.version,
        }
        .encode();
        let subject = match locator.owner {
            Owner::Tenant => None,
            Owner::Subject(s) => Some(s),
        };
        let full = context_digest(
            locator.tenant,
            &locator.record_type,
            &locator.field,
            subject,
        );
        let mut digest = [0u8; AAD_DIGEST_LEN];
        digest.copy_from_slice(&full[..AAD_DIGEST_LEN]);
        Self {
            inner: Arc::new(FieldKeyInner {
                key,
                header,
                digest,
                aead,
                usage,
                limit,
            }),
        }
    }

    /// The associated data for `record`, as specified (for vectors).
    pub(crate) fn aad_for(&self, record: RecordId) -> Vec<u8> {
        full_aad(&self.inner.header, record, &self.inner.digest).to_vec()
    }

    /// The key version this field key belongs to.
    pub fn key_ref(&self) -> &KeyRef {
        &self.inner.key
    }

    /// Seals `plaintext` for the record `record`: one allocation, the output.
    ///
    /// # Errors
    ///
    /// [`Error::UsageLimit`] once this tenant key version has sealed its limit
    /// ([`KeyringConfig::usage_limit`](crate::KeyringConfig::usage_limit)): rotate the key.
    /// Otherwise only if the backend fails, which it does not for valid keys and lengths
    /// below 64 GiB.
    pub fn seal_bytes(&self, record: RecordId, plaintext: &[u8]) -> Result<Envelope, Error> {
        let inner = &*self.inner;
        if inner.usage.load(Ordering::Relaxed) >= inner.limit {
            return Err(Error::UsageLimit {
                scope: inner.key.scope.kind(),
                version: inner.key.version,
            });
        }
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        self.seal_with_nonce(record, plaintext, &nonce)
    }

    /// Sealing with a caller-chosen nonce: only for known-answer vectors (a repeated nonce under
    /// one key breaks AES-GCM), hence crate-private and reached through `internal`.
    pub(crate) fn seal_with_nonce(
        &self,
        record: RecordId,
        plaintext: &[u8],
        nonce: &[u8; NONCE_LEN],
    ) -> Result<Envelope, Error> {
        let inner = &*self.inner;
        let aad = full_aad(&inner.header, record, &inner.digest);
        let body = HEADER_LEN + NONCE_LEN;
        let mut out = Vec::with_capacity(body + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&inner.header);
        out.extend_from_slice(nonce);
        out.extend_from_slice(plaintext);
        let tag = inner
            .aead
            .seal_in_place(nonce, &aad, &mut out[body..])
            .map_err(|_| Error::ApiMisuse("plaintext too long for AES-GCM"))?;
        out.extend_from_slice(&tag);
        inner.usage.fetch_add(1, Ordering::Relaxed);
        Ok(Envelope(out))
    }

    /// Seals a typed value, using its [`PiiValue`] encoding.
    ///
    /// # Errors
    ///
    /// As [`FieldKey::seal_bytes`].
    pub fn seal<T: PiiValue>(&self, record: RecordId, value: &Pii<T>) -> Result<Envelope, Error> {
        if let Some(bytes) = value.expose().encoded_slice() {
            return self.seal_bytes(record, bytes);
        }
        let mut plain = Pii::new(Vec::new());
        value.expose().encode(pii_bytes_mut(&mut plain));
        self.seal_bytes(record, plain.expose())
    }

    /// Opens an envelope sealed for `record` under this key.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] for structural problems, [`Error::DecryptionFailed`] for anything
    /// the tag rejects (other key, tenant, record type, field, owner or record; modified bytes).
    pub fn open_bytes(&self, record: RecordId, envelope: &[u8]) -> Result<Pii<Vec<u8>>, Error> {
        let inner = &*self.inner;
        let header = Header::parse(envelope)?;
        if header.scope != inner.key.scope.kind() {
            return Err(Error::Malformed(Malformed::ScopeMismatch));
        }
        if header.key_version != inner.key.version {
            return Err(Error::ApiMisuse(
                "envelope names another key version than this key",
            ));
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&envelope[HEADER_LEN..HEADER_LEN + NONCE_LEN]);
        let tag_at = envelope.len() - TAG_LEN;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&envelope[tag_at..]);
        let aad = full_aad(&inner.header, record, &inner.digest);
        let mut out = Pii::new(envelope[HEADER_LEN + NONCE_LEN..tag_at].to_vec());
        let buf = pii_bytes_mut(&mut out);
        inner
            .aead
            .open_in_place(&nonce, &aad, buf, &tag)
            .map_err(|_| Error::DecryptionFailed)?;
        Ok(out)
    }

    /// Opens an envelope and decodes it as `T`.
    ///
    /// # Errors
    ///
    /// As [`FieldKey::open_bytes`], plus [`Error::PlaintextType`] if the authenticated plaintext
    /// does not decode as `T`.
    pub fn open<T: PiiValue>(&self, record: RecordId, envelope: &[u8]) -> Result<Pii<T>, Error> {
        let mut opened = self.open_bytes(record, envelope)?;
        // The buffer moves from one wiping wrapper into the next; on a decoding failure it goes
        // back into one, so it is wiped either way.
        let buffer = core::mem::take(pii_bytes_mut(&mut opened));
        // What is left is an empty `Vec` (no allocation, nothing to wipe): skipping its drop
        // saves a wipe call per field opened and leaks nothing.
        core::mem::forget(opened);
        match T::decode_owned(buffer) {
            Ok(value) => Ok(Pii::new(value)),
            Err(buffer) => {
                drop(Pii::new(buffer));
                Err(Error::PlaintextType {
                    type_name: T::TYPE_NAME,
                })
            }
        }
    }
}

/// Mutable access to the bytes of a `Pii<Vec<u8>>`, for in-place decryption: the plaintext never
/// exists outside a wiping wrapper.
fn pii_bytes_mut(pii: &mut Pii<Vec<u8>>) -> &mut Vec<u8> {
    crate::pii::expose_mut(pii)
}
