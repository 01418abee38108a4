//! Known-answer vectors for envelope format v1, blind indexes and key wrapping
//! (`tests/data/vectors-v1.json`, specified by `docs/envelope-format.md`).
//!
//! The file is frozen: these tests reproduce every envelope byte for byte with every compiled
//! backend, and open it again. `PLENUM_WRITE_VECTORS=1 cargo test -p plenum-crypto --test vectors`
//! wrote it once, from the fixed inputs below; it must never be regenerated for format v1.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failed test, and helpers outside #[test] fns panic too"
)]

use plenum_core::{FieldName, RecordId, RecordType, SubjectId, TenantId};
use plenum_crypto::internal;
use plenum_crypto::{Backend, FieldLocator, KeyRef, KeyScope, Normaliser, Owner};
use serde_json::{Value, json};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/vectors-v1.json");

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}
fn h32(s: &str) -> [u8; 32] {
    h(s).try_into().unwrap()
}
fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("missing {k}"))
}

fn locator(v: &Value) -> FieldLocator {
    FieldLocator {
        tenant: s(v, "tenant").parse::<TenantId>().unwrap(),
        record_type: RecordType::new(s(v, "record_type")).unwrap(),
        field: FieldName::new(s(v, "field")).unwrap(),
        owner: match v["subject"].as_str() {
            Some(subject) => Owner::Subject(subject.parse::<SubjectId>().unwrap()),
            None => Owner::Tenant,
        },
    }
}

#[test]
fn envelope_vectors_reproduce_and_open() {
    let file: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    let vectors = file["envelope"].as_array().unwrap();
    assert!(vectors.len() >= 6);
    for backend in Backend::all() {
        for v in vectors {
            let loc = locator(v);
            let record: RecordId = s(v, "record").parse().unwrap();
            let key_version = u32::try_from(v["key_version"].as_u64().unwrap()).unwrap();
            let sealed = internal::seal_vector(
                *backend,
                h32(s(v, "scope_key")),
                key_version,
                &loc,
                record,
                h(s(v, "nonce")).try_into().unwrap(),
                &h(s(v, "plaintext")),
            )
            .unwrap();
            let name = s(v, "name");
            assert_eq!(
                hex::encode(sealed.field_key),
                s(v, "field_key"),
                "{name} field key"
            );
            assert_eq!(hex::encode(&sealed.aad), s(v, "aad"), "{name} aad");
            assert_eq!(
                hex::encode(&sealed.envelope),
                s(v, "envelope"),
                "{name} envelope"
            );
            let opened = internal::open_vector(
                *backend,
                h32(s(v, "scope_key")),
                &loc,
                record,
                &h(s(v, "envelope")),
            )
            .unwrap();
            assert_eq!(opened.expose(), &h(s(v, "plaintext")), "{name} open");
        }
    }
}

#[test]
fn invalid_envelope_vectors_are_rejected_as_specified() {
    let file: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    let base = &file["envelope"][0];
    for v in file["invalid"].as_array().unwrap() {
        for backend in Backend::all() {
            let err = internal::open_vector(
                *backend,
                h32(s(base, "scope_key")),
                &locator(base),
                s(base, "record").parse().unwrap(),
                &h(s(v, "envelope")),
            )
            .unwrap_err();
            let expected = s(v, "error");
            let got = match err {
                plenum_crypto::Error::Malformed(m) => format!("malformed: {m}"),
                other => other.to_string(),
            };
            assert_eq!(got, expected, "{}", s(v, "name"));
        }
    }
}

#[test]
fn blind_index_vectors_reproduce() {
    let file: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    for backend in Backend::all() {
        for v in file["blind_index"].as_array().unwrap() {
            let key = KeyRef {
                tenant: s(v, "tenant").parse().unwrap(),
                scope: KeyScope::TenantIndex,
                version: u32::try_from(v["key_version"].as_u64().unwrap()).unwrap(),
            };
            let normaliser = Normaliser::from_id(s(v, "normaliser")).unwrap();
            assert_eq!(
                *normaliser.normalise(s(v, "value")).unwrap(),
                s(v, "normalised")
            );
            let (index, derived) = internal::blind_index_vector(
                *backend,
                h32(s(v, "index_key")),
                key,
                &RecordType::new(s(v, "record_type")).unwrap(),
                &FieldName::new(s(v, "field")).unwrap(),
                normaliser,
                s(v, "value"),
            )
            .unwrap();
            assert_eq!(
                hex::encode(derived),
                s(v, "derived_key"),
                "{}",
                s(v, "name")
            );
            assert_eq!(index.to_hex(), s(v, "blind_index"), "{}", s(v, "name"));
        }
    }
}

#[test]
fn key_wrap_vectors_unwrap() {
    let file: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    for backend in Backend::all() {
        for v in file["key_wrap"].as_array().unwrap() {
            let wrapping_key = match v["tenant_data_key"].as_str() {
                // A subject key is wrapped under a key derived from the tenant data key.
                Some(tdk) => {
                    let derived = internal::subject_wrap_key(
                        h32(tdk),
                        s(v, "tenant").parse().unwrap(),
                        u32::try_from(v["wrapping_version"].as_u64().unwrap()).unwrap(),
                    )
                    .unwrap();
                    assert_eq!(hex::encode(derived), s(v, "wrapping_key"));
                    derived
                }
                None => h32(s(v, "wrapping_key")),
            };
            let key = internal::unwrap(
                *backend,
                wrapping_key,
                &h(s(v, "wrapped")),
                &h(s(v, "context")),
            )
            .unwrap();
            assert_eq!(hex::encode(key), s(v, "key"), "{}", s(v, "name"));
        }
    }
}

/// Writes the vector file from fixed inputs. Runs only with `PLENUM_WRITE_VECTORS=1`.
#[test]
fn write_vectors_when_asked() {
    if std::env::var("PLENUM_WRITE_VECTORS").as_deref() != Ok("1") {
        return;
    }
    let tenant = "0192f0c4-5a3e-7b21-9c4d-3e2f1a0b9c8d";
    let tenant_b = "0192f0c4-5a3e-7b21-9c4d-3e2f1a0b9cbb";
    let subject = "0192f0c4-6000-7000-8000-00000000a11c";
    let record = "0192f0c4-7000-7000-8000-0000000000e1";
    let key_a = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    let key_b = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";
    let amount = 12_345u64.to_be_bytes();
    // (name, tenant, subject, record type, field, key version, scope key, plaintext, nonce)
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        &'a str,
        &'a str,
        u32,
        &'a str,
        &'a [u8],
        &'a str,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "subject email",
            tenant,
            Some(subject),
            "customer",
            "email",
            1,
            key_a,
            b"ada@example.com",
            "a1a2a3a4a5a6a7a8a9aaabac",
        ),
        (
            "subject phone, key v7",
            tenant,
            Some(subject),
            "customer",
            "phone",
            7,
            key_a,
            b"+15550107391",
            "000000000000000000000001",
        ),
        (
            "tenant-owned invoice amount",
            tenant,
            None,
            "invoice",
            "amount_cents",
            2,
            key_b,
            &amount,
            "ffffffffffffffffffffffff",
        ),
        (
            "empty plaintext",
            tenant,
            Some(subject),
            "customer",
            "notes",
            1,
            key_a,
            b"",
            "0c0c0c0c0c0c0c0c0c0c0c0c",
        ),
        (
            "unicode name",
            tenant_b,
            Some(subject),
            "customer",
            "name",
            1,
            key_b,
            "Zoë Ó Briain 山田".as_bytes(),
            "1234567890abcdef12345678",
        ),
        (
            "256-byte notes",
            tenant,
            Some(subject),
            "appointment",
            "notes",
            3,
            key_a,
            &[0x41u8; 256],
            "0f1e2d3c4b5a69788796a5b4",
        ),
    ];
    let mut envelopes = Vec::new();
    for (name, t, subj, rt, field, version, key, plaintext, nonce) in cases {
        let v = json!({
            "name": name, "tenant": t, "subject": subj, "record_type": rt, "field": field,
            "record": record, "scope": if subj.is_some() { "subject" } else { "tenant_data" },
            "key_version": version, "scope_key": key, "nonce": nonce, "plaintext": hex::encode(plaintext),
        });
        let sealed = internal::seal_vector(
            Backend::RustCrypto,
            h32(key),
            version,
            &locator(&v),
            record.parse().unwrap(),
            h(nonce).try_into().unwrap(),
            plaintext,
        )
        .unwrap();
        let mut v = v;
        v["field_key"] = json!(hex::encode(sealed.field_key));
        v["aad"] = json!(hex::encode(&sealed.aad));
        v["envelope"] = json!(hex::encode(&sealed.envelope));
        envelopes.push(v);
    }
    let good = h(envelopes[0]["envelope"].as_str().unwrap());
    let mut invalid = Vec::new();
    let mut push = |name: &str, bytes: Vec<u8>, error: &str| {
        invalid.push(json!({"name": name, "envelope": hex::encode(bytes), "error": error}));
    };
    push("empty", vec![], "malformed: too short");
    push("header only", good[..19].to_vec(), "malformed: too short");
    let mut b = good.clone();
    b[0] = 0x02;
    push("unknown version", b, "malformed: unknown format version");
    let mut b = good.clone();
    b[1] = 0x7f;
    push("unknown suite", b, "malformed: unknown algorithm suite");
    let mut b = good.clone();
    b[2] = 0x02;
    push(
        "index scope in an envelope",
        b,
        "malformed: unknown key scope",
    );
    let mut b = good.clone();
    b[3..7].copy_from_slice(&[0, 0, 0, 0]);
    push("key version 0", b, "malformed: key version 0");
    let mut b = good.clone();
    b[2] = 0x01;
    push(
        "tenant scope for a subject field",
        b,
        "malformed: key scope does not match the field's owner",
    );
    let mut b = good.clone();
    let n = b.len();
    b[n - 1] ^= 1;
    push("flipped tag bit", b, "decryption failed");
    let mut b = good.clone();
    b[20] ^= 0x80;
    push("flipped ciphertext bit", b, "decryption failed");
    let mut b = good.clone();
    b.push(0);
    push("trailing byte", b, "decryption failed");

    let mut blind = Vec::new();
    for (name, t, field, norm, value, version) in [
        (
            "email",
            tenant,
            "email",
            Normaliser::Email,
            "  Ada.Lovelace@Example.COM ",
            1u32,
        ),
        (
            "same email, other tenant",
            tenant_b,
            "email",
            Normaliser::Email,
            "ada.lovelace@example.com",
            1,
        ),
        (
            "phone, national format",
            tenant,
            "phone",
            Normaliser::PhoneE164,
            "(555) 010-7391",
            2,
        ),
        (
            "free text",
            tenant,
            "name",
            Normaliser::Text,
            " ＡＤＡ Lovelace ",
            1,
        ),
    ] {
        let key = KeyRef {
            tenant: t.parse().unwrap(),
            scope: KeyScope::TenantIndex,
            version,
        };
        let rt = RecordType::new("customer").unwrap();
        let (index, derived) = internal::blind_index_vector(
            Backend::RustCrypto,
            h32(key_b),
            key,
            &rt,
            &FieldName::new(field).unwrap(),
            norm,
            value,
        )
        .unwrap();
        blind.push(json!({
            "name": name, "tenant": t, "record_type": "customer", "field": field,
            "normaliser": norm.id(), "key_version": version, "index_key": key_b, "value": value,
            "normalised": *norm.normalise(value).unwrap(), "derived_key": hex::encode(derived),
            "blind_index": index.to_hex(),
        }));
    }

    let mut wraps = Vec::new();
    let tenant_key = KeyRef {
        tenant: tenant.parse().unwrap(),
        scope: KeyScope::TenantData,
        version: 1,
    };
    let ctx = internal::wrap_context(&tenant_key);
    let wrapped = internal::wrap(Backend::RustCrypto, h32(key_b), 3, h32(key_a), &ctx).unwrap();
    wraps.push(json!({
        "name": "tenant data key v1 under root key v3", "tenant": tenant, "scope": "tenant_data",
        "subject": null, "key_version": 1, "wrapping_version": 3, "wrapping_key": key_b,
        "tenant_data_key": null, "context": hex::encode(&ctx), "key": key_a, "wrapped": hex::encode(wrapped),
    }));
    let subject_key = KeyRef {
        tenant: tenant.parse().unwrap(),
        scope: KeyScope::Subject(subject.parse().unwrap()),
        version: 1,
    };
    let ctx = internal::wrap_context(&subject_key);
    let wk = internal::subject_wrap_key(h32(key_a), tenant.parse().unwrap(), 1).unwrap();
    let subject_material = "c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ff";
    let wrapped = internal::wrap(Backend::RustCrypto, wk, 1, h32(subject_material), &ctx).unwrap();
    wraps.push(json!({
        "name": "subject key v1 under tenant data key v1", "tenant": tenant, "scope": "subject",
        "subject": subject, "key_version": 1, "wrapping_version": 1, "wrapping_key": hex::encode(wk),
        "tenant_data_key": key_a, "context": hex::encode(&ctx), "key": subject_material,
        "wrapped": hex::encode(wrapped),
    }));

    let file = json!({
        "format": "plenum envelope v1",
        "spec": "docs/envelope-format.md",
        "note": "Frozen. Generated once by crates/plenum-crypto/tests/vectors.rs; verified in CI by Rust (every backend) and by .ci/interop/envelope_vectors.py.",
        "envelope": envelopes, "invalid": invalid, "blind_index": blind, "key_wrap": wraps,
    });
    std::fs::write(PATH, serde_json::to_string_pretty(&file).unwrap() + "\n").unwrap();
}
