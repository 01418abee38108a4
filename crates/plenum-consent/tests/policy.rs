//! The default policy, case by case: purpose x category, then purpose x consent state x
//! restriction x objection. Each expectation is written out, not computed from the policy.

#![allow(
    clippy::unwrap_used,
    reason = "test fixtures: a bad literal is a failed test"
)]

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use plenum_consent::{
    ConsentEvent, Decision, DenyReason, EventKind, Evidence, LegalBasis, Method, Narrowing, Policy,
    Purpose, SubjectStatus,
};
use plenum_core::{ActorId, DataCategory, SubjectId};

fn cat(key: &str) -> DataCategory {
    DataCategory::new(key).unwrap()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 12, 0, 0).unwrap()
}

fn evidence(minutes_ago: i64) -> Evidence {
    Evidence {
        notice_version: "privacy-2026-11".to_owned(),
        notice_sha256: [1; 32],
        method: Method::Ui,
        actor: ActorId::generate(),
        at: now() - Duration::minutes(minutes_ago),
    }
}

#[test]
fn which_purpose_sees_which_category() {
    use Purpose::*;
    let policy = Policy::plenum_default();
    // (purpose, category, visible)
    let cases: &[(Purpose, &str, bool)] = &[
        (Scheduling, "user.name", true),
        (Scheduling, "user.contact.email", true),
        (Scheduling, "user.contact.address", true),
        (Scheduling, "user.content.private", true),
        (Scheduling, "user.financial", false),
        (Scheduling, "user.location.precise", false),
        (Dispatch, "user.contact.address", true),
        (Dispatch, "user.contact.phone_number", true),
        (Dispatch, "user.contact.email", false),
        (Dispatch, "user.location.imprecise", true),
        (Dispatch, "user.location.precise", false),
        (TechnicianLocation, "user.location.precise", true),
        (TechnicianLocation, "user.name", false),
        (TechnicianLocation, "user.contact.phone_number", false),
        (Billing, "user.financial", true),
        (Billing, "user.contact.address", true),
        (Billing, "user.location.precise", false),
        (Billing, "user.content.private", false),
        (Support, "user.content.private", true),
        (Support, "user.financial", false),
        (Authentication, "user.contact.email", true),
        (Authentication, "user.authorization", true),
        (Authentication, "user.contact.address", false),
        (ImproveAggregated, "system.operations", true),
        (ImproveAggregated, "user.name", false),
        (ImproveAggregated, "user.unique_id", false),
        (ImproveAggregated, "user.contact.email", false),
        (SecurityProtection, "user.device.device_id", true),
        (SecurityProtection, "user.contact.email", false),
        (FraudPrevention, "user.financial", true),
        (FraudPrevention, "user.location.precise", false),
        (LegalObligation, "user.location.precise", true),
        (FinancialRecords, "user.financial", true),
        (FinancialRecords, "user.contact.email", false),
        (RightsFulfilment, "user.location.precise", true),
        (RightsFulfilment, "user.content.private", true),
        (Audit, "user.unique_id", true),
        (Audit, "user.name", false),
        (LegalHold, "user.contact.email", true),
        (TransactionalCommunications, "user.contact.email", true),
        (TransactionalCommunications, "user.financial", false),
        (MarketingEmail, "user.contact.email", true),
        (MarketingEmail, "user.name", true),
        (MarketingEmail, "user.contact.phone_number", false),
        (MarketingEmail, "user.contact.address", false),
        (MarketingEmail, "user.location.precise", false),
        (MarketingEmail, "user.financial", false),
        (MarketingSms, "user.contact.phone_number", true),
        (MarketingSms, "user.contact.email", false),
    ];
    for (purpose, category, visible) in cases {
        assert_eq!(
            policy.allows_category(*purpose, &cat(category)),
            *visible,
            "{purpose} x {category}"
        );
    }
    // Precise location: only the explicit-consent purpose and compliance see it.
    let precise = cat("user.location.precise");
    let seeing: Vec<Purpose> = Purpose::ALL
        .into_iter()
        .filter(|p| policy.allows_category(*p, &precise))
        .collect();
    assert_eq!(
        seeing,
        [
            TechnicianLocation,
            LegalObligation,
            RightsFulfilment,
            LegalHold
        ]
    );
}

#[derive(Clone, Copy, Debug)]
enum State {
    None,
    Live,
    Withdrawn,
    Expired,
    OldVersion,
}

fn status(purpose: Purpose, state: State, restricted: bool, objected: bool) -> SubjectStatus {
    let s = SubjectId::generate();
    let mut events = Vec::new();
    match state {
        State::None => {}
        State::Live => events.push(ConsentEvent::given(s, purpose, evidence(10))),
        State::Withdrawn => {
            events.push(ConsentEvent::given(s, purpose, evidence(10)));
            events.push(ConsentEvent::about(
                s,
                EventKind::Withdrawn,
                purpose,
                evidence(5),
            ));
        }
        State::Expired => {
            let mut e = ConsentEvent::given(s, purpose, evidence(10));
            e.expires_at = Some(now() - Duration::minutes(1));
            events.push(e);
        }
        State::OldVersion => {
            let mut e = ConsentEvent::given(s, purpose, evidence(10));
            e.purpose_version = purpose.version() - 1;
            events.push(e);
        }
    }
    if restricted {
        events.push(ConsentEvent::restriction(s, true, evidence(3)));
    }
    if objected {
        events.push(ConsentEvent::about(
            s,
            EventKind::Objected,
            purpose,
            evidence(2),
        ));
    }
    SubjectStatus::from_events(&events)
}

#[test]
fn consent_restriction_and_objection_decide_case_by_case() {
    use DenyReason as D;
    use Purpose::*;
    use State::*;
    let policy = Policy::plenum_default();
    let allow = |b| Decision::Allow(b);
    // (purpose, consent state, restricted, objected, expected)
    let cases: &[(Purpose, State, bool, bool, Decision)] = &[
        // Contract purposes need no consent, survive objection, not restriction.
        (Scheduling, None, false, false, allow(LegalBasis::Contract)),
        (Scheduling, None, false, true, allow(LegalBasis::Contract)),
        (Scheduling, None, true, false, Decision::Deny(D::Restricted)),
        (
            Billing,
            Withdrawn,
            false,
            false,
            allow(LegalBasis::Contract),
        ),
        // Marketing: consent only, per version, not expired, not withdrawn.
        (
            MarketingEmail,
            None,
            false,
            false,
            Decision::Deny(D::ConsentMissing),
        ),
        (
            MarketingEmail,
            Live,
            false,
            false,
            allow(LegalBasis::Consent),
        ),
        (
            MarketingEmail,
            Withdrawn,
            false,
            false,
            Decision::Deny(D::ConsentWithdrawn),
        ),
        (
            MarketingEmail,
            Expired,
            false,
            false,
            Decision::Deny(D::ConsentExpired),
        ),
        (
            MarketingEmail,
            OldVersion,
            false,
            false,
            Decision::Deny(D::ConsentOutdated),
        ),
        (
            MarketingEmail,
            Live,
            true,
            false,
            Decision::Deny(D::Restricted),
        ),
        (
            MarketingEmail,
            Live,
            false,
            true,
            Decision::Deny(D::Objected),
        ),
        (
            MarketingSms,
            None,
            false,
            false,
            Decision::Deny(D::ConsentMissing),
        ),
        (MarketingSms, Live, false, false, allow(LegalBasis::Consent)),
        // Precise location: explicit consent.
        (
            TechnicianLocation,
            None,
            false,
            false,
            Decision::Deny(D::ConsentMissing),
        ),
        (
            TechnicianLocation,
            Live,
            false,
            false,
            allow(LegalBasis::ExplicitConsent),
        ),
        (
            TechnicianLocation,
            Withdrawn,
            false,
            false,
            Decision::Deny(D::ConsentWithdrawn),
        ),
        // Legitimate interests: objection stops them, restriction too.
        (
            ImproveAggregated,
            None,
            false,
            false,
            allow(LegalBasis::LegitimateInterests),
        ),
        (
            ImproveAggregated,
            None,
            false,
            true,
            Decision::Deny(D::Objected),
        ),
        (
            SecurityProtection,
            None,
            false,
            true,
            Decision::Deny(D::Objected),
        ),
        (
            FraudPrevention,
            None,
            true,
            false,
            Decision::Deny(D::Restricted),
        ),
        // Compliance survives restriction and objection.
        (
            LegalObligation,
            None,
            true,
            true,
            allow(LegalBasis::LegalObligation),
        ),
        (
            FinancialRecords,
            None,
            true,
            false,
            allow(LegalBasis::LegalObligation),
        ),
        (
            RightsFulfilment,
            None,
            true,
            false,
            allow(LegalBasis::LegalObligation),
        ),
        (Audit, None, true, true, allow(LegalBasis::LegalObligation)),
        (
            LegalHold,
            None,
            true,
            false,
            allow(LegalBasis::LegalObligation),
        ),
        (
            TransactionalCommunications,
            None,
            true,
            false,
            Decision::Deny(D::Restricted),
        ),
    ];
    for (purpose, state, restricted, objected, expected) in cases {
        let s = status(*purpose, *state, *restricted, *objected);
        assert_eq!(
            policy.decide(*purpose, &s, now()),
            *expected,
            "{purpose} {state:?} restricted={restricted} objected={objected}"
        );
    }
}

#[test]
fn withdrawal_takes_effect_for_the_next_decision_and_gpc_is_an_opt_out() {
    let policy = Policy::plenum_default();
    let s = SubjectId::generate();
    let mut status = SubjectStatus::default();
    status.apply(&ConsentEvent::given(
        s,
        Purpose::MarketingEmail,
        evidence(10),
    ));
    assert!(
        policy
            .decide(Purpose::MarketingEmail, &status, now())
            .is_allowed()
    );
    let mut gpc = ConsentEvent::about(s, EventKind::Objected, Purpose::MarketingEmail, evidence(1));
    gpc.evidence.method = Method::GlobalPrivacyControl;
    status.apply(&gpc);
    assert_eq!(
        policy.decide(Purpose::MarketingEmail, &status, now()),
        Decision::Deny(DenyReason::Objected)
    );
}

#[test]
fn a_tenant_may_narrow_never_widen() {
    let base = Policy::plenum_default();
    let narrowed = base
        .narrowed(
            "tenant-7",
            &Narrowing::new()
                .disable(Purpose::MarketingSms)
                .withhold(Purpose::Scheduling, cat("user.contact.email")),
        )
        .unwrap();
    assert_eq!(narrowed.version(), "plenum-default-1+tenant-7");
    assert!(!narrowed.allows_category(Purpose::Scheduling, &cat("user.contact.email")));
    assert!(narrowed.allows_category(Purpose::Scheduling, &cat("user.contact.phone_number")));
    assert_eq!(
        narrowed.decide(Purpose::MarketingSms, &SubjectStatus::default(), now()),
        Decision::Deny(DenyReason::PurposeDisabled)
    );
    // Everything the narrowed policy allows, the default allows.
    let categories = plenum_consent::KNOWN_CATEGORIES;
    for p in Purpose::ALL {
        for k in categories {
            let c = cat(k.key);
            if narrowed.allows_category(p, &c) {
                assert!(base.allows_category(p, &c), "{p} x {}", k.key);
            }
        }
    }
    // Narrowing twice is still narrowing; disabling a purpose that is already off is refused
    // (it would read like a grant).
    let again = narrowed.narrowed("x", &Narrowing::new().disable(Purpose::MarketingSms));
    assert!(again.is_err());
}

#[test]
fn the_policy_document_matches_the_code() {
    let rendered = Policy::plenum_default().to_markdown();
    let doc = include_str!("../../../docs/policy.md");
    assert!(
        doc.contains(&rendered),
        "docs/policy.md is out of date; the table should read:\n{rendered}"
    );
}
