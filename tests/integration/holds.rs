//! Legal holds through the public API, on PostgreSQL (as the runtime role) and SQLite: placed
//! and lifted under `compliance.legal_hold`, audited, append-only; while a hold covers a
//! subject's data, erasure does nothing (a direct erasure is refused, an erasure request is
//! refused for legal claims), and once it is lifted erasure proceeds.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures: a failed set-up is a failed test"
)]

use chrono::{Duration, Utc};
use plenum::consent::{
    HoldScope, Purpose, RefusalReason, RequestChannel, RequestState, Requester, Right,
    SubjectRequest, Verification,
};
use plenum::prelude::*;
use plenum::store::{ErrorKind, IdentityVerifier, Request};
use plenum_hvac::{Customer, Property};

use crate::audit::{Audited, staff};
use crate::fixtures::{customer, grant, property};

struct Everyone;

impl IdentityVerifier for Everyone {
    fn verify<'a>(&'a self, _: &'a SubjectRequest) -> plenum::crypto::BoxFuture<'a, Verification> {
        Box::pin(async {
            Verification::Verified {
                method: "test".to_owned(),
            }
        })
    }
}

async fn customer_with_property(a: &Audited, t: TenantId, email: &str) -> (Customer, Property) {
    let c = customer(t, email, "2175550142");
    let p = property(&c);
    let mut tx = a.env.pool.begin(t).await.unwrap();
    a.records
        .repository::<Customer>()
        .insert(&mut tx, &grant(t), &c)
        .await
        .unwrap();
    a.records
        .repository::<Property>()
        .insert(&mut tx, &grant(t), &p)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (c, p)
}

/// Each scope that covers the subject stops erasure; a scope that does not (another subject,
/// a record type the subject has no rows of, another record) leaves it alone; lifting the
/// hold lets erasure proceed.
#[tokio::test]
async fn a_legal_hold_suspends_erasure_of_what_it_covers_until_lifted() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let counsel = Request::new(t, staff("counsel"));
        let holds = a.gate.grant(&counsel, Purpose::LegalHold).unwrap();
        let officer = Request::new(t, staff("privacy"));
        let rights = a.gate.grant(&officer, Purpose::RightsFulfilment).unwrap();
        let name = a.env.name();
        let (c, p) = customer_with_property(&a, t, "held@example.com").await;
        let covering = [
            HoldScope::Subject(c.subject),
            HoldScope::RecordType(plenum::core::record_type!("properties")),
            HoldScope::Record(plenum::core::record_type!("properties"), p.id),
            HoldScope::Tenant,
        ];
        for scope in covering {
            let mut tx = a.env.pool.begin(t).await.unwrap();
            let hold = a
                .records
                .place_legal_hold(&mut tx, &holds, scope.clone(), "case-2026-114", Utc::now())
                .await
                .unwrap();
            let err = a
                .records
                .erase_subject(&mut tx, &rights, c.subject)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Denied, "{name}: {scope:?}");
            assert!(err.to_string().contains("under_legal_hold"), "{err}");
            a.records
                .lift_legal_hold(&mut tx, &holds, hold, Utc::now())
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        let not_covering = [
            HoldScope::Subject(SubjectId::generate()),
            HoldScope::RecordType(plenum::core::record_type!("invoices")),
            HoldScope::Record(
                plenum::core::record_type!("properties"),
                RecordId::generate(),
            ),
        ];
        let mut tx = a.env.pool.begin(t).await.unwrap();
        for scope in not_covering {
            a.records
                .place_legal_hold(&mut tx, &holds, scope, "case-2026-115", Utc::now())
                .await
                .unwrap();
        }
        // Every covering hold was lifted, the rest cover something else: erasure proceeds.
        a.records
            .erase_subject(&mut tx, &rights, c.subject)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let left = a
            .records
            .repository::<Property>()
            .list(&mut tx, &rights, None, 10)
            .await
            .unwrap();
        assert!(
            left.items.is_empty(),
            "{name}: erased once the holds were lifted"
        );
        let all = a.records.legal_holds(&mut tx, &holds).await.unwrap();
        assert_eq!(all.len(), 7);
        assert_eq!(all.iter().filter(|(_, h)| h.lifted_at.is_some()).count(), 4);
        tx.commit().await.unwrap();
    }
}

/// An erasure request for a held subject ends refused for legal claims, nothing erased.
#[tokio::test]
async fn an_erasure_request_under_a_legal_hold_is_refused_for_legal_claims() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let counsel = Request::new(t, staff("counsel"));
        let holds = a.gate.grant(&counsel, Purpose::LegalHold).unwrap();
        let officer = Request::new(t, staff("privacy"));
        let rights = a.gate.grant(&officer, Purpose::RightsFulfilment).unwrap();
        let (c, _) = customer_with_property(&a, t, "held@example.com").await;
        let mut tx = a.env.pool.begin(t).await.unwrap();
        a.records
            .place_legal_hold(
                &mut tx,
                &holds,
                HoldScope::Subject(c.subject),
                "case-7",
                Utc::now() - Duration::days(1),
            )
            .await
            .unwrap();
        let request = SubjectRequest::received(
            t,
            c.subject,
            Right::Erasure,
            Requester::Subject,
            RequestChannel::Email,
            Utc::now(),
        );
        let id = a
            .records
            .receive_request(&mut tx, &rights, &request)
            .await
            .unwrap();
        a.records
            .verify_identity(&mut tx, &rights, id, &Everyone, Utc::now())
            .await
            .unwrap();
        let receipt = a
            .records
            .answer_erasure_request(&mut tx, &rights, id, Utc::now())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            receipt.outcome,
            RequestState::Refused(RefusalReason::LegalClaims),
            "{}",
            a.env.name()
        );
        assert!(receipt.records.is_empty() && receipt.keys_destroyed == 0);
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let still = a
            .records
            .repository::<Customer>()
            .get(&mut tx, &rights, c.id)
            .await
            .unwrap();
        assert_eq!(still.email.open().unwrap().expose(), "held@example.com");
        tx.commit().await.unwrap();
    }
}

/// Holds are placed under `compliance.legal_hold` only, with a matter; each placing and
/// lifting is on record; a hold is lifted once; the history cannot be rewritten.
#[tokio::test]
async fn holds_need_their_purpose_are_audited_and_append_only() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let officer = Request::new(t, staff("privacy"));
        let rights = a.gate.grant(&officer, Purpose::RightsFulfilment).unwrap();
        let counsel = Request::new(t, staff("counsel"));
        let holds = a.gate.grant(&counsel, Purpose::LegalHold).unwrap();
        let name = a.env.name();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let err = a
            .records
            .place_legal_hold(&mut tx, &rights, HoldScope::Tenant, "case-1", Utc::now())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Denied, "{name}");
        let err = a
            .records
            .place_legal_hold(&mut tx, &holds, HoldScope::Tenant, "  ", Utc::now())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name}");
        let id = a
            .records
            .place_legal_hold(&mut tx, &holds, HoldScope::Tenant, "case-1", Utc::now())
            .await
            .unwrap();
        a.records
            .lift_legal_hold(&mut tx, &holds, id, Utc::now())
            .await
            .unwrap();
        let err = a
            .records
            .lift_legal_hold(&mut tx, &holds, id, Utc::now())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name}: lifted once");
        tx.commit().await.unwrap();
        let actions: Vec<String> = a
            .memory
            .take()
            .into_iter()
            .filter(|e| e.record_type.as_deref() == Some("legal_holds"))
            .map(|e| e.action)
            .collect();
        assert!(
            actions.iter().filter(|a| *a == "hold.placed").count() >= 3,
            "{name}: {actions:?}"
        );
        assert!(actions.iter().any(|a| a == "hold.lifted"), "{name}");
        let table = a.env.library_table("legal_holds");
        for statement in [
            format!("UPDATE {table} SET matter = 'nothing'"),
            format!("DELETE FROM {table}"),
        ] {
            let result = a.env.raw_in_tenant(t, &statement).await;
            assert!(result.is_err(), "{name}: {statement} was allowed");
        }
    }
}
