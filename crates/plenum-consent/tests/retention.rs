//! The retention schedule: the privacy policy's periods, computed due dates with calendar
//! arithmetic, a tenant's narrowing (shorter only, never below a legal minimum, longer only on
//! a legal ground), legal holds, and `docs/retention.md` kept equal to the code.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use chrono::{TimeZone as _, Utc};
use plenum_consent::{
    ErrorKind, HoldScope, LegalHold, Offset, RetainGround, RetentionAction, RetentionClass,
    RetentionNarrowing, RetentionSchedule, Trigger,
};
use plenum_core::{ActorId, RecordId, SubjectId, TenantId, record_type};

fn at(y: i32, m: u32, d: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
}

#[test]
fn the_default_schedule_is_the_privacy_policy() {
    let s = RetentionSchedule::plenum_default();
    let rule = |c| *s.rule(c).unwrap();
    let account = rule(RetentionClass::AccountData);
    assert_eq!(
        (account.trigger, account.offset),
        (Trigger::AccountClosed, Offset::Days(30))
    );
    assert_eq!(account.action, RetentionAction::CryptoShred);
    let tenant = rule(RetentionClass::TenantBusinessData);
    assert_eq!(
        (tenant.trigger, tenant.offset),
        (Trigger::ContractTerminated, Offset::Days(30))
    );
    let financial = rule(RetentionClass::FinancialRecords);
    assert_eq!(
        (financial.trigger, financial.offset),
        (Trigger::TransactionDate, Offset::Months(84))
    );
    assert_eq!(financial.legal_minimum, Some(RetainGround::LegalObligation));
    let marketing = rule(RetentionClass::MarketingData);
    assert_eq!(
        (marketing.trigger, marketing.offset),
        (Trigger::ConsentWithdrawn, Offset::Days(0))
    );
    let audit = rule(RetentionClass::AuditLogBodies);
    assert_eq!(
        (audit.offset, audit.action),
        (Offset::Months(24), RetentionAction::DropAuditBodies)
    );
    let requests = rule(RetentionClass::SubjectRequests);
    assert_eq!(
        (requests.trigger, requests.offset),
        (Trigger::RequestAnswered, Offset::Months(24))
    );
    assert_eq!(
        s.rules().len(),
        RetentionClass::ALL.len(),
        "one rule per class"
    );
}

#[test]
fn due_dates_use_calendar_arithmetic() {
    let s = RetentionSchedule::plenum_default();
    let financial = s.rule(RetentionClass::FinancialRecords).unwrap();
    // Seven years from a leap day ends on the last day of February.
    assert_eq!(financial.due_at(at(2024, 2, 29)), Some(at(2031, 2, 28)));
    assert_eq!(financial.due_at(at(2026, 12, 2)), Some(at(2033, 12, 2)));
    let account = s.rule(RetentionClass::AccountData).unwrap();
    assert_eq!(account.due_at(at(2026, 12, 2)), Some(at(2027, 1, 1)));
    let marketing = s.rule(RetentionClass::MarketingData).unwrap();
    assert_eq!(marketing.due_at(at(2026, 12, 2)), Some(at(2026, 12, 2)));
}

#[test]
fn a_tenant_may_shorten_but_not_lengthen_without_a_ground_nor_cut_a_legal_period() {
    let s = RetentionSchedule::plenum_default();
    let shorter = s
        .narrowed(
            "acme",
            &RetentionNarrowing::new().shorten(RetentionClass::AccountData, Offset::Days(7)),
        )
        .unwrap();
    assert_eq!(
        shorter.rule(RetentionClass::AccountData).unwrap().offset,
        Offset::Days(7)
    );
    assert_eq!(shorter.version(), "plenum-retention-1+acme");

    let longer =
        RetentionNarrowing::new().shorten(RetentionClass::AuditLogBodies, Offset::Months(36));
    let err = s.narrowed("acme", &longer).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PolicyWidening);

    let audit =
        RetentionNarrowing::new().shorten(RetentionClass::AuditLogBodies, Offset::Months(12));
    let err = s.narrowed("acme", &audit).unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::PolicyWidening,
        "the audit log's two years are a floor"
    );

    let cut =
        RetentionNarrowing::new().shorten(RetentionClass::FinancialRecords, Offset::Months(60));
    let err = s.narrowed("acme", &cut).unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::PolicyWidening,
        "7 years is the law's minimum"
    );

    let held = s
        .narrowed(
            "acme-litigation",
            &RetentionNarrowing::new().lengthen(
                RetentionClass::AuditLogBodies,
                Offset::Months(60),
                RetainGround::LegalClaims,
            ),
        )
        .unwrap();
    let audit = held.rule(RetentionClass::AuditLogBodies).unwrap();
    assert_eq!(audit.offset, Offset::Months(60));
    assert_eq!(audit.legal_minimum, Some(RetainGround::LegalClaims));

    for label in ["", "Acme", "a b", &"x".repeat(33)] {
        assert!(
            s.narrowed(label, &RetentionNarrowing::new()).is_err(),
            "{label:?}"
        );
    }
}

#[test]
fn a_legal_hold_covers_its_scope_while_placed() {
    let tenant = TenantId::generate();
    let subject = SubjectId::generate();
    let invoices = record_type!("invoices");
    let record = RecordId::generate();
    let hold = |scope| LegalHold {
        tenant,
        scope,
        matter: "case-2026-114".to_owned(),
        placed_by: ActorId::generate(),
        placed_at: at(2026, 1, 1),
        lifted_at: Some(at(2026, 6, 1)),
    };
    let during = at(2026, 3, 1);
    let covers = |h: &LegalHold, t, s| h.covers(during, t, &invoices, record, s);
    assert!(covers(&hold(HoldScope::Tenant), tenant, None));
    assert!(
        !covers(&hold(HoldScope::Tenant), TenantId::generate(), None),
        "another tenant"
    );
    assert!(covers(
        &hold(HoldScope::Subject(subject)),
        tenant,
        Some(subject)
    ));
    assert!(!covers(
        &hold(HoldScope::Subject(subject)),
        tenant,
        Some(SubjectId::generate())
    ));
    assert!(!covers(&hold(HoldScope::Subject(subject)), tenant, None));
    assert!(covers(
        &hold(HoldScope::RecordType(invoices.clone())),
        tenant,
        None
    ));
    assert!(!covers(
        &hold(HoldScope::RecordType(record_type!("customers"))),
        tenant,
        None
    ));
    assert!(covers(
        &hold(HoldScope::Record(invoices.clone(), record)),
        tenant,
        None
    ));
    assert!(!covers(
        &hold(HoldScope::Record(invoices.clone(), RecordId::generate())),
        tenant,
        None
    ));
    let h = hold(HoldScope::Tenant);
    assert!(
        !h.covers(at(2025, 12, 31), tenant, &invoices, record, None),
        "before it was placed"
    );
    assert!(
        !h.covers(at(2026, 6, 1), tenant, &invoices, record, None),
        "once lifted"
    );
}

#[test]
fn the_retention_document_matches_the_code() {
    let rendered = RetentionSchedule::plenum_default().to_markdown();
    let doc = include_str!("../../../docs/retention.md");
    assert!(
        doc.contains(&rendered),
        "docs/retention.md is out of date; the table should read:\n{rendered}"
    );
}

/// Marketing data's period starts when consent to every marketing purpose has ended: not
/// while one channel is live, at the latest withdrawal, lapse or objection otherwise, and at
/// once for a subject who never consented.
#[test]
fn marketing_consent_ends_when_no_marketing_purpose_is_live() {
    use plenum_consent::{
        ConsentEvent, EventKind, Evidence, Method, Purpose, marketing_consent_ended,
    };
    let s = SubjectId::generate();
    let evidence = |at| Evidence {
        notice_version: "n".to_owned(),
        notice_sha256: [0; 32],
        method: Method::Ui,
        actor: ActorId::generate(),
        at,
    };
    let now = at(2027, 6, 1);
    let given = |p, t| ConsentEvent::given(s, p, evidence(t));
    let about = |k, p, t| ConsentEvent::about(s, k, p, evidence(t));
    assert_eq!(
        marketing_consent_ended(&[], now),
        Some(chrono::DateTime::<Utc>::MIN_UTC),
        "never consented: due at once"
    );
    let email = given(Purpose::MarketingEmail, at(2027, 1, 1));
    assert_eq!(
        marketing_consent_ended(std::slice::from_ref(&email), now),
        None
    );
    let sms = given(Purpose::MarketingSms, at(2027, 1, 2));
    let email_out = about(
        EventKind::Withdrawn,
        Purpose::MarketingEmail,
        at(2027, 2, 1),
    );
    assert_eq!(
        marketing_consent_ended(&[email.clone(), sms.clone(), email_out.clone()], now),
        None,
        "SMS is still live"
    );
    let sms_objected = about(EventKind::Objected, Purpose::MarketingSms, at(2027, 3, 1));
    assert_eq!(
        marketing_consent_ended(&[email.clone(), sms, email_out.clone(), sms_objected], now),
        Some(at(2027, 3, 1)),
        "an objection ends the last one"
    );
    let mut lapsing = given(Purpose::MarketingEmail, at(2027, 1, 1));
    lapsing.expires_at = Some(at(2027, 4, 1));
    assert_eq!(
        marketing_consent_ended(std::slice::from_ref(&lapsing), at(2027, 3, 1)),
        None
    );
    assert_eq!(
        marketing_consent_ended(&[lapsing], now),
        Some(at(2027, 4, 1)),
        "a lapse without an event ends at its expiry"
    );
    let mut outdated = given(Purpose::MarketingEmail, at(2027, 1, 1));
    outdated.purpose_version = Purpose::MarketingEmail.version() - 1;
    assert_eq!(
        marketing_consent_ended(&[outdated], now),
        None,
        "consent to an earlier version is asked again, not an unsubscribe"
    );
    let service = given(Purpose::TechnicianLocation, at(2027, 1, 1));
    assert_eq!(
        marketing_consent_ended(&[service, email, email_out], now),
        Some(at(2027, 2, 1)),
        "other purposes do not count"
    );
}
