//! The published audit-format vectors (`tests/data/audit-vectors-v1.json`, documented in
//! `docs/audit-format.md`) are what this code produces. Regenerate deliberately with
//! `PLENUM_WRITE_VECTORS=1 cargo test -p plenum-audit --test vectors` and review the diff: a
//! change here is a format change.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test fixtures: a failed set-up is a failed test"
)]

use chrono::{TimeZone as _, Utc};
use plenum_audit::checkpoint::{self, Checkpoint, CheckpointSigner};
use plenum_audit::merkle::{self, Frontier, leaf_hash};
use plenum_audit::verify::{self, EXPORT_FORMAT};
use plenum_audit::{Entry, Event, Export, Outcome, canonical};
use plenum_core::{Actor, ActorId, ActorKind, RecordId, RequestId, TenantId, role};
use plenum_crypto::secrecy::SecretBox;
use plenum_crypto::signing::SigningKey;
use serde_json::{Value, json};
use uuid::Uuid;

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/audit-vectors-v1.json"
);

fn id(n: u8) -> Uuid {
    // Fixed UUIDv7-shaped ids: version 7, RFC 4122 variant.
    let mut b = [n; 16];
    b[6] = 0x70 | (n & 0x0f);
    b[8] = 0x80 | (n & 0x3f);
    Uuid::from_bytes(b)
}

fn tenant() -> TenantId {
    id(0x11).to_string().parse().unwrap()
}

fn events() -> Vec<Event> {
    let actor = Actor::new(
        ActorKind::AccountUser,
        id(0x22).to_string().parse::<ActorId>().unwrap(),
    )
    .with_role(role!("dispatcher"));
    let kinds = [
        "insert",
        "read",
        "list",
        "consent.given",
        "read",
        "erase",
        "count",
    ];
    kinds
        .iter()
        .enumerate()
        .map(|(i, action)| {
            let n = u8::try_from(i).unwrap();
            let mut e = Event::new(tenant(), actor.clone(), *action);
            e.id = id(0x30 + n);
            e.at = Utc
                .with_ymd_and_hms(2026, 11, 27, 9, 30, u32::from(n))
                .unwrap()
                + chrono::Duration::milliseconds(i64::from(n) * 7);
            e.salt = [n; 16];
            e.service = "vectors".to_owned();
            e.request = Some(id(0x40 + n).to_string().parse::<RequestId>().unwrap());
            e.record_type = Some("customers".to_owned());
            e.records = vec![id(0x50 + n).to_string().parse::<RecordId>().unwrap()];
            e.fields = vec![
                ("email".to_owned(), "user.contact.email".to_owned()),
                ("name".to_owned(), "user.name".to_owned()),
            ];
            e.subjects = vec![[0xa0 + n; 16]];
            e.purpose = Some(("service.scheduling".to_owned(), 1));
            e.legal_basis = Some("contract".to_owned());
            e.policy = Some("plenum-default-1".to_owned());
            e.rows = 1;
            if *action == "read" && i == 4 {
                e.outcome = Outcome::Denied("consent_missing".to_owned());
                e.rows = 0;
                e.purpose = Some(("marketing.email".to_owned(), 1));
                e.legal_basis = Some("consent".to_owned());
            }
            if *action == "erase" {
                e.subjects_unlinked = 0;
                e.unrestricted = Some("dsr 2026-118".to_owned());
                e.purpose = None;
                e.legal_basis = None;
                e.policy = None;
            }
            e
        })
        .collect()
}

fn signer() -> CheckpointSigner {
    let seed = SecretBox::new(Box::new([0x5e; 32]));
    CheckpointSigner::new("plenum.audit.vectors", SigningKey::from_seed(&seed)).unwrap()
}

/// A one-event export whose event is dated `millis` after its checkpoint's time: rule 5 of
/// the format accepts 300,000 ms and refuses 300,001.
fn skew_export(millis: i64) -> Export {
    let mut event = events().remove(0);
    let time = 1_795_772_000_i64;
    event.at = chrono::DateTime::from_timestamp_millis(time * 1000 + millis).unwrap();
    let body = event.canonical().unwrap();
    let leaf = leaf_hash(body.as_bytes());
    Export {
        format: EXPORT_FORMAT.to_owned(),
        tenant: tenant(),
        entries: vec![Entry {
            seq: 0,
            leaf_hash: hex::encode(leaf),
            body: Some(body),
        }],
        checkpoints: vec![signer().sign(&Checkpoint {
            tenant: tenant(),
            size: 1,
            root: merkle::root(&[leaf]),
            time,
        })],
    }
}

/// `note` with a second line from the same trusted key whose signature has one bit flipped:
/// refused whatever the good line says.
fn with_bad_trusted_line(note: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let good = note.lines().last().unwrap();
    let (head, blob) = good.rsplit_once(' ').unwrap();
    let mut bytes = b64.decode(blob).unwrap();
    bytes[40] ^= 0x01;
    format!("{note}{head} {}\n", b64.encode(&bytes))
}

/// Verifier-key texts an implementation must accept and refuse (`docs/audit-format.md`,
/// "verifier key").
fn verifier_key_cases() -> Value {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let good = signer().verifier().to_string();
    let (name, rest) = good.split_once('+').unwrap();
    let (id, key) = rest.split_once('+').unwrap();
    let raw = b64.decode(key).unwrap();
    json!({
        "valid": [good.clone(), format!("  {good}\n")],
        "invalid": [
            format!("{name}+{}+{key}", id.to_uppercase()),
            format!("{name}+{key}"),
            format!("bad name+{id}+{key}"),
            format!("{name}+00000000+{key}"),
            format!("{name}+{id}+{}", b64.encode(&raw[1..])),
            format!("{name}+{id}+!!!!"),
            format!("+{id}+{key}"),
        ],
    })
}

/// Consistency proofs at the edges: equal sizes (empty path, equal roots) and an old size of 0
/// (refused).
fn consistency_edges(notes: &[String]) -> Value {
    let signer = signer();
    let empty = signer.sign(&Checkpoint {
        tenant: tenant(),
        size: 0,
        root: merkle::root(&[]),
        time: 1_795_771_999,
    });
    json!([
        {"name": "equal sizes, empty path", "old": notes[0], "new": notes[0], "path": [], "valid": true},
        {"name": "equal sizes, a path", "old": notes[0], "new": notes[0],
         "path": [hex::encode([7u8; 32])], "valid": false},
        {"name": "old size 0", "old": empty, "new": notes[1], "path": [], "valid": false},
    ])
}

fn generate() -> Value {
    let events = events();
    let bodies: Vec<String> = events.iter().map(|e| e.canonical().unwrap()).collect();
    let leaves: Vec<[u8; 32]> = bodies.iter().map(|b| leaf_hash(b.as_bytes())).collect();
    let signer = signer();
    let t = tenant();
    let mut frontier = Frontier::new();
    let mut roots = vec![json!({"size": 0, "root": hex::encode(merkle::root(&[]))})];
    let mut notes = Vec::new();
    for (i, leaf) in leaves.iter().enumerate() {
        frontier.push(*leaf);
        roots.push(json!({"size": i + 1, "root": hex::encode(frontier.root())}));
        if i == 2 || i + 1 == leaves.len() {
            notes.push(signer.sign(&Checkpoint {
                tenant: t,
                size: frontier.size(),
                root: frontier.root(),
                time: 1_795_772_000 + i64::try_from(i).unwrap(),
            }));
        }
    }
    let export = Export {
        format: EXPORT_FORMAT.to_owned(),
        tenant: t,
        entries: bodies
            .iter()
            .zip(&leaves)
            .enumerate()
            .map(|(i, (b, l))| Entry {
                seq: i as u64,
                leaf_hash: hex::encode(l),
                body: Some(b.clone()),
            })
            .collect(),
        checkpoints: notes.clone(),
    };
    let trusted = [signer.verifier()];
    let inclusion = verify::prove_inclusion(&export, 4, 1, &trusted).unwrap();
    let consistency = verify::prove_consistency(&export, 0, 1, &trusted).unwrap();
    let canonical_cases: Vec<Value> = [
        json!({"b": 1, "a": [true, null, -3], "A": "x"}),
        json!(
            "quote \" backslash \\ newline \n tab \t bell \u{07} e-acute \u{e9} line-sep \u{2028}"
        ),
        json!({"nested": {"z": {}, "y": []}}),
        json!(9_007_199_254_740_991u64),
    ]
    .into_iter()
    .map(|v| json!({"value": v, "canonical": canonical::to_string(&v).unwrap()}))
    .collect();
    let mut retained = export.clone();
    for e in retained.entries.iter_mut().take(3) {
        e.body = None;
    }
    json!({
        "format": "plenum-audit-vectors-1",
        "tenant": t.to_string(),
        "canonical": canonical_cases,
        "events": events.iter().zip(&bodies).zip(&leaves).map(|((e, b), l)| json!({
            "event": e.to_value(),
            "canonical": b,
            "leaf_hash": hex::encode(l),
        })).collect::<Vec<_>>(),
        "roots": roots,
        "key": {
            "seed": hex::encode([0x5e; 32]),
            "verifier": signer.verifier().to_string(),
        },
        "checkpoints": notes,
        "inclusion": inclusion,
        "consistency": consistency,
        "export": export,
        "export_after_retention": retained,
        "skew": {
            "accepted": skew_export(300_000),
            "refused": skew_export(300_001),
        },
        "bad_trusted_signature": with_bad_trusted_line(&notes[0]),
        "verifier_keys": verifier_key_cases(),
        "consistency_edges": consistency_edges(&notes),
    })
}

#[test]
fn vectors_are_what_the_code_produces() {
    let generated = generate();
    if std::env::var_os("PLENUM_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
        std::fs::write(PATH, text).unwrap();
    }
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    assert_eq!(
        stored, generated,
        "regenerate with PLENUM_WRITE_VECTORS=1 and review"
    );
}

#[test]
fn the_vector_log_verifies_and_its_proofs_hold() {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    let key = plenum_audit::VerifierKey::parse(v["key"]["verifier"].as_str().unwrap()).unwrap();
    let trusted = [key];
    for name in ["export", "export_after_retention"] {
        let export: Export = serde_json::from_value(v[name].clone()).unwrap();
        let report = verify::verify_log(&export, &trusted).unwrap();
        assert_eq!(report.covered, 7, "{name}");
    }
    let inclusion: verify::InclusionProof = serde_json::from_value(v["inclusion"].clone()).unwrap();
    let body = v["events"][4]["canonical"].as_str();
    assert_eq!(
        verify::verify_inclusion(&inclusion, body, &trusted)
            .unwrap()
            .size,
        7
    );
    let consistency: verify::ConsistencyProof =
        serde_json::from_value(v["consistency"].clone()).unwrap();
    let (old, new) = verify::verify_consistency(&consistency, &trusted).unwrap();
    assert_eq!((old.size, new.size), (3, 7));
    let note = v["checkpoints"][0].as_str().unwrap();
    assert_eq!(checkpoint::open(note, &trusted).unwrap().size, 3);
    let accepted: Export = serde_json::from_value(v["skew"]["accepted"].clone()).unwrap();
    verify::verify_log(&accepted, &trusted).unwrap();
    let refused: Export = serde_json::from_value(v["skew"]["refused"].clone()).unwrap();
    assert!(matches!(
        verify::verify_log(&refused, &trusted),
        Err(plenum_audit::Error::Verification {
            problem: plenum_audit::Problem::Time,
            ..
        })
    ));
    for good in v["verifier_keys"]["valid"].as_array().unwrap() {
        plenum_audit::VerifierKey::parse(good.as_str().unwrap()).unwrap();
    }
    for bad in v["verifier_keys"]["invalid"].as_array().unwrap() {
        assert!(
            plenum_audit::VerifierKey::parse(bad.as_str().unwrap()).is_err(),
            "{bad}"
        );
    }
    for edge in v["consistency_edges"].as_array().unwrap() {
        let proof: verify::ConsistencyProof = serde_json::from_value(json!({
            "old": edge["old"], "new": edge["new"], "path": edge["path"],
        }))
        .unwrap();
        assert_eq!(
            verify::verify_consistency(&proof, &trusted).is_ok(),
            edge["valid"].as_bool().unwrap(),
            "{}",
            edge["name"]
        );
    }
    let bad = v["bad_trusted_signature"].as_str().unwrap();
    assert_eq!(
        checkpoint::open(bad, &trusted),
        Err(plenum_audit::Error::BadSignature)
    );
}
