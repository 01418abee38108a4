//! Key vocabulary shared by the keyring, providers and stores: key scopes, references, states,
//! wrapped and stored keys. Material only ever lives in `secrecy` boxes.

use core::fmt;

use plenum_core::{SubjectId, TenantId};
use secrecy::SecretBox;

/// Whose key a key is, within a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "subject", rename_all = "snake_case")]
pub enum KeyScope {
    /// The tenant's data key: seals data not owned by a subject (and wrapped the subject keys of
    /// wrap format 1, before subject-wrap keys existed).
    TenantData,
    /// The tenant's blind-index key: keys the HMACs of searchable fields.
    TenantIndex,
    /// One data subject's key: seals that subject's PII. Destroying it erases the subject.
    Subject(SubjectId),
    /// The tenant's subject-wrap key (an *erasure epoch*): wraps every subject key of the
    /// tenant. Replaced after erasures, with the live subject keys re-wrapped and the old
    /// version destroyed, so that a backup's copy of an erased subject's wrapped key has nothing
    /// left that unwraps it ([`Keyring::advance_erasure_epoch`](crate::Keyring::advance_erasure_epoch)).
    SubjectWrap,
}

impl KeyScope {
    /// The kind of scope, without the subject id.
    pub fn kind(&self) -> KeyScopeKind {
        match self {
            Self::TenantData => KeyScopeKind::TenantData,
            Self::TenantIndex => KeyScopeKind::TenantIndex,
            Self::Subject(_) => KeyScopeKind::Subject,
            Self::SubjectWrap => KeyScopeKind::SubjectWrap,
        }
    }
}

/// The kind of a [`KeyScope`]; its byte is part of the envelope header.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyScopeKind {
    /// Byte `0x01`.
    TenantData,
    /// Byte `0x02` (never in an envelope; only in derivation labels).
    TenantIndex,
    /// Byte `0x03`.
    Subject,
    /// Byte `0x04` (never in an envelope; in derivation labels and the key table).
    SubjectWrap,
}

impl KeyScopeKind {
    /// The scope an envelope header's scope byte names (`None` for an unknown byte).
    pub const fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0x01 => Some(Self::TenantData),
            0x02 => Some(Self::TenantIndex),
            0x03 => Some(Self::Subject),
            0x04 => Some(Self::SubjectWrap),
            _ => None,
        }
    }

    pub(crate) const fn code(self) -> u8 {
        match self {
            Self::TenantData => 0x01,
            Self::TenantIndex => 0x02,
            Self::Subject => 0x03,
            Self::SubjectWrap => 0x04,
        }
    }
}

impl fmt::Display for KeyScopeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TenantData => "tenant data",
            Self::TenantIndex => "tenant index",
            Self::Subject => "subject",
            Self::SubjectWrap => "subject wrap",
        })
    }
}

/// Names one version of one key: tenant, scope and version (versions start at 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct KeyRef {
    /// The tenant the key belongs to.
    pub tenant: TenantId,
    /// Whose key it is.
    pub scope: KeyScope,
    /// Which version.
    pub version: u32,
}

/// The life cycle of a key version.
///
/// `Active` seals and opens; `DecryptOnly` opens (after rotation, until a sweep re-seals its
/// data); `Retired` opens but is expected to have no data left; `Destroyed` has no key material
/// left and opens nothing, with [`Error::KeyDestroyed`](crate::Error::KeyDestroyed).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Seals and opens. At most one version per scope is active.
    Active,
    /// Opens only.
    DecryptOnly,
    /// Opens only; no data should refer to it any more.
    Retired,
    /// Key material erased.
    Destroyed,
}

impl KeyState {
    /// The stable string form (`active`, `decrypt_only`, `retired`, `destroyed`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::DecryptOnly => "decrypt_only",
            Self::Retired => "retired",
            Self::Destroyed => "destroyed",
        }
    }

    /// Parses the string form.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Active,
            Self::DecryptOnly,
            Self::Retired,
            Self::Destroyed,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// 32 bytes of key material. Zeroized on drop, redacted in `Debug`, never serialized.
pub type KeyMaterial = SecretBox<[u8; 32]>;

/// A key wrapped (encrypted) by the key above it in the hierarchy. Opaque bytes: their format is
/// the wrapping provider's business (the local provider's is in `docs/envelope-format.md`).
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey(Vec<u8>);

impl WrappedKey {
    /// Wraps bytes read from a key store.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes, for storing.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WrappedKey({} bytes)", self.0.len())
    }
}

/// One key version as a [`KeyStore`](crate::KeyStore) holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Which key.
    pub key_ref: KeyRef,
    /// Its state.
    pub state: KeyState,
    /// The wrapped key material; `None` once destroyed.
    pub wrapped: Option<WrappedKey>,
}
