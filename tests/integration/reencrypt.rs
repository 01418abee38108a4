//! The re-encryption sweep through the public API, on PostgreSQL (as the runtime role) and
//! SQLite: after rotations of the tenant data key and of subject keys, every value moves to the
//! active version in pages whose cursor survives a lost transaction, each re-sealed value reads
//! back, the old versions can then be retired and destroyed with every row still readable; a
//! tampered value stops the page; the sweep is a key operation's purpose and audited.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures: a failed set-up is a failed test"
)]

use plenum::consent::Purpose;
use plenum::crypto::{Envelope, KeyRef, KeyScope, KeyStore as _};
use plenum::prelude::*;
use plenum::store::{BackendKind, ErrorKind, Request};
use plenum_hvac::{Customer, Invoice};

use crate::audit::{Audited, staff};
use crate::fixtures::{Env, customer};

/// The stored bytes of `column` in `table`, in id order, read as the runtime role.
async fn stored(env: &Env, t: TenantId, table: &str, column: &str) -> Vec<Vec<u8>> {
    let mut tx = env.pool.begin(t).await.unwrap();
    match env.pool.backend() {
        BackendKind::Postgres => {
            let sql = format!("SELECT {column} FROM app.{table} ORDER BY id");
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_all(tx.dangerous_postgres().unwrap())
                .await
                .unwrap()
        }
        _ => {
            let sql = format!("SELECT {column} FROM {table} ORDER BY id");
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_all(tx.dangerous_sqlite().unwrap())
                .await
                .unwrap()
        }
    }
}

/// The key version each stored value of `column` in `table` names, in id order.
async fn versions(env: &Env, t: TenantId, table: &str, column: &str) -> Vec<u32> {
    stored(env, t, table, column)
        .await
        .iter()
        .map(|b| Envelope::peek_key_version(b).unwrap())
        .collect()
}

/// The index key version (first byte) of each stored blind index of `column`, in id order.
async fn index_bytes(env: &Env, t: TenantId, table: &str, column: &str) -> Vec<u8> {
    stored(env, t, table, column)
        .await
        .iter()
        .map(|b| b[0])
        .collect()
}

fn invoice(t: TenantId, c: &Customer, cents: i64) -> Invoice {
    Invoice {
        id: RecordId::generate(),
        tenant: t,
        subject: c.subject,
        customer_id: c.id,
        amount_cents: Encrypted::new(cents),
        currency: "USD".to_owned(),
        due_on: chrono::NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
        paid: false,
    }
}

#[tokio::test]
async fn after_a_rotation_every_value_moves_to_the_active_version_in_resumable_pages() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let name = a.env.name();
        let storage = crate::fixtures::grant(t);
        let security = Request::new(t, staff("security"));
        let protection = a
            .gate
            .grant(&security, Purpose::SecurityProtection)
            .unwrap();
        let c = customer(t, "sweep@example.com", "2175550170");
        let bills: Vec<Invoice> = (0..5).map(|i| invoice(t, &c, 100 + i)).collect();
        let customers = a.records.repository::<Customer>();
        let invoices = a.records.repository::<Invoice>();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        customers.insert(&mut tx, &storage, &c).await.unwrap();
        invoices
            .insert_many(&mut tx, &storage, &bills)
            .await
            .unwrap();
        a.records
            .rotate_key(&mut tx, &protection, KeyScope::TenantData)
            .await
            .unwrap();
        a.records
            .rotate_key(&mut tx, &protection, KeyScope::Subject(c.subject))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            versions(&a.env, t, "invoices", "amount_cents").await,
            [1; 5],
            "{name}: written before the rotation"
        );

        // Pages of two; the second page's transaction is lost and redone.
        let record_type = plenum::core::record_type!("invoices");
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let first = a
            .records
            .reencrypt_page(&mut tx, &protection, &record_type, 2)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            (first.scanned, first.resealed, first.finished),
            (2, 2, false),
            "{name}"
        );
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let lost = a
            .records
            .reencrypt_page(&mut tx, &protection, &record_type, 2)
            .await
            .unwrap();
        assert_eq!(lost.resealed, 2, "{name}");
        drop(tx);
        let mut totals = Vec::new();
        loop {
            let mut tx = a.env.pool.begin(t).await.unwrap();
            let p = a
                .records
                .reencrypt_page(&mut tx, &protection, &record_type, 2)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            totals.push((p.resealed, p.total_resealed, p.finished));
            if p.finished || totals.len() > 5 {
                break;
            }
        }
        assert_eq!(
            totals,
            [(2, 4, false), (1, 5, true)],
            "{name}: resumed after the last committed page, nothing twice"
        );
        assert_eq!(
            versions(&a.env, t, "invoices", "amount_cents").await,
            [2; 5],
            "{name}"
        );
        // What an operator checks before retiring version 1: nothing of the invoices is under
        // it now, read from the envelope headers without opening anything.
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let per_version = a
            .records
            .values_per_key_version(&mut tx, &protection)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let amounts: Vec<(u32, u64)> = per_version
            .iter()
            .filter(|v| v.record_type == "invoices")
            .map(|v| (v.version, v.values))
            .collect();
        assert_eq!(amounts, [(2, 5)], "{name}");
        let emails: Vec<(u32, u64)> = per_version
            .iter()
            .filter(|v| v.field == "email")
            .map(|v| (v.version, v.values))
            .collect();
        assert_eq!(emails, [(1, 1)], "{name}: the customer is not swept yet");
        // A second sweep finds nothing to move.
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let again = a
            .records
            .reencrypt_page(&mut tx, &protection, &record_type, 10)
            .await
            .unwrap();
        assert_eq!(
            (again.scanned, again.resealed, again.finished),
            (5, 0, true),
            "{name}"
        );
        // Subject-owned fields move to the subject's new version.
        let customers_type = plenum::core::record_type!("customers");
        let moved = a
            .records
            .reencrypt_page(&mut tx, &protection, &customers_type, 10)
            .await
            .unwrap();
        assert_eq!(
            (moved.resealed, moved.finished),
            (4, true),
            "{name}: four sealed fields"
        );
        tx.commit().await.unwrap();
        assert_eq!(
            versions(&a.env, t, "customers", "email").await,
            [2],
            "{name}"
        );

        // An index key rotation: the sweep recomputes blind indexes (the values stay sealed as
        // they are), after which one index version is live and lookups still find the row.
        let mut tx = a.env.pool.begin(t).await.unwrap();
        a.records
            .rotate_key(&mut tx, &protection, KeyScope::TenantIndex)
            .await
            .unwrap();
        let reindexed = a
            .records
            .reencrypt_page(&mut tx, &protection, &customers_type, 10)
            .await
            .unwrap();
        assert_eq!(
            (reindexed.resealed, reindexed.reindexed),
            (0, 2),
            "{name}: email and phone indexes"
        );
        tx.commit().await.unwrap();
        let index_versions = index_bytes(&a.env, t, "customers", "email_bidx").await;
        assert_eq!(index_versions, [2], "{name}");
        let keyring = a.records.keyring();
        let old_index = KeyRef {
            tenant: t,
            scope: KeyScope::TenantIndex,
            version: 1,
        };
        keyring.retire(old_index).await.unwrap();
        keyring.destroy(old_index).await.unwrap();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let found = customers
            .find(
                &mut tx,
                &storage,
                Customer::EMAIL_INDEX,
                "SWEEP@example.com",
            )
            .await
            .unwrap();
        assert_eq!(
            found.len(),
            1,
            "{name}: found under the new index key alone"
        );
        tx.commit().await.unwrap();
        assert_eq!(keyring.live_index_versions(t).await.unwrap(), 1, "{name}");

        // The old versions hold nothing now: retire and destroy them, every row still reads.
        for scope in [KeyScope::TenantData, KeyScope::Subject(c.subject)] {
            let old = KeyRef {
                tenant: t,
                scope,
                version: 1,
            };
            keyring.retire(old).await.unwrap();
            keyring.destroy(old).await.unwrap();
        }
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let read = invoices.list(&mut tx, &storage, None, 10).await.unwrap();
        let mut cents: Vec<i64> = read
            .items
            .iter()
            .map(|i| *i.amount_cents.open().unwrap().expose())
            .collect();
        cents.sort_unstable();
        assert_eq!(cents, [100, 101, 102, 103, 104], "{name}");
        let back = customers.get(&mut tx, &storage, c.id).await.unwrap();
        assert_eq!(
            back.email.open().unwrap().expose(),
            "sweep@example.com",
            "{name}"
        );
        tx.commit().await.unwrap();
    }
}

#[tokio::test]
async fn a_tampered_value_stops_the_sweep_and_only_security_may_run_it() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let name = a.env.name();
        let storage = crate::fixtures::grant(t);
        let security = Request::new(t, staff("security"));
        let protection = a
            .gate
            .grant(&security, Purpose::SecurityProtection)
            .unwrap();
        let office = Request::new(t, staff("dispatcher"));
        let scheduling = a.gate.grant(&office, Purpose::Scheduling).unwrap();
        let c = customer(t, "tamper@example.com", "2175550171");
        let mut tx = a.env.pool.begin(t).await.unwrap();
        a.records
            .repository::<Customer>()
            .insert(&mut tx, &storage, &c)
            .await
            .unwrap();
        a.records
            .repository::<Invoice>()
            .insert(&mut tx, &storage, &invoice(t, &c, 700))
            .await
            .unwrap();
        a.records
            .rotate_key(&mut tx, &protection, KeyScope::TenantData)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let record_type = plenum::core::record_type!("invoices");

        let mut tx = a.env.pool.begin(t).await.unwrap();
        let err = a
            .records
            .reencrypt_page(&mut tx, &scheduling, &record_type, 10)
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::Denied,
            "{name}: scheduling is not a key operation"
        );
        let err = a
            .records
            .reencrypt_page(
                &mut tx,
                &protection,
                &plenum::core::record_type!("nowhere"),
                10,
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name}");
        drop(tx);

        // One byte of the stored ciphertext flipped (inside the sealed body, past the header).
        let flip = match a.env.pool.backend() {
            BackendKind::Postgres => {
                "UPDATE app.invoices SET amount_cents = \
                 overlay(amount_cents placing decode('ff', 'hex') from 25 for 1)"
            }
            _ => {
                "UPDATE invoices SET amount_cents = \
                 substr(amount_cents, 1, 24) || x'ff' || substr(amount_cents, 26)"
            }
        };
        let mut tx = a.env.pool.begin(t).await.unwrap();
        match a.env.pool.backend() {
            BackendKind::Postgres => {
                sqlx::query(flip)
                    .execute(tx.dangerous_postgres().unwrap())
                    .await
                    .unwrap();
            }
            _ => {
                sqlx::query(flip)
                    .execute(tx.dangerous_sqlite().unwrap())
                    .await
                    .unwrap();
            }
        }
        tx.commit().await.unwrap();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let err = a
            .records
            .reencrypt_page(&mut tx, &protection, &record_type, 10)
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::DecryptionFailed,
            "{name}: the tampered value does not open"
        );
        drop(tx);
        assert_eq!(
            versions(&a.env, t, "invoices", "amount_cents").await,
            [1],
            "{name}: nothing was written"
        );
        let log = a.export(t).await;
        let text: String = log.entries.iter().filter_map(|e| e.body.clone()).collect();
        assert!(
            text.contains("\"action\":\"key.reencrypt\""),
            "{name}: the sweep's attempts are on record"
        );
    }
}

/// Seal counts live in the database (`plenum.key_usage`, under the tenant boundary): what one
/// instance flushes, another instance, or the same after a restart, starts from.
#[tokio::test]
async fn seal_counts_persist_in_the_database_across_instances() {
    for env in Env::both().await {
        let t = env.tenant().await;
        let name = env.name();
        let storage = crate::fixtures::grant(t);
        let c = customer(t, "count@example.com", "2175550172");
        let mut tx = env.pool.begin(t).await.unwrap();
        env.records
            .repository::<Customer>()
            .insert(&mut tx, &storage, &c)
            .await
            .unwrap();
        let bills: Vec<Invoice> = (0..4).map(|i| invoice(t, &c, i)).collect();
        env.records
            .repository::<Invoice>()
            .insert_many(&mut tx, &storage, &bills)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let key = KeyRef {
            tenant: t,
            scope: KeyScope::TenantData,
            version: 1,
        };
        let keyring = env.records.keyring();
        assert_eq!(keyring.usage(&key), 4, "{name}: four amounts sealed");
        let flushed = keyring.flush_usage().await.unwrap();
        assert!(flushed.contains(&(key, 4)), "{name}: {flushed:?}");
        // Another instance over the same database starts from 4 at its first seal.
        let other = crate::fixtures::keyring(&env.keys);
        let locator = plenum::crypto::FieldLocator {
            tenant: t,
            record_type: plenum::core::record_type!("invoices"),
            field: plenum::core::field_name!("amount_cents"),
            owner: plenum::crypto::Owner::Tenant,
        };
        let fk = other.dangerous_field_key(&locator).await.unwrap();
        assert_eq!(other.usage(&key), 4, "{name}");
        fk.seal_bytes(RecordId::generate(), b"1").unwrap();
        other.flush_usage().await.unwrap();
        keyring.flush_usage().await.unwrap();
        assert_eq!(
            keyring.usage(&key),
            5,
            "{name}: the first instance takes in the other's seal"
        );
        // The runtime role of another tenant sees no count of this one.
        let u = env.tenant().await;
        let theirs = KeyRef { tenant: u, ..key };
        assert_eq!(env.keys.add_usage(theirs, 0).await.unwrap(), 0, "{name}");
    }
}

/// Adopting the library over a legacy plaintext column: pages move the text into the encrypted
/// field, verified before the plaintext is cleared; a lost page leaves its plaintext; the end
/// leaves no plaintext and every value readable through the library.
#[tokio::test]
async fn a_legacy_plaintext_column_moves_into_an_encrypted_field() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let name = a.env.name();
        let storage = crate::fixtures::grant(t);
        let security = Request::new(t, staff("security"));
        let protection = a
            .gate
            .grant(&security, Purpose::SecurityProtection)
            .unwrap();
        let c = customer(t, "legacy@example.com", "2175550173");
        let p = crate::fixtures::property(&c);
        let visits: Vec<plenum_hvac::Appointment> = (0..3)
            .map(|_| plenum_hvac::Appointment {
                id: RecordId::generate(),
                tenant: t,
                subject: c.subject,
                property_id: p.id,
                technician: SubjectId::generate(),
                starts_at: chrono::Utc::now(),
                ends_at: chrono::Utc::now(),
                notes: None,
            })
            .collect();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        a.records
            .repository::<Customer>()
            .insert(&mut tx, &storage, &c)
            .await
            .unwrap();
        a.records
            .repository::<plenum_hvac::Property>()
            .insert(&mut tx, &storage, &p)
            .await
            .unwrap();
        let appointments = a.records.repository::<plenum_hvac::Appointment>();
        appointments
            .insert_many(&mut tx, &storage, &visits)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        // The service's old column, holding plaintext notes.
        let notes = |i: usize| format!("gate code {i}{i}{i}{i}");
        match &a.env.db {
            Some(db) => {
                let su = db.superuser().await;
                sqlx::query("ALTER TABLE app.appointments ADD COLUMN legacy_notes text")
                    .execute(&su)
                    .await
                    .unwrap();
                for (i, v) in visits.iter().enumerate() {
                    sqlx::query("UPDATE app.appointments SET legacy_notes = $1 WHERE id = $2")
                        .bind(notes(i))
                        .bind(v.id.as_uuid())
                        .execute(&su)
                        .await
                        .unwrap();
                }
            }
            None => {
                let mut tx = a.env.pool.begin(t).await.unwrap();
                let conn = tx.dangerous_sqlite().unwrap();
                sqlx::query("ALTER TABLE appointments ADD COLUMN legacy_notes text")
                    .execute(&mut *conn)
                    .await
                    .unwrap();
                for (i, v) in visits.iter().enumerate() {
                    sqlx::query("UPDATE appointments SET legacy_notes = ?1 WHERE id = ?2")
                        .bind(notes(i))
                        .bind(v.id.as_uuid())
                        .execute(&mut *conn)
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
            }
        }
        let record_type = plenum::core::record_type!("appointments");
        let legacy = plenum::core::field_name!("legacy_notes");
        // Not an encrypted text field, or the plaintext column named as a field: refused.
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let err = a
            .records
            .adopt_plaintext_page(
                &mut tx,
                &protection,
                &record_type,
                &plenum::core::field_name!("starts_at"),
                &legacy,
                2,
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{name}");
        let first = adopt(&a.records, &mut tx, &protection, 2).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!((first.sealed, first.finished), (2, false), "{name}");
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let lost = adopt(&a.records, &mut tx, &protection, 2).await.unwrap();
        assert_eq!(lost.sealed, 1, "{name}");
        drop(tx);
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let last = adopt(&a.records, &mut tx, &protection, 2).await.unwrap();
        assert_eq!(
            (last.sealed, last.finished),
            (1, true),
            "{name}: the lost page's row again"
        );
        let done = adopt(&a.records, &mut tx, &protection, 2).await.unwrap();
        assert_eq!((done.sealed, done.finished), (0, true), "{name}");
        let read = appointments
            .list(&mut tx, &storage, None, 10)
            .await
            .unwrap();
        let mut opened: Vec<String> = read
            .items
            .iter()
            .map(|v| v.notes.as_ref().unwrap().open().unwrap().expose().clone())
            .collect();
        opened.sort();
        assert_eq!(opened, [notes(0), notes(1), notes(2)], "{name}");
        tx.commit().await.unwrap();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let left: i64 = match a.env.pool.backend() {
            BackendKind::Postgres => sqlx::query_scalar(
                "SELECT count(*) FROM app.appointments WHERE legacy_notes IS NOT NULL",
            )
            .fetch_one(tx.dangerous_postgres().unwrap())
            .await
            .unwrap(),
            _ => sqlx::query_scalar(
                "SELECT count(*) FROM appointments WHERE legacy_notes IS NOT NULL",
            )
            .fetch_one(tx.dangerous_sqlite().unwrap())
            .await
            .unwrap(),
        };
        assert_eq!(left, 0, "{name}: no plaintext left");
    }
}

/// One page of moving `appointments.legacy_notes` into `notes`.
async fn adopt(
    records: &Records,
    tx: &mut TenantTx,
    grant: &PurposeGrant<'_>,
    page: u32,
) -> Result<plenum::store::AdoptPage, plenum::store::Error> {
    records
        .adopt_plaintext_page(
            tx,
            grant,
            &plenum::core::record_type!("appointments"),
            &plenum::core::field_name!("notes"),
            &plenum::core::field_name!("legacy_notes"),
            page,
        )
        .await
}

/// Aborting the sweep at arbitrary pages (dropped transactions, as a killed process leaves
/// them) and running it again ends with every value under the active version, each still the
/// value it was: nothing lost, nothing written twice.
#[tokio::test]
async fn a_sweep_aborted_at_random_pages_ends_with_every_value_moved_once() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let name = a.env.name();
        let storage = crate::fixtures::grant(t);
        let security = Request::new(t, staff("security"));
        let protection = a
            .gate
            .grant(&security, Purpose::SecurityProtection)
            .unwrap();
        let c = customer(t, "abort@example.com", "2175550174");
        let bills: Vec<Invoice> = (0..30).map(|i| invoice(t, &c, 5_000 + i)).collect();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        a.records
            .repository::<Customer>()
            .insert(&mut tx, &storage, &c)
            .await
            .unwrap();
        let invoices = a.records.repository::<Invoice>();
        invoices
            .insert_many(&mut tx, &storage, &bills)
            .await
            .unwrap();
        a.records
            .rotate_key(&mut tx, &protection, KeyScope::TenantData)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let record_type = plenum::core::record_type!("invoices");
        // A fixed-seed generator: the same "random" aborts every run.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut committed, mut aborted) = (0u64, 0);
        for round in 0..200 {
            let page = u32::try_from(next() % 5 + 1).unwrap();
            let abort = next() % 3 == 0;
            let mut tx = a.env.pool.begin(t).await.unwrap();
            let p = a
                .records
                .reencrypt_page(&mut tx, &protection, &record_type, page)
                .await
                .unwrap();
            if abort {
                aborted += 1;
                drop(tx);
                continue;
            }
            tx.commit().await.unwrap();
            committed += p.resealed;
            if p.finished {
                assert!(round > 0);
                break;
            }
        }
        assert!(aborted > 0, "{name}: some pages were aborted");
        assert_eq!(committed, 30, "{name}: each value moved exactly once");
        assert_eq!(
            versions(&a.env, t, "invoices", "amount_cents").await,
            [2; 30],
            "{name}"
        );
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let mut cents: Vec<i64> = invoices
            .list(&mut tx, &storage, None, 100)
            .await
            .unwrap()
            .items
            .iter()
            .map(|i| *i.amount_cents.open().unwrap().expose())
            .collect();
        cents.sort_unstable();
        assert_eq!(cents, (5_000..5_030).collect::<Vec<i64>>(), "{name}");
        tx.commit().await.unwrap();
    }
}

/// Flushing seal counts warns of, and returns, the tenant key versions past their rotation
/// threshold, from every instance's seals.
#[tokio::test]
async fn flushing_seal_counts_names_the_versions_due_for_rotation() {
    for env in Env::both().await {
        let t = env.tenant().await;
        let name = env.name();
        let mut config = KeyringConfig::default();
        config.rotation_threshold = 3;
        let keyring = std::sync::Arc::new(Keyring::new(
            std::sync::Arc::new(
                LocalKeyProvider::new(
                    plenum::crypto::Backend::default(),
                    1,
                    &plenum::crypto::secrecy::SecretBox::new(Box::new([0x42; 32])),
                )
                .unwrap(),
            ),
            env.keys.clone(),
            config,
        ));
        let records = Records::new(keyring, std::sync::Arc::new(DiscardAccess))
            .with_record_types(plenum_hvac::record_types());
        let storage = crate::fixtures::grant(t);
        let c = customer(t, "due@example.com", "2175550175");
        let mut tx = env.pool.begin(t).await.unwrap();
        records
            .repository::<Customer>()
            .insert(&mut tx, &storage, &c)
            .await
            .unwrap();
        let bills: Vec<Invoice> = (0..2).map(|i| invoice(t, &c, i)).collect();
        records
            .repository::<Invoice>()
            .insert_many(&mut tx, &storage, &bills)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(
            records.flush_key_usage().await.unwrap().is_empty(),
            "{name}: 2 of 3"
        );
        let mut tx = env.pool.begin(t).await.unwrap();
        records
            .repository::<Invoice>()
            .insert(&mut tx, &storage, &invoice(t, &c, 9))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let due = records.flush_key_usage().await.unwrap();
        let data = KeyRef {
            tenant: t,
            scope: KeyScope::TenantData,
            version: 1,
        };
        assert_eq!(due, [(data, 3)], "{name}");
    }
}

/// An erased subject's rows kept under a pseudonym (customers are scrubbed) have no key: the
/// sweep moves nothing of them, creates no key for the pseudonym, and still finishes.
#[tokio::test]
async fn the_sweep_leaves_an_erased_subjects_rows_alone_and_finishes() {
    for a in Audited::both().await {
        let t = a.env.tenant().await;
        let name = a.env.name();
        let storage = crate::fixtures::grant(t);
        let security = Request::new(t, staff("security"));
        let protection = a
            .gate
            .grant(&security, Purpose::SecurityProtection)
            .unwrap();
        let privacy = Request::new(t, staff("privacy"));
        let rights = a.gate.grant(&privacy, Purpose::RightsFulfilment).unwrap();
        let c = customer(t, "gone@example.com", "2175550176");
        let mut tx = a.env.pool.begin(t).await.unwrap();
        a.records
            .repository::<Customer>()
            .insert(&mut tx, &storage, &c)
            .await
            .unwrap();
        a.records
            .rotate_key(&mut tx, &protection, KeyScope::Subject(c.subject))
            .await
            .unwrap();
        a.records
            .erase_subject(&mut tx, &rights, c.subject)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let keys_before = a
            .env
            .keys
            .load_subject_page(t, None, 100)
            .await
            .unwrap()
            .len();
        let mut tx = a.env.pool.begin(t).await.unwrap();
        let page = a
            .records
            .reencrypt_page(
                &mut tx,
                &protection,
                &plenum::core::record_type!("customers"),
                10,
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            (page.resealed, page.erased, page.finished),
            (0, 4, true),
            "{name}: four sealed fields with no key, nothing moved"
        );
        let keys_after = a
            .env
            .keys
            .load_subject_page(t, None, 100)
            .await
            .unwrap()
            .len();
        assert_eq!(
            keys_before, keys_after,
            "{name}: no key was created for the pseudonym"
        );
    }
}
