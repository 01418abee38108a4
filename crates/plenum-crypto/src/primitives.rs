//! Key derivation and key wrapping, built from the backend primitives and `format` layouts.

use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretBox};
use zeroize::Zeroize as _;

use crate::backend::{Backend, KEY_LEN, NONCE_LEN, PreparedAead, TAG_LEN};
use crate::error::Error;
use crate::format::{
    HKDF_SALT, SUITE_AES256GCM_HKDF, WRAP_HEADER_LEN, WRAP_V1, WRAPPED_LEN, key_wrap_aad,
    parse_wrapped, parse_wrapped_any,
};
use crate::keys::{KeyMaterial, WrappedKey};

/// HKDF's extract step with its HMAC already keyed with the salt. Keying HMAC costs two SHA-256
/// compressions, about a fifth of a whole derivation, and the salt is a constant: keyed once per
/// process, each extract clones the keyed state instead. The salt is public; nothing secret is
/// held here.
fn salted_extract() -> hkdf::HkdfExtract<sha2::Sha256> {
    static SALTED: std::sync::LazyLock<hkdf::HkdfExtract<sha2::Sha256>> =
        std::sync::LazyLock::new(|| hkdf::HkdfExtract::new(Some(HKDF_SALT)));
    SALTED.clone()
}

/// HKDF-Extract(salt = "plenum/v1", ikm), ready to expand; the same result as
/// `Hkdf::new(Some(HKDF_SALT), ikm)`, with the salt's keying done once (see [`salted_extract`])
/// and the pseudorandom key's returned copy wiped (the keyed HMAC states inside the hkdf and
/// hmac crates are not zeroized, as with `Hkdf::new`).
fn extract(ikm: &KeyMaterial) -> hkdf::Hkdf<sha2::Sha256> {
    let mut extract = salted_extract();
    extract.input_ikm(ikm.expose_secret());
    let (mut prk, hk) = extract.finalize();
    prk.as_mut_slice().zeroize();
    hk
}

/// HKDF-SHA256(salt = "plenum/v1", ikm, info) -> 32 bytes.
pub(crate) fn derive(ikm: &KeyMaterial, info: &[u8]) -> Result<KeyMaterial, Error> {
    let hk = extract(ikm);
    let mut out = SecretBox::new(Box::new([0u8; KEY_LEN]));
    // 32 bytes is far below HKDF-SHA256's 8160-byte output limit, so this cannot fail; an error
    // is still an error rather than a silently zero key.
    hk.expand(info, secrecy::ExposeSecretMut::expose_secret_mut(&mut out))
        .map_err(|_| Error::ApiMisuse("HKDF output length"))?;
    Ok(out)
}

/// [`derive`] for several `infos` under one `ikm`: HKDF's extract step depends on the salt and
/// the input key only, so it runs once and each output costs one expand. Same bytes as calling
/// [`derive`] per info.
pub(crate) fn derive_each(
    ikm: &KeyMaterial,
    infos: impl IntoIterator<Item = Vec<u8>>,
) -> Result<Vec<KeyMaterial>, Error> {
    let hk = extract(ikm);
    infos
        .into_iter()
        .map(|info| {
            let mut out = SecretBox::new(Box::new([0u8; KEY_LEN]));
            hk.expand(&info, secrecy::ExposeSecretMut::expose_secret_mut(&mut out))
                .map_err(|_| Error::ApiMisuse("HKDF output length"))?;
            Ok(out)
        })
        .collect()
}

/// A fresh random 256-bit key from the thread-local CSPRNG (ChaCha, seeded and periodically
/// reseeded from the OS).
pub(crate) fn random_key() -> KeyMaterial {
    let mut key = SecretBox::new(Box::new([0u8; KEY_LEN]));
    rand::thread_rng().fill_bytes(secrecy::ExposeSecretMut::expose_secret_mut(&mut key));
    key
}

pub(crate) fn prepare(backend: Backend, key: &KeyMaterial) -> Result<PreparedAead, Error> {
    PreparedAead::new(backend, key.expose_secret())
        .map_err(|_| Error::ApiMisuse("backend rejected a 32-byte key"))
}

/// Wraps `key` under `wrapping` (version `wrapping_version`), bound to `context`.
pub(crate) fn wrap_key(
    wrapping: &PreparedAead,
    wrapping_version: u32,
    key: &KeyMaterial,
    context: &[u8],
) -> Result<WrappedKey, Error> {
    wrap_key_as(WRAP_V1, wrapping, wrapping_version, key, context)
}

/// [`wrap_key`] with the wrap format byte given: `WRAP_V2_SUBJECT` for a subject key under a
/// subject-wrap key.
pub(crate) fn wrap_key_as(
    format: u8,
    wrapping: &PreparedAead,
    wrapping_version: u32,
    key: &KeyMaterial,
    context: &[u8],
) -> Result<WrappedKey, Error> {
    let v = wrapping_version.to_be_bytes();
    let header: [u8; WRAP_HEADER_LEN] = [format, SUITE_AES256GCM_HKDF, v[0], v[1], v[2], v[3]];
    let mut nonce = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut nonce);
    let aad = key_wrap_aad(&header, context);
    let mut out = Vec::with_capacity(WRAPPED_LEN);
    out.extend_from_slice(&header);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(key.expose_secret());
    let body = WRAP_HEADER_LEN + NONCE_LEN;
    let tag = match wrapping.seal_in_place(&nonce, &aad, &mut out[body..]) {
        Ok(tag) => tag,
        Err(_) => {
            out.zeroize();
            return Err(Error::ApiMisuse("key wrapping failed"));
        }
    };
    out.extend_from_slice(&tag);
    Ok(WrappedKey::from_bytes(out))
}

/// The wrapping key version named by a wrapped key's header.
pub(crate) fn wrapping_version(wrapped: &WrappedKey) -> Result<u32, Error> {
    parse_wrapped(wrapped.as_bytes())
}

/// The wrap format and wrapping key version of a wrapped subject key (format 1 or 2).
pub(crate) fn subject_wrapping(wrapped: &WrappedKey) -> Result<(u8, u32), Error> {
    parse_wrapped_any(wrapped.as_bytes())
}

/// Unwraps a key wrapped by [`wrap_key`] with the same `context`.
pub(crate) fn unwrap_key(
    wrapping: &PreparedAead,
    wrapped: &WrappedKey,
    context: &[u8],
) -> Result<KeyMaterial, Error> {
    let bytes = wrapped.as_bytes();
    parse_wrapped_any(bytes)?;
    let mut header = [0u8; WRAP_HEADER_LEN];
    header.copy_from_slice(&bytes[..WRAP_HEADER_LEN]);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&bytes[WRAP_HEADER_LEN..WRAP_HEADER_LEN + NONCE_LEN]);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&bytes[WRAPPED_LEN - TAG_LEN..]);
    let aad = key_wrap_aad(&header, context);
    let mut key = SecretBox::new(Box::new([0u8; KEY_LEN]));
    let buf = secrecy::ExposeSecretMut::expose_secret_mut(&mut key);
    buf.copy_from_slice(&bytes[WRAP_HEADER_LEN + NONCE_LEN..WRAPPED_LEN - TAG_LEN]);
    if wrapping.open_in_place(&nonce, &aad, buf, &tag).is_err() {
        // `key` holds ciphertext only (open failed before writing plaintext); dropping it
        // zeroizes it all the same.
        return Err(Error::DecryptionFailed);
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The prepared salt changes nothing: every derivation equals the hkdf crate's own
    /// `Hkdf::new` with the salt, for infos of every length class (empty, short, and longer
    /// than a SHA-256 block included), and across repeated use of the shared state.
    #[test]
    fn prepared_salt_derives_what_hkdf_derives() {
        for round in 0u8..3 {
            for (n, info) in [
                (0u8, Vec::new()),
                (1, b"subject-wrap".to_vec()),
                (2, vec![0xA5; 200]),
            ] {
                let ikm = SecretBox::new(Box::new([round.wrapping_mul(31) ^ n; KEY_LEN]));
                let mut want = [0u8; KEY_LEN];
                hkdf::Hkdf::<sha2::Sha256>::new(Some(HKDF_SALT), ikm.expose_secret())
                    .expand(&info, &mut want)
                    .unwrap_or_default();
                let got = derive(&ikm, &info).ok().map(|k| *k.expose_secret());
                assert_eq!(got, Some(want), "round {round}, info {n}");
                assert_ne!(want, [0u8; KEY_LEN]);
            }
        }
    }

    #[test]
    fn one_extract_for_many_expands_gives_the_same_keys() {
        let ikm = SecretBox::new(Box::new([7u8; KEY_LEN]));
        let infos = [b"a".to_vec(), b"field/email".to_vec(), Vec::new()];
        let many = derive_each(&ikm, infos.clone()).unwrap_or_default();
        assert_eq!(many.len(), 3);
        for (info, key) in infos.iter().zip(&many) {
            let one = derive(&ikm, info).ok();
            assert_eq!(
                one.as_ref().map(|k| *k.expose_secret()),
                Some(*key.expose_secret())
            );
        }
    }
}
