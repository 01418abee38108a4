//! Opaque id newtypes (tenant, subject, record, actor, request): generated as UUIDv7, parsed
//! only from the one canonical form, never built from a bare `Uuid` except through the
//! greppable `from_trusted_uuid`.

use core::fmt;
use core::str::FromStr;

use uuid::Uuid;

use crate::error::{Error, IdProblem};

/// Which id type a value or an error is about.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// [`TenantId`].
    Tenant,
    /// [`SubjectId`].
    Subject,
    /// [`RecordId`].
    Record,
    /// [`ActorId`].
    Actor,
    /// [`RequestId`].
    Request,
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tenant => "tenant id",
            Self::Subject => "subject id",
            Self::Record => "record id",
            Self::Actor => "actor id",
            Self::Request => "request id",
        })
    }
}

/// Positions of the hyphens in the canonical 8-4-4-4-12 form.
const HYPHENS: [usize; 4] = [8, 13, 18, 23];

/// Parses the canonical hyphenated form only (either hex case), rejecting the nil UUID.
///
/// `Uuid::parse_str` alone also accepts the simple, braced and URN forms; an id that has several
/// spellings makes string comparison, logging and cache keys disagree, so we accept exactly one.
fn parse_canonical(kind: IdKind, s: &str) -> Result<Uuid, Error> {
    let fail = |problem| Error::InvalidId { kind, problem };
    if s.is_empty() {
        return Err(fail(IdProblem::Empty));
    }
    if s.len() != 36 {
        return Err(fail(IdProblem::WrongLength { found: s.len() }));
    }
    for (position, byte) in s.bytes().enumerate() {
        let ok = if HYPHENS.contains(&position) {
            byte == b'-'
        } else {
            byte.is_ascii_hexdigit()
        };
        if !ok {
            return Err(fail(IdProblem::UnexpectedCharacter { position }));
        }
    }
    // The shape check above admits only strings that `try_parse` accepts; map its error anyway
    // rather than trusting that reasoning with an unwrap.
    let uuid =
        Uuid::try_parse(s).map_err(|_| fail(IdProblem::UnexpectedCharacter { position: 0 }))?;
    if uuid.is_nil() {
        return Err(fail(IdProblem::Nil));
    }
    Ok(uuid)
}

macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident, $kind:expr, $example:literal) => {
        $(#[$meta])*
        ///
        /// String form (`Display`, `FromStr`, serde): the lowercase hyphenated UUID, for example
        #[doc = concat!("`", $example, "`.")]
        /// Parsing accepts only that form (hex digits in either case) and rejects the nil UUID.
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered (UUIDv7) id.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps a UUID read back from storage that Plenum itself wrote.
            ///
            /// This is the only way from a bare `Uuid` to this id. It does not re-check the value
            /// (the database column is typed and constrained); use `FromStr` for untrusted input.
            pub const fn from_trusted_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID inside, for binding as a query parameter or deriving keys.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// The 16 bytes of the UUID, big-endian as in RFC 9562.
            pub const fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }

            /// Which id type this is.
            pub const fn kind() -> IdKind {
                $kind
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self, Error> {
                parse_canonical($kind, s).map(Self)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut buf = Uuid::encode_buffer();
                serializer.serialize_str(self.0.hyphenated().encode_lower(&mut buf))
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl serde::de::Visitor<'_> for Visitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "a {} as a hyphenated UUID string", $kind)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                deserializer.deserialize_str(Visitor)
            }
        }
    };
}

define_id!(
    /// A tenant: one HVAC business and everything it owns. The root of every isolation boundary.
    TenantId,
    IdKind::Tenant,
    "0192f0c4-5a3e-7b21-9c4d-3e2f1a0b9c8d"
);
define_id!(
    /// A data subject: the natural person some personal data is about (a homeowner, a
    /// technician). Keys, exports and erasure are per subject.
    SubjectId,
    IdKind::Subject,
    "0192f0c4-5a3e-7b21-9c4d-3e2f1a0b9c8e"
);
define_id!(
    /// One stored record (a row). Generated by the library before insert so ciphertexts can be
    /// bound to it.
    RecordId,
    IdKind::Record,
    "0192f0c4-5a3e-7b21-9c4d-3e2f1a0b9c8f"
);
define_id!(
    /// Whoever acts: an account user, a service, a job. See [`Actor`](crate::Actor).
    ActorId,
    IdKind::Actor,
    "0192f0c4-5a3e-7b21-9c4d-3e2f1a0b9c90"
);
define_id!(
    /// Correlates everything one request or job did, across logs, traces and audit events.
    RequestId,
    IdKind::Request,
    "0192f0c4-5a3e-7b21-9c4d-3e2f1a0b9c91"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn problem(s: &str) -> IdProblem {
        match s.parse::<TenantId>() {
            Err(Error::InvalidId { kind, problem }) => {
                assert_eq!(kind, IdKind::Tenant);
                problem
            }
            other => panic!("expected InvalidId, got {other:?}"),
        }
    }

    #[test]
    fn string_round_trip() {
        let id = RecordId::generate();
        let s = id.to_string();
        assert_eq!(s.len(), 36);
        assert_eq!(s, s.to_lowercase());
        assert_eq!(s.parse::<RecordId>().unwrap(), id);
    }

    #[test]
    fn uppercase_hex_is_accepted_and_displayed_lowercase() {
        let id: SubjectId = "0192F0C4-5A3E-7B21-9C4D-3E2F1A0B9C8E".parse().unwrap();
        assert_eq!(id.to_string(), "0192f0c4-5a3e-7b21-9c4d-3e2f1a0b9c8e");
    }

    #[test]
    fn serde_round_trip_uses_the_string_form() {
        let id = TenantId::generate();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<TenantId>(&json).unwrap(), id);
    }

    #[test]
    fn serde_rejects_malformed_ids_with_the_parse_error() {
        let err = serde_json::from_str::<TenantId>("\"not-a-uuid\"").unwrap_err();
        assert!(err.to_string().contains("invalid tenant id"), "{err}");
        assert!(serde_json::from_str::<TenantId>("42").is_err());
        assert!(serde_json::from_str::<TenantId>("null").is_err());
    }

    #[test]
    fn rejects_empty() {
        assert_eq!(problem(""), IdProblem::Empty);
    }

    #[test]
    fn rejects_wrong_length() {
        assert_eq!(problem("0192f0c4"), IdProblem::WrongLength { found: 8 });
        // The simple (unhyphenated) form is 32 characters and is refused.
        assert_eq!(
            problem("0192f0c45a3e7b219c4d3e2f1a0b9c8d"),
            IdProblem::WrongLength { found: 32 }
        );
        // Braced and URN forms are refused too.
        assert_eq!(
            problem("{0192f0c4-5a3e-7b21-9c4d-3e2f1a0b9c8d}"),
            IdProblem::WrongLength { found: 38 }
        );
        // Trailing whitespace is not trimmed.
        assert_eq!(
            problem("0192f0c4-5a3e-7b21-9c4d-3e2f1a0b9c8d "),
            IdProblem::WrongLength { found: 37 }
        );
    }

    #[test]
    fn rejects_non_hex_and_misplaced_hyphens() {
        assert_eq!(
            problem("0192f0c4-5a3e-7b21-9c4d-3e2f1a0b9c8g"),
            IdProblem::UnexpectedCharacter { position: 35 }
        );
        assert_eq!(
            problem("0192f0c45-a3e-7b21-9c4d-3e2f1a0b9c8d"),
            IdProblem::UnexpectedCharacter { position: 8 }
        );
        // A multi-byte character of the right byte length is not hex.
        assert_eq!(
            problem("é192f0c4-5a3e-7b21-9c4d-3e2f1a0b9c8"),
            IdProblem::UnexpectedCharacter { position: 0 }
        );
    }

    #[test]
    fn rejects_nil() {
        assert_eq!(
            problem("00000000-0000-0000-0000-000000000000"),
            IdProblem::Nil
        );
    }

    #[test]
    fn error_messages_name_the_id_but_never_echo_input() {
        let secret_looking = "jane.doe@example.com-padding-to-36ch";
        assert_eq!(secret_looking.len(), 36);
        let err = secret_looking.parse::<RecordId>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidId);
        let msg = err.to_string();
        assert!(msg.starts_with("invalid record id"), "{msg}");
        assert!(!msg.contains("jane"), "{msg}");
        assert!(!format!("{err:?}").contains("jane"));
    }

    #[test]
    fn generated_ids_are_version_7_and_ordered() {
        let ids: Vec<RecordId> = (0..1000).map(|_| RecordId::generate()).collect();
        for id in &ids {
            assert_eq!(id.as_uuid().get_version_num(), 7);
        }
        // uuid's v7 generator keeps a monotonic counter within a millisecond, so ids generated in
        // sequence by one thread sort in generation order: what keeps B-tree inserts local.
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids);
        // And the string form sorts the same way as the value.
        let mut strings: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let expected = strings.clone();
        strings.sort();
        assert_eq!(strings, expected);
    }

    #[test]
    fn trusted_constructor_round_trips_the_uuid() {
        let uuid = Uuid::now_v7();
        let id = TenantId::from_trusted_uuid(uuid);
        assert_eq!(id.as_uuid(), &uuid);
        assert_eq!(id.as_bytes(), uuid.as_bytes());
        assert_eq!(TenantId::kind(), IdKind::Tenant);
    }

    proptest::proptest! {
        #[test]
        fn any_non_nil_uuid_round_trips(bytes in proptest::array::uniform16(0u8..)) {
            let uuid = Uuid::from_bytes(bytes);
            proptest::prop_assume!(!uuid.is_nil());
            let id = SubjectId::from_trusted_uuid(uuid);
            proptest::prop_assert_eq!(id.to_string().parse::<SubjectId>().unwrap(), id);
        }

        #[test]
        fn parsing_arbitrary_strings_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<TenantId>();
        }
    }
}
