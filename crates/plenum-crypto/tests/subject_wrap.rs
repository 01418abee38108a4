//! Known-answer vectors for the subject-wrap key chain (`tests/data/subject-wrap-vectors-v1.json`,
//! specified in `docs/envelope-format.md`, "Subject-wrap keys and wrap format 2"): root key ->
//! subject-wrap key (scope `0x04`, wrap format 1) -> subject key (wrap format 2) -> envelope.
//! The same rows, put in a key store, open through the `Keyring`; and the keyring's own new
//! subject keys are written in format 2. Written once with
//! `PLENUM_WRITE_VECTORS=1 cargo test -p plenum-crypto --test subject_wrap` (random nonces in
//! the wraps, so the file is the reference, not a regeneration).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test"
)]

use std::sync::Arc;

use plenum_core::{FieldName, RecordId, RecordType, SubjectId, TenantId};
use plenum_crypto::secrecy::SecretBox;
use plenum_crypto::{
    Backend, FieldLocator, KeyRef, KeyScope, KeyState, KeyStore, Keyring, KeyringConfig,
    LocalKeyProvider, MemoryKeyStore, Owner, Pii, StoredKey, WrappedKey, internal,
};
use serde_json::{Value, json};

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/subject-wrap-vectors-v1.json"
);

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn h32(s: &str) -> [u8; 32] {
    h(s).try_into().unwrap()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap()
}

fn u(v: &Value, k: &str) -> u32 {
    u32::try_from(v[k].as_u64().unwrap()).unwrap()
}

fn refs(v: &Value) -> (TenantId, SubjectId, KeyRef, KeyRef, FieldLocator, RecordId) {
    let tenant: TenantId = s(v, "tenant").parse().unwrap();
    let subject: SubjectId = s(v, "subject").parse().unwrap();
    let wrap_ref = KeyRef {
        tenant,
        scope: KeyScope::SubjectWrap,
        version: u(v, "subject_wrap_version"),
    };
    let subject_ref = KeyRef {
        tenant,
        scope: KeyScope::Subject(subject),
        version: u(v, "subject_key_version"),
    };
    let locator = FieldLocator {
        tenant,
        record_type: RecordType::new(s(v, "record_type")).unwrap(),
        field: FieldName::new(s(v, "field")).unwrap(),
        owner: Owner::Subject(subject),
    };
    let record: RecordId = s(v, "record").parse().unwrap();
    (tenant, subject, wrap_ref, subject_ref, locator, record)
}

fn write() {
    let cases = [
        (
            "subject-wrap key v2 under root v3, subject key v1",
            "0192f0c4-5a3e-7b21-9c4d-3e2f1a0b9c8d",
            "0192f0c4-6000-7000-8000-00000000a11c",
            3u32,
            2u32,
            1u32,
        ),
        (
            "subject-wrap key v7 under root v1, subject key v2",
            "0192f0c4-5a3e-7b21-9c4d-3e2f1a0b9cbb",
            "0192f0c4-6000-7000-8000-00000000b0b0",
            1,
            7,
            2,
        ),
    ];
    let root = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";
    let swk = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf";
    let sk = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    let out: Vec<Value> = cases
        .iter()
        .map(|(name, tenant, subject, root_v, wrap_v, key_v)| {
            let mut v = json!({
                "name": name, "tenant": tenant, "subject": subject,
                "record": "0192f0c4-7000-7000-8000-0000000000e1",
                "record_type": "customers", "field": "email", "plaintext": "ada@example.com",
                "root_key": root, "root_version": root_v,
                "subject_wrap_key": swk, "subject_wrap_version": wrap_v,
                "subject_key": sk, "subject_key_version": key_v,
            });
            let (_, _, wrap_ref, subject_ref, locator, record) = refs(&v);
            let wrapped_swk = internal::wrap(
                Backend::default(),
                h32(root),
                *root_v,
                h32(swk),
                &internal::wrap_context(&wrap_ref),
            )
            .unwrap();
            let wrapped_sk = internal::wrap_subject_key_v2(
                Backend::default(),
                h32(swk),
                *wrap_v,
                &subject_ref,
                h32(sk),
            )
            .unwrap();
            let sealed = internal::seal_vector(
                Backend::default(),
                h32(sk),
                *key_v,
                &locator,
                record,
                [7u8; 12],
                b"ada@example.com",
            )
            .unwrap();
            v["subject_wrap_context"] = json!(hex::encode(internal::wrap_context(&wrap_ref)));
            v["wrapped_subject_wrap_key"] = json!(hex::encode(wrapped_swk));
            v["subject_key_context"] = json!(hex::encode(internal::wrap_context(&subject_ref)));
            v["subject_key_wrapping_key"] = json!(hex::encode(
                internal::subject_wrap_key(h32(swk), subject_ref.tenant, *wrap_v).unwrap()
            ));
            v["wrapped_subject_key"] = json!(hex::encode(wrapped_sk));
            v["envelope"] = json!(hex::encode(sealed.envelope));
            v
        })
        .collect();
    let file = json!({
        "format": "plenum subject-wrap chain v1 (wrap format 2)",
        "spec": "docs/envelope-format.md (Subject-wrap keys and wrap format 2)",
        "chain": out,
    });
    std::fs::write(PATH, serde_json::to_string_pretty(&file).unwrap() + "\n").unwrap();
}

fn vectors() -> Vec<Value> {
    if std::env::var("PLENUM_WRITE_VECTORS").as_deref() == Ok("1") {
        write();
    }
    let file: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    file["chain"].as_array().unwrap().clone()
}

#[test]
fn the_chain_unwraps_step_by_step_on_every_backend() {
    for backend in Backend::all() {
        for v in vectors() {
            let (tenant, _, wrap_ref, subject_ref, locator, record) = refs(&v);
            assert_eq!(
                hex::encode(internal::wrap_context(&wrap_ref)),
                s(&v, "subject_wrap_context")
            );
            let wrapped_swk = h(s(&v, "wrapped_subject_wrap_key"));
            assert_eq!(wrapped_swk[0], 0x01, "root wraps are format 1");
            let swk = internal::unwrap(
                *backend,
                h32(s(&v, "root_key")),
                &wrapped_swk,
                &internal::wrap_context(&wrap_ref),
            )
            .unwrap();
            assert_eq!(hex::encode(swk), s(&v, "subject_wrap_key"));
            let wrapping =
                internal::subject_wrap_key(swk, tenant, u(&v, "subject_wrap_version")).unwrap();
            assert_eq!(hex::encode(wrapping), s(&v, "subject_key_wrapping_key"));
            let wrapped_sk = h(s(&v, "wrapped_subject_key"));
            assert_eq!(wrapped_sk[0], 0x02, "subject keys are format 2");
            let sk = internal::unwrap(
                *backend,
                wrapping,
                &wrapped_sk,
                &internal::wrap_context(&subject_ref),
            )
            .unwrap();
            assert_eq!(hex::encode(sk), s(&v, "subject_key"));
            let plain =
                internal::open_vector(*backend, sk, &locator, record, &h(s(&v, "envelope")))
                    .unwrap();
            assert_eq!(plain.expose().as_slice(), s(&v, "plaintext").as_bytes());
        }
    }
}

#[test]
fn the_chain_opens_through_the_keyring_from_stored_rows() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        for v in vectors() {
            let (_, _, wrap_ref, subject_ref, locator, record) = refs(&v);
            let store = Arc::new(MemoryKeyStore::new());
            for (key_ref, wrapped) in [
                (wrap_ref, s(&v, "wrapped_subject_wrap_key")),
                (subject_ref, s(&v, "wrapped_subject_key")),
            ] {
                store
                    .insert(StoredKey {
                        key_ref,
                        state: KeyState::Active,
                        wrapped: Some(WrappedKey::from_bytes(h(wrapped))),
                    })
                    .await
                    .unwrap();
            }
            let root = SecretBox::new(Box::new(h32(s(&v, "root_key"))));
            let provider =
                LocalKeyProvider::new(Backend::default(), u(&v, "root_version"), &root).unwrap();
            let keyring = Keyring::new(
                Arc::new(provider),
                store,
                KeyringConfig::with_backend(Backend::default()),
            );
            let plain: Pii<String> = keyring
                .dangerous_open(&locator, record, &h(s(&v, "envelope")))
                .await
                .unwrap();
            assert_eq!(plain.expose(), s(&v, "plaintext"));
        }
    });
}

#[test]
fn new_subject_keys_are_wrapped_in_format_2_under_the_active_subject_wrap_key() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Arc::new(MemoryKeyStore::new());
        let keyring = keyring_over(store.clone());
        let tenant = TenantId::generate();
        let subject = SubjectId::generate();
        let locator = FieldLocator {
            tenant,
            record_type: RecordType::new("customers").unwrap(),
            field: FieldName::new("email").unwrap(),
            owner: Owner::Subject(subject),
        };
        keyring
            .seal(&locator, RecordId::generate(), &Pii::new("x".to_owned()))
            .await
            .unwrap();
        let wraps = store.load(tenant, KeyScope::SubjectWrap).await.unwrap();
        assert_eq!(wraps.len(), 1);
        assert_eq!(wraps[0].state, KeyState::Active);
        let keys = store
            .load(tenant, KeyScope::Subject(subject))
            .await
            .unwrap();
        let wrapped = keys[0].wrapped.as_ref().unwrap().as_bytes();
        assert_eq!(wrapped[0], 0x02, "format 2");
        assert_eq!(&wrapped[2..6], &wraps[0].key_ref.version.to_be_bytes());
    });
}

/// A keyring (another process's, with cold caches) over `store`, root key version 1.
fn keyring_over(store: Arc<MemoryKeyStore>) -> Keyring {
    let root = SecretBox::new(Box::new([9u8; 32]));
    Keyring::new(
        Arc::new(LocalKeyProvider::new(Backend::default(), 1, &root).unwrap()),
        store,
        KeyringConfig::default(),
    )
}

/// Seals one email for a new subject of `tenant`: its locator, record and envelope.
async fn seal_for(
    ring: &Keyring,
    tenant: TenantId,
) -> (FieldLocator, RecordId, plenum_crypto::Envelope) {
    let subject = SubjectId::generate();
    let loc = FieldLocator {
        tenant,
        record_type: RecordType::new("customers").unwrap(),
        field: FieldName::new("email").unwrap(),
        owner: Owner::Subject(subject),
    };
    let record = RecordId::generate();
    let sealed = ring
        .seal(&loc, record, &Pii::new(format!("{subject}")))
        .await
        .unwrap();
    (loc, record, sealed)
}

/// Erasure epochs with a second instance whose cache is stale: keys it wraps under a version
/// the first instance has already replaced are re-wrapped by the next epoch (the one epoch of
/// delay before destruction), and a key it wraps under a version already destroyed (its cache
/// outlived the schedule's interval) is counted as unreadable without stopping the epoch.
#[test]
fn epochs_rewrap_a_stale_instances_keys_and_count_the_ones_they_cannot() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Arc::new(MemoryKeyStore::new());
        let ring = keyring_over;
        let (scheduler, stale) = (ring(store.clone()), ring(store.clone()));
        let tenant = TenantId::generate();
        let a = seal_for(&scheduler, tenant).await;
        // The stale instance caches subject-wrap version 1 as active.
        let b = seal_for(&stale, tenant).await;

        let first = scheduler.advance_erasure_epoch(tenant).await.unwrap();
        assert_eq!((first.active, first.rewrapped, first.destroyed), (2, 0, 0));
        // Still within its TTL, the stale instance wraps a new subject's key under version 1.
        let c = seal_for(&stale, tenant).await;
        let second = scheduler.advance_erasure_epoch(tenant).await.unwrap();
        assert_eq!(
            (
                second.active,
                second.rewrapped,
                second.destroyed,
                second.unreadable
            ),
            (3, 3, 1, 0),
            "a, b and the stale instance's c re-wrapped under 2; version 1 destroyed"
        );
        // The schedule outran the stale cache: d's key is wrapped under destroyed version 1.
        let d = seal_for(&stale, tenant).await;
        let third = scheduler.advance_erasure_epoch(tenant).await.unwrap();
        assert_eq!(
            (
                third.active,
                third.rewrapped,
                third.destroyed,
                third.unreadable
            ),
            (4, 3, 1, 1),
            "the lost key is counted, the epoch goes on"
        );

        let fresh = ring(store.clone());
        for (loc, record, sealed) in [&a, &b, &c] {
            let opened: Pii<String> = fresh
                .dangerous_open(loc, *record, sealed.as_bytes())
                .await
                .unwrap();
            assert!(!opened.expose().is_empty());
        }
        let (loc, record, sealed) = &d;
        let lost = fresh
            .dangerous_open::<String>(loc, *record, sealed.as_bytes())
            .await
            .unwrap_err();
        assert_eq!(lost.kind(), plenum_crypto::ErrorKind::KeyDestroyed);
        let epochs = fresh.erasure_epochs(tenant).await.unwrap();
        let states: Vec<(u32, KeyState)> = epochs.iter().map(|(k, s)| (k.version, *s)).collect();
        assert_eq!(
            states,
            [
                (1, KeyState::Destroyed),
                (2, KeyState::Destroyed),
                (3, KeyState::DecryptOnly),
                (4, KeyState::Active)
            ]
        );
    });
}
