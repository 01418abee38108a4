//! Why the purpose layer refused an operation: one closed list of reasons, each with the stable
//! string the audit log and error messages carry. Decides nothing itself; the gate and the
//! repository's screening stage pick the reason.

use core::fmt;

use plenum_consent::DenyReason;

/// Why an operation was refused by the purpose layer. The string form ([`Denial::as_str`]) is
/// stable: it is what audit events record and what [`Error::Denied`](crate::Error::Denied)
/// displays.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Denial {
    /// The policy's decision about the subject or purpose: consent missing, withdrawn,
    /// expired, outdated or not explicit; an objection; a restriction; a disabled purpose.
    Policy(DenyReason),
    /// The policy returned a decision this version of the library does not know.
    Undecided,
    /// The actor holds no role authorised for the purpose (or for unrestricted access).
    ActorNotAuthorised,
    /// An unrestricted grant was asked for without a reason.
    NoReason,
    /// A written, deleted or searched field's category is not one the purpose may touch.
    FieldNotInPurpose,
    /// A read would return a plain (unencrypted) field the purpose may not see.
    PlainFieldNotVisible,
    /// A view was asked for under a grant for another purpose.
    GrantForAnotherPurpose,
    /// A consent event that widens processing needs `compliance.rights_fulfilment`.
    ConsentEventNeedsRightsFulfilment,
    /// Erasure needs `compliance.rights_fulfilment`.
    ErasureNeedsRightsFulfilment,
    /// Data-subject requests are handled under `compliance.rights_fulfilment`.
    RequestNeedsRightsFulfilment,
    /// A subject export needs `compliance.rights_fulfilment`.
    ExportNeedsRightsFulfilment,
    /// Platform staff forwarded a data-subject request; only the tenant acts on it.
    RequestAnsweredByItsTenant,
    /// Legal holds are placed and lifted under `compliance.legal_hold`.
    HoldNeedsLegalHoldPurpose,
    /// A live legal hold covers the data: erasure (and retention) wait until it is lifted.
    UnderLegalHold,
    /// Retention is run under `compliance.legal_obligation`.
    RetentionNeedsLegalObligation,
    /// A key operation needs `security.protection`.
    KeyOperationNeedsSecurityProtection,
    /// The grant's request is older than the gate's grant lifetime.
    GrantExpired,
    /// The purpose sees aggregates only (`Repository::count`, `Repository::count_by`), never
    /// rows.
    AggregateOnly,
}

impl Denial {
    /// The stable key: `consent_missing`, `field_not_in_purpose`, `actor_not_authorised`, ...
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Policy(reason) => reason.key(),
            Self::Undecided => "undecided",
            Self::ActorNotAuthorised => "actor_not_authorised",
            Self::NoReason => "no_reason",
            Self::FieldNotInPurpose => "field_not_in_purpose",
            Self::PlainFieldNotVisible => "plain_field_not_visible",
            Self::GrantForAnotherPurpose => "grant_for_another_purpose",
            Self::ConsentEventNeedsRightsFulfilment => "consent_event_needs_rights_fulfilment",
            Self::ErasureNeedsRightsFulfilment => "erasure_needs_rights_fulfilment",
            Self::RequestNeedsRightsFulfilment => "request_needs_rights_fulfilment",
            Self::ExportNeedsRightsFulfilment => "export_needs_rights_fulfilment",
            Self::RequestAnsweredByItsTenant => "request_answered_by_its_tenant",
            Self::HoldNeedsLegalHoldPurpose => "hold_needs_legal_hold_purpose",
            Self::UnderLegalHold => "under_legal_hold",
            Self::RetentionNeedsLegalObligation => "retention_needs_legal_obligation",
            Self::KeyOperationNeedsSecurityProtection => "key_operation_needs_security_protection",
            Self::GrantExpired => "grant_expired",
            Self::AggregateOnly => "aggregate_only",
        }
    }
}

impl From<DenyReason> for Denial {
    fn from(reason: DenyReason) -> Self {
        Self::Policy(reason)
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_snake_case() {
        let all = [
            Denial::Policy(DenyReason::ConsentMissing),
            Denial::Policy(DenyReason::PurposeDisabled),
            Denial::Undecided,
            Denial::ActorNotAuthorised,
            Denial::NoReason,
            Denial::FieldNotInPurpose,
            Denial::PlainFieldNotVisible,
            Denial::GrantForAnotherPurpose,
            Denial::ConsentEventNeedsRightsFulfilment,
            Denial::ErasureNeedsRightsFulfilment,
            Denial::RequestNeedsRightsFulfilment,
            Denial::ExportNeedsRightsFulfilment,
            Denial::RequestAnsweredByItsTenant,
            Denial::HoldNeedsLegalHoldPurpose,
            Denial::UnderLegalHold,
            Denial::RetentionNeedsLegalObligation,
            Denial::KeyOperationNeedsSecurityProtection,
        ];
        let keys: std::collections::HashSet<_> = all.iter().map(|d| d.as_str()).collect();
        assert_eq!(keys.len(), all.len());
        for k in keys {
            assert!(
                k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{k}"
            );
        }
    }
}
