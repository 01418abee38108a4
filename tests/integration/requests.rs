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
use plenum::store::{ErrorKind, Request};

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
        for statement in [
            "UPDATE {t} SET step = 'complete', detail = NULL",
            "DELETE FROM {t}",
        ] {
            let table = match a.env.pool.backend() {
                plenum::store::BackendKind::Postgres => "plenum.subject_request_steps",
                _ => "plenum_subject_request_steps",
            };
            let statement = statement.replace("{t}", table);
            let mut tx = a.env.pool.begin(t).await.unwrap();
            let query = sqlx::query(sqlx::AssertSqlSafe(statement.clone()));
            let result = match a.env.pool.backend() {
                plenum::store::BackendKind::Postgres => query
                    .execute(tx.dangerous_postgres().unwrap())
                    .await
                    .map(|_| ()),
                _ => sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
                    .execute(tx.dangerous_sqlite().unwrap())
                    .await
                    .map(|_| ()),
            };
            assert!(result.is_err(), "{}: {statement} was allowed", a.env.name());
        }
    }
}
