//! Not public API. Deterministic entry points for the known-answer vectors and the fuzz targets:
//! they take key material and nonces from the caller, which production code must never do.

use plenum_core::RecordId;
use secrecy::{ExposeSecret as _, SecretBox};

use crate::backend::{Backend, PreparedAead, PreparedMac};
use crate::blind::{BlindIndex, BlindIndexer, Normaliser};
use crate::envelope::{FieldKey, FieldLocator, Owner};
use crate::error::Error;
use crate::format::{
    Header, blind_index_info, field_key_info, key_wrap_context, pseudonym_info, subject_wrap_info,
};
use crate::keys::{KeyMaterial, KeyRef, KeyScope, WrappedKey};
use crate::pii::Pii;
use crate::primitives::{derive, prepare, unwrap_key, wrap_key, wrap_key_as};

fn material(bytes: [u8; 32]) -> KeyMaterial {
    SecretBox::new(Box::new(bytes))
}

fn scope_for(owner: Owner) -> KeyScope {
    match owner {
        Owner::Tenant => KeyScope::TenantData,
        Owner::Subject(s) => KeyScope::Subject(s),
    }
}

/// The field key, AAD and envelope for a vector.
#[derive(Debug)]
pub struct SealedVector {
    /// HKDF output.
    pub field_key: [u8; 32],
    /// Associated data.
    pub aad: Vec<u8>,
    /// The envelope.
    pub envelope: Vec<u8>,
}

fn field_key(
    backend: Backend,
    scope_key: [u8; 32],
    key_version: u32,
    locator: &FieldLocator,
) -> Result<(FieldKey, [u8; 32]), Error> {
    let key = KeyRef {
        tenant: locator.tenant,
        scope: scope_for(locator.owner),
        version: key_version,
    };
    let derived = derive(
        &material(scope_key),
        &field_key_info(&key, &locator.record_type, &locator.field),
    )?;
    let aead = prepare(backend, &derived)?;
    Ok((
        FieldKey::new(key, locator, aead, Default::default()),
        *derived.expose_secret(),
    ))
}

/// Seals with a given scope key and nonce.
///
/// # Errors
///
/// As sealing.
pub fn seal_vector(
    backend: Backend,
    scope_key: [u8; 32],
    key_version: u32,
    locator: &FieldLocator,
    record: RecordId,
    nonce: [u8; 12],
    plaintext: &[u8],
) -> Result<SealedVector, Error> {
    let (fk, field_key) = field_key(backend, scope_key, key_version, locator)?;
    let envelope = fk.seal_with_nonce(record, plaintext, &nonce)?.into_bytes();
    Ok(SealedVector {
        field_key,
        aad: fk.aad_for(record),
        envelope,
    })
}

/// Opens with a given scope key; the key version comes from the envelope header.
///
/// # Errors
///
/// As opening.
pub fn open_vector(
    backend: Backend,
    scope_key: [u8; 32],
    locator: &FieldLocator,
    record: RecordId,
    envelope: &[u8],
) -> Result<Pii<Vec<u8>>, Error> {
    let header = Header::parse(envelope)?;
    let (fk, _) = field_key(backend, scope_key, header.key_version, locator)?;
    fk.open_bytes(record, envelope)
}

/// A blind index under a given tenant index key; also returns the derived HMAC key.
///
/// # Errors
///
/// As computing an index.
#[allow(clippy::too_many_arguments)]
pub fn blind_index_vector(
    backend: Backend,
    index_key: [u8; 32],
    key: KeyRef,
    record_type: &plenum_core::RecordType,
    field: &plenum_core::FieldName,
    normaliser: Normaliser,
    value: &str,
) -> Result<(BlindIndex, [u8; 32]), Error> {
    let derived = derive(
        &material(index_key),
        &blind_index_info(&key, record_type, field, normaliser.id()),
    )?;
    let mac = PreparedMac::new(backend, derived.expose_secret())
        .map_err(|_| Error::ApiMisuse("backend rejected a 32-byte key"))?;
    let indexer = BlindIndexer::new(key, normaliser, mac)?;
    Ok((indexer.compute(value)?, *derived.expose_secret()))
}

/// The key that wraps subject keys under a tenant data key version.
///
/// # Errors
///
/// Never in practice (HKDF length).
pub fn subject_wrap_key(
    tenant_data_key: [u8; 32],
    tenant: plenum_core::TenantId,
    tenant_key_version: u32,
) -> Result<[u8; 32], Error> {
    let k = derive(
        &material(tenant_data_key),
        &subject_wrap_info(tenant, tenant_key_version),
    )?;
    Ok(*k.expose_secret())
}

/// Wraps a subject key in wrap format 2: under the key derived from the tenant's subject-wrap
/// key (scope `0x04`) of `wrapping_version`, with a random nonce.
///
/// # Errors
///
/// As wrapping.
pub fn wrap_subject_key_v2(
    backend: Backend,
    subject_wrap_key: [u8; 32],
    wrapping_version: u32,
    subject_key: &KeyRef,
    key: [u8; 32],
) -> Result<Vec<u8>, Error> {
    let derived = derive(
        &material(subject_wrap_key),
        &subject_wrap_info(subject_key.tenant, wrapping_version),
    )?;
    let aead = prepare(backend, &derived)?;
    Ok(wrap_key_as(
        crate::format::WRAP_V2_SUBJECT,
        &aead,
        wrapping_version,
        &material(key),
        &key_wrap_context(subject_key),
    )?
    .as_bytes()
    .to_vec())
}

/// The key-wrap context of a key.
pub fn wrap_context(key: &KeyRef) -> Vec<u8> {
    key_wrap_context(key)
}

/// Wraps `key` under `wrapping_key` with a random nonce.
///
/// # Errors
///
/// As wrapping.
pub fn wrap(
    backend: Backend,
    wrapping_key: [u8; 32],
    wrapping_version: u32,
    key: [u8; 32],
    context: &[u8],
) -> Result<Vec<u8>, Error> {
    let aead = prepare(backend, &material(wrapping_key))?;
    Ok(wrap_key(&aead, wrapping_version, &material(key), context)?
        .as_bytes()
        .to_vec())
}

/// Unwraps a wrapped key.
///
/// # Errors
///
/// As unwrapping.
pub fn unwrap(
    backend: Backend,
    wrapping_key: [u8; 32],
    wrapped: &[u8],
    context: &[u8],
) -> Result<[u8; 32], Error> {
    let aead: PreparedAead = prepare(backend, &material(wrapping_key))?;
    let k = unwrap_key(&aead, &WrappedKey::from_bytes(wrapped.to_vec()), context)?;
    Ok(*k.expose_secret())
}

/// The audit pseudonym of the subject whose key version `key` has material `subject_key`: the
/// first 16 bytes of HKDF-SHA256 with the pseudonym info (`docs/envelope-format.md`).
///
/// # Errors
///
/// Never in practice (HKDF length).
pub fn pseudonym_vector(subject_key: [u8; 32], key: &KeyRef) -> Result<[u8; 16], Error> {
    let derived = derive(&material(subject_key), &pseudonym_info(key))?;
    let mut out = [0u8; 16];
    out.copy_from_slice(&derived.expose_secret()[..16]);
    Ok(out)
}
