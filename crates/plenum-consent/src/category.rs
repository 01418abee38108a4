//! Data categories Plenum stores, with their CCPA categories, and the kinds of data subject.

use core::fmt;

use plenum_core::DataCategory;

use crate::error::Error;

/// A CCPA category of personal information (Cal. Civ. Code 1798.140(v)(1), and (ae) for
/// sensitive personal information).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CcpaCategory {
    /// A: identifiers.
    Identifiers,
    /// B: customer records (1798.80(e)).
    CustomerRecords,
    /// D: commercial information.
    Commercial,
    /// F: internet or network activity.
    InternetActivity,
    /// G: geolocation data.
    Geolocation,
    /// H: audio, electronic, visual or similar information.
    AudioVisual,
    /// I: professional or employment-related information.
    Professional,
    /// L: sensitive personal information.
    Sensitive,
}

impl CcpaCategory {
    /// The letter the statute uses.
    pub const fn letter(self) -> char {
        match self {
            Self::Identifiers => 'A',
            Self::CustomerRecords => 'B',
            Self::Commercial => 'D',
            Self::InternetActivity => 'F',
            Self::Geolocation => 'G',
            Self::AudioVisual => 'H',
            Self::Professional => 'I',
            Self::Sensitive => 'L',
        }
    }
}

impl serde::Serialize for CcpaCategory {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_char(self.letter())
    }
}

/// A data category Plenum knows: its fideslang-style key, a description, its CCPA categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownCategory {
    /// The key (`user.contact.email`).
    pub key: &'static str,
    /// What it holds.
    pub description: &'static str,
    /// Its CCPA categories.
    pub ccpa: &'static [CcpaCategory],
}

use CcpaCategory as C;

/// The categories of Plenum's data, most specific last within a prefix. Lookups take the longest
/// known prefix, so `user.contact.address.street` is described by `user.contact.address`.
pub const KNOWN_CATEGORIES: &[KnownCategory] = &[
    KnownCategory {
        key: "system",
        description: "System data not about a person",
        ccpa: &[],
    },
    KnownCategory {
        key: "system.operations",
        description: "Operational data: timestamps, states, counters",
        ccpa: &[],
    },
    KnownCategory {
        key: "user",
        description: "Data about a person",
        ccpa: &[C::Identifiers],
    },
    KnownCategory {
        key: "user.name",
        description: "Names",
        ccpa: &[C::Identifiers, C::CustomerRecords],
    },
    KnownCategory {
        key: "user.unique_id",
        description: "Identifiers assigned to a person",
        ccpa: &[C::Identifiers],
    },
    KnownCategory {
        key: "user.contact",
        description: "Contact details",
        ccpa: &[C::Identifiers, C::CustomerRecords],
    },
    KnownCategory {
        key: "user.contact.email",
        description: "Email addresses",
        ccpa: &[C::Identifiers, C::CustomerRecords],
    },
    KnownCategory {
        key: "user.contact.phone_number",
        description: "Phone numbers",
        ccpa: &[C::Identifiers, C::CustomerRecords],
    },
    KnownCategory {
        key: "user.contact.address",
        description: "Postal and service addresses",
        ccpa: &[C::Identifiers, C::CustomerRecords],
    },
    KnownCategory {
        key: "user.authorization",
        description: "Credentials and access tokens",
        ccpa: &[C::Identifiers, C::Sensitive],
    },
    KnownCategory {
        key: "user.financial",
        description: "Amounts, invoices, payment instruments",
        ccpa: &[C::CustomerRecords, C::Commercial],
    },
    KnownCategory {
        key: "user.behavior.purchase_history",
        description: "Service history: jobs, equipment, agreements",
        ccpa: &[C::Commercial],
    },
    KnownCategory {
        key: "user.location",
        description: "Location",
        ccpa: &[C::Geolocation],
    },
    KnownCategory {
        key: "user.location.imprecise",
        description: "Coarse location: city, service zone",
        ccpa: &[C::Geolocation],
    },
    KnownCategory {
        key: "user.location.precise",
        description: "Precise location (GPS)",
        ccpa: &[C::Geolocation, C::Sensitive],
    },
    KnownCategory {
        key: "user.device",
        description: "Device identifiers and network data",
        ccpa: &[C::Identifiers, C::InternetActivity],
    },
    KnownCategory {
        key: "user.device.device_id",
        description: "Device and equipment identifiers",
        ccpa: &[C::Identifiers],
    },
    KnownCategory {
        key: "user.telemetry",
        description: "Usage telemetry",
        ccpa: &[C::InternetActivity],
    },
    KnownCategory {
        key: "user.content",
        description: "Content a person wrote or appears in",
        ccpa: &[C::AudioVisual],
    },
    KnownCategory {
        key: "user.content.private",
        description: "Private notes, messages, photos",
        ccpa: &[C::AudioVisual],
    },
    KnownCategory {
        key: "user.job_title",
        description: "Job titles and certifications",
        ccpa: &[C::Professional],
    },
    KnownCategory {
        key: "user.privacy_preferences",
        description: "Consents, objections, restrictions",
        ccpa: &[],
    },
];

/// The most specific known category `category` falls within, if any.
pub fn describe(category: &DataCategory) -> Option<&'static KnownCategory> {
    KNOWN_CATEGORIES
        .iter()
        .filter(|k| {
            DataCategory::new(k.key)
                .map(|known| category.is_within(&known))
                .unwrap_or(false)
        })
        .max_by_key(|k| k.key.len())
}

/// Whether `category` is personal data (anything under `user`).
pub fn is_personal(category: &DataCategory) -> bool {
    category.segments().next() == Some("user")
}

/// Who a row is about.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubjectKind {
    /// An owner or employee of the HVAC business who uses Plenum (Plenum is the controller).
    AccountUser,
    /// A technician of the business (the business is the controller, Plenum its processor).
    Technician,
    /// A homeowner or site contact the business serves.
    EndCustomer,
    /// A prospect in the business's pipeline.
    Lead,
    /// A contact at a supplier or distributor.
    VendorContact,
}

impl SubjectKind {
    /// Every kind.
    pub const ALL: [Self; 5] = [
        Self::AccountUser,
        Self::Technician,
        Self::EndCustomer,
        Self::Lead,
        Self::VendorContact,
    ];

    /// A stable key.
    pub const fn key(self) -> &'static str {
        match self {
            Self::AccountUser => "account_user",
            Self::Technician => "technician",
            Self::EndCustomer => "end_customer",
            Self::Lead => "lead",
            Self::VendorContact => "vendor_contact",
        }
    }

    /// fideslang's data subject key.
    pub const fn fideslang(self) -> &'static str {
        match self {
            Self::AccountUser | Self::EndCustomer => "customer",
            Self::Technician => "employee",
            Self::Lead => "prospect",
            Self::VendorContact => "supplier_vendor",
        }
    }

    /// Looks a kind up by key.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownSubjectKind`].
    pub fn from_key(key: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|k| k.key() == key)
            .ok_or(Error::UnknownSubjectKind)
    }
}

impl fmt::Display for SubjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

impl serde::Serialize for SubjectKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.key())
    }
}

impl<'de> serde::Deserialize<'de> for SubjectKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let key = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::from_key(&key).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plenum_core::data_category;

    #[test]
    fn every_known_key_is_valid_and_lookups_take_the_longest_prefix() {
        for k in KNOWN_CATEGORIES {
            assert!(DataCategory::new(k.key).is_ok(), "{}", k.key);
        }
        let precise = describe(&data_category!("user.location.precise")).map(|k| k.key);
        assert_eq!(precise, Some("user.location.precise"));
        let street = describe(&data_category!("user.contact.address.street")).map(|k| k.key);
        assert_eq!(street, Some("user.contact.address"));
        let sensitive = describe(&data_category!("user.location.precise"))
            .map(|k| k.ccpa.contains(&CcpaCategory::Sensitive));
        assert_eq!(sensitive, Some(true));
        assert!(describe(&data_category!("vendor.secret")).is_none());
        assert!(is_personal(&data_category!("user.name")));
        assert!(!is_personal(&data_category!("system.operations")));
    }
}
