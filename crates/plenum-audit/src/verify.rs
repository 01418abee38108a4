//! Verifying a tenant's exported log, and proofs about single events and pairs of checkpoints.
//!
//! Everything here works from the published format alone (`docs/audit-format.md`): an export
//! (entries + signed checkpoints) and the trusted verifier keys. `tests/audit_interop.py`
//! re-implements it in Python to keep that claim honest.

use std::collections::HashSet;

use plenum_core::TenantId;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, Checkpoint, VerifierKey};
use crate::error::{Error, Problem};
use crate::event::{hex, read_body, unhex};
use crate::merkle::{self, Frontier, Hash};

/// How far (seconds) an event's time may run ahead of the first checkpoint that covers it:
/// clocks of different service instances disagree a little.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// The export format name.
pub const EXPORT_FORMAT: &str = "plenum-audit-export-1";

/// One log entry as exported: the body is `None` once retention deleted it, and the leaf hash
/// stays so the log still verifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Leaf index in the tenant's log, from 0.
    pub seq: u64,
    /// `SHA-256(0x00 || body)`, lower-case hex.
    pub leaf_hash: String,
    /// The canonical event body.
    pub body: Option<String>,
}

/// A tenant's log as exported: every entry and every signed checkpoint, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Export {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// The tenant.
    pub tenant: TenantId,
    /// The entries, in sequence order.
    pub entries: Vec<Entry>,
    /// Signed checkpoint notes, in issue order.
    pub checkpoints: Vec<String>,
}

/// What a successful verification covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Entries checked.
    pub entries: u64,
    /// Entries whose body is still present (and was hashed and checked).
    pub bodies: u64,
    /// Checkpoints whose signature and root verified.
    pub checkpoints: u64,
    /// The size of the latest checkpoint: entries beyond it are not yet covered by a
    /// signature.
    pub covered: u64,
}

/// Verifies `export` against the `trusted` checkpoint keys: contiguous sequence numbers,
/// canonical bodies that hash to their leaves and belong to this tenant, unique event ids,
/// signed checkpoints of this tenant's log (at least one) whose roots match the entries, sizes
/// and times that never go backwards, no checkpoint beyond the end of the log (truncation), and
/// event times no later than the first checkpoint covering them (plus [`MAX_CLOCK_SKEW_SECS`]).
///
/// What it cannot see: an export that drops its newest checkpoints together with the entries
/// they cover looks like an older log. Keep checkpoints elsewhere and pass them to
/// [`verify_log_with`]; and compare [`Report::covered`] with [`Report::entries`]: entries beyond
/// the last checkpoint are not yet signed. Entries without a body (retention) are counted in
/// [`Report::entries`] but not [`Report::bodies`]: they prove an event existed, not what it said.
///
/// # Errors
///
/// The first problem found, with the entry's sequence number or the checkpoint's index.
pub fn verify_log(export: &Export, trusted: &[VerifierKey]) -> Result<Report, Error> {
    verify_log_with(export, trusted, &[])
}

/// [`verify_log`], and also against `held`: signed checkpoints of this log that the verifier
/// kept from earlier (a tenant's own copies, an external store). An export can drop its newest
/// checkpoints together with the entries they cover; it cannot drop the ones you hold. Each
/// held checkpoint must be covered by the export's entries and match their root.
///
/// # Errors
///
/// As [`verify_log`]; [`Problem::Truncated`] or [`Problem::Root`] for a held checkpoint the
/// export contradicts (its index in `held`).
pub fn verify_log_with(
    export: &Export,
    trusted: &[VerifierKey],
    held: &[String],
) -> Result<Report, Error> {
    if export.format != EXPORT_FORMAT {
        return Err(Error::NotCanonical("unknown export format"));
    }
    let tenant = export.tenant.to_string();
    let checkpoints = open_checkpoints(export, trusted)?;
    if checkpoints.is_empty() && held.is_empty() {
        // An unsigned log proves nothing: anyone could have written it.
        return Err(Error::at(Problem::NoCheckpoint, 0));
    }
    let mut frontier = Frontier::new();
    let mut leaves: Vec<Hash> = Vec::with_capacity(export.entries.len());
    let mut ids = HashSet::new();
    let mut next_checkpoint = 0usize;
    let mut bodies = 0u64;
    let mut pending_times = Vec::new();
    // Event times as (seconds, nanoseconds): 300.999 s after a checkpoint is past the 300 s
    // allowance, which whole seconds alone would not show.
    let check_at = |frontier: &Frontier, next: &mut usize, pending: &mut Vec<(u64, (i64, u32))>| {
        while let Some(c) = checkpoints.get(*next).filter(|c| c.size == frontier.size()) {
            if c.root != frontier.root() {
                return Err(Error::at(Problem::Root, *next as u64));
            }
            if let Some((seq, _)) = pending
                .iter()
                .find(|(_, t)| *t > (c.time.saturating_add(MAX_CLOCK_SKEW_SECS), 0))
            {
                return Err(Error::at(Problem::Time, *seq));
            }
            pending.clear();
            *next += 1;
        }
        Ok(())
    };
    check_at(&frontier, &mut next_checkpoint, &mut pending_times)?;
    for (i, entry) in export.entries.iter().enumerate() {
        let seq = i as u64;
        if entry.seq != seq {
            return Err(Error::at(Problem::Sequence, seq));
        }
        let leaf: Hash = unhex(&entry.leaf_hash).ok_or(Error::at(Problem::LeafHash, seq))?;
        if let Some(body) = &entry.body {
            let (hash, head) = read_body(body).map_err(|_| Error::at(Problem::Event, seq))?;
            if hash != leaf {
                return Err(Error::at(Problem::LeafHash, seq));
            }
            if head.tenant != tenant {
                return Err(Error::at(Problem::Tenant, seq));
            }
            if !ids.insert(head.id) {
                return Err(Error::at(Problem::DuplicateEvent, seq));
            }
            pending_times.push((seq, (head.at.timestamp(), head.at.timestamp_subsec_nanos())));
            bodies += 1;
        }
        frontier.push(leaf);
        leaves.push(leaf);
        check_at(&frontier, &mut next_checkpoint, &mut pending_times)?;
    }
    if next_checkpoint < checkpoints.len() {
        // A signed size beyond the last entry: the tail was cut off.
        return Err(Error::at(Problem::Truncated, next_checkpoint as u64));
    }
    check_held(export, trusted, held, &leaves)?;
    Ok(Report {
        entries: export.entries.len() as u64,
        bodies,
        checkpoints: checkpoints.len() as u64,
        covered: checkpoints.last().map_or(0, |c| c.size),
    })
}

/// The export's checkpoints, each signed by a trusted key, of this tenant, in order of size
/// and time.
fn open_checkpoints(export: &Export, trusted: &[VerifierKey]) -> Result<Vec<Checkpoint>, Error> {
    let mut checkpoints: Vec<Checkpoint> = Vec::with_capacity(export.checkpoints.len());
    for (i, note) in export.checkpoints.iter().enumerate() {
        let c = checkpoint::open(note, trusted)?;
        let at = i as u64;
        if c.tenant != export.tenant {
            return Err(Error::at(Problem::Origin, at));
        }
        if let Some(prev) = checkpoints.last()
            && (c.size < prev.size || c.time < prev.time)
        {
            return Err(Error::at(Problem::CheckpointOrder, at));
        }
        checkpoints.push(c);
    }
    Ok(checkpoints)
}

/// Each held checkpoint is this tenant's, covered by the export's `leaves`, and matches their
/// root.
fn check_held(
    export: &Export,
    trusted: &[VerifierKey],
    held: &[String],
    leaves: &[Hash],
) -> Result<(), Error> {
    for (i, note) in held.iter().enumerate() {
        let c = checkpoint::open(note, trusted)?;
        let at = i as u64;
        if c.tenant != export.tenant {
            return Err(Error::at(Problem::Origin, at));
        }
        let covered = usize::try_from(c.size)
            .ok()
            .and_then(|n| leaves.get(..n))
            .ok_or(Error::at(Problem::Truncated, at))?;
        if merkle::root(covered) != c.root {
            return Err(Error::at(Problem::Root, at));
        }
    }
    Ok(())
}

/// Proof that one event is in a tenant's log as of a signed checkpoint: enough for a data
/// subject (or a regulator) to check one "who accessed my data" answer without the rest of the
/// log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// The event's sequence number (leaf index).
    pub seq: u64,
    /// Its leaf hash, hex.
    pub leaf_hash: String,
    /// The RFC 9162 audit path, hex hashes.
    pub path: Vec<String>,
    /// The signed checkpoint the path leads to.
    pub checkpoint: String,
}

/// Proof that a later checkpoint's log extends an earlier one's (nothing rewritten).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    /// The earlier signed checkpoint.
    pub old: String,
    /// The later signed checkpoint.
    pub new: String,
    /// The RFC 9162 consistency path, hex hashes.
    pub path: Vec<String>,
}

fn leaves_of(export: &Export) -> Result<Vec<Hash>, Error> {
    export
        .entries
        .iter()
        .map(|e| unhex(&e.leaf_hash).ok_or(Error::at(Problem::LeafHash, e.seq)))
        .collect()
}

/// The inclusion proof of entry `seq` against checkpoint number `checkpoint` of `export`.
///
/// # Errors
///
/// [`Problem::Proof`] if the entry is not covered by that checkpoint; checkpoint errors.
pub fn prove_inclusion(
    export: &Export,
    seq: u64,
    checkpoint: usize,
    trusted: &[VerifierKey],
) -> Result<InclusionProof, Error> {
    let note = export
        .checkpoints
        .get(checkpoint)
        .ok_or(Error::at(Problem::Proof, seq))?;
    let c = checkpoint::open(note, trusted)?;
    let leaves = leaves_of(export)?;
    let size = usize::try_from(c.size).map_err(|_| Error::at(Problem::Proof, seq))?;
    let covered = leaves
        .get(..size)
        .ok_or(Error::at(Problem::Truncated, seq))?;
    let index = usize::try_from(seq).map_err(|_| Error::at(Problem::Proof, seq))?;
    let path = merkle::inclusion_proof(covered, index).ok_or(Error::at(Problem::Proof, seq))?;
    Ok(InclusionProof {
        seq,
        leaf_hash: hex(&covered[index]),
        path: path.iter().map(|h| hex(h)).collect(),
        checkpoint: note.clone(),
    })
}

/// Checks an inclusion proof, and that `body` (if given) is the event it proves. Returns the
/// checkpoint it was checked against.
///
/// # Errors
///
/// [`Problem::Proof`] or [`Problem::LeafHash`]; checkpoint errors.
pub fn verify_inclusion(
    proof: &InclusionProof,
    body: Option<&str>,
    trusted: &[VerifierKey],
) -> Result<Checkpoint, Error> {
    let c = checkpoint::open(&proof.checkpoint, trusted)?;
    let leaf: Hash = unhex(&proof.leaf_hash).ok_or(Error::at(Problem::Proof, proof.seq))?;
    if let Some(body) = body {
        let (hash, head) = read_body(body).map_err(|_| Error::at(Problem::Event, proof.seq))?;
        if hash != leaf {
            return Err(Error::at(Problem::LeafHash, proof.seq));
        }
        if head.tenant != c.tenant.to_string() {
            return Err(Error::at(Problem::Tenant, proof.seq));
        }
    }
    let path = parse_path(&proof.path, proof.seq)?;
    if merkle::verify_inclusion(&leaf, proof.seq, c.size, &path, &c.root) {
        Ok(c)
    } else {
        Err(Error::at(Problem::Proof, proof.seq))
    }
}

/// The consistency proof between checkpoints number `old` and `new` of `export`.
///
/// # Errors
///
/// [`Problem::Proof`] if the sizes do not allow one; checkpoint errors.
pub fn prove_consistency(
    export: &Export,
    old: usize,
    new: usize,
    trusted: &[VerifierKey],
) -> Result<ConsistencyProof, Error> {
    let fail = Error::at(Problem::Proof, old as u64);
    let (Some(old_note), Some(new_note)) =
        (export.checkpoints.get(old), export.checkpoints.get(new))
    else {
        return Err(fail);
    };
    let (o, n) = (
        checkpoint::open(old_note, trusted)?,
        checkpoint::open(new_note, trusted)?,
    );
    let leaves = leaves_of(export)?;
    let new_size = usize::try_from(n.size).map_err(|_| fail.clone())?;
    let old_size = usize::try_from(o.size).map_err(|_| fail.clone())?;
    let covered = leaves.get(..new_size).ok_or(fail.clone())?;
    let path = merkle::consistency_proof(covered, old_size).ok_or(fail)?;
    Ok(ConsistencyProof {
        old: old_note.clone(),
        new: new_note.clone(),
        path: path.iter().map(|h| hex(h)).collect(),
    })
}

/// Checks a consistency proof: both checkpoints signed, of the same log, and the newer one's
/// tree extending the older one's.
///
/// # Errors
///
/// [`Problem::Proof`] or [`Problem::Origin`]; checkpoint errors.
pub fn verify_consistency(
    proof: &ConsistencyProof,
    trusted: &[VerifierKey],
) -> Result<(Checkpoint, Checkpoint), Error> {
    let o = checkpoint::open(&proof.old, trusted)?;
    let n = checkpoint::open(&proof.new, trusted)?;
    if o.tenant != n.tenant {
        return Err(Error::at(Problem::Origin, 1));
    }
    let path = parse_path(&proof.path, o.size)?;
    if merkle::verify_consistency(o.size, n.size, &o.root, &n.root, &path) {
        Ok((o, n))
    } else {
        Err(Error::at(Problem::Proof, o.size))
    }
}

fn parse_path(path: &[String], at: u64) -> Result<Vec<Hash>, Error> {
    path.iter()
        .map(|h| unhex(h).ok_or(Error::at(Problem::Proof, at)))
        .collect()
}
