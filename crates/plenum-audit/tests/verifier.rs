//! The verifier against every single-entry tampering the audit issue lists: modify, delete,
//! reorder, insert, truncate; body deletion after retention; inclusion and consistency proofs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test fixtures: a failed set-up is a failed test"
)]

use plenum_audit::checkpoint::{Checkpoint, CheckpointSigner};
use plenum_audit::merkle::{Frontier, leaf_hash};
use plenum_audit::verify::{self, EXPORT_FORMAT};
use plenum_audit::{Entry, ErrorKind, Event, Export, Problem, VerifierKey};
use plenum_core::{Actor, ActorId, ActorKind, RecordId, TenantId};
use plenum_crypto::signing::SigningKey;

struct Log {
    export: Export,
    trusted: Vec<VerifierKey>,
}

/// A log of `n` events with a checkpoint after every `every` events and one at the end.
fn log(n: u64, every: u64) -> Log {
    log_with(n, every, false)
}

/// [`log`], with the first event naming another tenant when `foreign` is set.
fn log_with(n: u64, every: u64, foreign: bool) -> Log {
    let tenant = TenantId::generate();
    let signer = CheckpointSigner::new("plenum.test", SigningKey::generate()).unwrap();
    let actor = Actor::new(ActorKind::Service, ActorId::generate());
    let mut entries = Vec::new();
    let mut checkpoints = Vec::new();
    let mut frontier = Frontier::new();
    let start = chrono::Utc::now().timestamp();
    for seq in 0..n {
        let owner = if foreign && seq == 0 {
            TenantId::generate()
        } else {
            tenant
        };
        let mut e = Event::new(owner, actor.clone(), "read");
        e.records = vec![RecordId::generate()];
        let body = e.canonical().unwrap();
        let leaf = leaf_hash(body.as_bytes());
        frontier.push(leaf);
        entries.push(Entry {
            seq,
            leaf_hash: hex::encode(leaf),
            body: Some(body),
        });
        if (seq + 1) % every == 0 || seq + 1 == n {
            checkpoints.push(signer.sign(&Checkpoint {
                tenant,
                size: frontier.size(),
                root: frontier.root(),
                time: start + i64::try_from(seq).unwrap(),
            }));
        }
    }
    Log {
        export: Export {
            format: EXPORT_FORMAT.to_owned(),
            tenant,
            entries,
            checkpoints,
        },
        trusted: vec![signer.verifier()],
    }
}

fn problem(export: &Export, trusted: &[VerifierKey]) -> Problem {
    match verify::verify_log(export, trusted) {
        Err(plenum_audit::Error::Verification { problem, .. }) => problem,
        other => panic!("expected a verification failure, got {other:?}"),
    }
}

#[test]
fn an_untouched_log_verifies() {
    let l = log(20, 4);
    let report = verify::verify_log(&l.export, &l.trusted).unwrap();
    assert_eq!(
        (report.entries, report.bodies, report.covered),
        (20, 20, 20)
    );
    assert_eq!(report.checkpoints, 5);
}

#[test]
fn modifying_any_single_event_is_detected() {
    let l = log(9, 3);
    for i in 0..9 {
        let mut e = l.export.clone();
        let body = e.entries[i].body.take().unwrap();
        e.entries[i].body = Some(body.replacen(r#""action":"read""#, r#""action":"list""#, 1));
        assert_eq!(problem(&e, &l.trusted), Problem::LeafHash, "entry {i}");
        // Rewriting the leaf hash to match breaks the checkpoint root instead.
        let new_leaf = leaf_hash(e.entries[i].body.as_ref().unwrap().as_bytes());
        e.entries[i].leaf_hash = hex::encode(new_leaf);
        assert_eq!(problem(&e, &l.trusted), Problem::Root, "entry {i}");
    }
}

#[test]
fn deleting_reordering_or_inserting_any_single_event_is_detected() {
    let l = log(9, 3);
    for i in 0..9 {
        let mut deleted = l.export.clone();
        deleted.entries.remove(i);
        assert!(
            verify::verify_log(&deleted, &l.trusted).is_err(),
            "delete {i}"
        );
        // Renumbering after the deletion does not help: the roots no longer match.
        for (seq, entry) in deleted.entries.iter_mut().enumerate() {
            entry.seq = seq as u64;
        }
        let kind = verify::verify_log(&deleted, &l.trusted).unwrap_err().kind();
        assert_eq!(kind, ErrorKind::Tampered, "delete+renumber {i}");
    }
    for i in 0..8 {
        let mut swapped = l.export.clone();
        swapped.entries.swap(i, i + 1);
        assert_eq!(problem(&swapped, &l.trusted), Problem::Sequence, "swap {i}");
        let (a, b) = (swapped.entries[i].seq, swapped.entries[i + 1].seq);
        swapped.entries[i].seq = b;
        swapped.entries[i + 1].seq = a;
        assert_eq!(
            problem(&swapped, &l.trusted),
            Problem::Root,
            "swap+renumber {i}"
        );
    }
    for i in 0..9 {
        let mut inserted = l.export.clone();
        let forged = inserted.entries[i].clone();
        inserted.entries.insert(i, forged);
        for (seq, entry) in inserted.entries.iter_mut().enumerate() {
            entry.seq = seq as u64;
        }
        assert_eq!(
            verify::verify_log(&inserted, &l.trusted)
                .unwrap_err()
                .kind(),
            ErrorKind::Tampered,
            "insert {i}"
        );
    }
}

#[test]
fn truncating_the_tail_is_detected() {
    let l = log(9, 3);
    for keep in 0..9 {
        let mut cut = l.export.clone();
        cut.entries.truncate(keep);
        assert_eq!(problem(&cut, &l.trusted), Problem::Truncated, "keep {keep}");
    }
    // Dropping the checkpoints that show it as well needs the signer's key: an older
    // checkpoint set still covers only what is there, which the report makes visible.
    let mut cut = l.export.clone();
    cut.entries.truncate(6);
    cut.checkpoints.truncate(2);
    let report = verify::verify_log(&cut, &l.trusted).unwrap();
    assert_eq!(report.covered, 6);
}

#[test]
fn unsigned_or_foreign_checkpoints_are_refused() {
    let l = log(6, 3);
    let mut forged = l.export.clone();
    forged.checkpoints[0] = forged.checkpoints[0].replacen("\n3\n", "\n2\n", 1);
    // The trusted key's line no longer verifies over the changed body: refused as a bad
    // signature, not merely as unsigned.
    assert_eq!(
        verify::verify_log(&forged, &l.trusted).unwrap_err(),
        plenum_audit::Error::BadSignature
    );
    // Signed only by a key nobody trusts.
    let stranger = log(6, 3);
    assert_eq!(
        verify::verify_log(&l.export, &stranger.trusted).unwrap_err(),
        plenum_audit::Error::Unsigned
    );
    let other = log(6, 3);
    let mut mixed = l.export.clone();
    mixed.checkpoints.push(other.export.checkpoints[0].clone());
    let trusted = [l.trusted.clone(), other.trusted].concat();
    assert_eq!(problem(&mixed, &trusted), Problem::Origin);
}

#[test]
fn deleted_bodies_keep_the_log_verifiable() {
    let l = log(10, 5);
    let mut expired = l.export.clone();
    for entry in expired.entries.iter_mut().take(6) {
        entry.body = None;
    }
    let report = verify::verify_log(&expired, &l.trusted).unwrap();
    assert_eq!((report.entries, report.bodies), (10, 4));
    // A stub's leaf hash is still bound by the roots.
    expired.entries[0].leaf_hash = hex::encode([0u8; 32]);
    assert_eq!(problem(&expired, &l.trusted), Problem::Root);
}

#[test]
fn inclusion_and_consistency_proofs_verify_and_refuse_tampering() {
    let l = log(13, 5);
    for (i, seq) in (0..13u64).enumerate() {
        let proof = verify::prove_inclusion(&l.export, seq, 2, &l.trusted).unwrap();
        let body = l.export.entries[i].body.as_deref();
        let c = verify::verify_inclusion(&proof, body, &l.trusted).unwrap();
        assert_eq!(c.size, 13);
        let other = l.export.entries[(i + 1) % 13].body.as_deref();
        assert!(verify::verify_inclusion(&proof, other, &l.trusted).is_err());
        let mut bad = proof.clone();
        bad.seq = (seq + 1) % 13;
        assert!(verify::verify_inclusion(&bad, None, &l.trusted).is_err());
    }
    assert!(verify::prove_inclusion(&l.export, 12, 1, &l.trusted).is_err());
    let proof = verify::prove_consistency(&l.export, 0, 2, &l.trusted).unwrap();
    let (o, n) = verify::verify_consistency(&proof, &l.trusted).unwrap();
    assert_eq!((o.size, n.size), (5, 13));
    let mut bad = proof.clone();
    bad.path[0] = hex::encode([1u8; 32]);
    assert!(verify::verify_consistency(&bad, &l.trusted).is_err());
}

#[test]
fn a_log_without_checkpoints_proves_nothing() {
    let mut l = log(4, 2);
    l.export.checkpoints.clear();
    assert_eq!(problem(&l.export, &l.trusted), Problem::NoCheckpoint);
}

#[test]
fn held_checkpoints_catch_a_log_cut_back_with_its_newest_checkpoints() {
    let l = log(9, 3);
    let held = l.export.checkpoints.clone();
    let mut cut = l.export.clone();
    cut.entries.truncate(6);
    cut.checkpoints.truncate(2);
    assert!(
        verify::verify_log(&cut, &l.trusted).is_ok(),
        "alone, it looks older"
    );
    match verify::verify_log_with(&cut, &l.trusted, &held) {
        Err(plenum_audit::Error::Verification { problem, .. }) => {
            assert_eq!(problem, Problem::Truncated);
        }
        other => panic!("expected truncation, got {other:?}"),
    }
    // Rewriting the cut tail's last entry and re-hashing it contradicts a held root too.
    let mut rewritten = l.export.clone();
    let body = rewritten.entries[8]
        .body
        .take()
        .unwrap()
        .replacen("\"read\"", "\"list\"", 1);
    rewritten.entries[8].leaf_hash = hex::encode(leaf_hash(body.as_bytes()));
    rewritten.entries[8].body = Some(body);
    rewritten.checkpoints.truncate(2);
    assert!(verify::verify_log(&rewritten, &l.trusted).is_ok());
    assert!(verify::verify_log_with(&rewritten, &l.trusted, &held).is_err());
    assert!(verify::verify_log_with(&l.export, &l.trusted, &held).is_ok());
}

#[test]
fn another_tenants_event_neither_verifies_nor_proves() {
    let l = log_with(4, 2, true);
    assert_eq!(problem(&l.export, &l.trusted), Problem::Tenant);
    let proof = verify::prove_inclusion(&l.export, 0, 1, &l.trusted).unwrap();
    let body = l.export.entries[0].body.as_deref();
    assert!(verify::verify_inclusion(&proof, body, &l.trusted).is_err());
    assert!(
        verify::verify_inclusion(&proof, None, &l.trusted).is_ok(),
        "the leaf itself is there"
    );
}

/// Rule 5 of `docs/audit-format.md` is exact to the millisecond: an event 300.000 s after the
/// checkpoint that covers it verifies, one at 300.001 s or 300.999 s does not (whole seconds
/// alone would have let 300.999 s through).
#[test]
fn the_clock_skew_allowance_is_exactly_300_seconds() {
    let tenant = TenantId::generate();
    let signer = CheckpointSigner::new("plenum.test", SigningKey::generate()).unwrap();
    let time = 1_800_000_000_i64;
    let export_at = |millis_after: i64| {
        let mut e = Event::new(
            tenant,
            Actor::new(ActorKind::Service, ActorId::generate()),
            "read",
        );
        e.at = chrono::DateTime::from_timestamp_millis(time * 1000 + millis_after).unwrap();
        let body = e.canonical().unwrap();
        let leaf = leaf_hash(body.as_bytes());
        let mut frontier = Frontier::new();
        frontier.push(leaf);
        Export {
            format: EXPORT_FORMAT.to_owned(),
            tenant,
            entries: vec![Entry {
                seq: 0,
                leaf_hash: hex::encode(leaf),
                body: Some(body),
            }],
            checkpoints: vec![signer.sign(&Checkpoint {
                tenant,
                size: 1,
                root: frontier.root(),
                time,
            })],
        }
    };
    let trusted = [signer.verifier()];
    for ok in [0, 299_999, 300_000] {
        verify::verify_log(&export_at(ok), &trusted).unwrap_or_else(|e| panic!("{ok} ms: {e}"));
    }
    for late in [300_001, 300_999, 301_000] {
        assert_eq!(
            problem(&export_at(late), &trusted),
            Problem::Time,
            "{late} ms"
        );
    }
}
