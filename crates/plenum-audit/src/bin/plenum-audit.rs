//! `plenum-audit`: verify exported audit logs and proofs from the command line.
//!
//! ```text
//! plenum-audit verify <export.json> --key <verifier key | @file> ... [--held <notes.json>]
//! plenum-audit prove <export.json> --seq <n> --checkpoint <i> --key ...   (prints a proof)
//! plenum-audit check-proof <proof.json> [--body <file>] --key ...
//! plenum-audit consistency <export.json> --old <i> --new <j> --key ...  (prints a proof)
//! plenum-audit check-consistency <proof.json> --key ...
//! ```
//!
//! Exit status: 0 verified, 1 does not verify (tampered, unsigned), 2 usage or input error.

#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool's output is its interface"
)]

use std::process::ExitCode;

use plenum_audit::verify::{self, ConsistencyProof, Export, InclusionProof};
use plenum_audit::{ErrorKind, VerifierKey};

const USAGE: &str = "usage:
  plenum-audit verify <export.json> --key <verifier key | @file> ... [--held <notes.json>]
  plenum-audit prove <export.json> --seq <n> --checkpoint <i> --key ...
  plenum-audit check-proof <proof.json> [--body <file>] --key ...
  plenum-audit consistency <export.json> --old <i> --new <j> --key ...
  plenum-audit check-consistency <proof.json> --key ...";

/// A failure: what to print and the exit status.
struct Failure(u8, String);

impl From<plenum_audit::Error> for Failure {
    fn from(e: plenum_audit::Error) -> Self {
        let code = match e.kind() {
            ErrorKind::Tampered | ErrorKind::Unsigned => 1,
            _ => 2,
        };
        Self(code, e.to_string())
    }
}

fn usage(message: &str) -> Failure {
    Failure(2, format!("{message}\n{USAGE}"))
}

struct Args {
    command: String,
    file: String,
    keys: Vec<VerifierKey>,
    options: Vec<(String, String)>,
}

impl Args {
    fn parse(mut raw: impl Iterator<Item = String>) -> Result<Self, Failure> {
        let command = raw.next().ok_or_else(|| usage("no command"))?;
        let file = raw.next().ok_or_else(|| usage("no input file"))?;
        let (mut keys, mut options) = (Vec::new(), Vec::new());
        while let Some(flag) = raw.next() {
            let value = raw
                .next()
                .ok_or_else(|| usage(&format!("{flag} needs a value")))?;
            if flag == "--key" {
                let text = match value.strip_prefix('@') {
                    Some(path) => read(path)?,
                    None => value,
                };
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    keys.push(VerifierKey::parse(line)?);
                }
            } else {
                options.push((flag, value));
            }
        }
        if keys.is_empty() {
            return Err(usage("at least one --key is needed"));
        }
        Ok(Self {
            command,
            file,
            keys,
            options,
        })
    }

    fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn number(&self, name: &str) -> Result<u64, Failure> {
        self.option(name)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| usage(&format!("{name} <number> is needed")))
    }

    fn index(&self, name: &str) -> Result<usize, Failure> {
        usize::try_from(self.number(name)?).map_err(|_| usage(&format!("{name} is too large")))
    }
}

fn read(path: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| Failure(2, format!("{path}: {e}")))
}

fn load<T: serde::de::DeserializeOwned>(path: &str) -> Result<T, Failure> {
    serde_json::from_str(&read(path)?).map_err(|e| Failure(2, format!("{path}: {e}")))
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, Failure> {
    serde_json::to_string_pretty(value).map_err(|e| Failure(2, e.to_string()))
}

fn run(args: &Args) -> Result<String, Failure> {
    match args.command.as_str() {
        "verify" => {
            let export: Export = load(&args.file)?;
            // Checkpoints kept from earlier (a JSON array of notes): the export must not
            // contradict them, whatever it left out.
            let held: Vec<String> = match args.option("--held") {
                Some(path) => load(path)?,
                None => Vec::new(),
            };
            let r = verify::verify_log_with(&export, &args.keys, &held)?;
            let mut out = format!(
                "verified: {} entries ({} with bodies), {} checkpoints, signed up to entry {}",
                r.entries, r.bodies, r.checkpoints, r.covered
            );
            if r.covered < r.entries {
                out.push_str(&format!(
                    "\nwarning: the last {} entries are not covered by a signed checkpoint yet",
                    r.entries - r.covered
                ));
            }
            if held.is_empty() {
                out.push_str(
                    "\nnote: without --held, a log cut back together with its newest \
                     checkpoints looks like an older log",
                );
            }
            Ok(out)
        }
        "prove" => {
            let export: Export = load(&args.file)?;
            let proof = verify::prove_inclusion(
                &export,
                args.number("--seq")?,
                args.index("--checkpoint")?,
                &args.keys,
            )?;
            json(&proof)
        }
        "check-proof" => {
            let proof: InclusionProof = load(&args.file)?;
            let body = args.option("--body").map(read).transpose()?;
            let body = body.as_deref().map(str::trim_end);
            let c = verify::verify_inclusion(&proof, body, &args.keys)?;
            Ok(format!(
                "verified: entry {} is in the log of {} as of {} entries (time {})",
                proof.seq, c.tenant, c.size, c.time
            ))
        }
        "consistency" => {
            let export: Export = load(&args.file)?;
            let proof = verify::prove_consistency(
                &export,
                args.index("--old")?,
                args.index("--new")?,
                &args.keys,
            )?;
            json(&proof)
        }
        "check-consistency" => {
            let proof: ConsistencyProof = load(&args.file)?;
            let (o, n) = verify::verify_consistency(&proof, &args.keys)?;
            Ok(format!(
                "verified: the log of {} at {} entries extends itself at {} entries",
                n.tenant, n.size, o.size
            ))
        }
        other => Err(usage(&format!("unknown command {other:?}"))),
    }
}

fn main() -> ExitCode {
    match Args::parse(std::env::args().skip(1)).and_then(|args| run(&args)) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(Failure(code, message)) => {
            eprintln!("plenum-audit: {message}");
            ExitCode::from(code)
        }
    }
}
