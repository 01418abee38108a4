//! The purposes Plenum's privacy policy allows, and nothing else.

use core::fmt;

use crate::basis::LegalBasis;
use crate::error::Error;

/// The policy clause a purpose belongs to.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PurposeGroup {
    /// "To provide the service."
    ProvideService,
    /// "To improve the service, with aggregated, anonymised data only."
    Improve,
    /// "For security."
    Security,
    /// "For compliance."
    Compliance,
    /// "To communicate with you about the service."
    Communications,
    /// "Marketing, only with your consent."
    Marketing,
}

impl PurposeGroup {
    /// A stable lower-case key.
    pub const fn key(self) -> &'static str {
        match self {
            Self::ProvideService => "service",
            Self::Improve => "improve",
            Self::Security => "security",
            Self::Compliance => "compliance",
            Self::Communications => "communications",
            Self::Marketing => "marketing",
        }
    }
}

/// What consent a purpose needs.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsentRequirement {
    /// None: another legal basis applies.
    None,
    /// Consent (GDPR Art. 6(1)(a)), per purpose version and, for marketing, per channel.
    Consent,
    /// Explicit consent (Art. 9(2)(a) standard): a separate, affirmative statement, for sensitive
    /// data such as precise location.
    Explicit,
}

/// A marketing or messaging channel; consent to marketing is given per channel.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// Email.
    Email,
    /// SMS (in the US also subject to TCPA written consent).
    Sms,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Self; 2] = [Self::Email, Self::Sms];

    /// Looks a channel up by key.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownConsentTerm`].
    pub fn from_key(key: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|c| c.key() == key)
            .ok_or(Error::UnknownConsentTerm("channel"))
    }

    /// A stable lower-case key.
    pub const fn key(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
        }
    }
}

/// Why personal data may be processed: the closed set of purposes in Plenum's privacy policy.
///
/// Purposes the policy never allows (selling or sharing data, third-party advertising,
/// personalisation, training AI systems) do not exist here, so no code can claim them. A
/// downstream crate cannot add one either: a new purpose is a reviewed change to this crate, with
/// its mapping, its version and its row in the default policy.
///
/// Each purpose has a stable key (`service.scheduling`), a version (consent given to an older
/// version does not count), a fideslang data use, a W3C DPV purpose and a default legal basis.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Purpose {
    /// Booking and managing appointments.
    Scheduling,
    /// Sending technicians to jobs (imprecise location only).
    Dispatch,
    /// Tracking technicians' precise location while on duty: explicit consent only.
    TechnicianLocation,
    /// Invoicing and payments.
    Billing,
    /// Customer support.
    Support,
    /// Signing users in.
    Authentication,
    /// Improving the service from aggregated, anonymised data.
    ImproveAggregated,
    /// Protecting the service and its users.
    SecurityProtection,
    /// Detecting and preventing fraud.
    FraudPrevention,
    /// Meeting a legal obligation.
    LegalObligation,
    /// Keeping financial records for the statutory period (seven years).
    FinancialRecords,
    /// Answering data-subject requests (access, export, erasure, ...).
    RightsFulfilment,
    /// Keeping the audit log.
    Audit,
    /// Preserving data under a legal hold.
    LegalHold,
    /// Service messages (appointment confirmations, invoices).
    TransactionalCommunications,
    /// Marketing by email: consent only.
    MarketingEmail,
    /// Marketing by SMS: consent only.
    MarketingSms,
}

impl Purpose {
    /// Every purpose, in declaration order.
    pub const ALL: [Self; 17] = [
        Self::Scheduling,
        Self::Dispatch,
        Self::TechnicianLocation,
        Self::Billing,
        Self::Support,
        Self::Authentication,
        Self::ImproveAggregated,
        Self::SecurityProtection,
        Self::FraudPrevention,
        Self::LegalObligation,
        Self::FinancialRecords,
        Self::RightsFulfilment,
        Self::Audit,
        Self::LegalHold,
        Self::TransactionalCommunications,
        Self::MarketingEmail,
        Self::MarketingSms,
    ];

    /// The stable key, as stored in consent records and audit events.
    pub const fn key(self) -> &'static str {
        self.row().key
    }

    /// The purpose's version. Bumping it (because what the purpose covers changed) invalidates
    /// every consent given to an earlier version.
    pub const fn version(self) -> u16 {
        self.row().version
    }

    /// The clause of the policy it belongs to.
    pub const fn group(self) -> PurposeGroup {
        self.row().group
    }

    /// The fideslang data use it maps to.
    pub const fn fideslang_data_use(self) -> &'static str {
        self.row().fideslang
    }

    /// The W3C DPV purpose it maps to (an IRI).
    pub const fn dpv_purpose(self) -> &'static str {
        self.row().dpv
    }

    /// The legal basis the default policy uses.
    pub const fn default_legal_basis(self) -> LegalBasis {
        self.row().basis
    }

    /// Whether the purpose may see aggregates only (counts per group, with small groups
    /// suppressed), never rows, record ids or subject ids: the privacy policy says product
    /// improvement uses aggregated or anonymised data only.
    pub const fn aggregate_only(self) -> bool {
        matches!(self, Self::ImproveAggregated)
    }

    /// What consent it needs.
    pub const fn consent(self) -> ConsentRequirement {
        match self.row().basis {
            LegalBasis::Consent => ConsentRequirement::Consent,
            LegalBasis::ExplicitConsent => ConsentRequirement::Explicit,
            _ => ConsentRequirement::None,
        }
    }

    /// The channel, for purposes whose consent is per channel.
    pub const fn channel(self) -> Option<Channel> {
        match self {
            Self::MarketingEmail => Some(Channel::Email),
            Self::MarketingSms => Some(Channel::Sms),
            _ => None,
        }
    }

    /// A human-readable description, for the record of processing.
    pub const fn description(self) -> &'static str {
        self.row().description
    }

    /// Looks a purpose up by its key.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownPurpose`] (the key is not echoed).
    pub fn from_key(key: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|p| p.key() == key)
            .ok_or(Error::UnknownPurpose)
    }

    const fn row(self) -> &'static PurposeRow {
        match self {
            Self::Scheduling => &ROWS[0],
            Self::Dispatch => &ROWS[1],
            Self::TechnicianLocation => &ROWS[2],
            Self::Billing => &ROWS[3],
            Self::Support => &ROWS[4],
            Self::Authentication => &ROWS[5],
            Self::ImproveAggregated => &ROWS[6],
            Self::SecurityProtection => &ROWS[7],
            Self::FraudPrevention => &ROWS[8],
            Self::LegalObligation => &ROWS[9],
            Self::FinancialRecords => &ROWS[10],
            Self::RightsFulfilment => &ROWS[11],
            Self::Audit => &ROWS[12],
            Self::LegalHold => &ROWS[13],
            Self::TransactionalCommunications => &ROWS[14],
            Self::MarketingEmail => &ROWS[15],
            Self::MarketingSms => &ROWS[16],
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

impl serde::Serialize for Purpose {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.key())
    }
}

impl<'de> serde::Deserialize<'de> for Purpose {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let key = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::from_key(&key).map_err(serde::de::Error::custom)
    }
}

struct PurposeRow {
    key: &'static str,
    version: u16,
    group: PurposeGroup,
    fideslang: &'static str,
    dpv: &'static str,
    basis: LegalBasis,
    description: &'static str,
}

#[cfg(test)]
const DPV: &str = "https://w3id.org/dpv#";

macro_rules! dpv {
    ($term:literal) => {
        concat!("https://w3id.org/dpv#", $term)
    };
}

/// The purpose table, in `Purpose::ALL` order. Mappings follow fideslang's default taxonomy and
/// DPV 2.x (research note `consent-audit.md`, section 2.1).
const ROWS: [PurposeRow; 17] = [
    PurposeRow {
        key: "service.scheduling",
        version: 1,
        group: PurposeGroup::ProvideService,
        fideslang: "essential.service.operations",
        dpv: dpv!("ServiceProvision"),
        basis: LegalBasis::Contract,
        description: "Booking and managing service appointments",
    },
    PurposeRow {
        key: "service.dispatch",
        version: 1,
        group: PurposeGroup::ProvideService,
        fideslang: "essential.service.operations",
        dpv: dpv!("ServiceProvision"),
        basis: LegalBasis::Contract,
        description: "Sending technicians to jobs",
    },
    PurposeRow {
        key: "service.technician_location",
        version: 1,
        group: PurposeGroup::ProvideService,
        fideslang: "essential.service.operations",
        dpv: dpv!("ServiceProvision"),
        basis: LegalBasis::ExplicitConsent,
        description: "Tracking technicians' precise location while on duty",
    },
    PurposeRow {
        key: "service.billing",
        version: 1,
        group: PurposeGroup::ProvideService,
        fideslang: "essential.service.payment_processing",
        dpv: dpv!("PaymentManagement"),
        basis: LegalBasis::Contract,
        description: "Invoicing and taking payments",
    },
    PurposeRow {
        key: "service.support",
        version: 1,
        group: PurposeGroup::ProvideService,
        fideslang: "essential.service.operations.support",
        dpv: dpv!("CustomerCare"),
        basis: LegalBasis::Contract,
        description: "Helping customers and users",
    },
    PurposeRow {
        key: "service.authentication",
        version: 1,
        group: PurposeGroup::ProvideService,
        fideslang: "essential.service.authentication",
        dpv: dpv!("IdentityAuthentication"),
        basis: LegalBasis::Contract,
        description: "Signing users in",
    },
    PurposeRow {
        key: "improve.aggregated",
        version: 1,
        group: PurposeGroup::Improve,
        fideslang: "functional.service.improve",
        dpv: dpv!("ImproveExistingProductsAndServices"),
        basis: LegalBasis::LegitimateInterests,
        description: "Improving the service from aggregated, anonymised data",
    },
    PurposeRow {
        key: "security.protection",
        version: 1,
        group: PurposeGroup::Security,
        fideslang: "essential.service.security",
        dpv: dpv!("EnforceSecurity"),
        basis: LegalBasis::LegitimateInterests,
        description: "Protecting the service and its users",
    },
    PurposeRow {
        key: "security.fraud",
        version: 1,
        group: PurposeGroup::Security,
        fideslang: "essential.fraud_detection",
        dpv: dpv!("FraudPreventionAndDetection"),
        basis: LegalBasis::LegitimateInterests,
        description: "Detecting and preventing fraud",
    },
    PurposeRow {
        key: "compliance.legal_obligation",
        version: 1,
        group: PurposeGroup::Compliance,
        fideslang: "essential.legal_obligation",
        dpv: dpv!("LegalCompliance"),
        basis: LegalBasis::LegalObligation,
        description: "Meeting a legal obligation",
    },
    PurposeRow {
        key: "compliance.financial_records",
        version: 1,
        group: PurposeGroup::Compliance,
        fideslang: "essential.legal_obligation",
        dpv: dpv!("RecordManagement"),
        basis: LegalBasis::LegalObligation,
        description: "Keeping financial records for seven years",
    },
    PurposeRow {
        key: "compliance.rights_fulfilment",
        version: 1,
        group: PurposeGroup::Compliance,
        fideslang: "essential.legal_obligation",
        dpv: dpv!("RightsFulfilment"),
        basis: LegalBasis::LegalObligation,
        description: "Answering data-subject requests",
    },
    PurposeRow {
        key: "compliance.audit",
        version: 1,
        group: PurposeGroup::Compliance,
        fideslang: "essential.service.security",
        dpv: dpv!("RecordManagement"),
        basis: LegalBasis::LegalObligation,
        description: "Keeping the audit log of data access",
    },
    PurposeRow {
        key: "compliance.legal_hold",
        version: 1,
        group: PurposeGroup::Compliance,
        fideslang: "essential.legal_obligation",
        dpv: dpv!("DisputeManagement"),
        basis: LegalBasis::LegalObligation,
        description: "Preserving data under a legal hold",
    },
    PurposeRow {
        key: "communications.transactional",
        version: 1,
        group: PurposeGroup::Communications,
        fideslang: "essential.service.notifications",
        dpv: dpv!("CommunicationForCustomerCare"),
        basis: LegalBasis::Contract,
        description: "Service messages such as confirmations and invoices",
    },
    PurposeRow {
        key: "marketing.email",
        version: 1,
        group: PurposeGroup::Marketing,
        fideslang: "marketing.communications.email",
        dpv: dpv!("DirectMarketing"),
        basis: LegalBasis::Consent,
        description: "Marketing by email",
    },
    PurposeRow {
        key: "marketing.sms",
        version: 1,
        group: PurposeGroup::Marketing,
        fideslang: "marketing.communications.sms",
        dpv: dpv!("DirectMarketing"),
        basis: LegalBasis::Consent,
        description: "Marketing by SMS",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_in_declaration_order_and_keys_are_unique() {
        let mut keys: Vec<&str> = Purpose::ALL.iter().map(|p| p.key()).collect();
        for (p, row) in Purpose::ALL.iter().zip(ROWS.iter()) {
            assert_eq!(p.key(), row.key);
            assert_eq!(Purpose::from_key(row.key), Ok(*p));
            assert!(p.dpv_purpose().starts_with(DPV));
            assert!(row.key.starts_with(p.group().key()), "{}", row.key);
        }
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), Purpose::ALL.len());
    }

    #[test]
    fn consent_follows_the_policy() {
        for p in Purpose::ALL {
            let expected = match p {
                Purpose::MarketingEmail | Purpose::MarketingSms => ConsentRequirement::Consent,
                Purpose::TechnicianLocation => ConsentRequirement::Explicit,
                _ => ConsentRequirement::None,
            };
            assert_eq!(p.consent(), expected, "{p}");
        }
        assert_eq!(Purpose::MarketingSms.channel(), Some(Channel::Sms));
        assert_eq!(
            Purpose::from_key("marketing.advertising"),
            Err(Error::UnknownPurpose)
        );
        assert_eq!(Purpose::from_key("sales"), Err(Error::UnknownPurpose));
    }

    #[test]
    fn purposes_serialize_as_their_keys() {
        let json = serde_json::to_string(&Purpose::MarketingEmail).unwrap_or_default();
        assert_eq!(json, "\"marketing.email\"");
        let back: Result<Purpose, _> = serde_json::from_str("\"service.billing\"");
        assert_eq!(back.ok(), Some(Purpose::Billing));
        assert!(serde_json::from_str::<Purpose>("\"train_ai_system\"").is_err());
    }
}
