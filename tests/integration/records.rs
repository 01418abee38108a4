//! Typed records and repositories, on PostgreSQL (as the unprivileged runtime role) and on
//! SQLite, through the public facade only.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test fixtures: a failed set-up is a failed test"
)]

use std::sync::Arc;

use crate::fixtures::{Env, customer, equipment, grant, keyring, property};
use chrono::{NaiveDate, TimeZone as _, Utc};
use plenum::crypto::KeyScope;
use plenum::prelude::*;
use plenum::store::{
    Access, Action, BackendKind, ConsentLedger, DbKeyStore, Error, ErrorKind, Outcome,
};
use plenum_hvac::{Appointment, Customer, Equipment, Invoice, LocationPing, Property};
use plenum_test::{CANARY_EMAIL, CANARY_PHONE, assert_no_canary};

/// A hook that cannot record: every operation must fail closed.
struct Broken;

impl AccessHook for Broken {
    fn on_access<'a>(
        &'a self,
        _tx: &'a mut TenantTx,
        _access: &'a Access,
    ) -> plenum::crypto::BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Err(Error::Config("audit sink unavailable")) })
    }
}

fn text(e: &Encrypted<String>) -> String {
    e.open().unwrap().expose().clone()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn every_example_record_round_trips_on_both_backends() {
    for env in Env::both().await {
        let t = env.tenant().await;
        let mut tx = env.pool.begin(t).await.unwrap();
        let c = customer(t, CANARY_EMAIL, CANARY_PHONE);
        let property = property(&c);
        let equipment = equipment(&property);
        let technician = SubjectId::generate();
        let appointment = Appointment {
            id: RecordId::generate(),
            tenant: t,
            subject: c.subject,
            property_id: property.id,
            technician,
            starts_at: Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap(),
            ends_at: Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap(),
            notes: Some(Encrypted::new("Dog in the yard; gate code 4471".to_owned())),
        };
        let no_notes = Appointment {
            id: RecordId::generate(),
            notes: None,
            ..appointment.clone()
        };
        let invoice = Invoice {
            id: RecordId::generate(),
            tenant: t,
            subject: c.subject,
            customer_id: c.id,
            amount_cents: Encrypted::new(48_950),
            currency: "USD".to_owned(),
            due_on: NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
            paid: false,
        };
        let ping = LocationPing {
            id: RecordId::generate(),
            tenant: t,
            technician,
            recorded_at: Utc.with_ymd_and_hms(2026, 12, 1, 8, 5, 0).unwrap(),
            latitude_micro: Encrypted::new(39_781_721),
            longitude_micro: Encrypted::new(-89_650_148),
        };
        let r = &env.records;
        r.repository::<Customer>()
            .insert(&mut tx, &grant(t), &c)
            .await
            .unwrap();
        r.repository::<Property>()
            .insert(&mut tx, &grant(t), &property)
            .await
            .unwrap();
        r.repository::<Equipment>()
            .insert(&mut tx, &grant(t), &equipment)
            .await
            .unwrap();
        r.repository::<Appointment>()
            .insert_many(&mut tx, &grant(t), &[appointment.clone(), no_notes.clone()])
            .await
            .unwrap();
        r.repository::<Invoice>()
            .insert(&mut tx, &grant(t), &invoice)
            .await
            .unwrap();
        r.repository::<LocationPing>()
            .insert(&mut tx, &grant(t), &ping)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let mut tx = env.pool.begin(t).await.unwrap();
        let back = r
            .repository::<Customer>()
            .get(&mut tx, &grant(t), c.id)
            .await
            .unwrap();
        assert_eq!(back.subject, c.subject);
        assert_eq!(back.tenant, t);
        assert_eq!(back.created_at, c.created_at);
        assert_eq!(text(&back.email), CANARY_EMAIL);
        assert_eq!(text(&back.phone), CANARY_PHONE);
        assert_eq!(text(&back.name), "Ada Lovelace");
        assert!(back.email.is_loaded());
        let p = r
            .repository::<Property>()
            .get(&mut tx, &grant(t), property.id)
            .await
            .unwrap();
        assert_eq!((p.customer_id, p.square_feet), (c.id, Some(1850)));
        assert_eq!(text(&p.address), "12 Furnace Lane");
        let e = r
            .repository::<Equipment>()
            .get(&mut tx, &grant(t), equipment.id)
            .await
            .unwrap();
        assert_eq!(e.model, "Carrier 59MN7");
        assert_eq!(e.installed_on, equipment.installed_on);
        assert_eq!(text(&e.serial), "SN-4471-XQ");
        let a = r
            .repository::<Appointment>()
            .get(&mut tx, &grant(t), appointment.id)
            .await
            .unwrap();
        assert_eq!(
            (a.technician, a.starts_at, a.ends_at),
            (technician, appointment.starts_at, appointment.ends_at)
        );
        assert_eq!(
            text(a.notes.as_ref().unwrap()),
            "Dog in the yard; gate code 4471"
        );
        let none = r
            .repository::<Appointment>()
            .get(&mut tx, &grant(t), no_notes.id)
            .await
            .unwrap();
        assert!(none.notes.is_none());
        let i = r
            .repository::<Invoice>()
            .get(&mut tx, &grant(t), invoice.id)
            .await
            .unwrap();
        assert_eq!(*i.amount_cents.open().unwrap().expose(), 48_950);
        assert_eq!(
            (i.currency.as_str(), i.due_on, i.paid),
            ("USD", invoice.due_on, false)
        );
        let l = r
            .repository::<LocationPing>()
            .get(&mut tx, &grant(t), ping.id)
            .await
            .unwrap();
        assert_eq!(*l.latitude_micro.open().unwrap().expose(), 39_781_721);
        assert_eq!(*l.longitude_micro.open().unwrap().expose(), -89_650_148);
        assert_eq!(l.technician, technician);
        assert_eq!(
            r.repository::<Appointment>()
                .count(&mut tx, &grant(t))
                .await
                .unwrap(),
            2,
            "{}",
            env.name()
        );

        // Debug output of a loaded record holds no PII.
        let debug = format!("{back:?} {p:?} {e:?} {a:?} {i:?} {l:?}");
        assert_no_canary("record Debug", &debug);
        assert!(
            !debug.contains("Ada Lovelace") && !debug.contains("4471"),
            "{debug}"
        );
    }
}

#[tokio::test]
async fn stored_columns_hold_no_plaintext() {
    for env in Env::both().await {
        let t = env.tenant().await;
        let c = customer(t, CANARY_EMAIL, CANARY_PHONE);
        let mut tx = env.pool.begin(t).await.unwrap();
        env.records
            .repository::<Customer>()
            .insert(&mut tx, &grant(t), &c)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let raw = env
            .raw_bytes(
                "customers",
                &[
                    "name",
                    "email",
                    "phone",
                    "service_address",
                    "email_bidx",
                    "phone_bidx",
                ],
            )
            .await;
        assert!(raw.len() > 4 * 35, "{}: the columns were read", env.name());
        for plain in [
            CANARY_EMAIL,
            CANARY_PHONE,
            "Ada Lovelace",
            "Furnace Lane",
            "ada",
            "Ada",
        ] {
            assert!(
                !contains(&raw, plain),
                "{}: {plain:?} stored in the clear",
                env.name()
            );
        }
        // Normalised forms are not stored either (the blind index is a MAC, not the value).
        assert!(
            !contains(&raw, &CANARY_EMAIL.to_lowercase()),
            "{}",
            env.name()
        );
    }
}

#[tokio::test]
async fn blind_index_lookups_are_normalised_and_never_cross_tenants() {
    for env in Env::both().await {
        let (a, b) = (env.tenant().await, env.tenant().await);
        let repo = env.records.repository::<Customer>();
        let ada = customer(a, "Ada@Example.com", "(217) 555-0142");
        let other = customer(a, "grace@example.com", "217-555-0199");
        let same_in_b = customer(b, "ada@example.com", "+1 217 555 0142");
        let mut tx = env.pool.begin(a).await.unwrap();
        repo.insert_many(&mut tx, &grant(a), &[ada.clone(), other.clone()])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut tx = env.pool.begin(b).await.unwrap();
        repo.insert(&mut tx, &grant(b), &same_in_b).await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = env.pool.begin(a).await.unwrap();
        for spelling in ["ada@example.com", "  ADA@EXAMPLE.COM ", "Ada@Example.com"] {
            let found = repo
                .find(&mut tx, &grant(a), Customer::EMAIL_INDEX, spelling)
                .await
                .unwrap();
            let ids: Vec<_> = found.iter().map(|c| c.id).collect();
            assert_eq!(ids, vec![ada.id], "{}: {spelling}", env.name());
        }
        for spelling in [
            "2175550142",
            "+12175550142",
            "217.555.0142",
            "1 (217) 555-0142",
        ] {
            let found = repo
                .find(&mut tx, &grant(a), Customer::PHONE_INDEX, spelling)
                .await
                .unwrap();
            let ids: Vec<_> = found.iter().map(|c| c.id).collect();
            assert_eq!(ids, vec![ada.id], "{}: {spelling}", env.name());
        }
        assert!(
            repo.find(
                &mut tx,
                &grant(a),
                Customer::EMAIL_INDEX,
                "nobody@example.com"
            )
            .await
            .unwrap()
            .is_empty()
        );
        // A malformed phone is a clear error, not an empty result.
        let err = repo
            .find(&mut tx, &grant(a), Customer::PHONE_INDEX, "call me")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{}", env.name());
        drop(tx);

        let mut tx = env.pool.begin(b).await.unwrap();
        let found = repo
            .find(&mut tx, &grant(b), Customer::EMAIL_INDEX, "ada@example.com")
            .await
            .unwrap();
        let ids: Vec<_> = found.iter().map(|c| c.id).collect();
        assert_eq!(
            ids,
            vec![same_in_b.id],
            "{}: B sees only its own Ada",
            env.name()
        );
    }
}

#[tokio::test]
async fn a_ciphertext_moved_by_raw_sql_fails_to_open() {
    for env in Env::both().await {
        let (a, b) = (env.tenant().await, env.tenant().await);
        let repo = env.records.repository::<Customer>();
        let one = customer(a, "one@example.com", "2175550101");
        let two = customer(a, "two@example.com", "2175550102");
        let three = customer(b, "three@example.com", "2175550103");
        for (t, c) in [(a, &one), (a, &two), (b, &three)] {
            let mut tx = env.pool.begin(t).await.unwrap();
            repo.insert(&mut tx, &grant(t), c).await.unwrap();
            tx.commit().await.unwrap();
        }
        let id = |c: &Customer| c.id.to_string();
        let (one_id, two_id, three_id) = (id(&one), id(&two), id(&three));
        let lit = |s: &str| match env.db {
            Some(_) => format!("'{s}'::uuid"),
            None => format!("X'{}'", s.replace('-', "")),
        };
        // Another field of the same row; the same field of another row; another tenant's row.
        env.tamper(&format!(
            "UPDATE customers SET name = email WHERE id = {}",
            lit(&one_id)
        ))
        .await;
        env.tamper(&format!(
            "UPDATE customers SET phone = (SELECT phone FROM customers WHERE id = {}) WHERE id = {}",
            lit(&one_id),
            lit(&two_id)
        ))
        .await;
        env.tamper(&format!(
            "UPDATE customers SET email = (SELECT email FROM customers WHERE id = {}) WHERE id = {}",
            lit(&one_id),
            lit(&three_id)
        ))
        .await;

        let mut tx = env.pool.begin(a).await.unwrap();
        let got_one = repo.get(&mut tx, &grant(a), one.id).await.unwrap();
        // Reading the row works: only the field asked for is decrypted, and it fails alone.
        assert_eq!(
            got_one.name.open().unwrap_err().kind(),
            ErrorKind::DecryptionFailed,
            "{}",
            env.name()
        );
        assert_eq!(text(&got_one.email), "one@example.com");
        let got_two = repo.get(&mut tx, &grant(a), two.id).await.unwrap();
        assert_eq!(
            got_two.phone.open().unwrap_err().kind(),
            ErrorKind::DecryptionFailed
        );
        assert_eq!(text(&got_two.email), "two@example.com");
        drop(tx);
        let mut tx = env.pool.begin(b).await.unwrap();
        let got_three = repo.get(&mut tx, &grant(b), three.id).await.unwrap();
        let err = got_three.email.open().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::DecryptionFailed, "{}", env.name());
        assert_no_canary("decryption error", &format!("{err} {err:?}"));
    }
}

/// Copying a row's blind-index value to another (raw SQL with the database's write access) used to
/// make `find(x)` return another person's record. `find` opens the indexed field of every row
/// it found and refuses a row that holds another value; an erased subject's row (its field can
/// no longer be opened) does not answer the search at all.
#[tokio::test]
async fn find_returns_only_rows_that_hold_the_value_searched_for() {
    for env in Env::both().await {
        let t = env.tenant().await;
        let repo = env.records.repository::<Customer>();
        let one = customer(t, "one@example.com", "2175550101");
        let two = customer(t, "two@example.com", "2175550102");
        let mut tx = env.pool.begin(t).await.unwrap();
        repo.insert(&mut tx, &grant(t), &one).await.unwrap();
        repo.insert(&mut tx, &grant(t), &two).await.unwrap();
        tx.commit().await.unwrap();
        let lit = |s: String| match env.db {
            Some(_) => format!("'{s}'::uuid"),
            None => format!("X'{}'", s.replace('-', "")),
        };
        env.tamper(&format!(
            "UPDATE customers SET phone_bidx = (SELECT phone_bidx FROM customers WHERE id = {}) \
             WHERE id = {}",
            lit(two.id.to_string()),
            lit(one.id.to_string())
        ))
        .await;
        let mut tx = env.pool.begin(t).await.unwrap();
        let err = repo
            .find(&mut tx, &grant(t), Customer::PHONE_INDEX, "2175550102")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Tampered, "{}: {err}", env.name());
        assert_no_canary("index mismatch", &format!("{err} {err:?}"));
        drop(tx);

        // The erased person is not found by their email.
        let three = customer(t, "three@example.com", "2175550103");
        let mut tx = env.pool.begin(t).await.unwrap();
        repo.insert(&mut tx, &grant(t), &three).await.unwrap();
        tx.commit().await.unwrap();
        env.records
            .keyring()
            .destroy_scope(t, KeyScope::Subject(three.subject))
            .await
            .unwrap();
        let fresh = Records::new(keyring(&env.keys), Arc::new(DiscardAccess))
            .with_record_types(plenum_hvac::record_types());
        let mut tx = env.pool.begin(t).await.unwrap();
        let found = fresh
            .repository::<Customer>()
            .find(
                &mut tx,
                &grant(t),
                Customer::EMAIL_INDEX,
                "three@example.com",
            )
            .await
            .unwrap();
        assert!(found.is_empty(), "{}", env.name());
    }
}

/// The documented limit (SECURITY.md, "A malicious DBA"): an envelope is bound to its tenant,
/// record type, field, subject and row, not to a row version, so writing a row's own older
/// envelope back opens to the older value. Pinned so that a change to it is a decision.
#[tokio::test]
async fn a_rows_own_older_envelope_written_back_opens_to_the_older_value() {
    for env in Env::both().await {
        let t = env.tenant().await;
        let repo = env.records.repository::<Customer>();
        let c = customer(t, "v@example.com", "2175550101");
        let mut tx = env.pool.begin(t).await.unwrap();
        repo.insert(&mut tx, &grant(t), &c).await.unwrap();
        let mut read = repo.get(&mut tx, &grant(t), c.id).await.unwrap();
        let old = read.phone.envelope().unwrap().as_bytes().to_vec();
        read.phone.set("2175550199".to_owned());
        repo.update(&mut tx, &grant(t), &read).await.unwrap();
        tx.commit().await.unwrap();
        let literal = |b: &[u8], id: String| match env.db {
            Some(_) => format!(
                "UPDATE customers SET phone = '\\x{}'::bytea WHERE id = '{id}'::uuid",
                hex::encode(b)
            ),
            None => format!(
                "UPDATE customers SET phone = X'{}' WHERE id = X'{}'",
                hex::encode(b),
                id.replace('-', "")
            ),
        };
        env.tamper(&literal(&old, c.id.to_string())).await;
        let mut tx = env.pool.begin(t).await.unwrap();
        let back = repo.get(&mut tx, &grant(t), c.id).await.unwrap();
        assert_eq!(text(&back.phone), "2175550101", "{}", env.name());
    }
}

/// Two instances over one database: one erases a subject; the other, its caches warm, stops
/// decrypting the subject's fields within its keyring's TTL (`KeyringConfig::with_ttl`, the
/// bound a deployment chooses), not at some later restart.
#[tokio::test]
async fn another_instance_stops_decrypting_an_erased_subject_within_its_ttl() {
    use plenum::crypto::{Backend, Keyring, KeyringConfig, LocalKeyProvider, secrecy::SecretBox};
    let ttl = std::time::Duration::from_secs(2);
    for env in Env::both().await {
        let t = env.tenant().await;
        let c = customer(t, "erased@example.com", "2175550101");
        let mut tx = env.pool.begin(t).await.unwrap();
        env.records
            .repository::<Customer>()
            .insert(&mut tx, &grant(t), &c)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let root = SecretBox::new(Box::new([0x42u8; 32]));
        let other = Records::new(
            Arc::new(Keyring::new(
                Arc::new(LocalKeyProvider::new(Backend::default(), 1, &root).unwrap()),
                env.keys.clone(),
                KeyringConfig::default().with_ttl(ttl),
            )),
            Arc::new(DiscardAccess),
        )
        .with_record_types(plenum_hvac::record_types());
        let read = |records: Records| {
            let pool = env.pool.clone();
            async move {
                let mut tx = pool.begin(t).await.unwrap();
                let back = records
                    .repository::<Customer>()
                    .get(&mut tx, &grant(t), c.id)
                    .await
                    .unwrap();
                back.phone.open().map(|p| p.expose().clone())
            }
        };
        assert_eq!(read(other.clone()).await.unwrap(), "2175550101", "warm");
        let erased_at = std::time::Instant::now();
        env.records
            .keyring()
            .destroy_scope(t, KeyScope::Subject(c.subject))
            .await
            .unwrap();
        // Within the TTL the other instance may still open it (its cache is warm); past it, it
        // cannot.
        tokio::time::sleep(
            ttl.saturating_sub(erased_at.elapsed()) + std::time::Duration::from_millis(100),
        )
        .await;
        let err = read(other).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::KeyDestroyed, "{}: {err}", env.name());
    }
}

/// Concurrent first inserts for new subjects (each creates and commits a subject key while its
/// data transaction holds a connection) finish on a pool of any size: keys are created on a
/// pool of their own. With one shared pool, two such inserts on a 2-connection pool each waited
/// for a third connection until the acquire timeout.
#[tokio::test]
async fn concurrent_first_inserts_never_wait_for_each_others_connections() {
    let env = Env::postgres().await;
    let db = env.db.as_ref().unwrap();
    let t = env.tenant().await;
    for size in [1, 2] {
        let pool = db.app(size).await;
        let keys = Arc::new(DbKeyStore::new(pool.clone()));
        let records = Records::new(keyring(&keys), Arc::new(DiscardAccess))
            .with_record_types(plenum_hvac::record_types());
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let (pool, records) = (pool.clone(), records.clone());
                tokio::spawn(async move {
                    let mut tx = pool.begin(t).await.unwrap();
                    let c = customer(t, &format!("p{size}-{i}@example.com"), "2175550101");
                    records
                        .repository::<Customer>()
                        .insert(&mut tx, &grant(t), &c)
                        .await
                        .unwrap();
                    tx.commit().await.unwrap();
                })
            })
            .collect();
        let all = async {
            for task in tasks {
                task.await.unwrap();
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(20), all)
            .await
            .unwrap_or_else(|_| panic!("first inserts on a {size}-connection pool deadlocked"));
    }
}

/// One malformed envelope used to fail every `get` and `list` that touched its row. Now the
/// page comes back whole, the bad field alone refuses to open, and the hook hears which record
/// was tampered with.
#[tokio::test]
async fn a_malformed_envelope_spoils_one_field_not_the_page() {
    for env in Env::both().await {
        let t = env.tenant().await;
        let repo = env.records.repository::<Customer>();
        let cs = [
            customer(t, "m1@example.com", "2175550101"),
            customer(t, "m2@example.com", "2175550102"),
            customer(t, "m3@example.com", "2175550103"),
        ];
        let mut tx = env.pool.begin(t).await.unwrap();
        repo.insert_many(&mut tx, &grant(t), &cs).await.unwrap();
        tx.commit().await.unwrap();
        let bad = &cs[1];
        env.tamper(&match env.db {
            Some(_) => format!(
                "UPDATE customers SET phone = '\\x0102030405'::bytea WHERE id = '{}'::uuid",
                bad.id
            ),
            None => format!(
                "UPDATE customers SET phone = X'0102030405' WHERE id = X'{}'",
                bad.id.to_string().replace('-', "")
            ),
        })
        .await;
        env.hook.take();
        let mut tx = env.pool.begin(t).await.unwrap();
        let page = repo.list(&mut tx, &grant(t), None, 10).await.unwrap();
        assert_eq!(page.items.len(), 3, "{}", env.name());
        for c in &page.items {
            let phone = c.phone.open();
            if c.id == bad.id {
                assert_eq!(phone.unwrap_err().kind(), ErrorKind::DecryptionFailed);
                assert_eq!(
                    text(&c.email),
                    "m2@example.com",
                    "the rest of the row reads"
                );
            } else {
                assert!(phone.is_ok(), "{}", env.name());
            }
        }
        let told = env.hook.take();
        let tampered: Vec<_> = told
            .iter()
            .filter(|a| a.outcome == Outcome::Failed(ErrorKind::Tampered))
            .collect();
        assert_eq!(tampered.len(), 1, "{}: {told:?}", env.name());
        assert_eq!(tampered[0].records, [bad.id]);
        let one = repo.get(&mut tx, &grant(t), bad.id).await.unwrap();
        assert!(one.phone.open().is_err());
        tx.commit().await.unwrap();
    }
}

/// A row whose stored plain value does not decode into the record type (SQLite does not enforce
/// column types, and a hand-edited row can hold anything) used to fail the whole page. Now the
/// page returns the other rows, names the bad one in `Page::unreadable` with why, and the hook
/// hears of it as a failure; `get` of that row alone is the error.
#[tokio::test]
async fn an_undecodable_row_is_reported_by_id_and_the_page_returns_the_rest() {
    let env = Env::sqlite().await;
    let t = env.tenant().await;
    let repo = env.records.repository::<Customer>();
    let cs = [
        customer(t, "u1@example.com", "2175550101"),
        customer(t, "u2@example.com", "2175550102"),
        customer(t, "u3@example.com", "2175550103"),
    ];
    let mut tx = env.pool.begin(t).await.unwrap();
    repo.insert_many(&mut tx, &grant(t), &cs).await.unwrap();
    tx.commit().await.unwrap();
    let bad = &cs[1];
    env.tamper(&format!(
        "UPDATE customers SET created_at = 'not a time' WHERE id = X'{}'",
        bad.id.to_string().replace('-', "")
    ))
    .await;
    env.hook.take();
    let mut tx = env.pool.begin(t).await.unwrap();
    let page = repo.list(&mut tx, &grant(t), None, 10).await.unwrap();
    let ids: Vec<RecordId> = page.items.iter().map(|c| c.id).collect();
    assert_eq!(ids, [cs[0].id, cs[2].id]);
    assert_eq!(page.unreadable.len(), 1);
    assert_eq!(page.unreadable[0].id, bad.id);
    assert_eq!(page.unreadable[0].kind, ErrorKind::Tampered);
    assert_eq!(page.next, None, "three rows scanned, under the limit");
    let told = env.hook.take();
    let failed: Vec<_> = told
        .iter()
        .filter(|a| a.outcome == Outcome::Failed(ErrorKind::Tampered))
        .collect();
    assert_eq!(failed.len(), 1, "{told:?}");
    assert_eq!(failed[0].records, [bad.id]);
    let one = repo.get(&mut tx, &grant(t), bad.id).await.unwrap_err();
    assert_eq!(one.kind(), ErrorKind::Tampered, "{one}");
    assert!(
        !one.to_string().contains("not a time"),
        "no stored value in the error: {one}"
    );
    tx.commit().await.unwrap();
}

/// The same on both backends for a value the database accepts and the declaration does not
/// (a date column holding text that is no date): the other invoices come back, the bad one is
/// named, `get` of it is the error.
#[tokio::test]
async fn a_row_the_declaration_cannot_read_is_left_out_on_both_backends() {
    for env in Env::both().await {
        let t = env.tenant().await;
        let c = customer(t, "d@example.com", "2175550104");
        let invoices: Vec<Invoice> = (0..3)
            .map(|i| Invoice {
                id: RecordId::generate(),
                tenant: t,
                subject: c.subject,
                customer_id: c.id,
                amount_cents: Encrypted::new(1_000 + i),
                currency: "USD".to_owned(),
                due_on: NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
                paid: false,
            })
            .collect();
        let mut tx = env.pool.begin(t).await.unwrap();
        env.records
            .repository::<Customer>()
            .insert(&mut tx, &grant(t), &c)
            .await
            .unwrap();
        let repo = env.records.repository::<Invoice>();
        repo.insert_many(&mut tx, &grant(t), &invoices)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let bad = &invoices[1];
        env.tamper(&match env.db {
            Some(_) => format!(
                "UPDATE app.invoices SET due_on = 'not a date' WHERE id = '{}'::uuid",
                bad.id
            ),
            None => format!(
                "UPDATE invoices SET due_on = 'not a date' WHERE id = X'{}'",
                bad.id.to_string().replace('-', "")
            ),
        })
        .await;
        env.hook.take();
        let mut tx = env.pool.begin(t).await.unwrap();
        let page = repo.list(&mut tx, &grant(t), None, 10).await.unwrap();
        let ids: Vec<RecordId> = page.items.iter().map(|i| i.id).collect();
        assert_eq!(ids, [invoices[0].id, invoices[2].id], "{}", env.name());
        assert_eq!(page.unreadable.len(), 1, "{}", env.name());
        assert_eq!(page.unreadable[0].id, bad.id);
        assert_eq!(page.unreadable[0].kind, ErrorKind::Tampered);
        let told = env.hook.take();
        assert!(
            told.iter().any(|a| a.outcome == Outcome::Failed(ErrorKind::Tampered)
                && a.records == [bad.id]),
            "{}: {told:?}",
            env.name()
        );
        let err = repo.get(&mut tx, &grant(t), bad.id).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Tampered, "{}: {err}", env.name());
        assert!(!err.to_string().contains("not a date"));
        tx.commit().await.unwrap();
    }
}

/// Erasure is complete per record type, as each declares: the homeowner's properties,
/// equipment and appointments are deleted; the customer row (invoices reference it) is kept
/// scrubbed, no longer findable by email; the invoice is kept under a legal obligation with its
/// amount readable. Both kept rows carry a fresh pseudonym instead of the subject id, which is
/// restricted, and no record table holds the subject id any more.
#[tokio::test]
async fn erasure_applies_each_record_types_rule() {
    for env in Env::both().await {
        let t = env.tenant().await;
        let c = customer(t, "erase-me@example.com", "2175550177");
        let property = property(&c);
        let equipment = equipment(&property);
        let invoice = Invoice {
            id: RecordId::generate(),
            tenant: t,
            subject: c.subject,
            customer_id: c.id,
            amount_cents: Encrypted::new(48_950),
            currency: "USD".to_owned(),
            due_on: NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
            paid: false,
        };
        let g = grant(t);
        let mut tx = env.pool.begin(t).await.unwrap();
        env.records
            .repository::<Customer>()
            .insert(&mut tx, &g, &c)
            .await
            .unwrap();
        env.records
            .repository::<Property>()
            .insert(&mut tx, &g, &property)
            .await
            .unwrap();
        env.records
            .repository::<Equipment>()
            .insert(&mut tx, &g, &equipment)
            .await
            .unwrap();
        env.records
            .repository::<Invoice>()
            .insert(&mut tx, &g, &invoice)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let mut tx = env.pool.begin(t).await.unwrap();
        env.records
            .erase_subject(&mut tx, &g, c.subject)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let mut tx = env.pool.begin(t).await.unwrap();
        for err in [
            env.records
                .repository::<Property>()
                .get(&mut tx, &g, property.id)
                .await
                .map(|_| ()),
            env.records
                .repository::<Equipment>()
                .get(&mut tx, &g, equipment.id)
                .await
                .map(|_| ()),
        ] {
            assert_eq!(
                err.unwrap_err().kind(),
                ErrorKind::NotFound,
                "{}",
                env.name()
            );
        }
        let kept = env
            .records
            .repository::<Customer>()
            .get(&mut tx, &g, c.id)
            .await
            .unwrap();
        assert_ne!(kept.subject, c.subject, "{}: pseudonymised", env.name());
        assert_eq!(
            kept.email.open().unwrap_err().kind(),
            ErrorKind::KeyDestroyed
        );
        assert!(
            env.records
                .repository::<Customer>()
                .find(&mut tx, &g, Customer::EMAIL_INDEX, "erase-me@example.com")
                .await
                .unwrap()
                .is_empty(),
            "{}",
            env.name()
        );
        let bill = env
            .records
            .repository::<Invoice>()
            .get(&mut tx, &g, invoice.id)
            .await
            .unwrap();
        assert_eq!(
            bill.subject, kept.subject,
            "one pseudonym for what was kept"
        );
        assert_eq!(*bill.amount_cents.open().unwrap().expose(), 48_950);
        assert!(
            ConsentLedger::status(&mut tx, kept.subject)
                .await
                .unwrap()
                .restricted(),
            "{}: the retained rows' pseudonym is restricted",
            env.name()
        );
        // No record table holds the subject id any more.
        for table in [
            "customers",
            "properties",
            "equipment",
            "appointments",
            "invoices",
        ] {
            let n: i64 = match tx.dangerous_postgres() {
                Some(conn) => sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT count(*) FROM app.{table} WHERE subject_id = $1"
                )))
                .bind(c.subject.as_uuid())
                .fetch_one(conn)
                .await
                .unwrap(),
                None => sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT count(*) FROM {table} WHERE subject_id = ?1"
                )))
                .bind(c.subject.as_uuid())
                .fetch_one(tx.dangerous_sqlite().unwrap())
                .await
                .unwrap(),
            };
            assert_eq!(n, 0, "{}: {table}", env.name());
        }
    }
}

#[tokio::test]
async fn another_tenants_records_are_unreachable_through_every_method() {
    for env in Env::both().await {
        let (a, b) = (env.tenant().await, env.tenant().await);
        let repo = env.records.repository::<Customer>();
        let victim = customer(a, "victim@example.com", "2175550111");
        let mut tx = env.pool.begin(a).await.unwrap();
        repo.insert(&mut tx, &grant(a), &victim).await.unwrap();
        tx.commit().await.unwrap();

        let mut tx = env.pool.begin(b).await.unwrap();
        let n = env.name();
        assert_eq!(
            repo.get(&mut tx, &grant(b), victim.id)
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::NotFound,
            "{n}"
        );
        assert!(
            repo.list(&mut tx, &grant(b), None, 100)
                .await
                .unwrap()
                .items
                .is_empty(),
            "{n}"
        );
        assert!(
            repo.find(
                &mut tx,
                &grant(b),
                Customer::EMAIL_INDEX,
                "victim@example.com"
            )
            .await
            .unwrap()
            .is_empty(),
            "{n}"
        );
        assert_eq!(repo.count(&mut tx, &grant(b)).await.unwrap(), 0, "{n}");
        // B's copy of A's record, with B as tenant: the id exists only in A, so nothing changes.
        let mut forged = victim.clone();
        forged.tenant = b;
        forged.name.set("Mallory".to_owned());
        assert_eq!(
            repo.update(&mut tx, &grant(b), &forged)
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::NotFound,
            "{n}"
        );
        assert_eq!(
            repo.delete(&mut tx, &grant(b), victim.id)
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::NotFound,
            "{n}"
        );
        // A's record written in B's transaction: refused before any SQL.
        let err = repo.insert(&mut tx, &grant(b), &victim).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::IsolationViolation, "{n}");
        assert!(matches!(err, Error::TenantMismatch { .. }));
        let err = repo.update(&mut tx, &grant(b), &victim).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::IsolationViolation, "{n}");
        tx.commit().await.unwrap();

        let mut tx = env.pool.begin(a).await.unwrap();
        let still = repo.get(&mut tx, &grant(a), victim.id).await.unwrap();
        assert_eq!(text(&still.name), "Ada Lovelace", "{n}: untouched");
    }
}

#[tokio::test]
async fn updates_reseal_only_changed_fields_and_keep_indexes_true() {
    for env in Env::both().await {
        let t = env.tenant().await;
        let repo = env.records.repository::<Customer>();
        let c = customer(t, "ada@example.com", "2175550142");
        let mut tx = env.pool.begin(t).await.unwrap();
        repo.insert(&mut tx, &grant(t), &c).await.unwrap();
        let mut loaded = repo.get(&mut tx, &grant(t), c.id).await.unwrap();
        let name_before = loaded.name.envelope().unwrap().clone();
        let phone_before = loaded.phone.envelope().unwrap().clone();
        loaded.phone.set("217-555-0199".to_owned());
        env.hook.take();
        repo.update(&mut tx, &grant(t), &loaded).await.unwrap();
        let access = env.hook.take();
        let fields: Vec<&str> = access[0].fields.iter().map(|f| f.0.as_str()).collect();
        assert!(
            fields.contains(&"phone") && !fields.contains(&"name"),
            "{fields:?}"
        );

        let after = repo.get(&mut tx, &grant(t), c.id).await.unwrap();
        assert_eq!(
            after.name.envelope(),
            Some(&name_before),
            "{}: name untouched",
            env.name()
        );
        assert_ne!(
            after.phone.envelope(),
            Some(&phone_before),
            "{}: phone re-sealed",
            env.name()
        );
        assert_eq!(text(&after.phone), "217-555-0199");
        assert!(
            repo.find(&mut tx, &grant(t), Customer::PHONE_INDEX, "2175550142")
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            repo.find(&mut tx, &grant(t), Customer::PHONE_INDEX, "2175550199")
                .await
                .unwrap()
                .len(),
            1
        );

        // Delete, then the record is gone.
        repo.delete(&mut tx, &grant(t), c.id).await.unwrap();
        assert_eq!(
            repo.get(&mut tx, &grant(t), c.id).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }
}

/// An encrypted value copied from another record, or from another field of the same record,
/// is written (re-sealed for its new place) by `update`, never silently dropped in favour of
/// the old value.
#[tokio::test]
async fn an_update_writes_encrypted_values_copied_from_elsewhere() {
    for env in Env::both().await {
        let t = env.tenant().await;
        let repo = env.records.repository::<Customer>();
        let (a, b) = (
            customer(t, "a@example.com", "2175550101"),
            customer(t, "b@example.com", "2175550102"),
        );
        let mut tx = env.pool.begin(t).await.unwrap();
        repo.insert(&mut tx, &grant(t), &a).await.unwrap();
        repo.insert(&mut tx, &grant(t), &b).await.unwrap();
        let mut a_read = repo.get(&mut tx, &grant(t), a.id).await.unwrap();
        let b_read = repo.get(&mut tx, &grant(t), b.id).await.unwrap();
        a_read.phone = b_read.phone.clone();
        a_read.name = a_read.service_address.clone();
        repo.update(&mut tx, &grant(t), &a_read).await.unwrap();
        let after = repo.get(&mut tx, &grant(t), a.id).await.unwrap();
        assert_eq!(
            text(&after.phone),
            "2175550102",
            "{}: copied from B",
            env.name()
        );
        assert_eq!(
            text(&after.name),
            "12 Furnace Lane, Springfield",
            "{}: copied from another field",
            env.name()
        );
        assert_eq!(
            text(&after.email),
            "a@example.com",
            "{}: untouched",
            env.name()
        );
        assert_eq!(
            repo.find(&mut tx, &grant(t), Customer::PHONE_INDEX, "2175550102")
                .await
                .unwrap()
                .len(),
            2,
            "{}: the blind index follows the copied value",
            env.name()
        );
        tx.commit().await.unwrap();
    }
}

#[tokio::test]
async fn unique_violations_name_the_logical_field_never_the_value() {
    for env in Env::both().await {
        let t = env.tenant().await;
        let repo = env.records.repository::<Customer>();
        let mut tx = env.pool.begin(t).await.unwrap();
        repo.insert(&mut tx, &grant(t), &customer(t, CANARY_EMAIL, "2175550142"))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut tx = env.pool.begin(t).await.unwrap();
        let dup = customer(t, &CANARY_EMAIL.to_uppercase(), CANARY_PHONE);
        let err = repo.insert(&mut tx, &grant(t), &dup).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{}: {err}", env.name());
        match &err {
            Error::UniqueViolation { record_type, field } => {
                assert_eq!(
                    (record_type.as_str(), field.as_str()),
                    ("customers", "email")
                );
            }
            other => panic!("{}: {other:?}", env.name()),
        }
        assert_no_canary("unique violation", &format!("{err} {err:?}"));
    }
}

#[tokio::test]
async fn keyset_pages_cover_every_row_once_in_id_order() {
    for env in Env::both().await {
        let t = env.tenant().await;
        let repo = env.records.repository::<Customer>();
        let batch: Vec<Customer> = (0..25)
            .map(|i| customer(t, &format!("c{i}@example.com"), &format!("21755501{i:02}")))
            .collect();
        let mut tx = env.pool.begin(t).await.unwrap();
        repo.insert_many(&mut tx, &grant(t), &batch).await.unwrap();
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = repo.list(&mut tx, &grant(t), after, 10).await.unwrap();
            seen.extend(page.items.iter().map(|c| c.id));
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let mut expected: Vec<RecordId> = batch.iter().map(|c| c.id).collect();
        expected.sort();
        assert_eq!(seen, expected, "{}", env.name());
        assert_eq!(repo.count(&mut tx, &grant(t)).await.unwrap(), 25);
    }
}

#[tokio::test]
async fn erasing_a_subject_leaves_rows_readable_and_their_pii_unrecoverable() {
    for env in Env::both().await {
        let t = env.tenant().await;
        let c = customer(t, "erase-me@example.com", "2175550142");
        let invoice = Invoice {
            id: RecordId::generate(),
            tenant: t,
            subject: c.subject,
            customer_id: c.id,
            amount_cents: Encrypted::new(12_000),
            currency: "USD".to_owned(),
            due_on: NaiveDate::from_ymd_opt(2027, 1, 31).unwrap(),
            paid: true,
        };
        let mut tx = env.pool.begin(t).await.unwrap();
        env.records
            .repository::<Customer>()
            .insert(&mut tx, &grant(t), &c)
            .await
            .unwrap();
        env.records
            .repository::<Invoice>()
            .insert(&mut tx, &grant(t), &invoice)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        let destroyed = env
            .records
            .keyring()
            .destroy_scope(t, KeyScope::Subject(c.subject))
            .await
            .unwrap();
        assert_eq!(destroyed, 1);

        // A fresh process (cold caches) reads the same rows.
        let fresh = Records::new(keyring(&env.keys), Arc::new(DiscardAccess))
            .with_record_types(plenum_hvac::record_types());
        let mut tx = env.pool.begin(t).await.unwrap();
        let back = fresh
            .repository::<Customer>()
            .get(&mut tx, &grant(t), c.id)
            .await
            .unwrap();
        assert_eq!(
            back.email.open().unwrap_err().kind(),
            ErrorKind::KeyDestroyed,
            "{}",
            env.name()
        );
        assert!(format!("{:?}", back.email).contains("erased"));
        let inv = fresh
            .repository::<Invoice>()
            .get(&mut tx, &grant(t), invoice.id)
            .await
            .unwrap();
        assert_eq!(
            *inv.amount_cents.open().unwrap().expose(),
            12_000,
            "financial record kept"
        );
        // No new data for an erased subject.
        let mut again = customer(t, "again@example.com", "2175550143");
        again.subject = c.subject;
        let err = fresh
            .repository::<Customer>()
            .insert(&mut tx, &grant(t), &again)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::KeyDestroyed, "{}", env.name());
    }
}

#[tokio::test]
async fn every_operation_is_described_to_the_hook_without_values() {
    for env in Env::both().await {
        let t = env.tenant().await;
        let repo = env.records.repository::<Customer>();
        let c = customer(t, CANARY_EMAIL, CANARY_PHONE);
        let mut tx = env.pool.begin(t).await.unwrap();
        env.hook.take();
        repo.insert(&mut tx, &grant(t), &c).await.unwrap();
        repo.get(&mut tx, &grant(t), c.id).await.unwrap();
        repo.list(&mut tx, &grant(t), None, 10).await.unwrap();
        repo.find(&mut tx, &grant(t), Customer::EMAIL_INDEX, CANARY_EMAIL)
            .await
            .unwrap();
        repo.count(&mut tx, &grant(t)).await.unwrap();
        let missing = RecordId::generate();
        repo.get(&mut tx, &grant(t), missing).await.unwrap_err();
        let log = env.hook.take();
        let actions: Vec<Action> = log.iter().map(|a| a.action).collect();
        assert_eq!(
            actions,
            [
                Action::KeyCreate,
                Action::Insert,
                Action::Read,
                Action::List,
                Action::Search,
                Action::Count,
                Action::Read
            ],
            "{}",
            env.name()
        );
        assert_eq!(log[0].subjects, vec![c.subject], "the new subject's key");
        let insert = &log[1];
        assert_eq!(insert.records, vec![c.id]);
        assert_eq!(insert.subjects, vec![c.subject]);
        assert_eq!(insert.rows, 1);
        assert_eq!(insert.outcome, Outcome::Success);
        let categories: Vec<&str> = insert.fields.iter().map(|f| f.1.as_str()).collect();
        assert!(categories.contains(&"user.contact.email") && categories.contains(&"user.name"));
        assert_eq!(log[5].rows, 1);
        assert!(log[5].fields.is_empty(), "a count touches no field");
        assert_eq!(log[6].outcome, Outcome::Failed(ErrorKind::NotFound));
        assert_eq!(log[6].records, vec![missing]);
        assert_no_canary("access descriptions", &format!("{log:?}"));
    }
}

#[tokio::test]
async fn a_hook_that_cannot_record_fails_the_operation_closed() {
    for env in Env::both().await {
        let t = env.tenant().await;
        let closed = Records::new(keyring(&env.keys), Arc::new(Broken))
            .with_record_types(plenum_hvac::record_types());
        let repo = closed.repository::<Customer>();
        let c = customer(t, "closed@example.com", "2175550142");
        let mut tx = env.pool.begin(t).await.unwrap();
        assert!(
            repo.insert(&mut tx, &grant(t), &c).await.is_err(),
            "{}",
            env.name()
        );
        drop(tx);
        // Reads fail closed too: the record exists, but an unrecorded read returns nothing.
        let open = env.records.repository::<Customer>();
        let mut tx = env.pool.begin(t).await.unwrap();
        open.insert(&mut tx, &grant(t), &c).await.unwrap();
        tx.commit().await.unwrap();
        let mut tx = env.pool.begin(t).await.unwrap();
        let err = repo.get(&mut tx, &grant(t), c.id).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{}", env.name());
        assert!(repo.list(&mut tx, &grant(t), None, 10).await.is_err());
    }
}

#[tokio::test]
async fn find_by_email_is_an_index_scan() {
    let env = Env::postgres().await;
    let db = env.db.as_ref().unwrap();
    let t = env.tenant().await;
    let repo = env.records.repository::<Customer>();
    let batch: Vec<Customer> = (0..2000)
        .map(|i| customer(t, &format!("c{i}@example.com"), &format!("217555{i:04}")))
        .collect();
    let mut tx = env.pool.begin(t).await.unwrap();
    repo.insert_many(&mut tx, &grant(t), &batch).await.unwrap();
    tx.commit().await.unwrap();
    let su = db.superuser().await;
    sqlx::query("ANALYZE app.customers")
        .execute(&su)
        .await
        .unwrap();

    let mut tx = env.pool.begin(t).await.unwrap();
    let statement = repo.find_statement(Customer::EMAIL_INDEX, BackendKind::Postgres, 1);
    let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {statement}")))
        .bind(t.as_uuid())
        .bind(vec![0u8; 17])
        .fetch_all(tx.dangerous_postgres().unwrap())
        .await
        .unwrap();
    let plan = plan.join("\n");
    assert!(
        plan.contains("Index") && plan.contains("customers_email_bidx_key"),
        "{plan}"
    );
    assert!(!plan.contains("Seq Scan"), "{plan}");
    // And the repository's lookup finds the row through it.
    let found = repo
        .find(
            &mut tx,
            &grant(t),
            Customer::EMAIL_INDEX,
            "C1999@example.com",
        )
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(Customer::spec().record_type().as_str(), "customers");
}

#[tokio::test]
async fn derived_tables_pass_the_boot_time_contract_check() {
    let env = Env::postgres().await;
    let db = env.db.as_ref().unwrap();
    let report = env.pool.verify(&db.roles).await.unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    // Six record tables plus the library's own tenant tables.
    assert!(report.tenant_tables >= 6, "{}", report.tenant_tables);
    // And the declaration really is what the table holds: ciphertext columns are bytea.
    let su = db.superuser().await;
    let types: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns \
         WHERE table_schema = 'app' AND table_name = 'customers' ORDER BY ordinal_position",
    )
    .fetch_all(&su)
    .await
    .unwrap();
    let ty = |c: &str| types.iter().find(|(n, _)| n == c).map(|(_, t)| t.as_str());
    assert_eq!(ty("tenant_id"), Some("uuid"));
    assert_eq!(ty("email"), Some("bytea"));
    assert_eq!(ty("email_bidx"), Some("bytea"));
    assert_eq!(ty("created_at"), Some("timestamp with time zone"));
}

#[tokio::test]
async fn lookups_and_uniqueness_span_every_live_index_key_version() {
    for env in Env::both().await {
        let t = env.tenant().await;
        let repo = env.records.repository::<Customer>();
        let old = customer(t, "old@example.com", "2175550101");
        let mut tx = env.pool.begin(t).await.unwrap();
        repo.insert(&mut tx, &grant(t), &old).await.unwrap();
        tx.commit().await.unwrap();

        // Rotate the tenant's index key: new rows are indexed under v2, old rows still carry v1
        // until a re-index sweep; lookups must find both.
        let v2 = env
            .records
            .keyring()
            .rotate(t, KeyScope::TenantIndex)
            .await
            .unwrap();
        assert_eq!(v2.version, 2);
        let new = customer(t, "new@example.com", "2175550102");
        let mut tx = env.pool.begin(t).await.unwrap();
        repo.insert(&mut tx, &grant(t), &new).await.unwrap();
        let found_old = repo
            .find(&mut tx, &grant(t), Customer::EMAIL_INDEX, "OLD@example.com")
            .await
            .unwrap();
        let found_new = repo
            .find(&mut tx, &grant(t), Customer::EMAIL_INDEX, "new@example.com")
            .await
            .unwrap();
        assert_eq!(
            found_old.iter().map(|c| c.id).collect::<Vec<_>>(),
            vec![old.id],
            "{}",
            env.name()
        );
        assert_eq!(
            found_new.iter().map(|c| c.id).collect::<Vec<_>>(),
            vec![new.id],
            "{}",
            env.name()
        );
        // Uniqueness spans the versions too: the old row's email (still indexed under v1) can
        // be neither inserted again nor written into another row; the row itself may be
        // updated with its own email.
        tx.commit().await.unwrap();
        let twin = customer(t, "Old@Example.com", "2175550103");
        let mut tx = env.pool.begin(t).await.unwrap();
        let err = repo.insert(&mut tx, &grant(t), &twin).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{}: {err}", env.name());
        drop(tx);
        let mut tx = env.pool.begin(t).await.unwrap();
        let mut moved = repo.get(&mut tx, &grant(t), new.id).await.unwrap();
        moved.email.set("old@example.com".to_owned());
        let err = repo.update(&mut tx, &grant(t), &moved).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{}: {err}", env.name());
        drop(tx);
        let mut tx = env.pool.begin(t).await.unwrap();
        let mut same = repo.get(&mut tx, &grant(t), old.id).await.unwrap();
        same.email.set("OLD@example.com".to_owned());
        repo.update(&mut tx, &grant(t), &same).await.unwrap();
        tx.commit().await.unwrap();
    }
}

#[tokio::test]
async fn a_file_backed_sqlite_database_keeps_data_and_keys_across_restarts() {
    let dir = std::env::temp_dir().join(format!("plenum-records-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("plenum.db");
    let tenant = TenantId::generate();
    let c = customer(tenant, "file@example.com", "2175550142");
    {
        let pool = TenantPool::sqlite(Some(&path), &plenum_hvac::tables())
            .await
            .unwrap();
        pool.register_tenant(tenant).await.unwrap();
        let records = Records::new(
            keyring(&Arc::new(DbKeyStore::new(pool.clone()))),
            Arc::new(DiscardAccess),
        )
        .with_record_types(plenum_hvac::record_types());
        let mut tx = pool.begin(tenant).await.unwrap();
        records
            .repository::<Customer>()
            .insert(&mut tx, &grant(tenant), &c)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    // The keys live beside the data, in `<file>.keys`.
    assert!(dir.join("plenum.db.keys").exists());
    // A restarted process (new pool, cold caches, same root key) reads it back.
    let pool = TenantPool::sqlite(Some(&path), &plenum_hvac::tables())
        .await
        .unwrap();
    let records = Records::new(
        keyring(&Arc::new(DbKeyStore::new(pool.clone()))),
        Arc::new(DiscardAccess),
    )
    .with_record_types(plenum_hvac::record_types());
    let mut tx = pool.begin(tenant).await.unwrap();
    let back = records
        .repository::<Customer>()
        .get(&mut tx, &grant(tenant), c.id)
        .await
        .unwrap();
    assert_eq!(text(&back.email), "file@example.com");
    drop(tx);
    drop(records);
    drop(pool);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Erasure is final through the public API too: a key store update with the key as it was
/// loaded before erasure (a second instance's stale copy, or a caller replaying it) is refused
/// on both backends, and the subject stays erased.
#[tokio::test]
async fn a_key_loaded_before_erasure_cannot_be_written_back() {
    use plenum::crypto::{KeyState, KeyStore as _};
    for env in Env::both().await {
        let t = env.tenant().await;
        let c = customer(t, "final@example.com", "2175550199");
        let repo = env.records.repository::<Customer>();
        let mut tx = env.pool.begin(t).await.unwrap();
        repo.insert(&mut tx, &grant(t), &c).await.unwrap();
        tx.commit().await.unwrap();
        let scope = KeyScope::Subject(c.subject);
        let before = env.keys.load(t, scope).await.unwrap();
        assert_eq!(before.len(), 1, "{}", env.name());
        let mut tx = env.pool.begin(t).await.unwrap();
        env.records
            .erase_subject(&mut tx, &grant(t), c.subject)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        for key in before {
            assert!(env.keys.update(key).await.is_err(), "{}", env.name());
        }
        let after = env.keys.load(t, scope).await.unwrap();
        assert!(
            after
                .iter()
                .all(|k| k.state == KeyState::Destroyed && k.wrapped.is_none()),
            "{}",
            env.name()
        );
        let mut tx = env.pool.begin(t).await.unwrap();
        let back = repo.get(&mut tx, &grant(t), c.id).await.unwrap();
        assert_eq!(
            back.email.open().unwrap_err().kind(),
            ErrorKind::KeyDestroyed,
            "{}",
            env.name()
        );
    }
}

/// A record whose subject-owned fields are sealed under two versions of the subject's key (one
/// field changed after a rotation) opens every field: through the keyring that wrote it, whose
/// caches hold both versions' keys, and through a cold one, by `list` and by `get`. The warm
/// read answers rows from the caches alone when a row's fields share one version; this row
/// must take the path that looks each version up.
#[tokio::test]
async fn a_record_sealed_under_two_subject_key_versions_opens_warm_and_cold() {
    use plenum::crypto::Envelope;
    for env in Env::both().await {
        let t = env.tenant().await;
        let repo = env.records.repository::<Customer>();
        let c = customer(t, "before@example.com", "2175550123");
        let mut tx = env.pool.begin(t).await.unwrap();
        repo.insert(&mut tx, &grant(t), &c).await.unwrap();
        env.records
            .rotate_key(&mut tx, &grant(t), KeyScope::Subject(c.subject))
            .await
            .unwrap();
        let mut read = repo.get(&mut tx, &grant(t), c.id).await.unwrap();
        read.email.set("after@example.com".to_owned());
        repo.update(&mut tx, &grant(t), &read).await.unwrap();
        tx.commit().await.unwrap();
        let cold = Records::new(keyring(&env.keys), Arc::new(DiscardAccess))
            .with_record_types(plenum_hvac::record_types());
        for (records, how) in [(&env.records, "warm"), (&cold, "cold")] {
            let repo = records.repository::<Customer>();
            let mut tx = env.pool.begin(t).await.unwrap();
            let page = repo.list(&mut tx, &grant(t), None, 10).await.unwrap();
            let one = repo.get(&mut tx, &grant(t), c.id).await.unwrap();
            tx.commit().await.unwrap();
            assert_eq!(page.items.len(), 1, "{} {how}", env.name());
            for r in [&page.items[0], &one] {
                let version = |e: &Encrypted<String>| {
                    Envelope::peek_key_version(e.envelope().unwrap().as_bytes()).unwrap()
                };
                assert_eq!(
                    (version(&r.email), version(&r.phone)),
                    (2, 1),
                    "{} {how}",
                    env.name()
                );
                assert_eq!(text(&r.email), "after@example.com", "{} {how}", env.name());
                assert_eq!(text(&r.phone), "2175550123", "{} {how}", env.name());
                assert_eq!(text(&r.name), "Ada Lovelace", "{} {how}", env.name());
            }
        }
    }
}
