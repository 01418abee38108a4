//! Blind indexes: HMAC-SHA256 over a named, versioned normalisation of a value, for equality
//! search over encrypted fields. Normalisers are frozen per version (`docs/envelope-format.md`).

use core::fmt;
use std::sync::Arc;

use unicode_normalization::UnicodeNormalization as _;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory as _};
use zeroize::Zeroizing;

use crate::backend::PreparedMac;
use crate::error::{Error, Malformed};
use crate::keys::KeyRef;

/// Length of a blind index: one version byte and 16 bytes of truncated HMAC-SHA256.
pub const BLIND_INDEX_LEN: usize = 17;

/// A named, versioned normalisation applied before a value is indexed, so that equal values in
/// different spellings find each other. The id is part of the index key derivation: changing a
/// normaliser's behaviour means a new id, never a silent change.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Normaliser {
    /// `email-v1`: trim Unicode white space, then Unicode lowercase.
    #[serde(rename = "email-v1")]
    Email,
    /// `phone-e164-v1`: E.164 digits. Spaces, `-`, `.`, `(` and `)` are ignored; any other
    /// character is refused. With a leading `+`, 8 to 15 digits are kept as given. Without it the
    /// number is read as North American (the Plenum market): 10 digits get `+1`, 11 digits
    /// starting with 1 get `+`; anything else is refused.
    #[serde(rename = "phone-e164-v1")]
    PhoneE164,
    /// `text-nfkc-v1`: Unicode NFKC, then trim white space, then Unicode lowercase.
    #[serde(rename = "text-nfkc-v1")]
    Text,
}

/// The Unicode data blind-index format v1 is defined with (`docs/envelope-format.md`): NFKC and
/// the assigned code points of Unicode 18.0.0 (`unicode-normalization` 0.1.26 and
/// `unicode-properties` 0.1.5, pinned exactly), lower-casing of Rust's core library (Unicode
/// 17.0.0 with this toolchain; `BLIND_INDEX_LOWERCASE_UNICODE`, checked by a test so that a
/// toolchain whose tables differ is a deliberate change).
pub const BLIND_INDEX_UNICODE: (u8, u8, u8) = (18, 0, 0);

/// The Unicode version of the lower-case mapping blind-index format v1 uses (Rust's core
/// library tables).
pub const BLIND_INDEX_LOWERCASE_UNICODE: (u8, u8, u8) = (17, 0, 0);

// A dependency update that changes the Unicode data would change what v1 indexes: refuse to
// build rather than index differently.
const _: () = assert!(
    unicode_normalization::UNICODE_VERSION.0 == BLIND_INDEX_UNICODE.0
        && unicode_normalization::UNICODE_VERSION.1 == BLIND_INDEX_UNICODE.1
        && unicode_normalization::UNICODE_VERSION.2 == BLIND_INDEX_UNICODE.2
        && unicode_properties::UNICODE_VERSION.0 == BLIND_INDEX_UNICODE.0 as u64
        && unicode_properties::UNICODE_VERSION.1 == BLIND_INDEX_UNICODE.1 as u64
        && unicode_properties::UNICODE_VERSION.2 == BLIND_INDEX_UNICODE.2 as u64,
    "the Unicode tables changed: blind-index format v1 is pinned to Unicode 18.0.0"
);

impl Normaliser {
    /// The stable id, as written in the spec and in derivation labels.
    pub const fn id(self) -> &'static str {
        match self {
            Self::Email => "email-v1",
            Self::PhoneE164 => "phone-e164-v1",
            Self::Text => "text-nfkc-v1",
        }
    }

    /// Looks a normaliser up by id.
    pub fn from_id(id: &str) -> Option<Self> {
        [Self::Email, Self::PhoneE164, Self::Text]
            .into_iter()
            .find(|n| n.id() == id)
    }

    /// Normalises `value`. The result is wiped on drop.
    ///
    /// # Errors
    ///
    /// [`Error::Normalisation`] if the value is empty after normalisation or, for phones, is not
    /// a number this normaliser accepts.
    pub fn normalise(self, value: &str) -> Result<Zeroizing<String>, Error> {
        let refuse = || Error::Normalisation { normaliser: self };
        // Format v1 is frozen to the Unicode data pinned below: a code point unassigned in it
        // could gain a decomposition or a case mapping in a later Unicode version and then
        // index differently, so it is refused rather than indexed.
        if !value.is_ascii()
            && value
                .chars()
                .any(|c| c.general_category() == GeneralCategory::Unassigned)
        {
            return Err(refuse());
        }
        let out = match self {
            // ASCII fast paths give the same bytes as the Unicode ones (NFKC leaves ASCII alone,
            // and Unicode lowercase of ASCII is ASCII lowercase) without their table lookups.
            Self::Email => {
                let trimmed = value.trim();
                Zeroizing::new(if trimmed.is_ascii() {
                    trimmed.to_ascii_lowercase()
                } else {
                    trimmed.to_lowercase()
                })
            }
            Self::Text if value.is_ascii() => Zeroizing::new(value.trim().to_ascii_lowercase()),
            Self::Text => {
                let nfkc = Zeroizing::new(value.nfkc().collect::<String>());
                Zeroizing::new(nfkc.trim().to_lowercase())
            }
            Self::PhoneE164 => {
                let trimmed = value.trim();
                let (plus, rest) = match trimmed.strip_prefix('+') {
                    Some(rest) => (true, rest),
                    None => (false, trimmed),
                };
                let mut digits = Zeroizing::new(String::with_capacity(16));
                for c in rest.chars() {
                    match c {
                        '0'..='9' => digits.push(c),
                        ' ' | '-' | '.' | '(' | ')' => {}
                        _ => return Err(refuse()),
                    }
                }
                let n = digits.len();
                let mut out = Zeroizing::new(String::with_capacity(16));
                out.push('+');
                match (plus, n) {
                    (true, 8..=15) => {}
                    (false, 10) => out.push('1'),
                    (false, 11) if digits.starts_with('1') => {}
                    _ => return Err(refuse()),
                }
                out.push_str(&digits);
                out
            }
        };
        if out.is_empty() {
            return Err(refuse());
        }
        Ok(out)
    }
}

impl fmt::Display for Normaliser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A blind index value: `version (1 byte) || HMAC-SHA256(index key, normalised value)[..16]`.
///
/// Deterministic within one tenant, field and index key version; unrelated across tenants. Its
/// `Debug` shows only the version: an index value links records, so it stays out of logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlindIndex([u8; BLIND_INDEX_LEN]);

impl BlindIndex {
    /// Parses a stored index value.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] unless exactly 17 bytes with a non-zero version.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let arr: [u8; BLIND_INDEX_LEN] = bytes.try_into().map_err(|_| {
            Error::Malformed(if bytes.len() < BLIND_INDEX_LEN {
                Malformed::TooShort
            } else {
                Malformed::TrailingBytes
            })
        })?;
        if arr[0] == 0 {
            return Err(Error::Malformed(Malformed::ZeroKeyVersion));
        }
        Ok(Self(arr))
    }

    /// The bytes to store and query with.
    pub fn as_bytes(&self) -> &[u8; BLIND_INDEX_LEN] {
        &self.0
    }

    /// The index key version that produced it.
    pub fn version(&self) -> u8 {
        self.0[0]
    }

    /// Lowercase hex of the bytes, for display in tools and examples.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for BlindIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlindIndex(v{})", self.0[0])
    }
}

/// Computes blind indexes for one field of one record type in one tenant, under one index key
/// version. Obtained from [`Keyring::blind_indexer`](crate::Keyring::blind_indexer).
#[derive(Clone)]
pub struct BlindIndexer {
    key: KeyRef,
    version: u8,
    normaliser: Normaliser,
    mac: Arc<PreparedMac>,
}

impl fmt::Debug for BlindIndexer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlindIndexer")
            .field("version", &self.version)
            .field("normaliser", &self.normaliser)
            .finish_non_exhaustive()
    }
}

impl BlindIndexer {
    pub(crate) fn new(
        key: KeyRef,
        normaliser: Normaliser,
        mac: PreparedMac,
    ) -> Result<Self, Error> {
        let version = u8::try_from(key.version).map_err(|_| {
            Error::ApiMisuse("blind index key versions above 255 cannot be encoded")
        })?;
        Ok(Self {
            key,
            version,
            normaliser,
            mac: Arc::new(mac),
        })
    }

    /// The index key version.
    pub fn key_ref(&self) -> &KeyRef {
        &self.key
    }

    /// The normaliser applied.
    pub fn normaliser(&self) -> Normaliser {
        self.normaliser
    }

    /// Normalises `value` and computes its index.
    ///
    /// # Errors
    ///
    /// [`Error::Normalisation`] if the normaliser refuses the value.
    pub fn compute(&self, value: &str) -> Result<BlindIndex, Error> {
        let normalised = self.normaliser.normalise(value)?;
        Ok(self.compute_normalised(normalised.as_bytes()))
    }

    /// Computes the index of a value already normalised by this indexer's normaliser.
    pub fn compute_normalised(&self, normalised: &[u8]) -> BlindIndex {
        let mac = self.mac.mac(&[normalised]);
        let mut out = [0u8; BLIND_INDEX_LEN];
        out[0] = self.version;
        out[1..].copy_from_slice(&mac[..BLIND_INDEX_LEN - 1]);
        BlindIndex(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unassigned_code_points_are_refused_and_the_unicode_data_is_pinned() {
        // U+0378 is unassigned in every Unicode version so far; U+FDD0 is a noncharacter.
        for bad in ["caf\u{0378}", "x\u{FDD0}y@example.com"] {
            for n in [Normaliser::Text, Normaliser::Email] {
                assert!(n.normalise(bad).is_err(), "{n:?}");
            }
        }
        assert_eq!(*Normaliser::Text.normalise("Ｃafé").unwrap(), "café");
        // The toolchain's lower-case tables are part of the format: a toolchain with other
        // tables fails here, and moving to it is a deliberate format decision.
        assert_eq!(char::UNICODE_VERSION, BLIND_INDEX_LOWERCASE_UNICODE);
    }

    #[test]
    fn email_normalisation() {
        let n = Normaliser::Email;
        assert_eq!(
            *n.normalise("  Jane.Doe@Example.COM \n").unwrap(),
            "jane.doe@example.com"
        );
        assert!(n.normalise("   ").is_err());
    }

    #[test]
    fn phone_normalisation() {
        let n = Normaliser::PhoneE164;
        for input in [
            "(555) 010-7391",
            "555.010.7391",
            "1-555-010-7391",
            "+1 555 010 7391",
        ] {
            assert_eq!(*n.normalise(input).unwrap(), "+15550107391", "{input}");
        }
        assert_eq!(*n.normalise("+44 20 7946 0958").unwrap(), "+442079460958");
        for bad in ["555-0107", "call me", "+1234567", "2-555-010-7391", ""] {
            let err = n.normalise(bad).unwrap_err();
            assert!(matches!(err, Error::Normalisation { .. }));
            assert!(!err.to_string().contains(bad) || bad.is_empty());
        }
    }

    #[test]
    fn text_normalisation() {
        let n = Normaliser::Text;
        // Full-width letters and a ligature fold under NFKC; NBSP becomes a trimmed space.
        assert_eq!(*n.normalise("\u{a0}ＡＢＣ ﬁx ").unwrap(), "abc fix");
    }

    #[test]
    fn ascii_fast_paths_agree_with_the_unicode_rules() {
        for value in [
            "  MiXeD.Case@Example.COM\t",
            "Plain Text  ",
            "\u{0b}x\u{0c}",
        ] {
            let unicode = value.trim().to_lowercase();
            assert_eq!(*Normaliser::Email.normalise(value).unwrap(), unicode);
            let nfkc: String = value.nfkc().collect();
            assert_eq!(
                *Normaliser::Text.normalise(value).unwrap(),
                nfkc.trim().to_lowercase()
            );
        }
    }

    #[test]
    fn ids_round_trip() {
        for n in [Normaliser::Email, Normaliser::PhoneE164, Normaliser::Text] {
            assert_eq!(Normaliser::from_id(n.id()), Some(n));
            assert_eq!(
                serde_json::to_string(&n).unwrap(),
                format!("\"{}\"", n.id())
            );
        }
    }

    #[test]
    fn index_parsing_is_strict() {
        assert!(BlindIndex::from_bytes(&[1u8; 16]).is_err());
        assert!(BlindIndex::from_bytes(&[1u8; 18]).is_err());
        assert!(BlindIndex::from_bytes(&[0u8; 17]).is_err());
        assert_eq!(BlindIndex::from_bytes(&[3u8; 17]).unwrap().version(), 3);
    }
}
