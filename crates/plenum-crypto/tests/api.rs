//! The public API of plenum-crypto, run once per compiled backend (as rustls runs its API suite
//! once per crypto provider).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failed test, and helpers outside #[test] fns panic too"
)]

use std::sync::Arc;

use plenum_core::{RecordId, SubjectId, TenantId, field_name, record_type};
use plenum_crypto::{
    Backend, Error, ErrorKind, FieldLocator, KeyRef, KeyScope, KeyState, KeyStore, Keyring,
    KeyringConfig, LocalKeyProvider, MemoryKeyStore, Normaliser, Owner, Pii, secrecy::SecretBox,
};
use plenum_test::CANARY_EMAIL;

struct Fixture {
    keyring: Keyring,
    store: Arc<MemoryKeyStore>,
}

fn root(byte: u8) -> plenum_crypto::KeyMaterial {
    SecretBox::new(Box::new([byte; 32]))
}

fn fixture(backend: Backend) -> Fixture {
    let provider = LocalKeyProvider::new(backend, 1, &root(0x42)).unwrap();
    let store = Arc::new(MemoryKeyStore::new());
    Fixture {
        keyring: Keyring::new(
            Arc::new(provider),
            store.clone(),
            KeyringConfig::with_backend(backend),
        ),
        store,
    }
}

/// Another process's keyring over the same key store (same root key, cold caches).
fn another_process(fx: &Fixture, backend: Backend) -> Keyring {
    let provider = LocalKeyProvider::new(backend, 1, &root(0x42)).unwrap();
    Keyring::new(
        Arc::new(provider),
        fx.store.clone(),
        KeyringConfig::with_backend(backend),
    )
}

fn email_of(tenant: TenantId, subject: SubjectId) -> FieldLocator {
    FieldLocator {
        tenant,
        record_type: record_type!("customer"),
        field: field_name!("email"),
        owner: Owner::Subject(subject),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// Runs `f` once per backend, naming the backend on failure.
fn each_backend(f: impl Fn(Backend)) {
    for backend in Backend::all() {
        f(*backend);
    }
}

#[test]
fn seal_and_open_round_trip() {
    each_backend(|backend| {
        rt().block_on(async {
            let fx = fixture(backend);
            let loc = email_of(TenantId::generate(), SubjectId::generate());
            let record = RecordId::generate();
            let value = Pii::new(CANARY_EMAIL.to_owned());
            let sealed = fx.keyring.seal(&loc, record, &value).await.unwrap();
            assert_eq!(
                sealed.as_bytes().len(),
                CANARY_EMAIL.len() + plenum_crypto::ENVELOPE_OVERHEAD
            );
            assert!(
                !sealed
                    .as_bytes()
                    .windows(CANARY_EMAIL.len())
                    .any(|w| w == CANARY_EMAIL.as_bytes()),
                "plaintext visible in the envelope"
            );
            let opened: Pii<String> = fx
                .keyring
                .dangerous_open(&loc, record, sealed.as_bytes())
                .await
                .unwrap();
            assert_eq!(opened.expose(), CANARY_EMAIL, "{backend:?}");
            // Two seals of the same value differ (random nonces).
            let again = fx.keyring.seal(&loc, record, &value).await.unwrap();
            assert_ne!(again, sealed);
        });
    });
}

#[test]
fn backends_read_each_others_envelopes() {
    let backends = Backend::all();
    let provider_key = root(0x42);
    let store = Arc::new(MemoryKeyStore::new());
    let rings: Vec<Keyring> = backends
        .iter()
        .map(|b| {
            Keyring::new(
                Arc::new(LocalKeyProvider::new(*b, 1, &provider_key).unwrap()),
                store.clone(),
                KeyringConfig::with_backend(*b),
            )
        })
        .collect();
    rt().block_on(async {
        let loc = email_of(TenantId::generate(), SubjectId::generate());
        let record = RecordId::generate();
        for writer in &rings {
            let sealed = writer
                .seal(&loc, record, &Pii::new("x@y.z".to_owned()))
                .await
                .unwrap();
            for reader in &rings {
                let opened: Pii<String> = reader
                    .dangerous_open(&loc, record, sealed.as_bytes())
                    .await
                    .unwrap();
                assert_eq!(opened.expose(), "x@y.z");
            }
        }
    });
}

#[test]
fn every_single_bit_flip_is_rejected() {
    each_backend(|backend| {
        rt().block_on(async {
            let fx = fixture(backend);
            let loc = email_of(TenantId::generate(), SubjectId::generate());
            let record = RecordId::generate();
            let sealed = fx
                .keyring
                .seal(&loc, record, &Pii::new("ada@example.com".to_owned()))
                .await
                .unwrap();
            let bytes = sealed.as_bytes();
            for bit in 0..bytes.len() * 8 {
                let mut tampered = bytes.to_vec();
                tampered[bit / 8] ^= 1 << (bit % 8);
                let err = fx
                    .keyring
                    .dangerous_open::<String>(&loc, record, &tampered)
                    .await
                    .expect_err("a flipped bit must not open");
                // Header bits may fail structurally or name a key that does not exist; every
                // other bit fails authentication.
                let kind = err.kind();
                if bit / 8 >= 7 {
                    assert_eq!(kind, ErrorKind::DecryptionFailed, "bit {bit}");
                } else {
                    assert!(
                        matches!(
                            kind,
                            ErrorKind::Malformed
                                | ErrorKind::KeyUnavailable
                                | ErrorKind::DecryptionFailed
                        ),
                        "bit {bit}: {err}"
                    );
                }
            }
            // Truncation and extension fail too.
            for len in [0, 1, 18, 34, bytes.len() - 1] {
                assert!(
                    fx.keyring
                        .dangerous_open::<String>(&loc, record, &bytes[..len])
                        .await
                        .is_err()
                );
            }
            let mut longer = bytes.to_vec();
            longer.push(0);
            let err = fx
                .keyring
                .dangerous_open::<String>(&loc, record, &longer)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::DecryptionFailed);
        });
    });
}

#[test]
fn ciphertext_moved_to_another_context_does_not_open() {
    each_backend(|backend| {
        rt().block_on(async {
            let fx = fixture(backend);
            let tenant = TenantId::generate();
            let subject = SubjectId::generate();
            let loc = email_of(tenant, subject);
            let record = RecordId::generate();
            let sealed = fx
                .keyring
                .seal(&loc, record, &Pii::new("ada@example.com".to_owned()))
                .await
                .unwrap();
            let bytes = sealed.as_bytes();
            // Make sure every other context has keys, so failures are authentication failures.
            let other_tenant = TenantId::generate();
            let other_subject = SubjectId::generate();
            let moved: Vec<(&str, FieldLocator, RecordId)> = vec![
                ("other record", loc.clone(), RecordId::generate()),
                (
                    "other field",
                    FieldLocator {
                        field: field_name!("phone"),
                        ..loc.clone()
                    },
                    record,
                ),
                (
                    "other record type",
                    FieldLocator {
                        record_type: record_type!("technician"),
                        ..loc.clone()
                    },
                    record,
                ),
                ("other subject", email_of(tenant, other_subject), record),
                (
                    "other tenant, same subject id",
                    email_of(other_tenant, subject),
                    record,
                ),
            ];
            for (what, target, target_record) in moved {
                // Give the target context a key of its own first.
                fx.keyring
                    .seal(&target, target_record, &Pii::new(String::new()))
                    .await
                    .unwrap();
                let err = fx
                    .keyring
                    .dangerous_open::<String>(&target, target_record, bytes)
                    .await
                    .unwrap_err();
                assert!(matches!(err, Error::DecryptionFailed), "{what}: {err}");
            }
            // A subject envelope offered as tenant-owned data is refused structurally.
            let as_tenant = FieldLocator {
                owner: Owner::Tenant,
                ..loc.clone()
            };
            let err = fx
                .keyring
                .dangerous_open::<String>(&as_tenant, record, bytes)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Malformed);
        });
    });
}

#[test]
fn wrong_root_key_cannot_unwrap_tenant_keys() {
    each_backend(|backend| {
        rt().block_on(async {
            let fx = fixture(backend);
            let loc = email_of(TenantId::generate(), SubjectId::generate());
            let record = RecordId::generate();
            let sealed = fx
                .keyring
                .seal(&loc, record, &Pii::new("a@b.c".to_owned()))
                .await
                .unwrap();
            let wrong = Keyring::new(
                Arc::new(LocalKeyProvider::new(backend, 1, &root(0x43)).unwrap()),
                fx.store.clone(),
                KeyringConfig::with_backend(backend),
            );
            let err = wrong
                .dangerous_open::<String>(&loc, record, sealed.as_bytes())
                .await
                .unwrap_err();
            assert!(matches!(err, Error::DecryptionFailed), "{err}");
        });
    });
}

#[test]
fn unknown_key_version_and_destroyed_keys_have_their_own_errors() {
    each_backend(|backend| {
        rt().block_on(async {
            let fx = fixture(backend);
            let tenant = TenantId::generate();
            let subject = SubjectId::generate();
            let loc = email_of(tenant, subject);
            let record = RecordId::generate();
            let sealed = fx
                .keyring
                .seal(&loc, record, &Pii::new("a@b.c".to_owned()))
                .await
                .unwrap();
            // Claim version 9 in the header: no such key.
            let mut bumped = sealed.as_bytes().to_vec();
            bumped[3..7].copy_from_slice(&9u32.to_be_bytes());
            let err = fx
                .keyring
                .dangerous_open::<String>(&loc, record, &bumped)
                .await
                .unwrap_err();
            assert!(
                matches!(err, Error::KeyNotFound { version: 9, .. }),
                "{err}"
            );

            // Erase the subject: destroying its key makes every copy unreadable, distinctly.
            let n = fx
                .keyring
                .destroy_scope(tenant, KeyScope::Subject(subject))
                .await
                .unwrap();
            assert_eq!(n, 1);
            let err = fx
                .keyring
                .dangerous_open::<String>(&loc, record, sealed.as_bytes())
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::KeyDestroyed, "{err}");
            // The store holds no key material for it any more.
            let stored = fx
                .store
                .load(tenant, KeyScope::Subject(subject))
                .await
                .unwrap();
            assert!(
                stored
                    .iter()
                    .all(|k| k.state == KeyState::Destroyed && k.wrapped.is_none())
            );
            // An erased subject gets no new key, so no new data.
            let err = fx
                .keyring
                .seal(&loc, record, &Pii::new("x".to_owned()))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::KeyDestroyed);
            // Other subjects of the tenant are untouched.
            let other = email_of(tenant, SubjectId::generate());
            let s2 = fx
                .keyring
                .seal(&other, record, &Pii::new("ok".to_owned()))
                .await
                .unwrap();
            let o2: Pii<String> = fx
                .keyring
                .dangerous_open(&other, record, s2.as_bytes())
                .await
                .unwrap();
            assert_eq!(o2.expose(), "ok");
        });
    });
}

#[test]
fn a_fresh_keyring_sees_destruction_made_by_another_process() {
    rt().block_on(async {
        let fx = fixture(Backend::default());
        let tenant = TenantId::generate();
        let subject = SubjectId::generate();
        let loc = email_of(tenant, subject);
        let record = RecordId::generate();
        let sealed = fx
            .keyring
            .seal(&loc, record, &Pii::new("a".to_owned()))
            .await
            .unwrap();
        let other_process = another_process(&fx, Backend::default());
        other_process
            .destroy_scope(tenant, KeyScope::Subject(subject))
            .await
            .unwrap();
        // This process still has the key cached until the TTL or an explicit invalidation.
        fx.keyring.invalidate(tenant, KeyScope::Subject(subject));
        let err = fx
            .keyring
            .dangerous_open::<String>(&loc, record, sealed.as_bytes())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::KeyDestroyed);
    });
}

/// Keys derived late from a cached scope expire with the scope, not a TTL after their own
/// derivation: a bundle derived just before another process destroys the subject's key stops
/// answering when the scope's TTL ends, so the bound a deployment sets on erasure holds for
/// the one-lookup read path too.
#[test]
fn keys_derived_from_a_cached_scope_expire_with_it() {
    rt().block_on(async {
        let ttl = std::time::Duration::from_millis(400);
        let fx = fixture(Backend::default());
        let keyring = Keyring::new(
            Arc::new(LocalKeyProvider::new(Backend::default(), 1, &root(0x42)).unwrap()),
            fx.store.clone(),
            KeyringConfig::default().with_ttl(ttl),
        );
        let (tenant, subject) = (TenantId::generate(), SubjectId::generate());
        let loaded = std::time::Instant::now();
        // Loads (and creates) the subject's scope now.
        keyring
            .seal(
                &email_of(tenant, subject),
                RecordId::generate(),
                &Pii::new("a".to_owned()),
            )
            .await
            .unwrap();
        let bundle = || async {
            let fields = [field_name!("phone")];
            keyring
                .dangerous_field_keys(
                    tenant,
                    Owner::Subject(subject),
                    Some(1),
                    &record_type!("visit"),
                    &fields,
                )
                .await
                .map(|keys| keys.len())
        };
        // Most of the TTL later, a bundle for another record type is derived from that scope.
        std::thread::sleep(ttl * 3 / 4);
        assert_eq!(bundle().await.unwrap(), 1);
        another_process(&fx, Backend::default())
            .destroy_scope(tenant, KeyScope::Subject(subject))
            .await
            .unwrap();
        // Past the scope's TTL (well within the bundle's own, had it started at derivation).
        std::thread::sleep(ttl.saturating_sub(loaded.elapsed()) + ttl / 8);
        assert!(
            loaded.elapsed() < ttl * 3 / 4 + ttl,
            "the bundle's own TTL is not over yet"
        );
        let err = bundle().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::KeyDestroyed);
    });
}

#[test]
fn rotation_keeps_old_data_readable_and_seals_under_the_new_version() {
    each_backend(|backend| {
        rt().block_on(async {
            let fx = fixture(backend);
            let tenant = TenantId::generate();
            let subject = SubjectId::generate();
            let loc = email_of(tenant, subject);
            let record = RecordId::generate();
            let v1 = fx
                .keyring
                .seal(&loc, record, &Pii::new("old".to_owned()))
                .await
                .unwrap();
            assert_eq!(v1.key_version(), Some(1));
            let new = fx
                .keyring
                .rotate(tenant, KeyScope::Subject(subject))
                .await
                .unwrap();
            assert_eq!(new.version, 2);
            let v2 = fx
                .keyring
                .seal(&loc, record, &Pii::new("new".to_owned()))
                .await
                .unwrap();
            assert_eq!(v2.key_version(), Some(2));
            let old: Pii<String> = fx
                .keyring
                .dangerous_open(&loc, record, v1.as_bytes())
                .await
                .unwrap();
            assert_eq!(old.expose(), "old");
            let states: Vec<_> = {
                let mut s: Vec<_> = fx
                    .store
                    .load(tenant, KeyScope::Subject(subject))
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|k| (k.key_ref.version, k.state))
                    .collect();
                s.sort_by_key(|(v, _)| *v);
                s
            };
            assert_eq!(
                states,
                vec![(1, KeyState::DecryptOnly), (2, KeyState::Active)]
            );
            // Retire then destroy the old version: v1 data is gone, v2 data stays.
            let v1_ref = KeyRef {
                tenant,
                scope: KeyScope::Subject(subject),
                version: 1,
            };
            fx.keyring.retire(v1_ref).await.unwrap();
            assert!(fx.keyring.retire(v1_ref).await.is_err(), "retire twice");
            fx.keyring.destroy(v1_ref).await.unwrap();
            let err = fx
                .keyring
                .dangerous_open::<String>(&loc, record, v1.as_bytes())
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::KeyDestroyed);
            let new_data: Pii<String> = fx
                .keyring
                .dangerous_open(&loc, record, v2.as_bytes())
                .await
                .unwrap();
            assert_eq!(new_data.expose(), "new");
        });
    });
}

#[test]
fn root_key_rotation_rewraps_tenant_keys_only() {
    each_backend(|backend| {
        rt().block_on(async {
            let store = Arc::new(MemoryKeyStore::new());
            let old_root = Keyring::new(
                Arc::new(LocalKeyProvider::new(backend, 1, &root(1)).unwrap()),
                store.clone(),
                KeyringConfig::with_backend(backend),
            );
            let tenant = TenantId::generate();
            let subject = SubjectId::generate();
            let loc = email_of(tenant, subject);
            let record = RecordId::generate();
            let sealed = old_root
                .seal(&loc, record, &Pii::new("kept".to_owned()))
                .await
                .unwrap();
            let subject_before = store
                .load(tenant, KeyScope::Subject(subject))
                .await
                .unwrap();

            let both = LocalKeyProvider::new(backend, 1, &root(1))
                .unwrap()
                .with_version(2, &root(2))
                .unwrap();
            let rotating = Keyring::new(
                Arc::new(both),
                store.clone(),
                KeyringConfig::with_backend(backend),
            );
            let n = rotating.rewrap_tenant_keys(tenant).await.unwrap();
            assert_eq!(n, 1, "the tenant data key (no index key was created yet)");
            assert_eq!(
                rotating.rewrap_tenant_keys(tenant).await.unwrap(),
                0,
                "idempotent"
            );
            assert_eq!(
                store
                    .load(tenant, KeyScope::Subject(subject))
                    .await
                    .unwrap(),
                subject_before
            );

            // Only the new root key is needed now.
            let new_root = Keyring::new(
                Arc::new(LocalKeyProvider::new(backend, 2, &root(2)).unwrap()),
                store.clone(),
                KeyringConfig::with_backend(backend),
            );
            let opened: Pii<String> = new_root
                .dangerous_open(&loc, record, sealed.as_bytes())
                .await
                .unwrap();
            assert_eq!(opened.expose(), "kept");
        });
    });
}

#[test]
fn tenant_owned_fields_use_the_tenant_data_key() {
    each_backend(|backend| {
        rt().block_on(async {
            let fx = fixture(backend);
            let tenant = TenantId::generate();
            let loc = FieldLocator {
                tenant,
                record_type: record_type!("invoice"),
                field: field_name!("amount_cents"),
                owner: Owner::Tenant,
            };
            let record = RecordId::generate();
            let sealed = fx
                .keyring
                .seal(&loc, record, &Pii::new(12_345u64))
                .await
                .unwrap();
            assert_eq!(sealed.as_bytes()[2], 0x01);
            let back: Pii<u64> = fx
                .keyring
                .dangerous_open(&loc, record, sealed.as_bytes())
                .await
                .unwrap();
            assert_eq!(*back.expose(), 12_345);
            // Asking for the wrong plaintext type is an authenticated, typed error.
            let err = fx
                .keyring
                .dangerous_open::<u32>(&loc, record, sealed.as_bytes())
                .await
                .unwrap_err();
            assert!(matches!(err, Error::PlaintextType { type_name: "u32" }));
        });
    });
}

#[test]
fn blind_indexes_are_per_tenant_and_format_insensitive() {
    each_backend(|backend| {
        rt().block_on(async {
            let fx = fixture(backend);
            let (a, b) = (TenantId::generate(), TenantId::generate());
            let rt_ = record_type!("customer");
            let email = field_name!("email");
            let ia = fx
                .keyring
                .blind_indexer(a, &rt_, &email, Normaliser::Email)
                .await
                .unwrap();
            let ib = fx
                .keyring
                .blind_indexer(b, &rt_, &email, Normaliser::Email)
                .await
                .unwrap();
            let x = ia.compute("Ada@Example.com").unwrap();
            assert_eq!(x, ia.compute("  ada@example.COM").unwrap());
            assert_ne!(x, ia.compute("ada@example.org").unwrap());
            assert_ne!(
                x,
                ib.compute("Ada@Example.com").unwrap(),
                "tenants must not be linkable"
            );
            // Another field of the same tenant gets an unrelated index for the same value.
            let other = fx
                .keyring
                .blind_indexer(a, &rt_, &field_name!("backup_email"), Normaliser::Email)
                .await
                .unwrap();
            assert_ne!(x, other.compute("ada@example.com").unwrap());
            assert_eq!(format!("{x:?}"), "BlindIndex(v1)");

            // Rotation: one candidate per live version, the active one first.
            fx.keyring.rotate(a, KeyScope::TenantIndex).await.unwrap();
            let candidates = fx
                .keyring
                .blind_index_candidates(a, &rt_, &email, Normaliser::Email, "ADA@example.com")
                .await
                .unwrap();
            assert_eq!(candidates.len(), 2);
            assert_eq!(candidates[0].version(), 2);
            assert_eq!(candidates[1], x);
        });
    });
}

#[test]
fn concurrent_first_use_creates_one_key() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async {
        let fx = Arc::new(fixture(Backend::default()));
        let tenant = TenantId::generate();
        let subject = SubjectId::generate();
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let fx = fx.clone();
            tasks.push(tokio::spawn(async move {
                let loc = email_of(tenant, subject);
                let record = RecordId::generate();
                let s = fx
                    .keyring
                    .seal(&loc, record, &Pii::new("v".to_owned()))
                    .await
                    .unwrap();
                (record, s)
            }));
        }
        let mut sealed = Vec::new();
        for t in tasks {
            sealed.push(t.await.unwrap());
        }
        assert_eq!(
            fx.store
                .load(tenant, KeyScope::Subject(subject))
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            fx.store
                .load(tenant, KeyScope::SubjectWrap)
                .await
                .unwrap()
                .len(),
            1,
            "one subject-wrap key"
        );
        assert!(
            fx.store
                .load(tenant, KeyScope::TenantData)
                .await
                .unwrap()
                .is_empty(),
            "subject keys no longer need the tenant data key"
        );
        let loc = email_of(tenant, subject);
        for (record, s) in sealed {
            let v: Pii<String> = fx
                .keyring
                .dangerous_open(&loc, record, s.as_bytes())
                .await
                .unwrap();
            assert_eq!(v.expose(), "v");
        }
        let key = KeyRef {
            tenant,
            scope: KeyScope::Subject(subject),
            version: 1,
        };
        // Subject keys are not counted one by one (a counter per subject would grow without
        // bound); tenant keys are, below.
        assert_eq!(fx.keyring.usage(&key), 0);
        assert!(!fx.keyring.rotation_due(&key));
    });
}

#[test]
fn usage_counts_trigger_rotation_advice() {
    rt().block_on(async {
        let mut config = KeyringConfig::default();
        config.rotation_threshold = 3;
        let store = Arc::new(MemoryKeyStore::new());
        let keyring = Keyring::new(
            Arc::new(LocalKeyProvider::new(Backend::default(), 1, &root(9)).unwrap()),
            store.clone(),
            config,
        );
        let tenant = TenantId::generate();
        let subject = SubjectId::generate();
        let loc = FieldLocator {
            owner: Owner::Tenant,
            ..email_of(tenant, subject)
        };
        let fk = keyring.dangerous_field_key(&loc).await.unwrap();
        let key = *fk.key_ref();
        assert_eq!(key.scope, KeyScope::TenantData);
        for i in 0..3 {
            assert!(!keyring.rotation_due(&key), "after {i}");
            fk.seal(RecordId::generate(), &Pii::new("x".to_owned()))
                .unwrap();
        }
        assert!(keyring.rotation_due(&key));
        assert_eq!(keyring.usage_report(), vec![(key, 3)]);
    });
}

/// The seal count of a tenant key is shared through the key store: a process starts from the
/// persisted count, `flush_usage` adds its seals and takes in the others', a restarted process
/// sees them all, and at the limit sealing is refused until the key is rotated.
#[test]
fn usage_is_shared_through_the_store_and_the_limit_refuses_to_seal() {
    rt().block_on(async {
        let mut config = KeyringConfig::default();
        config.rotation_threshold = 6;
        config.usage_limit = 8;
        let store = Arc::new(MemoryKeyStore::new());
        let process = || {
            Keyring::new(
                Arc::new(LocalKeyProvider::new(Backend::default(), 1, &root(9)).unwrap()),
                store.clone(),
                config.clone(),
            )
        };
        let tenant = TenantId::generate();
        let loc = FieldLocator {
            owner: Owner::Tenant,
            ..email_of(tenant, SubjectId::generate())
        };
        let seal =
            |fk: &plenum_crypto::FieldKey| fk.seal(RecordId::generate(), &Pii::new("x".to_owned()));
        let (a, b) = (process(), process());
        let fa = a.dangerous_field_key(&loc).await.unwrap();
        let key = *fa.key_ref();
        for _ in 0..3 {
            seal(&fa).unwrap();
        }
        assert_eq!(a.flush_usage().await.unwrap(), vec![(key, 3)]);
        // B starts from the persisted 3.
        let fb = b.dangerous_field_key(&loc).await.unwrap();
        seal(&fb).unwrap();
        seal(&fb).unwrap();
        assert_eq!(b.usage(&key), 5);
        assert!(!b.rotation_due(&key));
        assert_eq!(b.flush_usage().await.unwrap(), vec![(key, 5)]);
        // A takes in B's seals at its next flush.
        seal(&fa).unwrap();
        assert_eq!(a.usage(&key), 4, "before the flush, A knows its own");
        a.flush_usage().await.unwrap();
        assert_eq!(a.usage(&key), 6);
        assert!(a.rotation_due(&key));
        // A restarted process sees every seal.
        let c = process();
        let fc = c.dangerous_field_key(&loc).await.unwrap();
        assert_eq!(c.usage(&key), 6);
        seal(&fc).unwrap();
        seal(&fc).unwrap();
        let err = seal(&fc).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::KeyUnavailable, "{err}");
        assert!(err.to_string().contains("seal limit"), "{err}");
        // Rotation gives a fresh version, counted from zero.
        let next = c.rotate(tenant, KeyScope::TenantData).await.unwrap();
        let fresh = c.dangerous_field_key(&loc).await.unwrap();
        assert_eq!(*fresh.key_ref(), next);
        seal(&fresh).unwrap();
        assert_eq!(c.usage(&next), 1);
    });
}

#[test]
fn root_key_parsing_is_strict_and_silent() {
    use plenum_crypto::secrecy::SecretString;
    let good = SecretString::from("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
    assert!(LocalKeyProvider::key_from_base64(&good).is_ok());
    for bad in [
        "",
        "not base64!!",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==",
    ] {
        let err = LocalKeyProvider::key_from_base64(&SecretString::from(bad)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        if !bad.is_empty() {
            assert!(!err.to_string().contains(bad));
        }
    }
    let err =
        LocalKeyProvider::from_env(Backend::default(), "PLENUM_TEST_SURELY_UNSET_VAR").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[test]
fn batch_preparation_creates_new_subjects_and_respects_existing_ones() {
    rt().block_on(async {
        let fx = fixture(Backend::default());
        let tenant = TenantId::generate();
        let (rotated, erased, fresh) = (
            SubjectId::generate(),
            SubjectId::generate(),
            SubjectId::generate(),
        );
        // History: one subject rotated to v2, one erased.
        fx.keyring
            .dangerous_field_key(&email_of(tenant, rotated))
            .await
            .unwrap();
        fx.keyring
            .rotate(tenant, KeyScope::Subject(rotated))
            .await
            .unwrap();
        fx.keyring
            .dangerous_field_key(&email_of(tenant, erased))
            .await
            .unwrap();
        fx.keyring
            .destroy_scope(tenant, KeyScope::Subject(erased))
            .await
            .unwrap();

        // A fresh keyring on the same store prepares all three at once.
        let cold = Keyring::new(
            Arc::new(LocalKeyProvider::new(Backend::default(), 1, &root(0x42)).unwrap()),
            fx.store.clone(),
            KeyringConfig::default(),
        );
        cold.prepare_subjects(tenant, &[rotated, erased, fresh], true)
            .await
            .unwrap();
        let rotated_key = cold
            .dangerous_field_key(&email_of(tenant, rotated))
            .await
            .unwrap();
        assert_eq!(
            rotated_key.key_ref().version,
            2,
            "the active version, not v1"
        );
        let err = cold
            .dangerous_field_key(&email_of(tenant, erased))
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::KeyDestroyed,
            "no new key for an erased subject"
        );
        assert_eq!(
            fx.store
                .load(tenant, KeyScope::Subject(fresh))
                .await
                .unwrap()
                .len(),
            1
        );
        // Data sealed by the cold keyring opens in the original one: same stored keys.
        let record = RecordId::generate();
        let sealed = cold
            .seal(&email_of(tenant, fresh), record, &Pii::new("x".to_owned()))
            .await
            .unwrap();
        let back: Pii<String> = fx
            .keyring
            .dangerous_open(&email_of(tenant, fresh), record, sealed.as_bytes())
            .await
            .unwrap();
        assert_eq!(back.expose(), "x");

        // A bundle of field keys (what repositories use) seals exactly as single field keys do.
        let fields = [field_name!("name"), field_name!("email")];
        let bundle = cold
            .dangerous_field_keys(
                tenant,
                Owner::Subject(fresh),
                None,
                &record_type!("customer"),
                &fields,
            )
            .await
            .unwrap();
        let sealed = bundle[1].seal(record, &Pii::new("y".to_owned())).unwrap();
        let back: Pii<String> = fx
            .keyring
            .dangerous_open(&email_of(tenant, fresh), record, sealed.as_bytes())
            .await
            .unwrap();
        assert_eq!(back.expose(), "y");
    });
}
