//! Byte layouts: the envelope header, associated data, derivation labels and the local key-wrap
//! format. Every constant here is specified in `docs/envelope-format.md`; change neither alone.

use plenum_core::{FieldName, RecordId, RecordType, SubjectId, TenantId};

use crate::backend::{KEY_LEN, NONCE_LEN, TAG_LEN};
use crate::error::{Error, Malformed};
use crate::keys::{KeyRef, KeyScope, KeyScopeKind};

/// Envelope format version 1.
pub(crate) const FORMAT_V1: u8 = 0x01;
/// AES-256-GCM, 96-bit random nonce, field key from HKDF-SHA256.
pub(crate) const SUITE_AES256GCM_HKDF: u8 = 0x01;
/// Header: version, suite, scope, key version (u32 BE).
pub(crate) const HEADER_LEN: usize = 7;
/// Header + nonce + tag.
pub const ENVELOPE_OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

/// HKDF salt for every derivation.
pub(crate) const HKDF_SALT: &[u8] = b"plenum/v1";
pub(crate) const LABEL_ENVELOPE: &[u8] = b"plenum-envelope-v1";
pub(crate) const LABEL_FIELD_KEY: &[u8] = b"field-key";
pub(crate) const LABEL_SUBJECT_WRAP: &[u8] = b"subject-key-wrap";
pub(crate) const LABEL_BLIND_INDEX: &[u8] = b"blind-index";
pub(crate) const LABEL_AUDIT_PSEUDONYM: &[u8] = b"audit-pseudonym";
pub(crate) const LABEL_KEY_WRAP: &[u8] = b"plenum-key-wrap-v1";

/// Key-wrap format version 1 (AES-256-GCM).
pub(crate) const WRAP_V1: u8 = 0x01;
/// Wrap format 2: a subject key wrapped under the tenant's subject-wrap key (scope `0x04`) of
/// the version at offset 2, not under the tenant data key (format 1, still read).
pub(crate) const WRAP_V2_SUBJECT: u8 = 0x02;
pub(crate) const WRAP_HEADER_LEN: usize = 6;
pub(crate) const WRAPPED_LEN: usize = WRAP_HEADER_LEN + NONCE_LEN + KEY_LEN + TAG_LEN;

/// Appends `bytes` with a 4-byte big-endian length prefix: the only way variable-length data
/// enters associated data or derivation info, so no two inputs encode alike.
pub(crate) fn put_lp(out: &mut Vec<u8>, bytes: &[u8]) {
    // Every input is bounded (names <= 63 bytes, ids 16 bytes, labels constant), far below
    // u32::MAX; saturating keeps the encoding total without a cast that could truncate.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The subject id bytes, or nothing for tenant-owned data.
pub(crate) fn subject_bytes(subject: Option<SubjectId>) -> Vec<u8> {
    subject.map(|s| s.as_bytes().to_vec()).unwrap_or_default()
}

/// The scope encoding used in derivation info and key-wrap context: one byte, then the subject
/// id for subject keys.
pub(crate) fn scope_bytes(scope: &KeyScope) -> Vec<u8> {
    let mut out = vec![scope.kind().code()];
    if let KeyScope::Subject(s) = scope {
        out.extend_from_slice(s.as_bytes());
    }
    out
}

/// The parsed fixed part of an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) scope: KeyScopeKind,
    pub(crate) key_version: u32,
}

impl Header {
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let v = self.key_version.to_be_bytes();
        [
            FORMAT_V1,
            SUITE_AES256GCM_HKDF,
            self.scope.code(),
            v[0],
            v[1],
            v[2],
            v[3],
        ]
    }

    /// Parses and checks the header of an envelope; checks only structure, never keys.
    pub(crate) fn parse(envelope: &[u8]) -> Result<Self, Error> {
        if envelope.len() < ENVELOPE_OVERHEAD {
            return Err(Error::Malformed(Malformed::TooShort));
        }
        if envelope[0] != FORMAT_V1 {
            return Err(Error::Malformed(Malformed::UnknownVersion));
        }
        if envelope[1] != SUITE_AES256GCM_HKDF {
            return Err(Error::Malformed(Malformed::UnknownSuite));
        }
        let scope = match envelope[2] {
            0x01 => KeyScopeKind::TenantData,
            0x03 => KeyScopeKind::Subject,
            _ => return Err(Error::Malformed(Malformed::UnknownKeyScope)),
        };
        let key_version = u32::from_be_bytes([envelope[3], envelope[4], envelope[5], envelope[6]]);
        if key_version == 0 {
            return Err(Error::Malformed(Malformed::ZeroKeyVersion));
        }
        Ok(Self { scope, key_version })
    }
}

/// SHA-256 of the field context: which tenant, record type, field and subject an envelope
/// belongs to. Computed once per field key.
pub(crate) fn context_digest(
    tenant: TenantId,
    record_type: &RecordType,
    field: &FieldName,
    subject: Option<SubjectId>,
) -> [u8; 32] {
    let mut encoded = Vec::with_capacity(160);
    put_lp(&mut encoded, LABEL_ENVELOPE);
    put_lp(&mut encoded, tenant.as_bytes());
    put_lp(&mut encoded, record_type.as_str().as_bytes());
    put_lp(&mut encoded, field.as_str().as_bytes());
    put_lp(&mut encoded, &subject_bytes(subject));
    crate::digest::sha256(&[&encoded])
}

/// How many bytes of the context digest the AAD carries: enough to make the AAD exactly two
/// GHASH blocks (7 + 16 + 9 = 32). The full context is bound by the field key derivation; the
/// digest in the AAD is defence in depth. Measured on the dev machine with RustCrypto, a 32-byte
/// AAD adds ~11 ns to a 64-byte seal, a 23-byte one ~35 ns (partial block), a 120-byte one ~110 ns.
pub(crate) const AAD_DIGEST_LEN: usize = 9;
/// The whole AAD: header || record id || context digest prefix.
pub(crate) const AAD_LEN: usize = HEADER_LEN + 16 + AAD_DIGEST_LEN;

/// The AAD of one value. No allocation.
pub(crate) fn full_aad(
    header: &[u8; HEADER_LEN],
    record: RecordId,
    digest: &[u8; AAD_DIGEST_LEN],
) -> [u8; AAD_LEN] {
    let mut aad = [0u8; AAD_LEN];
    aad[..HEADER_LEN].copy_from_slice(header);
    aad[HEADER_LEN..HEADER_LEN + 16].copy_from_slice(record.as_bytes());
    aad[HEADER_LEN + 16..].copy_from_slice(digest);
    aad
}

/// HKDF info for a field encryption key.
pub(crate) fn field_key_info(key: &KeyRef, record_type: &RecordType, field: &FieldName) -> Vec<u8> {
    let mut out = Vec::with_capacity(192);
    put_lp(&mut out, LABEL_FIELD_KEY);
    put_lp(&mut out, key.tenant.as_bytes());
    put_lp(&mut out, &scope_bytes(&key.scope));
    put_lp(&mut out, record_type.as_str().as_bytes());
    put_lp(&mut out, field.as_str().as_bytes());
    out.extend_from_slice(&key.version.to_be_bytes());
    out
}

/// HKDF info for the key that wraps subject keys under a tenant data key version.
pub(crate) fn subject_wrap_info(tenant: TenantId, tenant_key_version: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    put_lp(&mut out, LABEL_SUBJECT_WRAP);
    put_lp(&mut out, tenant.as_bytes());
    out.extend_from_slice(&tenant_key_version.to_be_bytes());
    out
}

/// HKDF info for a subject's audit pseudonym under one version of the subject's key.
pub(crate) fn pseudonym_info(key: &KeyRef) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    put_lp(&mut out, LABEL_AUDIT_PSEUDONYM);
    put_lp(&mut out, key.tenant.as_bytes());
    put_lp(&mut out, &scope_bytes(&key.scope));
    out.extend_from_slice(&key.version.to_be_bytes());
    out
}

/// HKDF info for a blind-index key.
pub(crate) fn blind_index_info(
    key: &KeyRef,
    record_type: &RecordType,
    field: &FieldName,
    normaliser_id: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(192);
    put_lp(&mut out, LABEL_BLIND_INDEX);
    put_lp(&mut out, key.tenant.as_bytes());
    put_lp(&mut out, record_type.as_str().as_bytes());
    put_lp(&mut out, field.as_str().as_bytes());
    put_lp(&mut out, normaliser_id.as_bytes());
    out.extend_from_slice(&key.version.to_be_bytes());
    out
}

/// The context a wrapped key is bound to: which key it is.
pub(crate) fn key_wrap_context(key: &KeyRef) -> Vec<u8> {
    let mut out = Vec::with_capacity(48);
    put_lp(&mut out, key.tenant.as_bytes());
    put_lp(&mut out, &scope_bytes(&key.scope));
    out.extend_from_slice(&key.version.to_be_bytes());
    out
}

/// The AAD of a wrapped key: label, its header and the context of the key it holds.
pub(crate) fn key_wrap_aad(header: &[u8; WRAP_HEADER_LEN], context: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    put_lp(&mut out, LABEL_KEY_WRAP);
    put_lp(&mut out, header);
    put_lp(&mut out, context);
    out
}

/// Parses a wrapped key of format 1 (what a root key provider wraps): returns the wrapping key
/// version.
pub(crate) fn parse_wrapped(bytes: &[u8]) -> Result<u32, Error> {
    match parse_wrapped_any(bytes)? {
        (WRAP_V1, version) => Ok(version),
        _ => Err(Error::Malformed(Malformed::UnknownVersion)),
    }
}

/// Parses a wrapped key of either format: returns the format byte and the wrapping key version.
pub(crate) fn parse_wrapped_any(bytes: &[u8]) -> Result<(u8, u32), Error> {
    if bytes.len() < WRAPPED_LEN {
        return Err(Error::Malformed(Malformed::TooShort));
    }
    if bytes.len() > WRAPPED_LEN {
        return Err(Error::Malformed(Malformed::TrailingBytes));
    }
    if bytes[0] != WRAP_V1 && bytes[0] != WRAP_V2_SUBJECT {
        return Err(Error::Malformed(Malformed::UnknownVersion));
    }
    if bytes[1] != SUITE_AES256GCM_HKDF {
        return Err(Error::Malformed(Malformed::UnknownSuite));
    }
    let version = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
    if version == 0 {
        return Err(Error::Malformed(Malformed::ZeroKeyVersion));
    }
    Ok((bytes[0], version))
}
