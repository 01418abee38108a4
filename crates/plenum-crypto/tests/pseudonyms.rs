//! Known-answer vectors for the audit pseudonym (`tests/data/pseudonym-vectors-v1.json`,
//! specified in `docs/envelope-format.md`, "audit pseudonym", and used by
//! `docs/audit-format.md`): what an independent implementation must compute from a subject key
//! to find a subject's events. Written once from the fixed inputs below with
//! `PLENUM_WRITE_VECTORS=1 cargo test -p plenum-crypto --test pseudonyms` (the keyring derives
//! its pseudonyms with the same `pseudonym_info` and HKDF as `internal::pseudonym_vector`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic is a failed test"
)]

use plenum_core::{SubjectId, TenantId};
use plenum_crypto::internal;
use plenum_crypto::{KeyRef, KeyScope};
use serde_json::{Value, json};

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/pseudonym-vectors-v1.json"
);

/// (name, tenant, subject, key version, subject key)
const CASES: [(&str, &str, &str, u32, &str); 3] = [
    (
        "subject key v1",
        "0192f0c4-5a3e-7b21-9c4d-3e2f1a0b9c8d",
        "0192f0c4-6000-7000-8000-00000000a11c",
        1,
        "c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ff",
    ),
    (
        "same key material, version 2",
        "0192f0c4-5a3e-7b21-9c4d-3e2f1a0b9c8d",
        "0192f0c4-6000-7000-8000-00000000a11c",
        2,
        "c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ff",
    ),
    (
        "another tenant and subject",
        "0192f0c4-5a3e-7b21-9c4d-3e2f1a0b9cbb",
        "0192f0c4-6000-7000-8000-00000000b0b0",
        1,
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    ),
];

fn generate() -> Value {
    let cases: Vec<Value> = CASES
        .iter()
        .map(|(name, tenant, subject, version, key)| {
            let key_ref = KeyRef {
                tenant: tenant.parse::<TenantId>().unwrap(),
                scope: KeyScope::Subject(subject.parse::<SubjectId>().unwrap()),
                version: *version,
            };
            let bytes: [u8; 32] = hex::decode(key).unwrap().try_into().unwrap();
            let pseudonym = internal::pseudonym_vector(bytes, &key_ref).unwrap();
            json!({
                "name": name, "tenant": tenant, "subject": subject, "key_version": version,
                "subject_key": key, "pseudonym": hex::encode(pseudonym),
            })
        })
        .collect();
    json!({
        "format": "plenum audit pseudonym v1",
        "spec": "docs/envelope-format.md (audit pseudonym); docs/audit-format.md (Pseudonyms)",
        "pseudonym": cases,
    })
}

#[test]
fn pseudonym_vectors_are_what_the_code_derives() {
    let generated = generate();
    if std::env::var("PLENUM_WRITE_VECTORS").as_deref() == Ok("1") {
        std::fs::write(
            PATH,
            serde_json::to_string_pretty(&generated).unwrap() + "\n",
        )
        .unwrap();
    }
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    assert_eq!(
        stored, generated,
        "regenerate with PLENUM_WRITE_VECTORS=1 and review"
    );
    let all: Vec<&str> = stored["pseudonym"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["pseudonym"].as_str().unwrap())
        .collect();
    // A new version or another subject gives another pseudonym.
    assert_eq!(all.len(), 3);
    assert!(all[0] != all[1] && all[0] != all[2] && all[1] != all[2]);
}
