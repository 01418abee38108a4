//! The command line, declared with clap's derive: every subcommand, flag and environment
//! variable, with the help text an operator reads.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Plenum's operator command.
#[derive(Debug, Parser)]
#[command(name = "plenum", version, about, long_about = None)]
pub(crate) struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Verify exported audit logs and proofs (offline; no database).
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The database contract.
    #[command(subcommand)]
    Contract(ContractCommand),
    /// Apply the library's migrations and create the service's tables (as the migrator).
    Migrate {
        #[command(flatten)]
        db: Db,
    },
    /// Key operations for one tenant.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Retention.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Data-subject rights.
    #[command(subcommand)]
    Rights(RightsCommand),
}

/// Where the database is. Secrets come from the environment only, never from arguments (which
/// other users of the machine can list): `PLENUM_CONTEXT_KEY` (the tenant-context key
/// `migrate` installs, base64) and, for key and retention commands, `PLENUM_ROOT_KEY` (the root
/// key, base64 of 32 bytes, of version `PLENUM_ROOT_KEY_VERSION`, default 1).
#[derive(Debug, Clone, Args)]
pub(crate) struct Db {
    /// The database URL (the runtime role's, or the migrator's for `migrate`); without it, the
    /// standard `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`. Never printed.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: Option<String>,
    /// The prefix of the contract's roles (`<prefix>_app`, `<prefix>_owner`, ...).
    #[arg(long, default_value = "plenum")]
    pub(crate) roles: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ContractCommand {
    /// Run the boot verifier as the runtime role: every finding with its fix (status 1 if any).
    Verify {
        #[command(flatten)]
        db: Db,
    },
}

/// A tenant's keyring: the database, the root key, the operator.
#[derive(Debug, Clone, Args)]
pub(crate) struct KeyringArgs {
    #[command(flatten)]
    pub(crate) db: Db,
    /// The tenant.
    #[arg(long)]
    pub(crate) tenant: String,
    /// Who runs this (an actor id, recorded in the tenant's audit log); a fresh id if absent.
    #[arg(long, env = "PLENUM_OPERATOR")]
    pub(crate) operator: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Versions and states of the tenant's keys.
    Status {
        #[command(flatten)]
        keyring: KeyringArgs,
    },
    /// A new active version (the old one keeps decrypting until re-encrypted and retired).
    Rotate {
        #[command(flatten)]
        keyring: KeyringArgs,
        /// `data`, `index`, or `subject:<subject id>`.
        #[arg(long)]
        scope: String,
    },
    /// Re-wrap the tenant's keys under a new root key version (`PLENUM_NEW_ROOT_KEY`); then
    /// run with the new key as `PLENUM_ROOT_KEY` and destroy the old one. Idempotent.
    RewrapRoot {
        #[command(flatten)]
        keyring: KeyringArgs,
        /// The new root key's version (higher than the current one).
        #[arg(long)]
        to_version: u32,
    },
    /// Re-seal a record type's values under the active versions; resumable: run it again.
    Reencrypt {
        #[command(flatten)]
        keyring: KeyringArgs,
        /// The record type.
        #[arg(long)]
        record_type: String,
        /// Rows per page (one transaction each).
        #[arg(long, default_value_t = 500)]
        page: u32,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RightsCommand {
    /// Export everything about a data subject (the format of `docs/subject-export.md`).
    Export {
        #[command(flatten)]
        keyring: KeyringArgs,
        /// The data subject.
        #[arg(long)]
        subject: String,
        /// `json` (one document on stdout, or in `--out`) or `csv` (a directory, `--out`).
        #[arg(long, default_value = "json")]
        format: String,
        /// Where to write.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RetentionCommand {
    /// Run every sweep of the privacy policy's schedule once in a tenant (closed accounts,
    /// marketing data, dated records, answered requests, audit bodies); run it again until
    /// nothing is left. Idempotent.
    Run {
        #[command(flatten)]
        keyring: KeyringArgs,
        /// The time to sweep at (RFC 3339, not in the future); now if absent.
        #[arg(long)]
        at: Option<String>,
        /// At most this many rows per record type (or subjects) per sweep.
        #[arg(long, default_value_t = 500)]
        batch: u32,
    },
    /// What the privacy policy's schedule makes due in a tenant (a dry run).
    Plan {
        #[command(flatten)]
        keyring: KeyringArgs,
        /// The time to plan for (RFC 3339); now if absent.
        #[arg(long)]
        at: Option<String>,
    },
}

/// A tenant's log in the database.
#[derive(Debug, Clone, Args)]
pub(crate) struct TenantLog {
    #[command(flatten)]
    pub(crate) db: Db,
    /// The tenant (or the platform log's id).
    #[arg(long)]
    pub(crate) tenant: String,
}

/// The verifier's commands, compatible with the former `plenum-audit` binary, and the two that
/// need the database.
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Number the tenant's committed events and sign a checkpoint (signing key, Ed25519 seed in
    /// base64, from `PLENUM_AUDIT_SIGNING_KEY`).
    Checkpoint {
        #[command(flatten)]
        log: TenantLog,
        /// The checkpoint key's name (what verifiers trust it as).
        #[arg(long)]
        name: String,
    },
    /// Print the tenant's numbered log as the verifier reads it (JSON).
    Export {
        #[command(flatten)]
        log: TenantLog,
    },
    /// Verify an exported log against trusted verifier keys.
    Verify {
        /// The export (`AuditLog::export`, JSON).
        export: PathBuf,
        #[command(flatten)]
        keys: VerifierKeys,
        /// Checkpoints kept from earlier (a JSON array of notes) the export must not contradict.
        #[arg(long)]
        held: Option<PathBuf>,
    },
    /// Print a proof that entry `seq` is in the log as of checkpoint `checkpoint`.
    Prove {
        /// The export.
        export: PathBuf,
        /// The entry.
        #[arg(long)]
        seq: u64,
        /// The checkpoint's index in the export.
        #[arg(long)]
        checkpoint: usize,
        #[command(flatten)]
        keys: VerifierKeys,
    },
    /// Check an inclusion proof, optionally with the entry's body.
    CheckProof {
        /// The proof (JSON).
        proof: PathBuf,
        /// The entry's body.
        #[arg(long)]
        body: Option<PathBuf>,
        #[command(flatten)]
        keys: VerifierKeys,
    },
    /// Print a proof that checkpoint `new` extends checkpoint `old`.
    Consistency {
        /// The export.
        export: PathBuf,
        /// The older checkpoint's index.
        #[arg(long)]
        old: usize,
        /// The newer checkpoint's index.
        #[arg(long)]
        new: usize,
        #[command(flatten)]
        keys: VerifierKeys,
    },
    /// Check a consistency proof.
    CheckConsistency {
        /// The proof (JSON).
        proof: PathBuf,
        #[command(flatten)]
        keys: VerifierKeys,
    },
}

/// Trusted verifier keys.
#[derive(Debug, Clone, Args)]
pub(crate) struct VerifierKeys {
    /// A verifier key, or `@file` with one per line; repeat for several.
    #[arg(long = "key", required = true)]
    pub(crate) keys: Vec<String>,
}
