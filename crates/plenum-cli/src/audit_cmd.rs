//! `plenum audit ...`: the offline verifier, as the former `plenum-audit` binary had it
//! (same subcommands, flags and exit statuses), over `plenum_audit::verify`.

use std::path::Path;

use plenum_audit::verify::{self, ConsistencyProof, Export, InclusionProof};
use plenum_audit::{ErrorKind, VerifierKey};
use serde_json::json;

use crate::cli::{AuditCommand, VerifierKeys};
use crate::output::{Failure, Output};

impl From<plenum_audit::Error> for Failure {
    fn from(e: plenum_audit::Error) -> Self {
        let code = match e.kind() {
            ErrorKind::Tampered | ErrorKind::Unsigned => 1,
            _ => 2,
        };
        Self::new(code, e.to_string())
    }
}

fn read(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure::usage(format!("{}: {e}", path.display())))
}

fn load<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, Failure> {
    serde_json::from_str(&read(path)?)
        .map_err(|e| Failure::usage(format!("{}: {e}", path.display())))
}

fn keys(k: &VerifierKeys) -> Result<Vec<VerifierKey>, Failure> {
    let mut out = Vec::new();
    for value in &k.keys {
        let text = match value.strip_prefix('@') {
            Some(path) => read(Path::new(path))?,
            None => value.clone(),
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            out.push(VerifierKey::parse(line)?);
        }
    }
    Ok(out)
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, Failure> {
    serde_json::to_value(value).map_err(|e| Failure::new(1, e.to_string()))
}

pub(crate) fn run(command: AuditCommand, out: &Output) -> Result<(), Failure> {
    match command {
        AuditCommand::Checkpoint { .. } | AuditCommand::Export { .. } => {
            return Err(Failure::new(
                1,
                "a database command reached the offline verifier",
            ));
        }
        AuditCommand::Verify {
            export,
            keys: k,
            held,
        } => {
            let export: Export = load(&export)?;
            let held: Vec<String> = match held {
                Some(path) => load(&path)?,
                None => Vec::new(),
            };
            let r = verify::verify_log_with(&export, &keys(&k)?, &held)?;
            let mut text = format!(
                "verified: {} entries ({} with bodies), {} checkpoints, signed up to entry {}",
                r.entries, r.bodies, r.checkpoints, r.covered
            );
            if r.covered < r.entries {
                text.push_str(&format!(
                    "\nwarning: the last {} entries are not covered by a signed checkpoint yet",
                    r.entries - r.covered
                ));
            }
            if held.is_empty() {
                text.push_str(
                    "\nnote: without --held, a log cut back together with its newest \
                     checkpoints looks like an older log",
                );
            }
            out.print(
                &text,
                &json!({"verified": true, "entries": r.entries, "bodies": r.bodies,
                        "checkpoints": r.checkpoints, "covered": r.covered}),
            );
        }
        AuditCommand::Prove {
            export,
            seq,
            checkpoint,
            keys: k,
        } => {
            let export: Export = load(&export)?;
            let proof = verify::prove_inclusion(&export, seq, checkpoint, &keys(&k)?)?;
            let value = to_json(&proof)?;
            out.print(&value.to_string(), &value);
        }
        AuditCommand::CheckProof {
            proof,
            body,
            keys: k,
        } => {
            let proof: InclusionProof = load(&proof)?;
            let body = body.as_deref().map(read).transpose()?;
            let c =
                verify::verify_inclusion(&proof, body.as_deref().map(str::trim_end), &keys(&k)?)?;
            out.print(
                &format!(
                    "verified: entry {} is in the log of {} as of {} entries (time {})",
                    proof.seq, c.tenant, c.size, c.time
                ),
                &json!({"verified": true, "seq": proof.seq, "size": c.size}),
            );
        }
        AuditCommand::Consistency {
            export,
            old,
            new,
            keys: k,
        } => {
            let export: Export = load(&export)?;
            let proof = verify::prove_consistency(&export, old, new, &keys(&k)?)?;
            let value = to_json(&proof)?;
            out.print(&value.to_string(), &value);
        }
        AuditCommand::CheckConsistency { proof, keys: k } => {
            let proof: ConsistencyProof = load(&proof)?;
            let (o, n) = verify::verify_consistency(&proof, &keys(&k)?)?;
            out.print(
                &format!(
                    "verified: the log of {} at {} entries extends itself at {} entries",
                    n.tenant, n.size, o.size
                ),
                &json!({"verified": true, "old": o.size, "new": n.size}),
            );
        }
    }
    Ok(())
}
