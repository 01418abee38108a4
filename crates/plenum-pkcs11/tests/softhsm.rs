//! The PKCS#11 provider against a real token: SoftHSM2, a token created for this run (random
//! label and PINs, in SoftHSM's configured token directory) and deleted when the test ends.
//! One test drives the token scenarios in order, because a PKCS#11 module sees only the tokens
//! present when the process initialised it, and login is per process: the wrong-PIN case runs
//! before any login succeeds.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failed test"
)]

use std::sync::Arc;

use plenum_core::{RecordId, TenantId, field_name, record_type};
use plenum_crypto::{
    Backend, ErrorKind as CryptoErrorKind, FieldLocator, KeyProvider, Keyring, KeyringConfig,
    LocalKeyProvider, MemoryKeyStore, Owner, Pii,
};
use plenum_pkcs11::{ErrorKind, Pkcs11Config, Pkcs11KeyProvider};
use plenum_test::softhsm::{Token, module};
use secrecy::{ExposeSecret as _, SecretBox, SecretString};

fn config(token: &Token) -> Pkcs11Config {
    Pkcs11Config::new(
        module(),
        &token.label,
        SecretString::from(token.pin.clone()),
    )
}

fn context(tenant: TenantId) -> Vec<u8> {
    let mut c = tenant.as_uuid().as_bytes().to_vec();
    c.extend_from_slice(b"tenant-data-1");
    c
}

#[test]
fn a_missing_module_is_a_clear_error_at_start() {
    let config = Pkcs11Config::new(
        "/nonexistent/libsofthsm2.so",
        "any",
        SecretString::from("1234".to_owned()),
    );
    let err = Pkcs11KeyProvider::open(&config).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Module);
    assert!(err.to_string().contains("could not be loaded"), "{err}");
}

#[tokio::test]
async fn the_token_wraps_binds_the_context_and_keeps_its_key() {
    let token = Token::create();

    // Set-up faults are clear errors at start: a wrong PIN (before any login of this process
    // succeeds, since login is per process), a token that is not there.
    let mut wrong = config(&token);
    wrong.pin = SecretString::from("not-the-pin".to_owned());
    let err = Pkcs11KeyProvider::open(&wrong).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PinRejected, "{err}");
    assert!(
        !format!("{err:?}{wrong:?}").contains(&token.pin),
        "the PIN is never printed"
    );
    let mut absent = config(&token);
    absent.token_label = format!("{}-absent", token.label);
    let err = Pkcs11KeyProvider::open(&absent).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TokenNotFound, "{err}");

    let provider = Pkcs11KeyProvider::open(&config(&token)).unwrap();
    assert!(provider.root_versions().is_empty());
    let key = SecretBox::new(Box::new([0x5au8; 32]));
    let t = TenantId::generate();
    let err = provider.wrap(&key, &context(t)).await.unwrap_err();
    assert_eq!(err.kind(), CryptoErrorKind::Environment, "no root key yet");
    assert_eq!(
        provider.create_root_key(0).unwrap_err().kind(),
        ErrorKind::ZeroVersion
    );
    provider.create_root_key(1).unwrap();
    assert_eq!(
        provider.create_root_key(1).unwrap_err().kind(),
        ErrorKind::RootKeyExists
    );

    // The root key never leaves the token.
    let exposure = provider.root_key_exposure(1).unwrap();
    assert!(
        exposure.sensitive && !exposure.extractable && !exposure.value_readable,
        "{exposure:?}"
    );

    // Wrap format 1, bound to its context: another tenant's context, or a flipped byte,
    // does not unwrap.
    let wrapped = provider.wrap(&key, &context(t)).await.unwrap();
    assert_eq!(wrapped.as_bytes().len(), 66);
    assert_eq!(&wrapped.as_bytes()[..6], &[1, 1, 0, 0, 0, 1]);
    let opened = provider.unwrap(&wrapped, &context(t)).await.unwrap();
    assert_eq!(opened.expose_secret(), key.expose_secret());
    let other = TenantId::generate();
    let err = provider
        .unwrap(&wrapped, &context(other))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), CryptoErrorKind::DecryptionFailed);
    let mut tampered = wrapped.as_bytes().to_vec();
    tampered[30] ^= 1;
    let err = provider
        .unwrap(
            &plenum_crypto::WrappedKey::from_bytes(tampered),
            &context(t),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), CryptoErrorKind::DecryptionFailed);
    // A local root key, even one of the same version, cannot open what the token wrapped.
    let local =
        LocalKeyProvider::new(Backend::default(), 1, &SecretBox::new(Box::new([0u8; 32]))).unwrap();
    assert!(local.unwrap(&wrapped, &context(t)).await.is_err());

    // Through a keyring: a value sealed under a tenant key the token wrapped opens in another
    // process's keyring (cold caches) over the same key store and token.
    let store = Arc::new(MemoryKeyStore::new());
    let provider = Arc::new(provider);
    let keyring =
        |p: Arc<Pkcs11KeyProvider>| Keyring::new(p, store.clone(), KeyringConfig::default());
    let locator = FieldLocator {
        tenant: t,
        record_type: record_type!("customers"),
        field: field_name!("email"),
        owner: Owner::Tenant,
    };
    let record = RecordId::generate();
    let envelope = keyring(provider.clone())
        .seal(&locator, record, &Pii::new("ann@example.com".to_owned()))
        .await
        .unwrap();
    let opened: Pii<String> = keyring(provider.clone())
        .dangerous_open(&locator, record, envelope.as_bytes())
        .await
        .unwrap();
    assert_eq!(opened.expose(), "ann@example.com");

    // Root rotation: a second version wraps from now on, the first still unwraps, and a
    // provider opened afresh finds both on the token.
    provider.create_root_key(2).unwrap();
    assert!(provider.needs_rewrap(&wrapped));
    let rewrapped = provider.wrap(&key, &context(t)).await.unwrap();
    assert_eq!(&rewrapped.as_bytes()[2..6], &[0, 0, 0, 2]);
    assert!(!provider.needs_rewrap(&rewrapped));
    let again = Pkcs11KeyProvider::open(&config(&token)).unwrap();
    assert_eq!(again.root_versions(), [1, 2]);
    let opened = again.unwrap(&wrapped, &context(t)).await.unwrap();
    assert_eq!(opened.expose_secret(), key.expose_secret());
    // Another environment's prefix sees none of these keys.
    let staging =
        Pkcs11KeyProvider::open(&config(&token).with_key_label_prefix("staging-root-")).unwrap();
    assert!(staging.root_versions().is_empty());
}
