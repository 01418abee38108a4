//! The consent ledger on PostgreSQL (as the runtime role) and SQLite.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures: a failed set-up is a failed test"
)]

use chrono::{Duration, Utc};
use plenum::consent::{
    ConsentCheck, ConsentEvent, Decision, DenyReason, EventKind, Evidence, Method, Policy, Purpose,
};
use plenum::core::{ActorId, SubjectId};
use plenum::store::{ConsentLedger, ErrorKind};

use crate::records::Env;

fn evidence() -> Evidence {
    Evidence {
        notice_version: "privacy-2026-11".to_owned(),
        notice_sha256: [9; 32],
        method: Method::Ui,
        actor: ActorId::generate(),
        at: Utc::now(),
    }
}

#[tokio::test]
async fn a_withdrawal_counts_for_the_next_read() {
    let policy = Policy::plenum_default();
    for env in Env::both().await {
        let t = env.tenant().await;
        let s = SubjectId::generate();
        let mut tx = env.pool.begin(t).await.unwrap();
        ConsentLedger::record(
            &mut tx,
            &ConsentEvent::given(s, Purpose::MarketingEmail, evidence()),
        )
        .await
        .unwrap();
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
        ConsentLedger::record(&mut w, &withdrawal).await.unwrap();
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
                ConsentLedger::record(
                    &mut tx,
                    &ConsentEvent::given(*s, Purpose::MarketingSms, evidence()),
                )
                .await
                .unwrap();
            }
            if i % 5 == 0 {
                ConsentLedger::record(&mut tx, &ConsentEvent::restriction(*s, true, evidence()))
                    .await
                    .unwrap();
            }
            if i % 3 == 0 {
                let mut gpc = ConsentEvent::about(
                    *s,
                    EventKind::Objected,
                    Purpose::ImproveAggregated,
                    evidence(),
                );
                gpc.evidence.method = Method::GlobalPrivacyControl;
                ConsentLedger::record(&mut tx, &gpc).await.unwrap();
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
        ConsentLedger::record(
            &mut tx,
            &ConsentEvent::given(s, Purpose::MarketingEmail, evidence()),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let mut tx = env.pool.begin(t).await.unwrap();
        let refused = match tx.postgres() {
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
        let err = ConsentLedger::record(&mut tx, &bad).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
}
