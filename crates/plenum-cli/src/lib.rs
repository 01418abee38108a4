//! `plenum`, the operator command, as a library: a service builds its own binary with its
//! record types and tables (`plenum_cli::run(std::env::args_os(), Services { .. })`), so the
//! command knows the tables it migrates and the records it re-encrypts.
//!
//! ```text
//! plenum contract verify                 the boot verifier's findings, each with its fix
//! plenum migrate                         the library's migrations and the services' tables
//! plenum keys status   --tenant T        key versions and states per scope
//! plenum keys rotate   --tenant T --scope data|index|subject:<id>
//! plenum keys reencrypt --tenant T --record-type R [--page N]   resumable, with progress
//! plenum audit verify|prove|check-proof|consistency|check-consistency ...   (offline)
//! plenum audit checkpoint --tenant T --name N | export --tenant T
//! plenum retention plan|run --tenant T [--at <RFC 3339>]
//! plenum rights export --tenant T --subject S [--format json|csv] [--out PATH]
//! ```
//!
//! The database comes from `--database-url`, `DATABASE_URL` or the standard `PG*` variables;
//! secrets only from the environment (`PLENUM_CONTEXT_KEY`, `PLENUM_ROOT_KEY`), never from
//! arguments, and errors name what is missing or malformed, never its value. `--json` prints machine-readable output. Progress goes to
//! stderr, and only when stderr is a terminal. Exit status: 0 ok, 1 a finding or a failure
//! (the contract does not hold, a log does not verify, an operation failed), 2 usage.

#![forbid(unsafe_code)]

mod audit_cmd;
mod cli;
mod db;
mod keys;
mod ops;
mod output;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser as _;

pub use crate::output::Failure;

/// What the service contributes to its `plenum` binary.
#[derive(Debug)]
pub struct Services {
    /// Every record type, in dependency order (what `Records::with_record_types` takes).
    pub record_types: Vec<&'static plenum_store::RecordSpec>,
    /// Every table, in dependency order (what `postgres::migrate` creates).
    pub tables: Vec<plenum_store::TableSpec>,
}

/// Parses `args` (the program name first) and runs the command; the exit status is the
/// documented one (0, 1, 2).
pub fn run(args: impl IntoIterator<Item = OsString>, services: Services) -> ExitCode {
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version to stdout (status 0) and usage errors to stderr (2).
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let out = output::Output { json: cli.json };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return out.fail(&Failure::new(1, format!("no async runtime: {e}"))),
    };
    match runtime.block_on(dispatch(cli.command, &services, &out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => out.fail(&f),
    }
}

async fn dispatch(
    command: cli::Command,
    services: &Services,
    out: &output::Output,
) -> Result<(), Failure> {
    match command {
        cli::Command::Audit(cli::AuditCommand::Checkpoint { log, name }) => {
            ops::audit_checkpoint(&log, &name, out).await
        }
        cli::Command::Audit(cli::AuditCommand::Export { log }) => {
            ops::audit_export(&log, out).await
        }
        cli::Command::Audit(a) => audit_cmd::run(a, out),
        cli::Command::Contract(cli::ContractCommand::Verify { db }) => {
            ops::contract_verify(&db, out).await
        }
        cli::Command::Migrate { db } => ops::migrate(&db, services, out).await,
        cli::Command::Keys(k) => keys::run(k, services, out).await,
        cli::Command::Retention(r) => ops::retention(r, services, out).await,
        cli::Command::Rights(r) => ops::rights(r, services, out).await,
    }
}
