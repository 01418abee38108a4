//! Data-subject requests through the public API, on PostgreSQL (as the runtime role) and SQLite:
//! stored under the tenant boundary, every step checked by the state machine and audited, the
//! history append-only, the overdue report computed with the clock paused while identity is
//! pending.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures: a failed set-up is a failed test"
)]

use chrono::{Duration, TimeZone as _, Utc};
use plenum::consent::{
    Purpose, RefusalReason, RequestChannel, RequestState, Requester, Right, Step, SubjectRequest,
    Verification,
};
use plenum::prelude::*;
use plenum::store::{ConsentLedger, ErrorKind, IdentityVerifier, Request};

use crate::audit::{Audited, staff};

fn day(d: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, d, 9, 0, 0).unwrap()
}

fn erasure_request(t: TenantId, received: u32) -> SubjectRequest {
    SubjectRequest::received(
        t,
        SubjectId::generate(),
        Right::Erasure,
        Requester::Subject,
        RequestChannel::Email,
        day(received),
    )
}

/// `record` inserted in `tx` under an unrestricted grant (the service's own writes).
async fn insert<R: plenum::store::Record>(a: &Audited, tx: &mut TenantTx, record: &R) {
    let t = tx.tenant();
    a.records
        .repository::<R>()
        .insert(tx, &crate::fixtures::grant(t), record)
        .await
        .unwrap();
}

/// A request for `right` by `subject` (themself, by email), received at `received` and its
/// identity verified at `verified_at` by a verifier that knows the subject: in progress.
async fn verified(
    a: &Audited,
    tx: &mut TenantTx,
    rights: &PurposeGrant<'_>,
    subject: SubjectId,
    right: Right,
    received: chrono::DateTime<Utc>,
    verified_at: chrono::DateTime<Utc>,
) -> RecordId {
    let request = SubjectRequest::received(
        tx.tenant(),
        subject,
        right,
        Requester::Subject,
        RequestChannel::Email,
        received,
    );
    let id = a
        .records
        .receive_request(tx, rights, &request)
        .await
        .unwrap();
    let verifier = Verifier {
        known: vec![subject],
    };
    a.records
        .verify_identity(tx, rights, id, &verifier, verified_at)
        .await
        .unwrap();
    id
}

/// Received, identity awaited and verified, completed: each step stored, the request reloaded
/// as it stands, and each step on record in the audit log under `compliance.rights_fulfilment`.
#[tokio::test]
async fn a_request_moves_through_its_states_and_each_step_is_audited() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let officer = Request::new(t, staff("privacy"));
        let rights = a.gate.grant(&officer, Purpose::RightsFulfilment).unwrap();
        let request = erasure_request(t, 1);
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let id = a
            .records
            .receive_request(&mut tx, &rights, &request)
            .await
            .unwrap();
        for (step, at) in [
            (Step::AwaitIdentity, day(2)),
            (
                Step::Verification(Verification::Verified {
                    method: "account_login".into(),
                }),
                day(6),
            ),
            (Step::Complete, day(9)),
        ] {
            a.records
                .advance_request(&mut tx, &rights, id, step, at)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();

        let mut tx = a.env.pool.begin(t).await.unwrap();
        let back = a
            .records
            .subject_request(&mut tx, &rights, id)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(back.state(), RequestState::Completed, "{}", a.env.name());
        assert_eq!(back.subject(), request.subject());
        assert_eq!(back.history().len(), 3);
        // The 4 days waiting for identity do not count: due on day 1 + 30 + 4.
        assert_eq!(back.due_at(day(20)), day(1) + Duration::days(34));

        let actions: Vec<String> = a
            .memory
            .take()
            .into_iter()
            .filter(|e| e.record_type.as_deref() == Some("subject_requests"))
            .map(|e| {
                assert_eq!(
                    e.purpose.as_ref().map(|p| p.0.as_str()),
                    Some("compliance.rights_fulfilment")
                );
                e.action
            })
            .collect();
        assert_eq!(
            actions,
            [
                "request.received",
                "request.identity_pending",
                "request.in_progress",
                "request.completed",
                "read"
            ],
            "{}",
            a.env.name()
        );
    }
}

/// A step the state machine refuses changes nothing: completing a request whose identity was
/// never verified fails, the request stays where it was, and the refusal is on record.
#[tokio::test]
async fn nothing_is_acted_on_before_a_verification_outcome() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let officer = Request::new(t, staff("privacy"));
        let rights = a.gate.grant(&officer, Purpose::RightsFulfilment).unwrap();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let id = a
            .records
            .receive_request(&mut tx, &rights, &erasure_request(t, 1))
            .await
            .unwrap();
        a.records
            .advance_request(&mut tx, &rights, id, Step::AwaitIdentity, day(2))
            .await
            .unwrap();
        let err = a
            .records
            .advance_request(&mut tx, &rights, id, Step::Complete, day(3))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{}", a.env.name());
        let back = a
            .records
            .subject_request(&mut tx, &rights, id)
            .await
            .unwrap();
        assert_eq!(back.state(), RequestState::IdentityPending);
        tx.commit().await.unwrap();
        let failed = a
            .memory
            .take()
            .into_iter()
            .filter(|e| {
                e.action == "request.in_progress" && e.outcome != plenum::audit::Outcome::Success
            })
            .count();
        assert_eq!(failed, 1, "{}: the refused step is on record", a.env.name());
    }
}

/// Requests are handled under `compliance.rights_fulfilment` only, and a request belongs to
/// the tenant whose data it is about: another tenant's transaction can neither record it nor
/// see it.
#[tokio::test]
async fn requests_need_the_rights_purpose_and_stay_in_their_tenant() {
    for a in Audited::both().await {
        let (t, other) = (a.env.tenant().await, a.env.tenant().await);
        let dispatcher = Request::new(t, staff("dispatcher"));
        let scheduling = a.gate.grant(&dispatcher, Purpose::Scheduling).unwrap();
        let request = erasure_request(t, 1);
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let err = a
            .records
            .receive_request(&mut tx, &scheduling, &request)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Denied, "{}", a.env.name());
        let officer = Request::new(t, staff("privacy"));
        let rights = a.gate.grant(&officer, Purpose::RightsFulfilment).unwrap();
        let id = a
            .records
            .receive_request(&mut tx, &rights, &request)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let their_officer = Request::new(other, staff("privacy"));
        let theirs = a
            .gate
            .grant(&their_officer, Purpose::RightsFulfilment)
            .unwrap();
        let mut tx = a.env.pool.begin(other).await.unwrap();
        let err = a
            .records
            .receive_request(&mut tx, &theirs, &request)
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::IsolationViolation,
            "{}",
            a.env.name()
        );
        let err = a
            .records
            .subject_request(&mut tx, &theirs, id)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{}", a.env.name());
        let err = a
            .records
            .advance_request(&mut tx, &theirs, id, Step::AwaitIdentity, day(2))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{}", a.env.name());
        tx.commit().await.unwrap();
    }
}

/// The overdue report: open requests past their due date, most overdue first; the days spent
/// waiting for identity and an extension push a request's date out; answered requests are not
/// overdue however old.
#[tokio::test]
async fn the_overdue_report_counts_paused_and_extended_clocks() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let officer = Request::new(t, staff("privacy"));
        let rights = a.gate.grant(&officer, Purpose::RightsFulfilment).unwrap();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let plain = a
            .records
            .receive_request(&mut tx, &rights, &erasure_request(t, 1))
            .await
            .unwrap();
        let older = a
            .records
            .receive_request(&mut tx, &rights, &erasure_request(t, 2))
            .await
            .unwrap();
        let paused = a
            .records
            .receive_request(&mut tx, &rights, &erasure_request(t, 1))
            .await
            .unwrap();
        a.records
            .advance_request(&mut tx, &rights, paused, Step::AwaitIdentity, day(1))
            .await
            .unwrap();
        a.records
            .advance_request(
                &mut tx,
                &rights,
                paused,
                Step::Verification(Verification::Verified {
                    method: "callback".into(),
                }),
                day(11),
            )
            .await
            .unwrap();
        let done = a
            .records
            .receive_request(&mut tx, &rights, &erasure_request(t, 1))
            .await
            .unwrap();
        a.records
            .advance_request(
                &mut tx,
                &rights,
                done,
                Step::Refuse(RefusalReason::ManifestlyUnfounded),
                day(3),
            )
            .await
            .unwrap();
        // 6 Dec: `plain` was due 1 Dec, `older` 2 Dec; `paused` (10 days waiting) is due 11 Dec.
        let now = day(1) + Duration::days(35);
        let overdue = a
            .records
            .overdue_requests(&mut tx, &rights, now)
            .await
            .unwrap();
        let ids: Vec<RecordId> = overdue.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [plain, older], "{}", a.env.name());
        let later = a
            .records
            .overdue_requests(&mut tx, &rights, day(1) + Duration::days(45))
            .await
            .unwrap();
        assert_eq!(
            later.len(),
            3,
            "{}: the paused one is due too",
            a.env.name()
        );
        tx.commit().await.unwrap();
    }
}

/// The history is append-only for the runtime role: on PostgreSQL it may not update or delete
/// a step (grants), on SQLite triggers refuse it.
#[tokio::test]
async fn a_request_history_cannot_be_rewritten() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let officer = Request::new(t, staff("privacy"));
        let rights = a.gate.grant(&officer, Purpose::RightsFulfilment).unwrap();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let id = a
            .records
            .receive_request(&mut tx, &rights, &erasure_request(t, 1))
            .await
            .unwrap();
        a.records
            .advance_request(
                &mut tx,
                &rights,
                id,
                Step::Refuse(RefusalReason::LegalObligation),
                day(2),
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let (steps, requests) = (
            a.env.library_table("subject_request_steps"),
            a.env.library_table("subject_requests"),
        );
        for statement in [
            format!("UPDATE {steps} SET step = 'complete', detail = NULL"),
            format!("DELETE FROM {steps}"),
            // The request itself: only 24 months after its answer (the retention sweep).
            format!("DELETE FROM {requests}"),
        ] {
            let result = a.env.raw_in_tenant(t, &statement).await;
            assert!(result.is_err(), "{}: {statement} was allowed", a.env.name());
        }
    }
}

/// The service's identity check, as a test double of the trait a service implements: verified
/// for subjects in `known`, failed for anyone else.
struct Verifier {
    known: Vec<SubjectId>,
}

impl IdentityVerifier for Verifier {
    fn verify<'a>(
        &'a self,
        request: &'a SubjectRequest,
    ) -> plenum::crypto::BoxFuture<'a, Verification> {
        Box::pin(async move {
            if self.known.contains(&request.subject()) {
                Verification::Verified {
                    method: "account_login".into(),
                }
            } else {
                Verification::Failed
            }
        })
    }
}

/// Identity gating: a request whose requester the service cannot verify is refused and
/// nothing is exported; a verified one is answered with the export and completed.
#[tokio::test]
async fn identity_gates_the_answer_to_an_access_request() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let officer = Request::new(t, staff("privacy"));
        let rights = a.gate.grant(&officer, Purpose::RightsFulfilment).unwrap();
        let c = crate::fixtures::customer(t, "ada@example.com", "2175550142");
        let mut tx = a.env.pool.begin(t).await.unwrap();
        insert::<plenum_hvac::Customer>(&a, &mut tx, &c).await;
        let verifier = Verifier {
            known: vec![c.subject],
        };
        let access = |subject| {
            SubjectRequest::received(
                t,
                subject,
                Right::Access,
                Requester::Subject,
                RequestChannel::Web,
                day(1),
            )
        };
        let impostor = a
            .records
            .receive_request(&mut tx, &rights, &access(SubjectId::generate()))
            .await
            .unwrap();
        let refused = a
            .records
            .verify_identity(&mut tx, &rights, impostor, &verifier, day(2))
            .await
            .unwrap();
        assert_eq!(
            refused.state(),
            RequestState::Refused(RefusalReason::IdentityNotVerified),
            "{}",
            a.env.name()
        );
        let mut out = plenum::store::JsonExport::new(Vec::new());
        let err = a
            .records
            .answer_access_request(&mut tx, &rights, impostor, &mut out, day(3))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(
            out.into_inner().is_empty(),
            "nothing exported for a refused request"
        );

        let genuine = a
            .records
            .receive_request(&mut tx, &rights, &access(c.subject))
            .await
            .unwrap();
        let verified = a
            .records
            .verify_identity(&mut tx, &rights, genuine, &verifier, day(2))
            .await
            .unwrap();
        assert_eq!(verified.state(), RequestState::InProgress);
        let mut out = plenum::store::JsonExport::new(Vec::new());
        let summary = a
            .records
            .answer_access_request(&mut tx, &rights, genuine, &mut out, day(4))
            .await
            .unwrap();
        assert_eq!(
            summary
                .records
                .iter()
                .find(|(t, _)| t == "customers")
                .unwrap()
                .1,
            1
        );
        let export: serde_json::Value = serde_json::from_slice(&out.into_inner()).unwrap();
        assert_eq!(export["subject"], c.subject.to_string());
        let back = a
            .records
            .subject_request(&mut tx, &rights, genuine)
            .await
            .unwrap();
        assert_eq!(back.state(), RequestState::Completed, "{}", a.env.name());
        tx.commit().await.unwrap();
    }
}

/// An erasure request for a subject with invoices: customers scrubbed, properties deleted,
/// invoices retained, so the request ends refused in part under a legal obligation, with a
/// receipt per record type. Answering it again does nothing and says so.
#[tokio::test]
async fn an_erasure_request_ends_with_a_receipt_and_is_idempotent() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let officer = Request::new(t, staff("privacy"));
        let rights = a.gate.grant(&officer, Purpose::RightsFulfilment).unwrap();
        let c = crate::fixtures::customer(t, "ada@example.com", "2175550142");
        let p = crate::fixtures::property(&c);
        let invoice = plenum_hvac::Invoice {
            id: RecordId::generate(),
            tenant: t,
            subject: c.subject,
            customer_id: c.id,
            amount_cents: Encrypted::new(12_950),
            currency: "USD".into(),
            due_on: chrono::NaiveDate::from_ymd_opt(2026, 12, 15).unwrap(),
            paid: true,
        };
        let mut tx = a.env.pool.begin(t).await.unwrap();
        insert::<plenum_hvac::Customer>(&a, &mut tx, &c).await;
        insert::<plenum_hvac::Property>(&a, &mut tx, &p).await;
        insert::<plenum_hvac::Invoice>(&a, &mut tx, &invoice).await;
        let id = verified(
            &a,
            &mut tx,
            &rights,
            c.subject,
            Right::Erasure,
            day(1),
            day(2),
        )
        .await;
        let receipt = a
            .records
            .answer_erasure_request(&mut tx, &rights, id, day(3))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let name = a.env.name();
        assert_eq!(
            receipt.outcome,
            RequestState::Refused(RefusalReason::LegalObligation),
            "{name}: partially refused, the invoices are kept"
        );
        let done: Vec<(String, u64)> = receipt
            .records
            .iter()
            .map(|r| (format!("{}:{:?}", r.record_type, r.erasure), r.rows))
            .collect();
        assert_eq!(
            done,
            [
                ("customers:Scrub".to_owned(), 1),
                ("properties:Delete".to_owned(), 1),
                ("invoices:Retain(LegalObligation)".to_owned(), 1),
            ],
            "{name}"
        );
        assert!(receipt.keys_destroyed >= 1);
        assert!(!receipt.already_answered);
        // The invoice (due 15 December 2026) is kept seven years from its date.
        assert_eq!(
            receipt.retained_until,
            Some(Utc.with_ymd_and_hms(2033, 12, 15, 0, 0, 0).unwrap()),
            "{name}"
        );

        let mut tx = a.env.pool.begin(t).await.unwrap();
        let again = a
            .records
            .answer_erasure_request(&mut tx, &rights, id, day(4))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(again.already_answered, "{name}");
        assert!(again.records.is_empty());
        assert_eq!(again.outcome, receipt.outcome);
    }
}

/// Routing: platform staff may put a homeowner's request into the tenant's queue (forward it),
/// never act on it; the tenant's own officer does.
#[tokio::test]
async fn the_platform_forwards_requests_but_only_the_tenant_answers_them() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let support = Request::new(
            t,
            Actor::new(ActorKind::Support, ActorId::generate())
                .with_role(plenum::core::role!("privacy")),
        );
        let platform = a.gate.grant(&support, Purpose::RightsFulfilment).unwrap();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let id = a
            .records
            .receive_request(&mut tx, &platform, &erasure_request(t, 1))
            .await
            .unwrap();
        let err = a
            .records
            .advance_request(&mut tx, &platform, id, Step::AwaitIdentity, day(2))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Denied, "{}", a.env.name());
        let officer = Request::new(t, staff("privacy"));
        let rights = a.gate.grant(&officer, Purpose::RightsFulfilment).unwrap();
        a.records
            .advance_request(&mut tx, &rights, id, Step::AwaitIdentity, day(2))
            .await
            .unwrap();
        a.records
            .advance_request(
                &mut tx,
                &rights,
                id,
                Step::Verification(Verification::Verified {
                    method: "account_login".into(),
                }),
                day(3),
            )
            .await
            .unwrap();
        // Nor through the answering calls, refused before anything is read or changed.
        let err = a
            .records
            .answer_erasure_request(&mut tx, &platform, id, day(4))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Denied, "{}", a.env.name());
        let still = a
            .records
            .subject_request(&mut tx, &rights, id)
            .await
            .unwrap();
        assert_eq!(still.state(), RequestState::InProgress);
        tx.commit().await.unwrap();
    }
}

/// Restriction, objection and withdrawal requests are answered in the consent ledger: once
/// committed, the purposes they cover no longer reach the subject (the ledger's existing
/// enforcement at read), and the request is completed. Malformed answers change nothing.
#[tokio::test]
async fn restriction_objection_and_withdrawal_requests_are_answered_in_the_ledger() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let officer = Request::new(t, staff("privacy"));
        let rights = a.gate.grant(&officer, Purpose::RightsFulfilment).unwrap();
        let marketer = Request::new(t, staff("marketer"));
        let marketing = a.gate.grant(&marketer, Purpose::MarketingEmail).unwrap();
        let dispatcher = Request::new(t, staff("dispatcher"));
        let scheduling = a.gate.grant(&dispatcher, Purpose::Scheduling).unwrap();
        let verifier = |c: &plenum_hvac::Customer| Verifier {
            known: vec![c.subject],
        };
        let customers = a.records.repository::<plenum_hvac::Customer>();
        let name = a.env.name();
        for (right, purposes, email) in [
            (
                Right::Objection,
                vec![Purpose::MarketingEmail],
                "objects@example.com",
            ),
            (
                Right::WithdrawConsent,
                vec![Purpose::MarketingEmail],
                "withdraws@example.com",
            ),
            (Right::Restriction, vec![], "restricts@example.com"),
        ] {
            let c = crate::fixtures::customer(t, email, "2175550142");
            let mut tx = a.env.pool.begin(t).await.unwrap();
            customers
                .insert(&mut tx, &crate::fixtures::grant(t), &c)
                .await
                .unwrap();
            a.records
                .record_consent(
                    &mut tx,
                    &crate::fixtures::grant(t),
                    &plenum::consent::ConsentEvent::given(
                        c.subject,
                        Purpose::MarketingEmail,
                        crate::audit::evidence(),
                    ),
                )
                .await
                .unwrap();
            let request = SubjectRequest::received(
                t,
                c.subject,
                right,
                Requester::Subject,
                RequestChannel::Web,
                Utc::now(),
            );
            let id = a
                .records
                .receive_request(&mut tx, &rights, &request)
                .await
                .unwrap();
            a.records
                .verify_identity(&mut tx, &rights, id, &verifier(&c), Utc::now())
                .await
                .unwrap();
            // A restriction with purposes, an objection without: refused, nothing recorded.
            let wrong = if purposes.is_empty() {
                vec![Purpose::Scheduling]
            } else {
                vec![]
            };
            let err = a
                .records
                .answer_ledger_request(&mut tx, &rights, id, &wrong, Utc::now())
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name} {right:?}");
            assert!(
                customers.get(&mut tx, &marketing, c.id).await.is_ok(),
                "{name} {right:?}: unchanged"
            );
            let done = a
                .records
                .answer_ledger_request(&mut tx, &rights, id, &purposes, Utc::now())
                .await
                .unwrap();
            assert_eq!(done.state(), RequestState::Completed);
            // Answered twice: nothing recorded twice.
            let events = ConsentLedger::events(&mut tx, c.subject)
                .await
                .unwrap()
                .len();
            let again = a
                .records
                .answer_ledger_request(&mut tx, &rights, id, &purposes, Utc::now())
                .await
                .unwrap();
            assert_eq!(
                again.history().len(),
                done.history().len(),
                "{name} {right:?}"
            );
            assert_eq!(
                ConsentLedger::events(&mut tx, c.subject)
                    .await
                    .unwrap()
                    .len(),
                events
            );
            tx.commit().await.unwrap();

            let mut tx = a.env.pool.begin(t).await.unwrap();
            let err = customers.get(&mut tx, &marketing, c.id).await.unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::Denied,
                "{name} {right:?}: marketing stops"
            );
            let scheduled = customers.get(&mut tx, &scheduling, c.id).await;
            assert_eq!(
                scheduled.is_ok(),
                right != Right::Restriction,
                "{name} {right:?}: only a restriction stops scheduling too"
            );
            tx.commit().await.unwrap();
        }
    }
}

/// Rectification: the corrected field is re-sealed (the stored envelope changes, the old value
/// no longer opens from the row), the receipt names what changed, the request is completed; a
/// record of another subject is refused and nothing is written.
#[tokio::test]
async fn a_rectification_request_reseals_the_corrected_field() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let officer = Request::new(t, staff("privacy"));
        let rights = a.gate.grant(&officer, Purpose::RightsFulfilment).unwrap();
        let customers = a.records.repository::<plenum_hvac::Customer>();
        let c = crate::fixtures::customer(t, "ada@example.com", "2175550142");
        let someone_else = crate::fixtures::customer(t, "grace@example.com", "2175550199");
        let mut tx = a.env.pool.begin(t).await.unwrap();
        customers
            .insert_many(
                &mut tx,
                &crate::fixtures::grant(t),
                &[c.clone(), someone_else.clone()],
            )
            .await
            .unwrap();
        let id = verified(
            &a,
            &mut tx,
            &rights,
            c.subject,
            Right::Rectification,
            Utc::now(),
            Utc::now(),
        )
        .await;

        let mut other = customers
            .get(&mut tx, &rights, someone_else.id)
            .await
            .unwrap();
        other.phone.set("2175550000".to_owned());
        let err = customers
            .rectify(&mut tx, &rights, id, &other, Utc::now())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{}", a.env.name());

        let mut ada = customers.get(&mut tx, &rights, c.id).await.unwrap();
        let before = ada.phone.envelope().unwrap().as_bytes().to_vec();
        ada.phone.set("2175550143".to_owned());
        let receipt = customers
            .rectify(&mut tx, &rights, id, &ada, Utc::now())
            .await
            .unwrap();
        // Plain columns are always written; of the encrypted fields only the corrected one.
        let written: Vec<&str> = receipt.fields.iter().map(|f| f.as_str()).collect();
        assert!(written.contains(&"phone"), "{}: {written:?}", a.env.name());
        for sealed in ["name", "email", "service_address"] {
            assert!(
                !written.contains(&sealed),
                "{}: {sealed} re-sealed",
                a.env.name()
            );
        }
        let back = customers.get(&mut tx, &rights, c.id).await.unwrap();
        assert_eq!(back.phone.open().unwrap().expose(), "2175550143");
        assert_ne!(
            back.phone.envelope().unwrap().as_bytes(),
            &before[..],
            "re-sealed"
        );
        let unchanged = customers
            .get(&mut tx, &rights, someone_else.id)
            .await
            .unwrap();
        assert_eq!(unchanged.phone.open().unwrap().expose(), "2175550199");
        let done = a
            .records
            .subject_request(&mut tx, &rights, id)
            .await
            .unwrap();
        assert_eq!(done.state(), RequestState::Completed);
        tx.commit().await.unwrap();
    }
}

/// A crash mid-erasure: the keys are destroyed (the key store commits on its own) but the
/// transaction with the row changes and the request's step never commits. The request is still
/// in progress, on record as such, and answering it again finishes the job: rows erased per
/// their rule, the request ended, nothing readable left.
#[tokio::test]
async fn an_erasure_interrupted_before_its_commit_resumes_from_the_request() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let officer = Request::new(t, staff("privacy"));
        let rights = a.gate.grant(&officer, Purpose::RightsFulfilment).unwrap();
        let c = crate::fixtures::customer(t, "ada@example.com", "2175550142");
        let p = crate::fixtures::property(&c);
        let mut tx = a.env.pool.begin(t).await.unwrap();
        insert::<plenum_hvac::Customer>(&a, &mut tx, &c).await;
        insert::<plenum_hvac::Property>(&a, &mut tx, &p).await;
        let id = verified(
            &a,
            &mut tx,
            &rights,
            c.subject,
            Right::Erasure,
            day(1),
            day(2),
        )
        .await;
        tx.commit().await.unwrap();

        // The first attempt dies before its commit.
        let mut tx = a.env.pool.begin(t).await.unwrap();
        a.records
            .answer_erasure_request(&mut tx, &rights, id, day(3))
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let state = a
            .records
            .subject_request(&mut tx, &rights, id)
            .await
            .unwrap()
            .state();
        assert_eq!(
            state,
            RequestState::InProgress,
            "{}: still open",
            a.env.name()
        );
        let receipt = a
            .records
            .answer_erasure_request(&mut tx, &rights, id, day(4))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(receipt.outcome, RequestState::Completed, "{}", a.env.name());
        let done: Vec<(String, u64)> = receipt
            .records
            .iter()
            .map(|r| (r.record_type.clone(), r.rows))
            .collect();
        assert_eq!(
            done,
            [("customers".to_owned(), 1), ("properties".to_owned(), 1)]
        );
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let left = a
            .records
            .repository::<plenum_hvac::Property>()
            .list(&mut tx, &rights, None, 10)
            .await
            .unwrap();
        assert!(
            left.items.is_empty(),
            "{}: the property is deleted",
            a.env.name()
        );
        tx.commit().await.unwrap();
    }
}

/// Portability (Art. 20): answered like access, in a machine-readable format the subject can
/// take elsewhere; here the CSV directory, one file per record type.
#[tokio::test]
async fn a_portability_request_is_answered_with_a_machine_readable_export() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let officer = Request::new(t, staff("privacy"));
        let rights = a.gate.grant(&officer, Purpose::RightsFulfilment).unwrap();
        let c = crate::fixtures::customer(t, "ada@example.com", "2175550142");
        let mut tx = a.env.pool.begin(t).await.unwrap();
        insert::<plenum_hvac::Customer>(&a, &mut tx, &c).await;
        let id = verified(
            &a,
            &mut tx,
            &rights,
            c.subject,
            Right::Portability,
            Utc::now(),
            Utc::now(),
        )
        .await;
        let dir = std::env::temp_dir().join(format!("plenum-portability-{}", RecordId::generate()));
        std::fs::create_dir(&dir).unwrap();
        let summary = a
            .records
            .answer_access_request(
                &mut tx,
                &rights,
                id,
                &mut plenum::store::CsvExport::new(&dir),
                Utc::now(),
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(
            summary.records.contains(&("customers".to_owned(), 1)),
            "{}",
            a.env.name()
        );
        let mut reader = csv::Reader::from_path(dir.join("customers.csv")).unwrap();
        let email = reader
            .headers()
            .unwrap()
            .iter()
            .position(|h| h == "email")
            .unwrap();
        let row = reader.records().next().unwrap().unwrap();
        assert_eq!(row.get(email), Some("ada@example.com"));
        std::fs::remove_dir_all(&dir).unwrap();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let done = a
            .records
            .subject_request(&mut tx, &rights, id)
            .await
            .unwrap();
        assert_eq!(done.state(), RequestState::Completed);
        tx.commit().await.unwrap();
    }
}
