//! Consent events and the state derived from them. The events are the record (append-only, with
//! evidence); the state is always recomputed from them, never stored on its own.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use plenum_core::{ActorId, SubjectId};

use crate::error::Error;
use crate::purpose::{Channel, ConsentRequirement, Purpose};

/// What happened.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Consent given to a purpose (version, channel, explicitness in the event).
    Given,
    /// Consent withdrawn: takes effect for the very next access.
    Withdrawn,
    /// Consent lapsed (recorded by the expiry sweep; an `expires_at` in the past counts anyway).
    Expired,
    /// Objection to a purpose (Art. 21), including opt-out signals such as Global Privacy Control.
    Objected,
    /// An objection withdrawn by the subject.
    ObjectionWithdrawn,
    /// Processing restricted (Art. 18): only storage and compliance purposes remain.
    RestrictionPlaced,
    /// Restriction lifted.
    RestrictionLifted,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [Self; 7] = [
        Self::Given,
        Self::Withdrawn,
        Self::Expired,
        Self::Objected,
        Self::ObjectionWithdrawn,
        Self::RestrictionPlaced,
        Self::RestrictionLifted,
    ];

    /// A stable key, as stored.
    pub const fn key(self) -> &'static str {
        match self {
            Self::Given => "given",
            Self::Withdrawn => "withdrawn",
            Self::Expired => "expired",
            Self::Objected => "objected",
            Self::ObjectionWithdrawn => "objection_withdrawn",
            Self::RestrictionPlaced => "restriction_placed",
            Self::RestrictionLifted => "restriction_lifted",
        }
    }

    /// Looks a kind up by key.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownConsentTerm`].
    pub fn from_key(key: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|k| k.key() == key)
            .ok_or(Error::UnknownConsentTerm("event kind"))
    }

    /// Whether events of this kind concern a purpose (the restriction ones concern the subject).
    pub const fn has_purpose(self) -> bool {
        !matches!(self, Self::RestrictionPlaced | Self::RestrictionLifted)
    }
}

/// How the subject expressed it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// In a user interface, by an affirmative act.
    Ui,
    /// Through the API, on the subject's behalf.
    Api,
    /// Imported from an earlier system, with its evidence.
    Import,
    /// A Global Privacy Control signal (an opt-out).
    GlobalPrivacyControl,
}

impl Method {
    /// Every method.
    pub const ALL: [Self; 4] = [
        Self::Ui,
        Self::Api,
        Self::Import,
        Self::GlobalPrivacyControl,
    ];

    /// A stable key, as stored.
    pub const fn key(self) -> &'static str {
        match self {
            Self::Ui => "ui",
            Self::Api => "api",
            Self::Import => "import",
            Self::GlobalPrivacyControl => "gpc",
        }
    }

    /// Looks a method up by key.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownConsentTerm`].
    pub fn from_key(key: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|m| m.key() == key)
            .ok_or(Error::UnknownConsentTerm("method"))
    }
}

/// What proves an event: the notice shown (its version and a SHA-256 of its text), how, by whom,
/// when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The version label of the notice the subject saw.
    pub notice_version: String,
    /// SHA-256 of the notice text, so the exact wording can be proven later.
    pub notice_sha256: [u8; 32],
    /// How it was expressed.
    pub method: Method,
    /// Who recorded it (the subject's own account, a staff member, an import job).
    pub actor: ActorId,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// One ledger event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentEvent {
    /// Whose.
    pub subject: SubjectId,
    /// What.
    pub kind: EventKind,
    /// For which purpose (`None` for restriction events).
    pub purpose: Option<Purpose>,
    /// The purpose version the event refers to.
    pub purpose_version: u16,
    /// The channel, for per-channel purposes.
    pub channel: Option<Channel>,
    /// For `Given`: whether the consent was explicit (a separate affirmative statement).
    pub explicit: bool,
    /// For `Given`: when the consent lapses, if it does.
    pub expires_at: Option<DateTime<Utc>>,
    /// The evidence.
    pub evidence: Evidence,
}

impl ConsentEvent {
    /// Consent to `purpose` (at its current version), with `evidence`. Explicit if the purpose
    /// needs explicit consent.
    pub fn given(subject: SubjectId, purpose: Purpose, evidence: Evidence) -> Self {
        Self {
            subject,
            kind: EventKind::Given,
            purpose: Some(purpose),
            purpose_version: purpose.version(),
            channel: purpose.channel(),
            explicit: purpose.consent() == ConsentRequirement::Explicit,
            expires_at: None,
            evidence,
        }
    }

    /// Another event about `purpose` (withdrawal, objection, ...).
    pub fn about(
        subject: SubjectId,
        kind: EventKind,
        purpose: Purpose,
        evidence: Evidence,
    ) -> Self {
        Self {
            subject,
            kind,
            purpose: Some(purpose),
            purpose_version: purpose.version(),
            channel: purpose.channel(),
            explicit: false,
            expires_at: None,
            evidence,
        }
    }

    /// A restriction placed or lifted.
    pub fn restriction(subject: SubjectId, placed: bool, evidence: Evidence) -> Self {
        Self {
            subject,
            kind: if placed {
                EventKind::RestrictionPlaced
            } else {
                EventKind::RestrictionLifted
            },
            purpose: None,
            purpose_version: 0,
            channel: None,
            explicit: false,
            expires_at: None,
            evidence,
        }
    }
}

/// The last word on consent to one purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    Given {
        version: u16,
        explicit: bool,
        expires_at: Option<DateTime<Utc>>,
    },
    Withdrawn,
    Expired,
}

/// Whether consent to a purpose counts right now.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsentCheck {
    /// Live consent to the current version, explicit where needed.
    Live,
    /// Never given.
    Missing,
    /// Withdrawn.
    Withdrawn,
    /// Lapsed.
    Expired,
    /// Given to an earlier version of the purpose.
    Outdated,
    /// Given, but not explicitly, to a purpose that needs explicit consent.
    NotExplicit,
}

/// A subject's state, derived from their events: consents, objections, restriction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectStatus {
    consents: BTreeMap<Purpose, Last>,
    objections: BTreeMap<Purpose, bool>,
    restricted: bool,
}

impl SubjectStatus {
    /// Folds `events` (of one subject) in the order given, which must be the order they were
    /// recorded (the ledger returns them so): the subject's latest act wins, whatever time its
    /// evidence carries. Ordering by evidence time let a consent dated a few minutes ahead
    /// outlive a withdrawal recorded after it, and a withdrawal dated a year back do nothing.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a ConsentEvent>) -> Self {
        let mut status = Self::default();
        for e in events {
            status.apply(e);
        }
        status
    }

    /// Applies one more event.
    pub fn apply(&mut self, e: &ConsentEvent) {
        match (e.kind, e.purpose) {
            (EventKind::RestrictionPlaced, _) => self.restricted = true,
            (EventKind::RestrictionLifted, _) => self.restricted = false,
            (EventKind::Given, Some(p)) => {
                self.consents.insert(
                    p,
                    Last::Given {
                        version: e.purpose_version,
                        explicit: e.explicit,
                        expires_at: e.expires_at,
                    },
                );
            }
            (EventKind::Withdrawn, Some(p)) => {
                self.consents.insert(p, Last::Withdrawn);
            }
            (EventKind::Expired, Some(p)) => {
                self.consents.insert(p, Last::Expired);
            }
            (EventKind::Objected, Some(p)) => {
                self.objections.insert(p, true);
            }
            (EventKind::ObjectionWithdrawn, Some(p)) => {
                self.objections.insert(p, false);
            }
            // A purpose event without a purpose is malformed; the ledger refuses to store one.
            _ => {}
        }
    }

    /// Whether processing is restricted (Art. 18).
    pub fn restricted(&self) -> bool {
        self.restricted
    }

    /// Whether the subject objects to `purpose`.
    pub fn objects_to(&self, purpose: Purpose) -> bool {
        self.objections.get(&purpose).copied().unwrap_or(false)
    }

    /// Whether consent to `purpose` counts at `now`.
    pub fn consent(&self, purpose: Purpose, now: DateTime<Utc>) -> ConsentCheck {
        match self.consents.get(&purpose) {
            None => ConsentCheck::Missing,
            Some(Last::Withdrawn) => ConsentCheck::Withdrawn,
            Some(Last::Expired) => ConsentCheck::Expired,
            Some(Last::Given {
                version,
                explicit,
                expires_at,
            }) => {
                if expires_at.is_some_and(|at| at <= now) {
                    ConsentCheck::Expired
                } else if *version != purpose.version() {
                    ConsentCheck::Outdated
                } else if purpose.consent() == ConsentRequirement::Explicit && !explicit {
                    ConsentCheck::NotExplicit
                } else {
                    ConsentCheck::Live
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 12, minute, 0)
            .single()
            .unwrap_or_default()
    }

    fn evidence(minute: u32) -> Evidence {
        Evidence {
            notice_version: "2026-11".to_owned(),
            notice_sha256: [7; 32],
            method: Method::Ui,
            actor: ActorId::generate(),
            at: at(minute),
        }
    }

    #[test]
    fn the_last_recorded_event_wins_whatever_its_evidence_time() {
        let s = SubjectId::generate();
        // Consent dated ahead (minute 4), then a withdrawal recorded after it but dated
        // before (minute 2): the withdrawal is the subject's latest act.
        let given = ConsentEvent::given(s, Purpose::MarketingEmail, evidence(4));
        let withdrawn = ConsentEvent::about(
            s,
            EventKind::Withdrawn,
            Purpose::MarketingEmail,
            evidence(2),
        );
        let status = SubjectStatus::from_events([&given, &withdrawn]);
        assert_eq!(
            status.consent(Purpose::MarketingEmail, at(5)),
            ConsentCheck::Withdrawn
        );
        // A withdrawal dated long before a consent recorded earlier still withdraws it.
        let backdated = ConsentEvent::about(
            s,
            EventKind::Withdrawn,
            Purpose::MarketingEmail,
            evidence(0),
        );
        let status = SubjectStatus::from_events([&given, &backdated]);
        assert_eq!(
            status.consent(Purpose::MarketingEmail, at(5)),
            ConsentCheck::Withdrawn
        );
        // Given again after the withdrawal: live; another purpose untouched.
        let again = ConsentEvent::given(s, Purpose::MarketingEmail, evidence(1));
        let status = SubjectStatus::from_events([&given, &withdrawn, &again]);
        assert_eq!(
            status.consent(Purpose::MarketingEmail, at(5)),
            ConsentCheck::Live
        );
        assert_eq!(
            status.consent(Purpose::MarketingSms, at(5)),
            ConsentCheck::Missing
        );
    }

    #[test]
    fn expiry_versions_and_explicitness_count() {
        let s = SubjectId::generate();
        let mut expiring = ConsentEvent::given(s, Purpose::MarketingEmail, evidence(1));
        expiring.expires_at = Some(at(10));
        let status = SubjectStatus::from_events([&expiring]);
        assert_eq!(
            status.consent(Purpose::MarketingEmail, at(9)),
            ConsentCheck::Live
        );
        assert_eq!(
            status.consent(Purpose::MarketingEmail, at(10)),
            ConsentCheck::Expired
        );

        let mut old = ConsentEvent::given(s, Purpose::MarketingEmail, evidence(1));
        old.purpose_version = Purpose::MarketingEmail.version() - 1;
        let status = SubjectStatus::from_events([&old]);
        assert_eq!(
            status.consent(Purpose::MarketingEmail, at(2)),
            ConsentCheck::Outdated
        );

        let mut implicit = ConsentEvent::given(s, Purpose::TechnicianLocation, evidence(1));
        implicit.explicit = false;
        let status = SubjectStatus::from_events([&implicit]);
        assert_eq!(
            status.consent(Purpose::TechnicianLocation, at(2)),
            ConsentCheck::NotExplicit
        );
        let explicit = ConsentEvent::given(s, Purpose::TechnicianLocation, evidence(1));
        assert!(explicit.explicit);
    }

    #[test]
    fn restriction_and_objection_toggle() {
        let s = SubjectId::generate();
        let placed = ConsentEvent::restriction(s, true, evidence(1));
        let objected = ConsentEvent::about(
            s,
            EventKind::Objected,
            Purpose::ImproveAggregated,
            evidence(2),
        );
        let status = SubjectStatus::from_events([&placed, &objected]);
        assert!(status.restricted());
        assert!(status.objects_to(Purpose::ImproveAggregated));
        let lifted = ConsentEvent::restriction(s, false, evidence(3));
        let unobjected = ConsentEvent::about(
            s,
            EventKind::ObjectionWithdrawn,
            Purpose::ImproveAggregated,
            evidence(4),
        );
        let status = SubjectStatus::from_events([&placed, &objected, &lifted, &unobjected]);
        assert!(!status.restricted());
        assert!(!status.objects_to(Purpose::ImproveAggregated));
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_key(kind.key()), Ok(kind));
        }
    }
}
