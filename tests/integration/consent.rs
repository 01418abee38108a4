//! The consent ledger on PostgreSQL (as the runtime role) and SQLite.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures: a failed set-up is a failed test"
)]

use chrono::{Duration, Utc};
use plenum::consent::{
    ConsentCheck, ConsentEvent, Decision, DenyReason, EventKind, Method, Policy, Purpose,
};
use plenum::core::SubjectId;
use plenum::store::{ConsentLedger, ErrorKind};

use crate::fixtures::{Env, evidence};

#[tokio::test]
async fn a_withdrawal_counts_for_the_next_read() {
    let policy = Policy::plenum_default();
    for env in Env::both().await {
        let t = env.tenant().await;
        let s = SubjectId::generate();
        let mut tx = env.pool.begin(t).await.unwrap();
        env.consent(
            &mut tx,
            t,
            &ConsentEvent::given(s, Purpose::MarketingEmail, evidence()),
        )
        .await;
        tx.commit().await.unwrap();

        let mut read1 = env.pool.begin(t).await.unwrap();
        let status = ConsentLedger::status(&mut read1, s).await.unwrap();
        assert!(
            policy
                .decide(Purpose::MarketingEmail, &status, Utc::now())
                .is_allowed(),
            "{}",
            env.name()
        );
        read1.commit().await.unwrap();

        let mut w = env.pool.begin(t).await.unwrap();
        let mut withdrawal =
            ConsentEvent::about(s, EventKind::Withdrawn, Purpose::MarketingEmail, evidence());
        withdrawal.evidence.at = Utc::now() + Duration::milliseconds(1);
        env.consent(&mut w, t, &withdrawal).await;
        w.commit().await.unwrap();

        let mut read2 = env.pool.begin(t).await.unwrap();
        let status = ConsentLedger::status(&mut read2, s).await.unwrap();
        assert_eq!(
            status.consent(Purpose::MarketingEmail, Utc::now()),
            ConsentCheck::Withdrawn
        );
        assert_eq!(
            policy.decide(Purpose::MarketingEmail, &status, Utc::now()),
            Decision::Deny(DenyReason::ConsentWithdrawn),
            "{}",
            env.name()
        );
        // The evidence comes back as recorded.
        let events = ConsentLedger::events(&mut read2, s).await.unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].evidence.notice_sha256, [9; 32]);
        assert_eq!(events[0].kind, EventKind::Given);
    }
}

#[tokio::test]
async fn restriction_and_objection_are_read_back_for_many_subjects_at_once() {
    for env in Env::both().await {
        let t = env.tenant().await;
        let subjects: Vec<SubjectId> = (0..20).map(|_| SubjectId::generate()).collect();
        let mut tx = env.pool.begin(t).await.unwrap();
        for (i, s) in subjects.iter().enumerate() {
            if i % 2 == 0 {
                env.consent(
                    &mut tx,
                    t,
                    &ConsentEvent::given(*s, Purpose::MarketingSms, evidence()),
                )
                .await;
            }
            if i % 5 == 0 {
                env.consent(&mut tx, t, &ConsentEvent::restriction(*s, true, evidence()))
                    .await;
            }
            if i % 3 == 0 {
                let mut gpc = ConsentEvent::about(
                    *s,
                    EventKind::Objected,
                    Purpose::ImproveAggregated,
                    evidence(),
                );
                gpc.evidence.method = Method::GlobalPrivacyControl;
                env.consent(&mut tx, t, &gpc).await;
            }
        }
        let statuses = ConsentLedger::statuses(&mut tx, &subjects).await.unwrap();
        for (i, s) in subjects.iter().enumerate() {
            let st = &statuses[s];
            let live = st.consent(Purpose::MarketingSms, Utc::now()) == ConsentCheck::Live;
            assert_eq!(live, i % 2 == 0, "{} {i}", env.name());
            assert_eq!(st.restricted(), i % 5 == 0, "{} {i}", env.name());
            assert_eq!(
                st.objects_to(Purpose::ImproveAggregated),
                i % 3 == 0,
                "{} {i}",
                env.name()
            );
        }
        tx.commit().await.unwrap();

        // Another tenant sees none of it.
        let other = env.tenant().await;
        let mut tx = env.pool.begin(other).await.unwrap();
        let none = ConsentLedger::statuses(&mut tx, &subjects).await.unwrap();
        assert!(none.values().all(|s| !s.restricted()), "{}", env.name());
        assert!(
            ConsentLedger::events(&mut tx, subjects[0])
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn the_ledger_is_append_only_for_the_runtime_role() {
    for env in Env::both().await {
        let t = env.tenant().await;
        let s = SubjectId::generate();
        let mut tx = env.pool.begin(t).await.unwrap();
        env.consent(
            &mut tx,
            t,
            &ConsentEvent::given(s, Purpose::MarketingEmail, evidence()),
        )
        .await;
        tx.commit().await.unwrap();
        let mut tx = env.pool.begin(t).await.unwrap();
        let refused = match tx.dangerous_postgres() {
            Some(conn) => sqlx::query("UPDATE plenum.consent_events SET kind = 'withdrawn'")
                .execute(conn)
                .await
                .is_err(),
            None => sqlx::query("DELETE FROM plenum_consent_events")
                .execute(tx.dangerous_sqlite().unwrap())
                .await
                .is_err(),
        };
        assert!(refused, "{}: the ledger must refuse changes", env.name());
        drop(tx);
        // A purpose event without a purpose is refused before SQL.
        let mut tx = env.pool.begin(t).await.unwrap();
        let mut bad = ConsentEvent::given(s, Purpose::MarketingEmail, evidence());
        bad.purpose = None;
        let err = env
            .records
            .record_consent(&mut tx, &crate::fixtures::grant(t), &bad)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
}

/// The ledger's state follows recording order: a consent dated four minutes ahead (inside the
/// skew allowance) no longer outlives a withdrawal recorded after it, and a backdated
/// withdrawal withdraws. Evidence outside the window is refused, except that an import (an
/// unrestricted grant) may carry old dates. On PostgreSQL the runtime role cannot set the
/// recording time itself.
#[tokio::test]
async fn the_latest_recorded_act_wins_and_evidence_outside_the_window_is_refused() {
    use plenum::core::{Actor, ActorId, ActorKind, role};
    use plenum::store::Request;
    let gate = purpose_bound::gate();
    for env in Env::both().await {
        let t = env.tenant().await;
        let s = SubjectId::generate();
        let marketer = Request::new(
            t,
            Actor::new(ActorKind::AccountUser, ActorId::generate()).with_role(role!("marketer")),
        );
        let dispatcher = Request::new(
            t,
            Actor::new(ActorKind::AccountUser, ActorId::generate()).with_role(role!("dispatcher")),
        );
        let marketing = gate.grant(&marketer, Purpose::MarketingEmail).unwrap();
        let scheduling = gate.grant(&dispatcher, Purpose::Scheduling).unwrap();
        let status = |env: &Env| {
            let pool = env.pool.clone();
            async move {
                let mut tx = pool.begin(t).await.unwrap();
                ConsentLedger::status(&mut tx, s)
                    .await
                    .unwrap()
                    .consent(Purpose::MarketingEmail, Utc::now())
            }
        };

        let mut ahead = ConsentEvent::given(s, Purpose::MarketingEmail, evidence());
        ahead.evidence.at += Duration::minutes(4);
        let mut tx = env.pool.begin(t).await.unwrap();
        env.records
            .record_consent(&mut tx, &marketing, &ahead)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let withdrawal =
            ConsentEvent::about(s, EventKind::Withdrawn, Purpose::MarketingEmail, evidence());
        let mut tx = env.pool.begin(t).await.unwrap();
        env.records
            .record_consent(&mut tx, &scheduling, &withdrawal)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            status(&env).await,
            ConsentCheck::Withdrawn,
            "{}",
            env.name()
        );

        // Given again, then a withdrawal dated a year back: refused from a service flow...
        let mut tx = env.pool.begin(t).await.unwrap();
        let again = ConsentEvent::given(s, Purpose::MarketingEmail, evidence());
        env.records
            .record_consent(&mut tx, &marketing, &again)
            .await
            .unwrap();
        let mut old = withdrawal.clone();
        old.evidence.at -= Duration::days(365);
        let err = env
            .records
            .record_consent(&mut tx, &scheduling, &old)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{}", env.name());
        tx.commit().await.unwrap();
        assert_eq!(status(&env).await, ConsentCheck::Live, "{}", env.name());
        // ... and, imported, it is the latest act and counts.
        let mut tx = env.pool.begin(t).await.unwrap();
        env.consent(&mut tx, t, &old).await;
        tx.commit().await.unwrap();
        assert_eq!(
            status(&env).await,
            ConsentCheck::Withdrawn,
            "{}",
            env.name()
        );
        // Too far ahead is refused even for an import.
        let mut future = again.clone();
        future.evidence.at += Duration::minutes(6);
        let mut tx = env.pool.begin(t).await.unwrap();
        let err = env
            .records
            .record_consent(&mut tx, &crate::fixtures::grant(t), &future)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{}", env.name());
        drop(tx);

        // The recording time is the database's: the runtime role cannot write it.
        let mut tx = env.pool.begin(t).await.unwrap();
        if let Some(conn) = tx.dangerous_postgres() {
            let forged = sqlx::query(
                "INSERT INTO plenum.consent_events (tenant_id, id, subject_id, kind, purpose, \
                 purpose_version, channel, explicit, notice_version, notice_sha256, method, \
                 actor_id, at, recorded_at) VALUES ($1, gen_random_uuid(), $2, 'given', \
                 'marketing.email', 1, 'email', false, 'v', $3, 'ui', gen_random_uuid(), now(), \
                 now() + interval '10 years')",
            )
            .bind(t.as_uuid())
            .bind(s.as_uuid())
            .bind(vec![0u8; 32])
            .execute(conn)
            .await;
            match forged {
                Err(sqlx::Error::Database(e)) => {
                    assert_eq!(e.code().as_deref(), Some("42501"), "{e}");
                }
                other => panic!("a forged recording time was accepted: {other:?}"),
            }
        }
    }
}

mod purpose_bound {
    use std::collections::BTreeSet;

    use plenum::consent::{ConsentEvent, EventKind, Purpose};
    use plenum::core::{Actor, ActorId, ActorKind, RecordId, SubjectId, role};
    use plenum::store::{Action, Authorisation, ErrorKind, Gate, Outcome, Request};
    use plenum_hvac::{Appointment, Customer, LocationPing};

    use crate::fixtures::evidence;
    use crate::fixtures::{Env, customer, grant};

    pub(super) fn gate() -> Gate {
        Gate::new(
            plenum::consent::Policy::plenum_default(),
            Authorisation::new()
                .allow(role!("marketer"), [Purpose::MarketingEmail])
                .allow(
                    role!("dispatcher"),
                    [
                        Purpose::Scheduling,
                        Purpose::Dispatch,
                        Purpose::TechnicianLocation,
                    ],
                )
                .allow(
                    role!("security"),
                    [Purpose::SecurityProtection, Purpose::ImproveAggregated],
                )
                .allow(role!("compliance"), [Purpose::LegalObligation])
                .allow(role!("sign_in"), [Purpose::Authentication])
                .allow(role!("privacy"), [Purpose::RightsFulfilment])
                .allow_unrestricted(role!("migrator")),
        )
    }

    pub(super) fn staff(role: plenum::core::Role) -> Actor {
        Actor::new(ActorKind::AccountUser, ActorId::generate()).with_role(role)
    }

    #[tokio::test]
    async fn a_marketing_list_over_10000_customers_returns_exactly_the_consented_set() {
        let env = Env::postgres().await;
        let t = env.tenant().await;
        let repo = env.records.repository::<Customer>();
        let customers: Vec<Customer> = (0..10_000)
            .map(|i| {
                customer(
                    t,
                    &format!("c{i}@example.com"),
                    &format!("217555{:04}", i % 10_000),
                )
            })
            .collect();
        let mut consented = BTreeSet::new();
        for chunk in customers.chunks(1000) {
            let mut tx = env.pool.begin(t).await.unwrap();
            repo.insert_many(&mut tx, &grant(t), chunk).await.unwrap();
            tx.commit().await.unwrap();
        }
        let mut tx = env.pool.begin(t).await.unwrap();
        for (i, c) in customers.iter().enumerate() {
            // A mix: consent to email (kept), to SMS only (not email), email then withdrawn,
            // email given but the subject restricted, nothing.
            let s = c.subject;
            match i % 5 {
                0 => {
                    env.consent(
                        &mut tx,
                        t,
                        &ConsentEvent::given(s, Purpose::MarketingEmail, evidence()),
                    )
                    .await;
                    consented.insert(c.id);
                }
                1 => {
                    env.consent(
                        &mut tx,
                        t,
                        &ConsentEvent::given(s, Purpose::MarketingSms, evidence()),
                    )
                    .await;
                }
                2 => {
                    let mut given = ConsentEvent::given(s, Purpose::MarketingEmail, evidence());
                    given.evidence.at -= chrono::Duration::seconds(5);
                    env.consent(&mut tx, t, &given).await;
                    env.consent(
                        &mut tx,
                        t,
                        &ConsentEvent::about(
                            s,
                            EventKind::Withdrawn,
                            Purpose::MarketingEmail,
                            evidence(),
                        ),
                    )
                    .await;
                }
                3 if i % 2 == 0 => {
                    env.consent(
                        &mut tx,
                        t,
                        &ConsentEvent::given(s, Purpose::MarketingEmail, evidence()),
                    )
                    .await;
                    env.consent(&mut tx, t, &ConsentEvent::restriction(s, true, evidence()))
                        .await;
                }
                3 => {
                    env.consent(
                        &mut tx,
                        t,
                        &ConsentEvent::given(s, Purpose::MarketingEmail, evidence()),
                    )
                    .await;
                    consented.insert(c.id);
                }
                _ => {}
            }
        }
        tx.commit().await.unwrap();

        let gate = gate();
        let request = Request::new(t, staff(role!("marketer")));
        let mut tx = env.pool.begin(t).await.unwrap();
        let grant = gate.grant(&request, Purpose::MarketingEmail).unwrap();
        env.hook.take();
        let (mut listed, mut after) = (BTreeSet::new(), None);
        loop {
            let page = repo.list(&mut tx, &grant, after, 1000).await.unwrap();
            for c in &page.items {
                assert!(c.email.open().is_ok(), "email is what this purpose is for");
                assert!(c.phone.is_withheld() && c.service_address.is_withheld());
                assert_eq!(c.phone.open().unwrap_err().kind(), ErrorKind::Withheld);
                assert!(
                    c.phone.envelope().is_none(),
                    "nothing that could be decrypted"
                );
                listed.insert(c.id);
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(listed.len(), consented.len());
        assert_eq!(listed, consented);
        let log = env.hook.take();
        assert!(
            log.iter()
                .all(|a| a.purpose == Some(Purpose::MarketingEmail))
        );
        assert_eq!(
            log.iter().map(|a| a.excluded).sum::<u64>(),
            10_000 - consented.len() as u64
        );
        let fields: Vec<&str> = log[0].fields.iter().map(|f| f.0.as_str()).collect();
        assert!(
            fields.contains(&"email") && !fields.contains(&"phone"),
            "{fields:?}"
        );
    }

    #[tokio::test]
    async fn withdrawal_restriction_and_objection_take_effect_between_two_reads() {
        for env in Env::both().await {
            let t = env.tenant().await;
            let repo = env.records.repository::<Customer>();
            let c = customer(t, "ada@example.com", "2175550142");
            let mut tx = env.pool.begin(t).await.unwrap();
            repo.insert(&mut tx, &grant(t), &c).await.unwrap();
            env.consent(
                &mut tx,
                t,
                &ConsentEvent::given(c.subject, Purpose::MarketingEmail, evidence()),
            )
            .await;
            tx.commit().await.unwrap();
            let gate = gate();
            let marketer = Request::new(t, staff(role!("marketer")));
            let dispatcher = Request::new(t, staff(role!("dispatcher")));
            let compliance = Request::new(t, staff(role!("compliance")));

            let mut tx = env.pool.begin(t).await.unwrap();
            let grant = gate.grant(&marketer, Purpose::MarketingEmail).unwrap();
            let first = repo.get(&mut tx, &grant, c.id).await.unwrap();
            assert_eq!(first.email.open().unwrap().expose(), "ada@example.com");
            tx.commit().await.unwrap();

            let mut w = env.pool.begin(t).await.unwrap();
            let mut withdrawal = ConsentEvent::about(
                c.subject,
                EventKind::Withdrawn,
                Purpose::MarketingEmail,
                evidence(),
            );
            withdrawal.evidence.at += chrono::Duration::milliseconds(5);
            env.consent(&mut w, t, &withdrawal).await;
            w.commit().await.unwrap();

            let mut tx = env.pool.begin(t).await.unwrap();
            let grant = gate.grant(&marketer, Purpose::MarketingEmail).unwrap();
            let err = repo.get(&mut tx, &grant, c.id).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Denied, "{}", env.name());
            assert!(err.to_string().contains("consent_withdrawn"), "{err}");
            assert!(
                repo.list(&mut tx, &grant, None, 10)
                    .await
                    .unwrap()
                    .items
                    .is_empty()
            );
            let denied = env.hook.take().into_iter().find(|a| {
                a.outcome
                    == Outcome::Denied(plenum::store::Denial::Policy(
                        plenum::consent::DenyReason::ConsentWithdrawn,
                    ))
            });
            assert!(denied.is_some_and(|a| a.records == vec![c.id] && a.action == Action::Read));

            // Scheduling works until the subject restricts processing; compliance still works.
            let grant = gate.grant(&dispatcher, Purpose::Scheduling).unwrap();
            let for_scheduling = repo.get(&mut tx, &grant, c.id).await.unwrap();
            assert!(
                for_scheduling.phone.open().is_ok()
                    && for_scheduling.service_address.open().is_ok()
            );
            let mut placed = ConsentEvent::restriction(c.subject, true, evidence());
            placed.evidence.at += chrono::Duration::milliseconds(10);
            env.consent(&mut tx, t, &placed).await;
            let err = repo.get(&mut tx, &grant, c.id).await.unwrap_err();
            assert!(err.to_string().contains("restricted"), "{err}");
            let legal = gate.grant(&compliance, Purpose::LegalObligation).unwrap();
            assert!(repo.get(&mut tx, &legal, c.id).await.is_ok());
        }
    }

    #[tokio::test]
    async fn writes_are_purpose_bound_too() {
        for env in Env::both().await {
            let t = env.tenant().await;
            let gate = gate();
            let repo = env.records.repository::<Customer>();
            let (dispatcher, marketer) = (
                Request::new(t, staff(role!("dispatcher"))),
                Request::new(t, staff(role!("marketer"))),
            );
            let (sign_in, compliance) = (
                Request::new(t, staff(role!("sign_in"))),
                Request::new(t, staff(role!("compliance"))),
            );
            let scheduling = gate.grant(&dispatcher, Purpose::Scheduling).unwrap();
            let marketing = gate.grant(&marketer, Purpose::MarketingEmail).unwrap();
            let auth = gate.grant(&sign_in, Purpose::Authentication).unwrap();
            let legal = gate.grant(&compliance, Purpose::LegalObligation).unwrap();
            let c = customer(t, "writes@example.com", "2175550142");
            let mut tx = env.pool.begin(t).await.unwrap();
            env.hook.take();

            // Marketing may not write a customer's address, authentication not their name:
            // nothing is written either time.
            let err = repo.insert(&mut tx, &marketing, &c).await.unwrap_err();
            assert!(
                err.to_string().contains("field_not_in_purpose"),
                "{}: {err}",
                env.name()
            );
            let err = repo.insert(&mut tx, &auth, &c).await.unwrap_err();
            assert!(
                err.to_string().contains("field_not_in_purpose"),
                "{}: {err}",
                env.name()
            );
            assert_eq!(repo.count(&mut tx, &scheduling).await.unwrap(), 0);
            let log = env.hook.take();
            assert_eq!(
                log.iter().map(|a| a.outcome).collect::<Vec<_>>(),
                [
                    Outcome::Denied(plenum::store::Denial::FieldNotInPurpose),
                    Outcome::Denied(plenum::store::Denial::FieldNotInPurpose),
                    Outcome::Success
                ],
                "{}",
                env.name()
            );
            assert_eq!(log[0].action, Action::Insert);
            assert_eq!(log[0].purpose, Some(Purpose::MarketingEmail));

            // Scheduling creates and changes the customer.
            repo.insert(&mut tx, &scheduling, &c).await.unwrap();
            let mut loaded = repo.get(&mut tx, &scheduling, c.id).await.unwrap();
            loaded.phone.set("2175550199".to_owned());
            repo.update(&mut tx, &scheduling, &loaded).await.unwrap();
            // Marketing may not change even the email of someone who has not consented.
            let mut loaded = repo.get(&mut tx, &scheduling, c.id).await.unwrap();
            loaded.email.set("new@example.com".to_owned());
            let err = repo.update(&mut tx, &marketing, &loaded).await.unwrap_err();
            assert!(
                err.to_string().contains("consent_missing"),
                "{}: {err}",
                env.name()
            );

            // Once processing is restricted, scheduling can neither change nor delete it; a
            // compliance purpose still can.
            let placed = ConsentEvent::restriction(c.subject, true, evidence());
            env.consent(&mut tx, t, &placed).await;
            let err = repo
                .update(&mut tx, &scheduling, &loaded)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("restricted"), "{err}");
            let err = repo.delete(&mut tx, &scheduling, c.id).await.unwrap_err();
            assert!(err.to_string().contains("restricted"), "{err}");
            assert_eq!(repo.count(&mut tx, &legal).await.unwrap(), 1);
            env.hook.take();
            repo.delete(&mut tx, &legal, c.id).await.unwrap();
            let log = env.hook.take();
            assert_eq!(
                log[0].subjects,
                vec![c.subject],
                "the deleted row's subject"
            );
            assert_eq!(repo.count(&mut tx, &legal).await.unwrap(), 0);
        }
    }

    #[tokio::test]
    async fn searches_deletes_and_consent_changes_are_bound_to_the_grant() {
        for env in Env::both().await {
            let t = env.tenant().await;
            let gate = gate();
            let repo = env.records.repository::<Customer>();
            let r = |role| Request::new(t, staff(role));
            let (dispatcher, marketer, security, privacy) = (
                r(role!("dispatcher")),
                r(role!("marketer")),
                r(role!("security")),
                r(role!("privacy")),
            );
            let dispatch = gate.grant(&dispatcher, Purpose::Dispatch).unwrap();
            let scheduling = gate.grant(&dispatcher, Purpose::Scheduling).unwrap();
            let marketing = gate.grant(&marketer, Purpose::MarketingEmail).unwrap();
            let improve = gate.grant(&security, Purpose::ImproveAggregated).unwrap();
            let rights = gate.grant(&privacy, Purpose::RightsFulfilment).unwrap();
            let c = customer(t, "bound@example.com", "2175550142");
            let mut tx = env.pool.begin(t).await.unwrap();
            repo.insert(&mut tx, &scheduling, &c).await.unwrap();

            // Dispatch may not see emails, so it may not search by one either.
            let err = repo
                .find(
                    &mut tx,
                    &dispatch,
                    Customer::EMAIL_INDEX,
                    "bound@example.com",
                )
                .await
                .unwrap_err();
            assert!(
                err.to_string().contains("field_not_in_purpose"),
                "{}: {err}",
                env.name()
            );
            assert_eq!(
                repo.find(&mut tx, &dispatch, Customer::PHONE_INDEX, "2175550142")
                    .await
                    .unwrap()
                    .len(),
                1
            );
            // A purpose that sees aggregates only may not delete the row.
            let err = repo.delete(&mut tx, &improve, c.id).await.unwrap_err();
            assert!(err.to_string().contains("aggregate_only"), "{err}");

            // Consent: scheduling cannot grant marketing consent, marketing can (its sign-up
            // flow), anyone can record a withdrawal, only rights fulfilment lifts an objection.
            let given = ConsentEvent::given(c.subject, Purpose::MarketingEmail, evidence());
            let err = env
                .records
                .record_consent(&mut tx, &scheduling, &given)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Denied);
            env.records
                .record_consent(&mut tx, &marketing, &given)
                .await
                .unwrap();
            let mut objected = ConsentEvent::about(
                c.subject,
                EventKind::Objected,
                Purpose::MarketingEmail,
                evidence(),
            );
            objected.evidence.at += chrono::Duration::milliseconds(5);
            env.records
                .record_consent(&mut tx, &scheduling, &objected)
                .await
                .unwrap();
            let mut lifted = ConsentEvent::about(
                c.subject,
                EventKind::ObjectionWithdrawn,
                Purpose::MarketingEmail,
                evidence(),
            );
            lifted.evidence.at += chrono::Duration::milliseconds(10);
            let err = env
                .records
                .record_consent(&mut tx, &marketing, &lifted)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Denied);
            env.records
                .record_consent(&mut tx, &rights, &lifted)
                .await
                .unwrap();
            // Evidence from the future would outrank every later withdrawal: refused.
            let mut future = ConsentEvent::given(c.subject, Purpose::MarketingEmail, evidence());
            future.evidence.at += chrono::Duration::days(365);
            let err = env
                .records
                .record_consent(&mut tx, &marketing, &future)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);

            // An update that changes nothing still checks the row's subject.
            let mut other = repo.get(&mut tx, &scheduling, c.id).await.unwrap();
            other.subject = SubjectId::generate();
            let err = repo.update(&mut tx, &scheduling, &other).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound, "{}", env.name());
        }
    }

    /// A grant cannot outlive its request in safe code (the borrow), and a request leaked to
    /// `'static` does not help: its grants, old or newly minted, are refused once the request
    /// is older than the gate's grant lifetime, in a spawned task as anywhere.
    #[tokio::test]
    async fn a_leaked_requests_grants_expire() {
        for env in Env::both().await {
            let t = env.tenant().await;
            let gate: &'static Gate = Box::leak(Box::new(
                gate().with_grant_lifetime(std::time::Duration::from_secs(1)),
            ));
            let repo = env.records.repository::<Customer>();
            let c = customer(t, "leaked@example.com", "2175550142");
            let mut tx = env.pool.begin(t).await.unwrap();
            repo.insert(&mut tx, &grant(t), &c).await.unwrap();
            tx.commit().await.unwrap();
            let request: &'static Request =
                Box::leak(Box::new(Request::new(t, staff(role!("dispatcher")))));
            let early = gate.grant(request, Purpose::Scheduling).unwrap();
            let mut tx = env.pool.begin(t).await.unwrap();
            repo.get(&mut tx, &early, c.id).await.unwrap();
            tx.commit().await.unwrap();
            let (pool, gate2) = (env.pool.clone(), gate);
            let later = tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
                let fresh = gate2.grant(request, Purpose::Scheduling).unwrap();
                assert!(fresh.is_expired() && early.is_expired());
                let mut tx = pool.begin(t).await.unwrap();
                let old = repo.get(&mut tx, &early, c.id).await.unwrap_err();
                let new = repo.get(&mut tx, &fresh, c.id).await.unwrap_err();
                (old.to_string(), new.to_string(), old.kind())
            })
            .await
            .unwrap();
            assert!(
                later.0.contains("grant_expired"),
                "{}: {}",
                env.name(),
                later.0
            );
            assert!(
                later.1.contains("grant_expired"),
                "{}: {}",
                env.name(),
                later.1
            );
            assert_eq!(later.2, ErrorKind::Denied);
        }
    }

    /// `improve.aggregated` sees aggregates only: no get, list, search or write; counts per
    /// group of a plain field, with groups under the minimum size left out.
    #[tokio::test]
    async fn the_aggregate_purpose_sees_counts_never_rows() {
        use chrono::TimeZone as _;
        use plenum::store::{MIN_GROUP_SIZE, Value};
        for env in Env::both().await {
            let t = env.tenant().await;
            let repo = env.records.repository::<Customer>();
            let (busy, quiet) = (
                chrono::Utc.with_ymd_and_hms(2026, 11, 2, 9, 0, 0).unwrap(),
                chrono::Utc.with_ymd_and_hms(2026, 11, 3, 9, 0, 0).unwrap(),
            );
            let mut tx = env.pool.begin(t).await.unwrap();
            for i in 0..8 {
                let mut c = customer(t, &format!("agg{i}@example.com"), "2175550101");
                c.created_at = if i < 6 { busy } else { quiet };
                repo.insert(&mut tx, &grant(t), &c).await.unwrap();
            }
            tx.commit().await.unwrap();
            let analyst = Request::new(t, staff(role!("security")));
            let gate = gate();
            let improve = gate.grant(&analyst, Purpose::ImproveAggregated).unwrap();
            let mut tx = env.pool.begin(t).await.unwrap();
            let denied = |e: plenum::store::Error| {
                assert_eq!(e.kind(), ErrorKind::Denied, "{}: {e}", env.name());
                assert!(e.to_string().contains("aggregate_only"), "{e}");
            };
            denied(repo.list(&mut tx, &improve, None, 10).await.unwrap_err());
            denied(
                repo.get(&mut tx, &improve, RecordId::generate())
                    .await
                    .unwrap_err(),
            );
            denied(
                repo.find(&mut tx, &improve, Customer::EMAIL_INDEX, "agg0@example.com")
                    .await
                    .unwrap_err(),
            );
            let c = customer(t, "new@example.com", "2175550101");
            denied(repo.insert(&mut tx, &improve, &c).await.unwrap_err());
            assert_eq!(repo.count(&mut tx, &improve).await.unwrap(), 8);
            let created_at = plenum::core::field_name!("created_at");
            let groups = repo
                .count_by(&mut tx, &improve, &created_at, 1)
                .await
                .unwrap();
            assert_eq!(MIN_GROUP_SIZE, 5);
            assert_eq!(
                groups.len(),
                1,
                "{}: the group of 2 is suppressed",
                env.name()
            );
            assert_eq!(groups[0].1, 6);
            assert!(groups[0].0 == Value::Timestamp(busy));
            let email = plenum::core::field_name!("email");
            let err = repo
                .count_by(&mut tx, &improve, &email, 5)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{}", env.name());
        }
    }

    #[tokio::test]
    async fn unrestricted_grants_need_the_role_and_are_reported_as_such() {
        let env = Env::sqlite().await;
        let t = env.tenant().await;
        let gate = gate();
        let migrator = Request::new(t, staff(role!("migrator")));
        let err = gate.unrestricted(&migrator, " ").unwrap_err();
        assert!(err.to_string().contains("no_reason"), "{err}");
        let grant = gate.unrestricted(&migrator, "backfill 2026-11").unwrap();
        assert_eq!(grant.purpose(), None);
        let repo = env.records.repository::<Customer>();
        let c = customer(t, "backfill@example.com", "2175550142");
        let mut tx = env.pool.begin(t).await.unwrap();
        env.hook.take();
        repo.insert(&mut tx, &grant, &c).await.unwrap();
        let back = repo.get(&mut tx, &grant, c.id).await.unwrap();
        assert!(back.phone.open().is_ok(), "nothing is withheld");
        let log = env.hook.take();
        assert_eq!(log.len(), 3, "key.create, insert, read");
        assert_eq!(log[0].action, Action::KeyCreate);
        for access in &log {
            assert_eq!(access.purpose, None);
            assert_eq!(access.unrestricted, Some("backfill 2026-11"));
            assert_eq!(access.policy_version, None);
            assert_eq!(access.actor, *migrator.actor());
            assert_eq!(access.request, migrator.id());
        }
        // A view needs its purpose: an unrestricted grant is not a marketing grant.
        let err = repo
            .get_view::<plenum_hvac::CustomerForMarketingEmail>(&mut tx, &grant, c.id)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("grant_for_another_purpose"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn precise_location_needs_each_technicians_explicit_consent() {
        for env in Env::both().await {
            let t = env.tenant().await;
            let repo = env.records.repository::<LocationPing>();
            let (consenting, silent) = (SubjectId::generate(), SubjectId::generate());
            let ping = |technician| LocationPing {
                id: RecordId::generate(),
                tenant: t,
                technician,
                recorded_at: chrono::Utc::now(),
                latitude_micro: plenum::store::Encrypted::new(39_781_721),
                longitude_micro: plenum::store::Encrypted::new(-89_650_148),
            };
            let pings = [ping(consenting), ping(silent), ping(consenting)];
            let mut tx = env.pool.begin(t).await.unwrap();
            repo.insert_many(&mut tx, &grant(t), &pings).await.unwrap();
            env.consent(
                &mut tx,
                t,
                &ConsentEvent::given(consenting, Purpose::TechnicianLocation, evidence()),
            )
            .await;
            let gate = gate();
            let request = Request::new(t, staff(role!("dispatcher")));
            let grant = gate.grant(&request, Purpose::TechnicianLocation).unwrap();
            let page = repo.list(&mut tx, &grant, None, 10).await.unwrap();
            let who: Vec<SubjectId> = page.items.iter().map(|p| p.technician).collect();
            assert_eq!(who, [consenting, consenting], "{}", env.name());
            assert!(page.items.iter().all(|p| p.latitude_micro.open().is_ok()));
            // Dispatch (imprecise location only) cannot read pings at all: the coordinates
            // would be withheld, and nothing else is there to read.
            let dispatch = gate.grant(&request, Purpose::Dispatch).unwrap();
            let page = repo.list(&mut tx, &dispatch, None, 10).await.unwrap();
            assert!(page.items.iter().all(|p| p.latitude_micro.is_withheld()));
        }
    }

    #[tokio::test]
    async fn grants_need_an_authorised_role_and_the_requests_tenant() {
        let env = Env::sqlite().await;
        let (a, b) = (env.tenant().await, env.tenant().await);
        let gate = gate();
        let request = Request::new(a, staff(role!("dispatcher")));
        let err = gate.grant(&request, Purpose::MarketingEmail).unwrap_err();
        assert!(err.to_string().contains("actor_not_authorised"), "{err}");
        let err = gate
            .unrestricted(&request, "not for dispatchers")
            .unwrap_err();
        assert!(err.to_string().contains("actor_not_authorised"), "{err}");
        // A grant for a request in A does not work in B's transaction.
        let grant_a = gate.grant(&request, Purpose::Scheduling).unwrap();
        let mut tx_b = env.pool.begin(b).await.unwrap();
        let customers = env.records.repository::<Customer>();
        let err = customers
            .list(&mut tx_b, &grant_a, None, 10)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::IsolationViolation);
        let err = customers
            .get(&mut tx_b, &grant_a, RecordId::generate())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::IsolationViolation);
        drop(tx_b);
        // A purpose that may not see a plain personal column cannot group by it either.
        let security = Request::new(a, staff(role!("security")));
        let mut tx = env.pool.begin(a).await.unwrap();
        let improve = gate.grant(&security, Purpose::ImproveAggregated).unwrap();
        let err = env
            .records
            .repository::<Appointment>()
            .count_by(
                &mut tx,
                &improve,
                &plenum::core::field_name!("technician"),
                5,
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("plain_field_not_visible"), "{err}");
    }
}

mod views {
    use plenum::consent::{ConsentEvent, Purpose};
    use plenum::core::{RecordId, SubjectId, role};
    use plenum::store::{Encrypted, ErrorKind, Request, View};
    use plenum_hvac::{
        Customer, CustomerForDispatch, CustomerForMarketingEmail, LocationPing,
        LocationPingForTechnicianLocation,
    };

    use super::purpose_bound::{gate, staff};
    use crate::fixtures::evidence;
    use crate::fixtures::{Env, customer, grant};

    #[test]
    fn views_hold_exactly_the_fields_the_default_policy_allows() {
        assert_eq!(
            CustomerForMarketingEmail::FIELDS,
            ["name", "email", "created_at"]
        );
        assert_eq!(
            CustomerForDispatch::FIELDS,
            ["name", "phone", "service_address", "created_at"]
        );
        assert_eq!(
            LocationPingForTechnicianLocation::FIELDS,
            ["recorded_at", "latitude_micro", "longitude_micro"]
        );
        assert_eq!(CustomerForMarketingEmail::PURPOSE, Purpose::MarketingEmail);
    }

    #[tokio::test]
    async fn views_are_read_with_a_grant_for_their_purpose() {
        for env in Env::both().await {
            let t = env.tenant().await;
            let repo = env.records.repository::<Customer>();
            let yes = customer(t, "yes@example.com", "2175550101");
            let no = customer(t, "no@example.com", "2175550102");
            let mut tx = env.pool.begin(t).await.unwrap();
            repo.insert_many(&mut tx, &grant(t), &[yes.clone(), no.clone()])
                .await
                .unwrap();
            env.consent(
                &mut tx,
                t,
                &ConsentEvent::given(yes.subject, Purpose::MarketingEmail, evidence()),
            )
            .await;
            let gate = gate();
            let marketer = Request::new(t, staff(role!("marketer")));
            let grant = gate.grant(&marketer, Purpose::MarketingEmail).unwrap();
            let page = repo
                .list_views::<CustomerForMarketingEmail>(&mut tx, &grant, None, 10)
                .await
                .unwrap();
            let ids: Vec<RecordId> = page.items.iter().map(|v| v.id).collect();
            assert_eq!(ids, [yes.id], "{}", env.name());
            assert_eq!(
                page.items[0].email.open().unwrap().expose(),
                "yes@example.com"
            );
            // A grant for another purpose does not read this view.
            let dispatcher = Request::new(t, staff(role!("dispatcher")));
            let dispatch = gate.grant(&dispatcher, Purpose::Dispatch).unwrap();
            let err = repo
                .get_view::<CustomerForMarketingEmail>(&mut tx, &dispatch, yes.id)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Denied);
            assert!(
                err.to_string().contains("grant_for_another_purpose"),
                "{err}"
            );
            let view = repo
                .get_view::<CustomerForDispatch>(&mut tx, &dispatch, no.id)
                .await
                .unwrap();
            assert_eq!(view.phone.open().unwrap().expose(), "2175550102");
            assert_eq!(
                view.service_address.open().unwrap().expose(),
                "12 Furnace Lane, Springfield"
            );

            // Technician location: the view holds the coordinates, for consenting technicians.
            let pings = env.records.repository::<LocationPing>();
            let tech = SubjectId::generate();
            let ping = LocationPing {
                id: RecordId::generate(),
                tenant: t,
                technician: tech,
                recorded_at: chrono::Utc::now(),
                latitude_micro: Encrypted::new(1),
                longitude_micro: Encrypted::new(2),
            };
            pings
                .insert(&mut tx, &crate::fixtures::grant(t), &ping)
                .await
                .unwrap();
            let location = gate
                .grant(&dispatcher, Purpose::TechnicianLocation)
                .unwrap();
            let err = pings
                .get_view::<LocationPingForTechnicianLocation>(&mut tx, &location, ping.id)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("consent_missing"), "{err}");
            env.consent(
                &mut tx,
                t,
                &ConsentEvent::given(tech, Purpose::TechnicianLocation, evidence()),
            )
            .await;
            let view = pings
                .get_view::<LocationPingForTechnicianLocation>(&mut tx, &location, ping.id)
                .await
                .unwrap();
            assert_eq!(*view.latitude_micro.open().unwrap().expose(), 1);
        }
    }
}
