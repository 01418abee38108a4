//! The embedded backend. Same `TenantTx` API; no row-level security, so the library's explicit
//! predicates and row checks are the only barrier between tenants.

use std::str::FromStr as _;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Executor as _};

use crate::error::Error;
use crate::table::TableSpec;

const LIBRARY_DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS plenum_tenants (id blob PRIMARY KEY, created_at text NOT NULL DEFAULT (datetime('now')))",
    "CREATE TABLE IF NOT EXISTS plenum_consent_events (\
        tenant_id blob NOT NULL REFERENCES plenum_tenants (id), \
        id blob NOT NULL, \
        subject_id blob NOT NULL, \
        kind text NOT NULL, \
        purpose text, \
        purpose_version integer NOT NULL, \
        channel text, \
        explicit integer NOT NULL, \
        expires_at text, \
        notice_version text NOT NULL, \
        notice_sha256 blob NOT NULL CHECK (length(notice_sha256) = 32), \
        method text NOT NULL, \
        actor_id blob NOT NULL, \
        at text NOT NULL, \
        recorded_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), \
        PRIMARY KEY (tenant_id, id))",
    "CREATE INDEX IF NOT EXISTS plenum_consent_events_subject_idx ON plenum_consent_events (tenant_id, subject_id, at)",
    // Append-only on SQLite too: there are no grants, so triggers refuse changes.
    "CREATE TRIGGER IF NOT EXISTS plenum_consent_events_no_update BEFORE UPDATE ON plenum_consent_events \
        BEGIN SELECT RAISE(ABORT, 'the consent ledger is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS plenum_consent_events_no_delete BEFORE DELETE ON plenum_consent_events \
        BEGIN SELECT RAISE(ABORT, 'the consent ledger is append-only'); END",
    // Data-subject requests, as on PostgreSQL (migration 10): receipts and append-only steps.
    "CREATE TABLE IF NOT EXISTS plenum_subject_requests (\
        tenant_id blob NOT NULL REFERENCES plenum_tenants (id), \
        id blob NOT NULL, \
        subject_id blob NOT NULL, \
        kind text NOT NULL, \
        requester text NOT NULL CHECK (requester IN ('subject', 'agent')), \
        evidence_ref text, \
        channel text NOT NULL, \
        received_at text NOT NULL, \
        recorded_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), \
        CHECK ((requester = 'agent') = (evidence_ref IS NOT NULL)), \
        PRIMARY KEY (tenant_id, id))",
    "CREATE TABLE IF NOT EXISTS plenum_subject_request_steps (\
        tenant_id blob NOT NULL, \
        request_id blob NOT NULL, \
        seq integer NOT NULL CHECK (seq >= 0), \
        step text NOT NULL, \
        detail text, \
        actor_id blob NOT NULL, \
        at text NOT NULL, \
        recorded_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), \
        PRIMARY KEY (tenant_id, request_id, seq), \
        FOREIGN KEY (tenant_id, request_id) REFERENCES plenum_subject_requests (tenant_id, id) \
            ON DELETE CASCADE)",
    "CREATE TRIGGER IF NOT EXISTS plenum_subject_requests_no_update BEFORE UPDATE ON plenum_subject_requests \
        BEGIN SELECT RAISE(ABORT, 'subject requests are append-only'); END",
    // Deleted only 24 months after the answer was recorded (as PostgreSQL's migration 13); the
    // steps go with their request (the cascade), never on their own.
    "CREATE TRIGGER IF NOT EXISTS plenum_subject_requests_kept BEFORE DELETE ON plenum_subject_requests \
        WHEN NOT EXISTS (SELECT 1 FROM plenum_subject_request_steps st \
            WHERE st.tenant_id = OLD.tenant_id AND st.request_id = OLD.id \
            AND st.step IN ('complete', 'refuse', 'verification_failed') \
            AND st.recorded_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-24 months')) \
        BEGIN SELECT RAISE(ABORT, 'records of data-subject requests are kept for 24 months after their answer'); END",
    "CREATE TRIGGER IF NOT EXISTS plenum_subject_request_steps_no_update BEFORE UPDATE ON plenum_subject_request_steps \
        BEGIN SELECT RAISE(ABORT, 'subject requests are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS plenum_subject_request_steps_no_delete BEFORE DELETE ON plenum_subject_request_steps \
        WHEN EXISTS (SELECT 1 FROM plenum_subject_requests r \
            WHERE r.tenant_id = OLD.tenant_id AND r.id = OLD.request_id) \
        BEGIN SELECT RAISE(ABORT, 'subject requests are append-only'); END",
    // Legal holds, as on PostgreSQL (migration 11): placed and lifted, each append-only.
    "CREATE TABLE IF NOT EXISTS plenum_legal_holds (\
        tenant_id blob NOT NULL REFERENCES plenum_tenants (id), \
        id blob NOT NULL, \
        scope text NOT NULL CHECK (scope IN ('tenant', 'subject', 'record_type', 'record')), \
        subject_id blob, \
        record_type text, \
        record_id blob, \
        matter text NOT NULL CHECK (length(matter) BETWEEN 1 AND 200), \
        placed_by blob NOT NULL, \
        placed_at text NOT NULL, \
        recorded_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), \
        CHECK ((scope = 'subject') = (subject_id IS NOT NULL) \
            AND (scope IN ('record_type', 'record')) = (record_type IS NOT NULL) \
            AND (scope = 'record') = (record_id IS NOT NULL)), \
        PRIMARY KEY (tenant_id, id))",
    "CREATE TABLE IF NOT EXISTS plenum_legal_hold_lifts (\
        tenant_id blob NOT NULL, \
        hold_id blob NOT NULL, \
        lifted_by blob NOT NULL, \
        lifted_at text NOT NULL, \
        recorded_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), \
        PRIMARY KEY (tenant_id, hold_id), \
        FOREIGN KEY (tenant_id, hold_id) REFERENCES plenum_legal_holds (tenant_id, id))",
    "CREATE TRIGGER IF NOT EXISTS plenum_legal_holds_no_update BEFORE UPDATE ON plenum_legal_holds \
        BEGIN SELECT RAISE(ABORT, 'legal holds are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS plenum_legal_holds_no_delete BEFORE DELETE ON plenum_legal_holds \
        BEGIN SELECT RAISE(ABORT, 'legal holds are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS plenum_legal_hold_lifts_no_update BEFORE UPDATE ON plenum_legal_hold_lifts \
        BEGIN SELECT RAISE(ABORT, 'legal holds are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS plenum_legal_hold_lifts_no_delete BEFORE DELETE ON plenum_legal_hold_lifts \
        BEGIN SELECT RAISE(ABORT, 'legal holds are append-only'); END",
    // Retention trigger events, as on PostgreSQL (migration 12): append-only.
    "CREATE TABLE IF NOT EXISTS plenum_retention_events (\
        tenant_id blob NOT NULL REFERENCES plenum_tenants (id), \
        id blob NOT NULL, \
        trigger text NOT NULL CHECK (trigger IN ('account_closed', 'contract_terminated')), \
        subject_id blob, \
        at text NOT NULL, \
        recorded_by blob NOT NULL, \
        recorded_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), \
        CHECK ((trigger = 'account_closed') = (subject_id IS NOT NULL)), \
        PRIMARY KEY (tenant_id, id))",
    "CREATE TRIGGER IF NOT EXISTS plenum_retention_events_no_update BEFORE UPDATE ON plenum_retention_events \
        BEGIN SELECT RAISE(ABORT, 'retention events are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS plenum_retention_events_no_delete BEFORE DELETE ON plenum_retention_events \
        BEGIN SELECT RAISE(ABORT, 'retention events are append-only'); END",
    // Re-encryption sweep cursors, as on PostgreSQL (migration 14).
    "CREATE TABLE IF NOT EXISTS plenum_reencryptions (\
        tenant_id blob NOT NULL REFERENCES plenum_tenants (id), \
        record_type text NOT NULL, \
        after_id blob NOT NULL, \
        resealed integer NOT NULL DEFAULT 0 CHECK (resealed >= 0), \
        started_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), \
        PRIMARY KEY (tenant_id, record_type))",
    // The audit log, as on PostgreSQL (migration 4): heads, entries (the rowid orders appends;
    // seq is set by the sequencer), checkpoints.
    "CREATE TABLE IF NOT EXISTS plenum_audit_heads (\
        tenant_id blob PRIMARY KEY REFERENCES plenum_tenants (id), \
        size integer NOT NULL CHECK (size >= 0))",
    "CREATE TABLE IF NOT EXISTS plenum_audit_log (\
        tenant_id blob NOT NULL REFERENCES plenum_tenants (id), \
        seq integer CHECK (seq >= 0), \
        event_id blob NOT NULL, \
        at text NOT NULL, \
        leaf_hash blob NOT NULL CHECK (length(leaf_hash) = 32), \
        body text, \
        recorded_at text NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')), \
        CHECK (body IS NOT NULL OR seq IS NOT NULL))",
    "CREATE UNIQUE INDEX IF NOT EXISTS plenum_audit_log_seq_key ON plenum_audit_log (tenant_id, seq) \
        WHERE seq IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS plenum_audit_log_pending_idx ON plenum_audit_log (tenant_id) \
        WHERE seq IS NULL",
    "CREATE TABLE IF NOT EXISTS plenum_audit_checkpoints (\
        tenant_id blob NOT NULL REFERENCES plenum_tenants (id), \
        size integer NOT NULL CHECK (size >= 0), \
        issued_at text NOT NULL, \
        note text NOT NULL, \
        frontier blob NOT NULL, \
        PRIMARY KEY (tenant_id, size, issued_at))",
    "CREATE TRIGGER IF NOT EXISTS plenum_audit_heads_forward BEFORE UPDATE ON plenum_audit_heads \
        WHEN NEW.tenant_id IS NOT OLD.tenant_id OR NEW.size < OLD.size \
        BEGIN SELECT RAISE(ABORT, 'an audit head only moves forward'); END",
    "CREATE TRIGGER IF NOT EXISTS plenum_audit_log_no_delete BEFORE DELETE ON plenum_audit_log \
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS plenum_audit_log_append_only BEFORE UPDATE ON plenum_audit_log \
        WHEN NEW.tenant_id IS NOT OLD.tenant_id OR NEW.event_id IS NOT OLD.event_id \
        OR NEW.at IS NOT OLD.at OR NEW.leaf_hash IS NOT OLD.leaf_hash \
        OR NEW.recorded_at IS NOT OLD.recorded_at \
        OR (OLD.seq IS NOT NULL AND NEW.seq IS NOT OLD.seq) \
        OR (NEW.body IS NOT OLD.body AND NEW.body IS NOT NULL) \
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS plenum_audit_log_two_years BEFORE UPDATE ON plenum_audit_log \
        WHEN NEW.body IS NOT OLD.body \
        AND OLD.recorded_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-2 years') \
        BEGIN SELECT RAISE(ABORT, 'audit event bodies are kept for two years'); END",
    "CREATE TRIGGER IF NOT EXISTS plenum_audit_checkpoints_no_update BEFORE UPDATE ON plenum_audit_checkpoints \
        BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS plenum_audit_checkpoints_no_delete BEFORE DELETE ON plenum_audit_checkpoints \
        BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END",
];

/// The key database's table. Keys live in a database of their own: SQLite has one writer per
/// database, and a key created while a data transaction is open must commit on its own (see
/// `DbKeyStore`), which on a shared database would wait for that very transaction.
const KEY_DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS plenum_keys (\
        tenant_id blob NOT NULL, \
        scope integer NOT NULL CHECK (scope IN (1, 2, 3, 4)), \
        subject_id blob NOT NULL, \
        version integer NOT NULL CHECK (version > 0), \
        state text NOT NULL CHECK (state IN ('active', 'decrypt_only', 'retired', 'destroyed')), \
        wrapped blob, \
        created_at text NOT NULL DEFAULT (datetime('now')), \
        updated_at text NOT NULL DEFAULT (datetime('now')), \
        PRIMARY KEY (tenant_id, scope, subject_id, version), \
        CHECK ((state = 'destroyed') = (wrapped IS NULL)))",
    // Key states only move forward and `destroyed` is final (PostgreSQL migration 5 says why).
    "CREATE TRIGGER IF NOT EXISTS plenum_keys_forward_only BEFORE UPDATE ON plenum_keys \
        WHEN NEW.tenant_id IS NOT OLD.tenant_id OR NEW.scope IS NOT OLD.scope \
          OR NEW.subject_id IS NOT OLD.subject_id OR NEW.version IS NOT OLD.version \
          OR OLD.state = 'destroyed' \
          OR (CASE NEW.state WHEN 'active' THEN 0 WHEN 'decrypt_only' THEN 1 WHEN 'retired' THEN 2 ELSE 3 END) \
           < (CASE OLD.state WHEN 'active' THEN 0 WHEN 'decrypt_only' THEN 1 WHEN 'retired' THEN 2 ELSE 3 END) \
          OR (NEW.wrapped IS NOT OLD.wrapped AND NEW.state <> 'destroyed' AND NEW.state <> OLD.state) \
        BEGIN SELECT RAISE(ABORT, 'key states only move forward; a destroyed key stays destroyed'); END",
    // Seals per tenant key version, every instance's (PostgreSQL migration 15). Last:
    // `upgrade_key_table` reruns the first two statements by index.
    "CREATE TABLE IF NOT EXISTS plenum_key_usage (\
        tenant_id blob NOT NULL, \
        scope integer NOT NULL CHECK (scope IN (1, 2, 4)), \
        version integer NOT NULL CHECK (version > 0), \
        seals integer NOT NULL CHECK (seals >= 0), \
        PRIMARY KEY (tenant_id, scope, version))",
];

/// The data and key pools of an embedded database: in memory (`None`), or the file `path` with
/// its keys in `path` + `.keys`. Back the two files up together: data without its key file is
/// unreadable (which is also how erasure works).
pub(crate) async fn open(
    path: Option<&std::path::Path>,
    tables: &[TableSpec],
) -> Result<(SqlitePool, SqlitePool), Error> {
    let mut ddl: Vec<String> = LIBRARY_DDL.iter().map(|s| (*s).to_owned()).collect();
    ddl.extend(tables.iter().flat_map(TableSpec::sqlite_ddl));
    let data = pool(path, ddl).await?;
    let key_path = path.map(|p| {
        let mut name = p.as_os_str().to_owned();
        name.push(".keys");
        std::path::PathBuf::from(name)
    });
    let keys = pool(
        key_path.as_deref(),
        KEY_DDL.iter().map(|s| (*s).to_owned()).collect(),
    )
    .await?;
    upgrade_key_table(&keys).await?;
    Ok((data, keys))
}

/// Rebuilds a key table created before scope 4 (subject-wrap keys) existed: SQLite cannot
/// change a CHECK constraint in place. Rows are copied as they are, in one transaction.
async fn upgrade_key_table(keys: &SqlitePool) -> Result<(), Error> {
    let current: Option<String> = sqlx::query_scalar(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'plenum_keys'",
    )
    .fetch_optional(keys)
    .await
    .map_err(Error::Database)?;
    if current.is_none_or(|sql| sql.contains("scope IN (1, 2, 3, 4)")) {
        return Ok(());
    }
    let mut tx = keys.begin().await.map_err(Error::Database)?;
    for statement in [
        "ALTER TABLE plenum_keys RENAME TO plenum_keys_before_scope_4",
        KEY_DDL[0],
        "INSERT INTO plenum_keys SELECT * FROM plenum_keys_before_scope_4",
        "DROP TABLE plenum_keys_before_scope_4",
        KEY_DDL[1],
    ] {
        tx.execute(AssertSqlSafe(statement))
            .await
            .map_err(Error::Database)?;
    }
    tx.commit().await.map_err(Error::Database)
}

async fn pool(path: Option<&std::path::Path>, ddl: Vec<String>) -> Result<SqlitePool, Error> {
    let options = match path {
        Some(p) => SqliteConnectOptions::new()
            .filename(p)
            .create_if_missing(true),
        // One connection: an in-memory database lives and dies with its connection.
        None => SqliteConnectOptions::from_str("sqlite::memory:").map_err(Error::Database)?,
    }
    .foreign_keys(true);
    let max = if path.is_some() { 4 } else { 1 };
    let pool = SqlitePoolOptions::new()
        .max_connections(max)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await
        .map_err(Error::Database)?;
    let mut tx = pool.begin().await.map_err(Error::Database)?;
    for statement in ddl {
        tx.execute(AssertSqlSafe(statement))
            .await
            .map_err(Error::Database)?;
    }
    tx.commit().await.map_err(Error::Database)?;
    Ok(pool)
}
