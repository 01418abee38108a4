//! The canary test: seal a known PII string, drive every error path, and assert that the string
//! appears in no `Debug` or `Display` output of any value or error.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failed test"
)]

use std::sync::Arc;

use plenum_core::{RecordId, SubjectId, TenantId, field_name, record_type};
use plenum_crypto::{
    Backend, Error, FieldLocator, KeyScope, Keyring, KeyringConfig, LocalKeyProvider,
    MemoryKeyStore, Normaliser, Owner, Pii,
    secrecy::{SecretBox, SecretString},
};
use plenum_test::{CANARY_EMAIL, CANARY_PHONE, assert_no_canary};

#[test]
fn canary_never_appears_in_formatted_output() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Arc::new(MemoryKeyStore::new());
        let keyring = Keyring::new(
            Arc::new(
                LocalKeyProvider::new(Backend::default(), 1, &SecretBox::new(Box::new([1u8; 32])))
                    .unwrap(),
            ),
            store.clone(),
            KeyringConfig::default(),
        );
        let tenant = TenantId::generate();
        let subject = SubjectId::generate();
        let loc = FieldLocator {
            tenant,
            record_type: record_type!("customer"),
            field: field_name!("email"),
            owner: Owner::Subject(subject),
        };
        let record = RecordId::generate();
        let pii = Pii::new(CANARY_EMAIL.to_owned());
        let sealed = keyring.seal(&loc, record, &pii).await.unwrap();
        let field_key = keyring.dangerous_field_key(&loc).await.unwrap();
        let indexer = keyring
            .blind_indexer(tenant, &loc.record_type, &loc.field, Normaliser::Email)
            .await
            .unwrap();
        let index = indexer.compute(CANARY_EMAIL).unwrap();
        let opened: Pii<String> = keyring
            .dangerous_open(&loc, record, sealed.as_bytes())
            .await
            .unwrap();

        let mut outputs: Vec<String> = vec![
            format!("{pii:?}"),
            format!("{pii:#?}"),
            format!("{opened:?}"),
            format!("{sealed:?}"),
            format!("{field_key:?}"),
            format!("{indexer:?}"),
            format!("{index:?}"),
            format!("{keyring:?}"),
            format!("{store:?}"),
            format!("{loc:?}"),
        ];

        // Every error path we can reach with the canary in play.
        let mut errors: Vec<Error> = Vec::new();
        let mut tampered = sealed.as_bytes().to_vec();
        tampered[25] ^= 1;
        errors.push(
            keyring
                .dangerous_open::<String>(&loc, RecordId::generate(), sealed.as_bytes())
                .await
                .unwrap_err(),
        );
        errors.push(
            keyring
                .dangerous_open::<String>(&loc, record, &tampered)
                .await
                .unwrap_err(),
        );
        errors.push(
            keyring
                .dangerous_open::<String>(&loc, record, &tampered[..10])
                .await
                .unwrap_err(),
        );
        errors.push(
            keyring
                .dangerous_open::<u32>(&loc, record, sealed.as_bytes())
                .await
                .unwrap_err(),
        );
        errors.push(Normaliser::PhoneE164.normalise(CANARY_EMAIL).unwrap_err());
        errors.push(Normaliser::Email.normalise("   ").unwrap_err());
        errors.push(indexer.compute(" ").unwrap_err());
        errors.push(
            LocalKeyProvider::key_from_base64(&SecretString::from(CANARY_PHONE)).unwrap_err(),
        );
        keyring
            .destroy_scope(tenant, KeyScope::Subject(subject))
            .await
            .unwrap();
        errors.push(
            keyring
                .dangerous_open::<String>(&loc, record, sealed.as_bytes())
                .await
                .unwrap_err(),
        );
        errors.push(keyring.seal(&loc, record, &pii).await.unwrap_err());
        assert!(errors.len() >= 10);
        for err in &errors {
            outputs.push(format!("{err}"));
            outputs.push(format!("{err:?}"));
            outputs.push(format!("{:?}", err.kind()));
            let mut source = std::error::Error::source(err);
            while let Some(s) = source {
                outputs.push(format!("{s} {s:?}"));
                source = s.source();
            }
        }
        for (i, out) in outputs.iter().enumerate() {
            assert_no_canary(&format!("output {i}"), out);
        }
    });
}
