//! The keyring's cold path through a PKCS#11 token (SoftHSM2, a token of this run) against the
//! same path with the root key in process, in one run: a fresh keyring over a store that holds
//! the keys unwraps the tenant key (the root provider: the token, or in-process AES-GCM), then
//! the subject key, derives the field key and seals. Ratio: `python3 benches/ratios.py --only
//! cold-pkcs11` (the SoftHSM variant against the local one).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "bench harness: a panic aborts the bench, and criterion's macros generate items"
)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use plenum_core::{RecordId, SubjectId, TenantId, field_name, record_type};
use plenum_crypto::{
    Backend, FieldLocator, KeyProvider, Keyring, KeyringConfig, LocalKeyProvider, MemoryKeyStore,
    Owner, Pii, secrecy::SecretBox,
};
use plenum_pkcs11::{Pkcs11Config, Pkcs11KeyProvider};
use plenum_test::softhsm::{Token, module};

fn cold_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Created before the module is first initialised in this process, deleted at the end.
    let token = Token::create();
    let config = Pkcs11Config::new(
        module(),
        &token.label,
        plenum_crypto::secrecy::SecretString::from(token.pin.clone()),
    );
    let hsm = Arc::new(Pkcs11KeyProvider::open(&config).unwrap());
    hsm.create_root_key(1).unwrap();
    let local: Arc<dyn KeyProvider> = Arc::new(
        LocalKeyProvider::new(Backend::default(), 1, &SecretBox::new(Box::new([0x42; 32])))
            .unwrap(),
    );
    let hsm: Arc<dyn KeyProvider> = hsm;
    let loc = FieldLocator {
        tenant: TenantId::generate(),
        record_type: record_type!("customer"),
        field: field_name!("email"),
        owner: Owner::Subject(SubjectId::generate()),
    };
    let record = RecordId::generate();
    let value = Pii::new("ada@example.com".to_owned());
    let mut g = c.benchmark_group("cold-pkcs11");
    for (label, provider) in [("local", &local), ("softhsm", &hsm)] {
        // Each provider has its own store, whose keys it wrapped.
        let store = Arc::new(MemoryKeyStore::new());
        let ring = || Keyring::new(provider.clone(), store.clone(), KeyringConfig::default());
        rt.block_on(ring().seal(&loc, record, &value)).unwrap();
        g.bench_function(format!("{label}-unwrap-derive-seal"), |b| {
            b.iter_batched(
                ring,
                |ring| rt.block_on(ring.seal(&loc, record, &value)).unwrap(),
                BatchSize::SmallInput,
            );
        });
    }
    g.finish();
    drop(token);
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(3))
        .sample_size(40)
}

criterion_group! { name = benches; config = config(); targets = cold_path }
criterion_main!(benches);
