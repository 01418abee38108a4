//! Property tests: round trips over arbitrary plaintexts and contexts, rejection of any
//! modification, and no panic on any input.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failed test"
)]

use std::sync::Arc;

use plenum_core::{FieldName, RecordId, RecordType, SubjectId, TenantId};
use plenum_crypto::{
    Backend, ErrorKind, FieldLocator, Keyring, KeyringConfig, LocalKeyProvider, MemoryKeyStore,
    Owner, Pii, internal, secrecy::SecretBox,
};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{0,20}"
}

/// A record type name: a valid name that does not start with a prefix reserved for the
/// library's and the database's own tables.
fn record_type_name() -> impl Strategy<Value = String> {
    name().prop_filter("not reserved", |n| {
        !plenum_core::RESERVED_RECORD_TYPE_PREFIXES
            .iter()
            .any(|p| n.starts_with(p))
    })
}

fn uuid_bytes() -> impl Strategy<Value = [u8; 16]> {
    proptest::array::uniform16(any::<u8>()).prop_filter("non-nil", |b| b.iter().any(|x| *x != 0))
}

fn locator() -> impl Strategy<Value = FieldLocator> {
    (
        uuid_bytes(),
        record_type_name(),
        name(),
        proptest::option::of(uuid_bytes()),
    )
        .prop_map(|(tenant, rt, field, subject)| FieldLocator {
            tenant: TenantId::from_trusted_uuid(uuid::Uuid::from_bytes(tenant)),
            record_type: RecordType::new(rt).unwrap(),
            field: FieldName::new(field).unwrap(),
            owner: match subject {
                Some(s) => Owner::Subject(SubjectId::from_trusted_uuid(uuid::Uuid::from_bytes(s))),
                None => Owner::Tenant,
            },
        })
}

/// A keyring over `store` (a second keyring on the same store is a second process).
fn keyring_on(backend: Backend, store: Arc<MemoryKeyStore>) -> Keyring {
    let root = SecretBox::new(Box::new([0x11u8; 32]));
    Keyring::new(
        Arc::new(LocalKeyProvider::new(backend, 1, &root).unwrap()),
        store,
        KeyringConfig::with_backend(backend),
    )
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn seal_open_round_trip(loc in locator(), plaintext in proptest::collection::vec(any::<u8>(), 0..2048)) {
        for backend in Backend::all() {
            let ring = keyring_on(*backend, Arc::new(MemoryKeyStore::new()));
            let record = RecordId::generate();
            let back = block_on(async {
                let sealed = ring.seal(&loc, record, &Pii::new(plaintext.clone())).await.unwrap();
                ring.dangerous_open::<Vec<u8>>(&loc, record, sealed.as_bytes()).await.unwrap()
            });
            prop_assert_eq!(back.expose(), &plaintext);
        }
    }

    #[test]
    fn any_other_context_fails(a in locator(), b in locator(), plaintext in ".{0,64}") {
        prop_assume!(a != b);
        let key = [7u8; 32];
        let record = RecordId::generate();
        let sealed = internal::seal_vector(Backend::RustCrypto, key, 1, &a, record, [1; 12], plaintext.as_bytes()).unwrap();
        let scope_a = matches!(a.owner, Owner::Subject(_));
        let scope_b = matches!(b.owner, Owner::Subject(_));
        for backend in Backend::all() {
            let err = internal::open_vector(*backend, key, &b, record, &sealed.envelope).unwrap_err();
            let expected = if scope_a == scope_b { ErrorKind::DecryptionFailed } else { ErrorKind::Malformed };
            prop_assert_eq!(err.kind(), expected);
        }
    }

    #[test]
    fn any_modification_fails(plaintext in proptest::collection::vec(any::<u8>(), 0..256), pos in any::<prop::sample::Index>(), xor in 1u8..) {
        let loc = FieldLocator {
            tenant: TenantId::generate(),
            record_type: RecordType::new("customer").unwrap(),
            field: FieldName::new("notes").unwrap(),
            owner: Owner::Subject(SubjectId::generate()),
        };
        let record = RecordId::generate();
        let sealed = internal::seal_vector(Backend::RustCrypto, [3; 32], 1, &loc, record, [9; 12], &plaintext).unwrap();
        let mut tampered = sealed.envelope.clone();
        let i = pos.index(tampered.len());
        tampered[i] ^= xor;
        for backend in Backend::all() {
            prop_assert!(internal::open_vector(*backend, [3; 32], &loc, record, &tampered).is_err());
        }
    }

    #[test]
    fn opening_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128), loc in locator()) {
        for backend in Backend::all() {
            let _ = internal::open_vector(*backend, [5; 32], &loc, RecordId::generate(), &bytes);
        }
        let _ = plenum_crypto::BlindIndex::from_bytes(&bytes);
        let _ = plenum_crypto::Envelope::from_bytes(bytes.clone()).key_version();
        let _ = internal::unwrap(Backend::RustCrypto, [5; 32], &bytes, b"ctx");
    }

    #[test]
    fn normalisers_never_panic(s in "\\PC{0,40}") {
        for n in [plenum_crypto::Normaliser::Email, plenum_crypto::Normaliser::PhoneE164, plenum_crypto::Normaliser::Text] {
            if let Ok(once) = n.normalise(&s) {
                // Normalisation is idempotent: indexing a normalised value finds the same row.
                let twice = n.normalise(&once).unwrap();
                prop_assert_eq!(&*once, &*twice);
            }
        }
    }
}
