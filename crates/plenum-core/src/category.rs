//! Data categories: fideslang-style dotted keys and their hierarchy (`is_within`). Which
//! categories exist and what they mean for purposes is `plenum-consent`'s business.

use core::fmt;
use core::str::FromStr;
use std::borrow::Cow;

use crate::error::{Error, NameKind, NameProblem};

/// Longest accepted category key, in bytes.
const MAX_LEN: usize = 128;

const fn validate(s: &str) -> Result<(), NameProblem> {
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        return Err(NameProblem::Empty);
    }
    if bytes.len() > MAX_LEN {
        return Err(NameProblem::TooLong { found: bytes.len() });
    }
    // Every segment starts with a lowercase letter; segments are separated by single dots.
    let mut position = 0;
    let mut segment_start = true;
    while position < bytes.len() {
        let b = bytes[position];
        if segment_start {
            if !b.is_ascii_lowercase() {
                return if position == 0 {
                    Err(NameProblem::BadStart)
                } else {
                    Err(NameProblem::UnexpectedCharacter { position })
                };
            }
            segment_start = false;
        } else if b == b'.' {
            segment_start = true;
        } else if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(NameProblem::UnexpectedCharacter { position });
        }
        position += 1;
    }
    if segment_start {
        // A trailing dot.
        return Err(NameProblem::UnexpectedCharacter {
            position: bytes.len() - 1,
        });
    }
    Ok(())
}

/// A data category: what kind of personal data a field holds, as a dotted key in the style of
/// fideslang (`user.contact.email`, `user.location.precise`, `user.financial.bank_account`).
///
/// Categories form a hierarchy by prefix: `user.contact` contains `user.contact.email`. This type
/// is only the validated key; which categories exist, and what each means (CCPA letters, DPV
/// terms), is `plenum-consent`'s vocabulary.
///
/// String form: the key itself; segments match `[a-z][a-z0-9_]*`, at most 128 bytes in all.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DataCategory(Cow<'static, str>);

impl DataCategory {
    /// Validates a category key built at run time.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] with [`NameKind::DataCategory`].
    pub fn new(key: impl Into<String>) -> Result<Self, Error> {
        let key = key.into();
        match validate(&key) {
            Ok(()) => Ok(Self(Cow::Owned(key))),
            Err(problem) => Err(Error::InvalidName {
                kind: NameKind::DataCategory,
                problem,
            }),
        }
    }

    /// Not public API: the target of [`data_category!`](crate::data_category), which validates
    /// in a `const` block first.
    #[doc(hidden)]
    pub const fn __from_validated_static(key: &'static str) -> Self {
        Self(Cow::Borrowed(key))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `self` is `other` or one of its descendants (`user.contact.email` is within
    /// `user.contact` and within `user`, not within `user.con`).
    pub fn is_within(&self, other: &DataCategory) -> bool {
        let (me, parent) = (self.as_str(), other.as_str());
        me == parent || (me.starts_with(parent) && me.as_bytes().get(parent.len()) == Some(&b'.'))
    }

    /// The segments, outermost first.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }
}

/// Not public API: the const validator behind [`data_category!`](crate::data_category).
#[doc(hidden)]
pub const fn __is_valid_category(key: &str) -> bool {
    validate(key).is_ok()
}

/// A [`DataCategory`] from a string literal, checked at compile time.
///
/// ```
/// const EMAIL: plenum_core::DataCategory = plenum_core::data_category!("user.contact.email");
/// assert!(EMAIL.is_within(&plenum_core::data_category!("user.contact")));
/// ```
///
/// ```compile_fail
/// const BAD: plenum_core::DataCategory = plenum_core::data_category!("user..email");
/// ```
#[macro_export]
macro_rules! data_category {
    ($key:literal) => {
        const {
            assert!(
                $crate::__is_valid_category($key),
                "invalid data category key"
            );
            $crate::DataCategory::__from_validated_static($key)
        }
    };
}

impl fmt::Display for DataCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for DataCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataCategory({:?})", self.as_str())
    }
}

impl FromStr for DataCategory {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::new(s)
    }
}

impl serde::Serialize for DataCategory {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for DataCategory {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
        Self::new(s.into_owned()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_keys_and_hierarchy() {
        let email = DataCategory::new("user.contact.email").unwrap();
        assert!(email.is_within(&DataCategory::new("user.contact").unwrap()));
        assert!(email.is_within(&DataCategory::new("user").unwrap()));
        assert!(email.is_within(&email.clone()));
        assert!(!email.is_within(&DataCategory::new("user.con").unwrap()));
        assert!(!DataCategory::new("user").unwrap().is_within(&email));
        assert_eq!(
            email.segments().collect::<Vec<_>>(),
            ["user", "contact", "email"]
        );
        const PRECISE: DataCategory = crate::data_category!("user.location.precise");
        assert_eq!(PRECISE.to_string(), "user.location.precise");
    }

    #[test]
    fn invalid_keys_say_where() {
        let problem = |s: &str| match DataCategory::new(s) {
            Err(Error::InvalidName {
                kind: NameKind::DataCategory,
                problem,
            }) => problem,
            other => panic!("{s:?}: {other:?}"),
        };
        assert_eq!(problem(""), NameProblem::Empty);
        assert_eq!(problem("User.email"), NameProblem::BadStart);
        assert_eq!(problem(".user"), NameProblem::BadStart);
        assert_eq!(
            problem("user..email"),
            NameProblem::UnexpectedCharacter { position: 5 }
        );
        assert_eq!(
            problem("user."),
            NameProblem::UnexpectedCharacter { position: 4 }
        );
        assert_eq!(
            problem("user.e-mail"),
            NameProblem::UnexpectedCharacter { position: 6 }
        );
        assert_eq!(
            problem("user.1st"),
            NameProblem::UnexpectedCharacter { position: 5 }
        );
        assert_eq!(
            problem(&"a".repeat(129)),
            NameProblem::TooLong { found: 129 }
        );
    }

    #[test]
    fn serde_validates() {
        let c: DataCategory = serde_json::from_str("\"user.financial\"").unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"user.financial\"");
        assert!(serde_json::from_str::<DataCategory>("\"user financial\"").is_err());
    }
}
