//! `Pii<T>`: plaintext in memory that cannot be printed, displayed or serialized by accident,
//! and is wiped on drop. `expose()` is the one greppable way out.

use core::fmt;

use zeroize::Zeroize;

/// Personal data in memory.
///
/// A `Pii<T>` can be moved, stored and passed around freely, but its value can only be read
/// through [`Pii::expose`], so `git grep expose` lists every place plaintext leaves a wrapper.
///
/// - `Debug` prints `Pii<TYPE>([REDACTED])`: never the value, never its length.
/// - There is no `Display`, so `format!("{}", pii)` does not compile.
/// - `Serialize` is implemented only for values whose type opts in with [`SerializablePii`];
///   otherwise serialize explicitly with [`serialize_exposed`] in a `serialize_with` attribute.
/// - `Deserialize` is implemented, so request bodies can be read straight into a `Pii<T>`.
/// - The value is wiped when the wrapper is dropped (see [`PiiValue::wipe`]).
///
/// # Non-goals
///
/// Wiping on drop does not reach copies made before the value entered the wrapper, copies left
/// behind by moves or reallocations, or memory the allocator already reused. It narrows the
/// window in which a memory dump finds plaintext; it does not close it.
pub struct Pii<T: PiiValue> {
    value: T,
}

impl<T: PiiValue> Pii<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self { value }
    }

    /// The plaintext. Every call site is a place where personal data leaves its wrapper: keep it
    /// in code that has a purpose for it, and never pass the result to a logger.
    pub fn expose(&self) -> &T {
        &self.value
    }
}

/// In-crate mutable access, so buffers can be filled and decrypted in place inside the wrapper.
pub(crate) fn expose_mut<T: PiiValue>(pii: &mut Pii<T>) -> &mut T {
    &mut pii.value
}

impl<T: PiiValue> From<T> for Pii<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T: PiiValue> Drop for Pii<T> {
    fn drop(&mut self) {
        self.value.wipe();
    }
}

impl<T: PiiValue + Clone> Clone for Pii<T> {
    fn clone(&self) -> Self {
        Self::new(self.value.clone())
    }
}

impl<T: PiiValue> fmt::Debug for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pii<{}>([REDACTED])", T::TYPE_NAME)
    }
}

impl<'de, T: PiiValue + serde::Deserialize<'de>> serde::Deserialize<'de> for Pii<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Self::new)
    }
}

/// Marker for plaintext types whose `Pii` wrapper may be serialized implicitly.
///
/// Nothing in Plenum implements it: serializing personal data should be a decision that is
/// visible in the code. Implement it for a newtype of your own only where every serialization of
/// the type is an intended disclosure (for example a type used solely in access-request exports).
#[diagnostic::on_unimplemented(
    message = "`{Self}` inside a `Pii` is personal data and is not serialized implicitly",
    note = "serialize it on purpose with `#[serde(serialize_with = \"plenum_crypto::serialize_exposed\")]`",
    note = "or implement `SerializablePii` for a newtype used only in intended disclosures"
)]
pub trait SerializablePii: serde::Serialize {}

impl<T: PiiValue + SerializablePii> serde::Serialize for Pii<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

/// Serializes the plaintext of a `Pii` field on purpose: use as
/// `#[serde(serialize_with = "plenum_crypto::serialize_exposed")]` in export types.
///
/// # Errors
///
/// Whatever the serializer returns.
pub fn serialize_exposed<T, S>(pii: &Pii<T>, serializer: S) -> Result<S::Ok, S::Error>
where
    T: PiiValue + serde::Serialize,
    S: serde::Serializer,
{
    pii.expose().serialize(serializer)
}

/// A plaintext type that can live in a [`Pii`] and be sealed into an envelope.
///
/// The byte encoding is part of the envelope specification (`docs/envelope-format.md`), so that
/// other languages decode the same values: UTF-8 for strings, raw bytes, big-endian fixed width
/// for integers, ISO 8601 `YYYY-MM-DD` for dates.
pub trait PiiValue: Sized {
    /// A short type name for redacted `Debug` output and errors.
    const TYPE_NAME: &'static str;

    /// Appends the plaintext encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// Decodes a plaintext encoding; `None` if the bytes are not a valid encoding.
    fn decode(bytes: &[u8]) -> Option<Self>;

    /// Decodes an owned plaintext buffer, reusing it where the type allows (a `String` takes
    /// the buffer as it is). On failure the buffer is handed back so the caller can wipe it.
    /// The default decodes a copy and wipes the buffer.
    ///
    /// # Errors
    ///
    /// The buffer, if it is not a valid encoding.
    fn decode_owned(mut bytes: Vec<u8>) -> Result<Self, Vec<u8>> {
        let decoded = Self::decode(&bytes);
        match decoded {
            Some(value) => {
                bytes.zeroize();
                Ok(value)
            }
            None => Err(bytes),
        }
    }

    /// Overwrites the value in place, releasing nothing that still holds plaintext.
    fn wipe(&mut self);

    /// The encoding as a borrowed slice, when the value already is its own encoding (strings,
    /// bytes): lets sealing skip a copy. The default says it is not.
    fn encoded_slice(&self) -> Option<&[u8]> {
        None
    }
}

impl PiiValue for String {
    const TYPE_NAME: &'static str = "String";

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        core::str::from_utf8(bytes).ok().map(str::to_owned)
    }

    fn decode_owned(bytes: Vec<u8>) -> Result<Self, Vec<u8>> {
        String::from_utf8(bytes).map_err(std::string::FromUtf8Error::into_bytes)
    }

    fn wipe(&mut self) {
        self.zeroize();
    }

    fn encoded_slice(&self) -> Option<&[u8]> {
        Some(self.as_bytes())
    }
}

impl PiiValue for Vec<u8> {
    const TYPE_NAME: &'static str = "Bytes";

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(bytes.to_vec())
    }

    fn decode_owned(bytes: Vec<u8>) -> Result<Self, Vec<u8>> {
        Ok(bytes)
    }

    fn wipe(&mut self) {
        self.zeroize();
    }

    fn encoded_slice(&self) -> Option<&[u8]> {
        Some(self)
    }
}

macro_rules! int_pii_value {
    ($($t:ty),*) => {$(
        impl PiiValue for $t {
            const TYPE_NAME: &'static str = stringify!($t);

            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }

            fn decode(bytes: &[u8]) -> Option<Self> {
                bytes.try_into().ok().map(<$t>::from_be_bytes)
            }

            fn wipe(&mut self) {
                self.zeroize();
            }
        }
    )*};
}

int_pii_value!(u32, u64, i32, i64);

impl PiiValue for chrono::NaiveDate {
    const TYPE_NAME: &'static str = "NaiveDate";

    fn encode(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        // Writing to a Vec cannot fail; the result is ignored on that ground.
        let _ = write!(out, "{}", self.format("%Y-%m-%d"));
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let s = core::str::from_utf8(bytes).ok()?;
        if s.len() != 10 {
            return None;
        }
        chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
    }

    fn wipe(&mut self) {
        // A date holds no heap memory; overwrite the value so the stack slot no longer holds it.
        *self = chrono::NaiveDate::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plenum_test::{CANARY_EMAIL, assert_no_canary};

    #[test]
    fn debug_is_redacted_without_length() {
        let short = Pii::new(String::from("a"));
        let long = Pii::new(CANARY_EMAIL.to_owned());
        let (s, l) = (format!("{short:?}"), format!("{long:?}"));
        assert_eq!(s, "Pii<String>([REDACTED])");
        assert_eq!(
            s, l,
            "Debug output must not depend on the value or its length"
        );
        assert_no_canary("pretty debug", &format!("{long:#?}"));
    }

    #[test]
    fn plaintext_codecs_round_trip() {
        fn rt<T: PiiValue + PartialEq + fmt::Debug + Clone>(v: T) {
            let mut out = Vec::new();
            v.encode(&mut out);
            assert_eq!(T::decode(&out), Some(v));
        }
        rt(String::from("Zoë O'Brien"));
        rt(vec![0u8, 1, 255]);
        rt(1_234u32);
        rt(-5i64);
        rt(chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap());
        assert_eq!(String::decode(&[0xff]), None);
        assert_eq!(u32::decode(&[1, 2, 3]), None);
        assert_eq!(chrono::NaiveDate::decode(b"2024-2-29"), None);
    }

    #[test]
    fn deserialize_wraps_and_explicit_serialize_exposes() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Export {
            #[serde(serialize_with = "serialize_exposed")]
            email: Pii<String>,
        }
        let e: Export = serde_json::from_str(&format!(r#"{{"email":"{CANARY_EMAIL}"}}"#)).unwrap();
        assert_eq!(e.email.expose(), CANARY_EMAIL);
        assert!(serde_json::to_string(&e).unwrap().contains(CANARY_EMAIL));
    }

    #[test]
    fn opted_in_types_serialize() {
        #[derive(Clone, serde::Serialize)]
        struct ExportedName(String);
        impl SerializablePii for ExportedName {}
        impl PiiValue for ExportedName {
            const TYPE_NAME: &'static str = "ExportedName";
            fn encode(&self, out: &mut Vec<u8>) {
                self.0.encode(out);
            }
            fn decode(bytes: &[u8]) -> Option<Self> {
                String::decode(bytes).map(Self)
            }
            fn wipe(&mut self) {
                self.0.wipe();
            }
        }
        let pii = Pii::new(ExportedName("Ada".into()));
        assert_eq!(serde_json::to_string(&pii).unwrap(), "\"Ada\"");
    }

    #[test]
    fn wipe_clears_strings() {
        let mut s = String::from("secret");
        s.wipe();
        assert!(s.is_empty());
        let mut d = chrono::NaiveDate::from_ymd_opt(1990, 5, 17).unwrap();
        d.wipe();
        assert_eq!(d, chrono::NaiveDate::default());
    }
}
