//! Legal bases (GDPR Art. 6(1)) and the data-subject rights each leaves in force.

use core::fmt;

use crate::error::Error;

/// A legal basis for processing (GDPR Art. 6(1)).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LegalBasis {
    /// (a) consent.
    Consent,
    /// (a) consent, given explicitly (the Art. 9(2)(a) standard, for sensitive data).
    ExplicitConsent,
    /// (b) performance of a contract.
    Contract,
    /// (c) a legal obligation.
    LegalObligation,
    /// (d) vital interests.
    VitalInterests,
    /// (e) a task in the public interest (not used by Plenum; present for completeness of the
    /// data map).
    PublicTask,
    /// (f) legitimate interests.
    LegitimateInterests,
}

/// A right of the data subject (GDPR Arts. 7(3), 15-21).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Right {
    /// Art. 15: access.
    Access,
    /// Art. 16: rectification.
    Rectification,
    /// Art. 17: erasure.
    Erasure,
    /// Art. 18: restriction of processing.
    Restriction,
    /// Art. 20: portability.
    Portability,
    /// Art. 21: objection.
    Objection,
    /// Art. 7(3): withdrawal of consent.
    WithdrawConsent,
}

impl Right {
    /// Looks a right up by key.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownConsentTerm`] for a key that names none.
    pub fn from_key(key: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|r| r.key() == key)
            .ok_or(Error::UnknownConsentTerm("right"))
    }

    /// Every right.
    pub const ALL: [Self; 7] = [
        Self::Access,
        Self::Rectification,
        Self::Erasure,
        Self::Restriction,
        Self::Portability,
        Self::Objection,
        Self::WithdrawConsent,
    ];

    /// A stable key.
    pub const fn key(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Rectification => "rectification",
            Self::Erasure => "erasure",
            Self::Restriction => "restriction",
            Self::Portability => "portability",
            Self::Objection => "objection",
            Self::WithdrawConsent => "withdraw_consent",
        }
    }

    /// The GDPR article.
    pub const fn article(self) -> &'static str {
        match self {
            Self::Access => "Art. 15",
            Self::Rectification => "Art. 16",
            Self::Erasure => "Art. 17",
            Self::Restriction => "Art. 18",
            Self::Portability => "Art. 20",
            Self::Objection => "Art. 21",
            Self::WithdrawConsent => "Art. 7(3)",
        }
    }
}

impl LegalBasis {
    /// Every basis.
    pub const ALL: [Self; 7] = [
        Self::Consent,
        Self::ExplicitConsent,
        Self::Contract,
        Self::LegalObligation,
        Self::VitalInterests,
        Self::PublicTask,
        Self::LegitimateInterests,
    ];

    /// A stable key.
    pub const fn key(self) -> &'static str {
        match self {
            Self::Consent => "consent",
            Self::ExplicitConsent => "explicit_consent",
            Self::Contract => "contract",
            Self::LegalObligation => "legal_obligation",
            Self::VitalInterests => "vital_interests",
            Self::PublicTask => "public_task",
            Self::LegitimateInterests => "legitimate_interests",
        }
    }

    /// The GDPR provision.
    pub const fn article(self) -> &'static str {
        match self {
            Self::Consent => "Art. 6(1)(a)",
            Self::ExplicitConsent => "Art. 6(1)(a), Art. 9(2)(a)",
            Self::Contract => "Art. 6(1)(b)",
            Self::LegalObligation => "Art. 6(1)(c)",
            Self::VitalInterests => "Art. 6(1)(d)",
            Self::PublicTask => "Art. 6(1)(e)",
            Self::LegitimateInterests => "Art. 6(1)(f)",
        }
    }

    /// fideslang's `legal_basis_for_processing` string.
    pub const fn fideslang(self) -> &'static str {
        match self {
            Self::Consent | Self::ExplicitConsent => "Consent",
            Self::Contract => "Contract",
            Self::LegalObligation => "Legal obligations",
            Self::VitalInterests => "Vital interests",
            Self::PublicTask => "Public interest",
            Self::LegitimateInterests => "Legitimate interests",
        }
    }

    /// The W3C DPV GDPR-extension IRI.
    pub const fn dpv(self) -> &'static str {
        match self {
            Self::Consent => "https://w3id.org/dpv/legal/eu/gdpr#A6-1-a",
            Self::ExplicitConsent => "https://w3id.org/dpv/legal/eu/gdpr#A9-2-a",
            Self::Contract => "https://w3id.org/dpv/legal/eu/gdpr#A6-1-b",
            Self::LegalObligation => "https://w3id.org/dpv/legal/eu/gdpr#A6-1-c",
            Self::VitalInterests => "https://w3id.org/dpv/legal/eu/gdpr#A6-1-d",
            Self::PublicTask => "https://w3id.org/dpv/legal/eu/gdpr#A6-1-e",
            Self::LegitimateInterests => "https://w3id.org/dpv/legal/eu/gdpr#A6-1-f",
        }
    }

    /// Whether this basis is consent (of either kind).
    pub const fn is_consent(self) -> bool {
        matches!(self, Self::Consent | Self::ExplicitConsent)
    }

    /// Whether the right applies to data processed under this basis (GDPR; DPV's
    /// legal-basis/rights mapping): no erasure or portability for legal-obligation and
    /// public-task data, portability only for consent and contract, objection only for
    /// legitimate interests and public task, withdrawal only for consent.
    pub const fn grants(self, right: Right) -> bool {
        match right {
            Right::Access | Right::Rectification | Right::Restriction => true,
            Right::Erasure => !matches!(self, Self::LegalObligation | Self::PublicTask),
            Right::Portability => {
                matches!(self, Self::Consent | Self::ExplicitConsent | Self::Contract)
            }
            Right::Objection => matches!(self, Self::LegitimateInterests | Self::PublicTask),
            Right::WithdrawConsent => self.is_consent(),
        }
    }

    /// The rights in force for data processed under this basis.
    pub fn rights(self) -> Vec<Right> {
        Right::ALL.into_iter().filter(|r| self.grants(*r)).collect()
    }

    /// Looks a basis up by key.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownLegalBasis`].
    pub fn from_key(key: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|b| b.key() == key)
            .ok_or(Error::UnknownLegalBasis)
    }
}

impl fmt::Display for LegalBasis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

impl serde::Serialize for LegalBasis {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.key())
    }
}

impl<'de> serde::Deserialize<'de> for LegalBasis {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let key = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::from_key(&key).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Right {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights_follow_the_basis() {
        use LegalBasis::*;
        // The examples the issue names.
        assert!(!LegalObligation.grants(Right::Erasure));
        assert!(!LegitimateInterests.grants(Right::Portability));
        assert!(LegitimateInterests.grants(Right::Objection));
        assert!(!Contract.grants(Right::Objection));
        assert!(Contract.grants(Right::Portability));
        assert!(Consent.grants(Right::WithdrawConsent));
        assert!(!Consent.grants(Right::Objection));
        assert!(ExplicitConsent.grants(Right::Erasure));
        for basis in LegalBasis::ALL {
            assert!(
                basis.grants(Right::Access),
                "{basis}: access always applies"
            );
            assert_eq!(LegalBasis::from_key(basis.key()), Ok(basis));
        }
        assert_eq!(
            LegalObligation.rights(),
            vec![Right::Access, Right::Rectification, Right::Restriction]
        );
    }
}

/// Why a person's data may outlive their erasure (GDPR Art. 17(3)): declared with
/// `#[plenum(pii = "user.*", owner = "tenant", retain = "<key>")]` on a field sealed under the
/// tenant key, and shown in the data map. Without one, such a field does not compile.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RetainGround {
    /// Art. 17(3)(b): a legal obligation to keep it (invoices under tax law).
    LegalObligation,
    /// Art. 17(3)(e): the establishment, exercise or defence of legal claims.
    LegalClaims,
}

impl RetainGround {
    /// Every ground.
    pub const ALL: [Self; 2] = [Self::LegalObligation, Self::LegalClaims];

    /// The stable key, as written in `retain = "..."`.
    pub const fn key(self) -> &'static str {
        match self {
            Self::LegalObligation => "legal_obligation",
            Self::LegalClaims => "legal_claims",
        }
    }

    /// The GDPR provision.
    pub const fn article(self) -> &'static str {
        match self {
            Self::LegalObligation => "Art. 17(3)(b)",
            Self::LegalClaims => "Art. 17(3)(e)",
        }
    }
}
