//! plenum-crypto against the raw primitives, in one run: seal/open across field sizes, blind
//! indexes against raw HMAC-SHA256, and the cold path. Ratios: `python3 benches/ratios.py`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "bench harness: a panic aborts the bench, and criterion's macros generate items"
)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::{Aead, AeadInPlace, KeyInit};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hmac::Mac;
use plenum_core::{RecordId, SubjectId, TenantId, field_name, record_type};
use plenum_crypto::{
    Backend, FieldLocator, Keyring, KeyringConfig, LocalKeyProvider, MemoryKeyStore, Normaliser,
    Owner, Pii, secrecy::SecretBox,
};
use rand::RngCore;

const SIZES: [usize; 6] = [16, 32, 64, 256, 1024, 16384];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// A keyring over `store` (a second keyring on the same store is a second process).
fn keyring_on(backend: Backend, store: Arc<MemoryKeyStore>) -> Keyring {
    let root = SecretBox::new(Box::new([0x42u8; 32]));
    Keyring::new(
        Arc::new(LocalKeyProvider::new(backend, 1, &root).unwrap()),
        store,
        KeyringConfig::with_backend(backend),
    )
}

fn locator() -> FieldLocator {
    FieldLocator {
        tenant: TenantId::generate(),
        record_type: record_type!("customer"),
        field: field_name!("email"),
        owner: Owner::Subject(SubjectId::generate()),
    }
}

/// Raw AES-256-GCM seal as a field needs it: output buffer, copy, encrypt in place, tag.
fn raw_seal(cipher: &aes_gcm::Aes256Gcm, nonce: &[u8; 12], plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + plaintext.len() + 16);
    out.extend_from_slice(nonce);
    out.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_in_place_detached(nonce.into(), b"", &mut out[12..])
        .unwrap();
    out.extend_from_slice(&tag);
    out
}

fn seal_open(c: &mut Criterion) {
    let rt = runtime();
    let store = Arc::new(MemoryKeyStore::new());
    let loc = locator();
    let key = [7u8; 32];
    let raw = aes_gcm::Aes256Gcm::new_from_slice(&key).unwrap();
    let lc = aws_lc_rs::aead::LessSafeKey::new(
        aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &key).unwrap(),
    );
    let keys: Vec<_> = Backend::all()
        .iter()
        .map(|b| {
            let ring = keyring_on(*b, store.clone());
            let fk = rt.block_on(ring.dangerous_field_key(&loc)).unwrap();
            (*b, fk)
        })
        .collect();

    let mut seal = c.benchmark_group("seal");
    for size in SIZES {
        let plaintext = vec![0x61u8; size];
        seal.throughput(Throughput::Bytes(size as u64));
        seal.bench_with_input(BenchmarkId::new("raw-aes-gcm", size), &plaintext, |b, p| {
            let nonce = [1u8; 12];
            b.iter(|| raw_seal(&raw, &nonce, black_box(p)));
        });
        seal.bench_with_input(
            BenchmarkId::new("raw-aes-gcm+nonce", size),
            &plaintext,
            |b, p| {
                b.iter(|| {
                    let mut nonce = [0u8; 12];
                    rand::thread_rng().fill_bytes(&mut nonce);
                    raw_seal(&raw, &nonce, black_box(p))
                });
            },
        );
        seal.bench_with_input(
            BenchmarkId::new("raw-aws-lc+nonce", size),
            &plaintext,
            |b, p| {
                b.iter(|| {
                    let mut nonce = [0u8; 12];
                    rand::thread_rng().fill_bytes(&mut nonce);
                    let mut out = Vec::with_capacity(12 + p.len() + 16);
                    out.extend_from_slice(&nonce);
                    out.extend_from_slice(black_box(p));
                    let tag = lc
                        .seal_in_place_separate_tag(
                            aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
                            aws_lc_rs::aead::Aad::empty(),
                            &mut out[12..],
                        )
                        .unwrap();
                    out.extend_from_slice(tag.as_ref());
                    out
                });
            },
        );
        for (backend, fk) in &keys {
            let record = RecordId::generate();
            seal.bench_with_input(
                BenchmarkId::new(format!("plenum-{backend:?}"), size),
                &plaintext,
                |b, p| b.iter(|| fk.seal_bytes(record, black_box(p)).unwrap()),
            );
        }
    }
    seal.finish();

    let mut open = c.benchmark_group("open");
    for size in SIZES {
        let plaintext = vec![0x61u8; size];
        open.throughput(Throughput::Bytes(size as u64));
        let nonce = [1u8; 12];
        let raw_ct = raw_seal(&raw, &nonce, &plaintext);
        open.bench_with_input(BenchmarkId::new("raw-aes-gcm", size), &raw_ct, |b, ct| {
            b.iter(|| {
                let n = ct.len();
                let mut buf = ct[12..n - 16].to_vec();
                let tag: [u8; 16] = ct[n - 16..].try_into().unwrap();
                raw.decrypt_in_place_detached((&nonce).into(), b"", &mut buf, (&tag).into())
                    .unwrap();
                buf
            });
        });
        for (backend, fk) in &keys {
            let record = RecordId::generate();
            let sealed = fk.seal_bytes(record, &plaintext).unwrap();
            open.bench_with_input(
                BenchmarkId::new(format!("plenum-{backend:?}"), size),
                &sealed,
                |b, s| b.iter(|| fk.open_bytes(record, black_box(s.as_bytes())).unwrap()),
            );
        }
    }
    open.finish();
}

/// The 32-64 byte targets again, paired: every iteration of either benchmark runs the raw
/// primitive and the plenum call back to back and times only its own, so noise on the shared
/// machine lands on both sides alike.
fn paired_targets(c: &mut Criterion) {
    use std::time::{Duration as D, Instant};
    let rt = runtime();
    let store = Arc::new(MemoryKeyStore::new());
    let loc = locator();
    let raw = aes_gcm::Aes256Gcm::new_from_slice(&[7u8; 32]).unwrap();
    let fk = rt
        .block_on(keyring_on(Backend::RustCrypto, store.clone()).dangerous_field_key(&loc))
        .unwrap();
    let record = RecordId::generate();
    let mut g = c.benchmark_group("paired");
    for size in [32usize, 64] {
        let plaintext = vec![0x61u8; size];
        let sealed = fk.seal_bytes(record, &plaintext).unwrap();
        let nonce = [1u8; 12];
        let raw_ct = raw_seal(&raw, &nonce, &plaintext);
        let raw_seal_once = || {
            let mut n = [0u8; 12];
            rand::thread_rng().fill_bytes(&mut n);
            black_box(raw_seal(&raw, &n, black_box(&plaintext)));
        };
        let raw_open_once = || {
            let n = raw_ct.len();
            let mut buf = raw_ct[12..n - 16].to_vec();
            let tag: [u8; 16] = raw_ct[n - 16..].try_into().unwrap();
            raw.decrypt_in_place_detached((&nonce).into(), b"", &mut buf, (&tag).into())
                .unwrap();
            black_box(buf);
        };
        let plenum_seal_once = || {
            black_box(fk.seal_bytes(record, black_box(&plaintext)).unwrap());
        };
        let plenum_open_once = || {
            black_box(fk.open_bytes(record, black_box(sealed.as_bytes())).unwrap());
        };
        type Step<'a> = &'a dyn Fn();
        let pairs: [(&str, Step<'_>, Step<'_>); 2] = [
            ("seal", &raw_seal_once, &plenum_seal_once),
            ("open", &raw_open_once, &plenum_open_once),
        ];
        for (op, baseline, ours) in pairs {
            g.bench_function(format!("{op}-{size}/hand-written/rustcrypto"), |b| {
                b.iter_custom(|iters| {
                    let mut timed = D::ZERO;
                    for _ in 0..iters {
                        ours();
                        let start = Instant::now();
                        baseline();
                        timed += start.elapsed();
                    }
                    timed
                });
            });
            g.bench_function(format!("{op}-{size}/plenum/rustcrypto"), |b| {
                b.iter_custom(|iters| {
                    let mut timed = D::ZERO;
                    for _ in 0..iters {
                        baseline();
                        let start = Instant::now();
                        ours();
                        timed += start.elapsed();
                    }
                    timed
                });
            });
        }
    }
    g.finish();
}

fn blind_index(c: &mut Criterion) {
    let rt = runtime();
    let store = Arc::new(MemoryKeyStore::new());
    let loc = locator();
    let email = "Ada.Lovelace@Example.com";
    let normalised = "ada.lovelace@example.com";
    let mut g = c.benchmark_group("blind-index");
    let raw = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&[9u8; 32]).unwrap();
    g.bench_function("raw-hmac-sha256", |b| {
        b.iter(|| {
            let mut m = raw.clone();
            m.update(black_box(normalised.as_bytes()));
            m.finalize().into_bytes()
        });
    });
    // Each backend's own primitive, so each backend is held to its own floor: AWS-LC's HMAC
    // copies a prepared context per message through FFI, which costs more than RustCrypto's
    // clone at these sizes whoever calls it.
    let lc = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &[9u8; 32]);
    g.bench_function("raw-aws-lc-hmac-sha256", |b| {
        b.iter(|| aws_lc_rs::hmac::sign(&lc, black_box(normalised.as_bytes())));
    });
    for backend in Backend::all() {
        let ring = keyring_on(*backend, store.clone());
        let indexer = rt
            .block_on(ring.blind_indexer(
                loc.tenant,
                &loc.record_type,
                &loc.field,
                Normaliser::Email,
            ))
            .unwrap();
        g.bench_function(format!("plenum-{backend:?}/normalised"), |b| {
            b.iter(|| indexer.compute_normalised(black_box(normalised.as_bytes())));
        });
        g.bench_function(format!("plenum-{backend:?}/with-normalisation"), |b| {
            b.iter(|| indexer.compute(black_box(email)).unwrap());
        });
    }
    g.finish();
}

fn cold_path(c: &mut Criterion) {
    let rt = runtime();
    let store = Arc::new(MemoryKeyStore::new());
    let loc = locator();
    let record = RecordId::generate();
    let value = Pii::new("ada@example.com".to_owned());
    // Keys exist in the store; each iteration starts with an empty cache, so it unwraps the tenant
    // key (root provider), unwraps the subject key, derives the field key, prepares it and seals.
    rt.block_on(keyring_on(Backend::default(), store.clone()).seal(&loc, record, &value))
        .unwrap();
    let mut g = c.benchmark_group("cold");
    g.bench_function("raw-aes-gcm-key-setup+seal", |b| {
        b.iter(|| {
            let cipher = aes_gcm::Aes256Gcm::new_from_slice(black_box(&[7u8; 32])).unwrap();
            raw_seal(&cipher, &[1u8; 12], value.expose().as_bytes())
        });
    });
    // The floor: the same chain of raw primitives the key hierarchy needs for a first seal,
    // with nothing cached and nothing looked up: open the tenant's wrapped subject-wrap key
    // under the (prepared) root key, derive the subject wrapper (HKDF), set it up, open the
    // subject key, derive the field key (HKDF), set it up, seal.
    let root = aes_gcm::Aes256Gcm::new_from_slice(&[0x42u8; 32]).unwrap();
    let wrap = |cipher: &aes_gcm::Aes256Gcm, key: &[u8; 32]| {
        cipher
            .encrypt(
                &[3u8; 12].into(),
                aes_gcm::aead::Payload {
                    msg: key,
                    aad: b"context",
                },
            )
            .unwrap()
    };
    let derive = |ikm: &[u8], info: &[u8]| {
        let mut out = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(Some(b"plenum/v1"), ikm)
            .expand(info, &mut out)
            .unwrap();
        out
    };
    let wrapped_tenant = wrap(&root, &[5u8; 32]);
    let wrapper = aes_gcm::Aes256Gcm::new_from_slice(&derive(&[5u8; 32], b"subject-wrap")).unwrap();
    let wrapped_subject = wrap(&wrapper, &[6u8; 32]);
    g.bench_function("floor-raw-chain", |b| {
        b.iter(|| {
            let open = |cipher: &aes_gcm::Aes256Gcm, wrapped: &[u8]| {
                let payload = aes_gcm::aead::Payload {
                    msg: wrapped,
                    aad: b"context",
                };
                cipher.decrypt(&[3u8; 12].into(), payload).unwrap()
            };
            let tenant_key = open(&root, black_box(&wrapped_tenant));
            let wrapper =
                aes_gcm::Aes256Gcm::new_from_slice(&derive(&tenant_key, b"subject-wrap")).unwrap();
            let subject_key = open(&wrapper, black_box(&wrapped_subject));
            let field = derive(&subject_key, b"field-key-info/customer/email");
            let cipher = aes_gcm::Aes256Gcm::new_from_slice(&field).unwrap();
            raw_seal(&cipher, &[1u8; 12], value.expose().as_bytes())
        });
    });
    // The cold path as a running process meets it: one long-lived keyring whose caches hold 1,000
    // scopes and 1,000 field keys, sealing for 4,000 tenants in turn (a subject each, keys in the
    // store), so every seal misses at every level (both scopes and the field key) and evicts as
    // much as it adds, like the first request of a tenant not seen for a while.
    let tenants: Vec<FieldLocator> = (0..4_000)
        .map(|_| FieldLocator {
            tenant: TenantId::generate(),
            ..locator()
        })
        .collect();
    let small = {
        let root = SecretBox::new(Box::new([0x42u8; 32]));
        Keyring::new(
            Arc::new(LocalKeyProvider::new(Backend::default(), 1, &root).unwrap()),
            store.clone(),
            KeyringConfig::with_backend(Backend::default()).with_cache_capacity(1_000, 1_000),
        )
    };
    rt.block_on(async {
        for loc in &tenants {
            small.seal(loc, record, &value).await.unwrap();
        }
    });
    let mut turn = 0usize;
    g.bench_function("plenum-unwrap-derive-seal", |b| {
        b.iter(|| {
            turn = (turn + 1) % tenants.len();
            rt.block_on(small.seal(&tenants[turn], record, &value))
                .unwrap()
        });
    });
    g.bench_function("plenum-fresh-keyring", |b| {
        // A keyring built untimed, its first seal timed, the keyring dropped untimed: the first
        // seal of a process, every cache empty and every map growing from nothing. (Not
        // `iter_batched`: it keeps a batch's keyrings alive until the batch ends, so each timed
        // seal grew the heap into fresh pages, a page fault a process with a warm heap does not
        // take: ~5 % of the samples under the timed seal.)
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let ring = keyring_on(Backend::default(), store.clone());
                let start = std::time::Instant::now();
                let sealed = rt.block_on(ring.seal(&loc, record, &value)).unwrap();
                timed += start.elapsed();
                drop(black_box((ring, sealed)));
            }
            timed
        });
    });
    let warm = keyring_on(Backend::default(), store.clone());
    g.bench_function("plenum-keyring-seal-warm", |b| {
        b.iter(|| rt.block_on(warm.seal(&loc, record, &value)).unwrap());
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40)
}

criterion_group! { name = benches; config = config(); targets = seal_open, paired_targets, blind_index, cold_path }
criterion_main!(benches);
