//! The SQL of the database contract: bootstrap (a superuser, once per cluster and database) and
//! the library's migrations (the owner, through the migrator login).

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, SqlSafeStr as _};

use crate::contract::{
    ADMIN_AUDIT_SETTING, CONTEXT_FUNCTION, DATA_SCHEMA, LIBRARY_SCHEMA, Roles, TENANT_SETTING,
};
use crate::error::Error;
use crate::table::police;

/// Statements a superuser runs once to create the roles and schemas of the contract in
/// `database`. Idempotent: existing roles are altered back to the required attributes.
///
/// Role passwords are not set here; set them with `ALTER ROLE ... PASSWORD` from your secret
/// store (or use certificate or IAM authentication).
///
/// # Errors
///
/// [`Error::Config`] if `database` is not a plain identifier.
pub fn bootstrap_sql(roles: &Roles, database: &str) -> Result<Vec<String>, Error> {
    let plain = !database.is_empty()
        && database.len() <= 63
        && database
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !plain {
        return Err(Error::Config("database name must match [a-z0-9_]+"));
    }
    let (owner, migrator, app, admin) =
        (roles.owner(), roles.migrator(), roles.app(), roles.admin());
    let create = |role: &str, attrs: &str| {
        format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = '{role}') \
             THEN CREATE ROLE {role} {attrs}; END IF; END $$"
        )
    };
    // The runtime roles must never own, inherit or bypass anything: these attributes are set on
    // every run, so a drifted role is repaired (and the boot verifier catches what is not).
    let runtime = "LOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT NOCREATEDB NOCREATEROLE NOREPLICATION";
    Ok(vec![
        create(&owner, "NOLOGIN NOSUPERUSER NOBYPASSRLS"),
        create(&migrator, "LOGIN NOSUPERUSER NOBYPASSRLS"),
        create(&app, runtime),
        create(&admin, runtime),
        format!("ALTER ROLE {owner} NOLOGIN NOSUPERUSER NOBYPASSRLS"),
        format!("ALTER ROLE {app} {runtime}"),
        format!("ALTER ROLE {admin} {runtime}"),
        format!("GRANT {owner} TO {migrator}"),
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC".to_owned(),
        format!("CREATE SCHEMA IF NOT EXISTS {LIBRARY_SCHEMA} AUTHORIZATION {owner}"),
        format!("CREATE SCHEMA IF NOT EXISTS {DATA_SCHEMA} AUTHORIZATION {owner}"),
        // Nobody but the contract's roles may connect, and nobody may create temporary tables
        // (a temporary relation is outside every policy and the verifier's view).
        format!("REVOKE ALL ON DATABASE {database} FROM PUBLIC"),
        format!("GRANT CONNECT ON DATABASE {database} TO {migrator}, {app}, {admin}"),
        // Side channels between tenants that share the runtime role: large objects have no
        // tenant (written in A's transaction, readable in B's), any backend of the same role
        // can be terminated or cancelled, and `pg_stat_activity` shows the same role's other
        // backends' statement text (the tenant set with `BEGIN`, and any literal). Revoked
        // per database; the boot verifier checks each (`Check::SideChannel`).
        "DO $$ DECLARE f regprocedure; BEGIN \
         FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p \
           WHERE p.pronamespace = 'pg_catalog'::regnamespace \
             AND (p.proname LIKE 'lo\\_%' OR p.proname IN ('loread', 'lowrite', \
                  'pg_terminate_backend', 'pg_cancel_backend')) \
         LOOP EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f); \
         END LOOP; END $$"
            .to_owned(),
        format!("ALTER ROLE {app} SET track_activities = off"),
    ])
}

/// The body of the context function, as migration 6 writes it and the verifier expects it: the
/// setting holds a token (`ContextKey::token`), and only a token whose MAC verifies under the
/// owner-only key and whose expiry is not before the transaction's start names a tenant. No
/// fallback, no default tenant: anything else is NULL, so no rows and refused writes.
pub(crate) fn context_function_body() -> String {
    let label: String = crate::postgres::context::CONTEXT_LABEL
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!(
        " DECLARE raw text := pg_catalog.current_setting('{TENANT_SETTING}', true); b bytea; \
         k_ipad bytea; k_opad bytea; \
         BEGIN \
         IF raw IS NULL OR pg_catalog.length(raw) <> 112 OR raw !~ '^[0-9a-f]+$' THEN RETURN NULL; END IF; \
         b := pg_catalog.decode(raw, 'hex'); \
         SELECT c.k_ipad, c.k_opad INTO k_ipad, k_opad FROM {LIBRARY_SCHEMA}.context_key c; \
         IF k_ipad IS NULL THEN RETURN NULL; END IF; \
         IF pg_catalog.sha256(k_opad || pg_catalog.sha256(k_ipad || '\\x{label}'::bytea || pg_catalog.substring(b, 1, 24))) \
            <> pg_catalog.substring(b, 25, 32) THEN RETURN NULL; END IF; \
         IF ('x' || pg_catalog.encode(pg_catalog.substring(b, 17, 8), 'hex'))::bit(64)::bigint \
            < pg_catalog.date_part('epoch', pg_catalog.now())::bigint THEN RETURN NULL; END IF; \
         RETURN pg_catalog.encode(pg_catalog.substring(b, 1, 16), 'hex')::pg_catalog.uuid; \
         END "
    )
}

/// Migration 6: the tenant context becomes unforgeable by the runtime role. The key lives in
/// `plenum.context_key` (owner only; `migrate` writes it), and the context function, now
/// `SECURITY DEFINER` so that it can read the key, accepts only authenticated tokens. SQL text
/// only.
fn context_key_migration(owner: &str) -> Vec<String> {
    let s = LIBRARY_SCHEMA;
    vec![
        format!("SET LOCAL ROLE {owner}"),
        format!(
            "CREATE TABLE {s}.context_key (\n    \
             one boolean PRIMARY KEY DEFAULT true CHECK (one),\n    \
             k_ipad bytea NOT NULL CHECK (length(k_ipad) = 64),\n    \
             k_opad bytea NOT NULL CHECK (length(k_opad) = 64)\n)"
        ),
        format!("REVOKE ALL ON {s}.context_key FROM PUBLIC"),
        format!(
            "CREATE OR REPLACE FUNCTION {CONTEXT_FUNCTION}() RETURNS uuid \
             LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER SET search_path = '' \
             AS $${body}$$",
            body = context_function_body()
        ),
    ]
}

/// The library's own migrations, rendered for `roles`. Each runs in one transaction as the owner
/// (`SET LOCAL ROLE`), so every object it creates belongs to the owner. A data table of SQL
/// texts in migration order: long because the schema is, with no logic to split.
pub(crate) fn library_migrations(roles: &Roles) -> Vec<Migration> {
    let (owner, app, admin) = (roles.owner(), roles.app(), roles.admin());
    let mut v1 = vec![
        format!("SET LOCAL ROLE {owner}"),
        // STABLE, not IMMUTABLE: an immutable function is constant-folded into cached generic
        // plans, and tenant B would be served tenant A's rows. Returning uuid (not text) keeps
        // the comparison free of a per-row cast. The empty string (a setting used once, then
        // reset) maps to NULL, so no tenant means no rows and failed writes. PL/pgSQL, not SQL:
        // a SQL function with a SET clause cannot be inlined and is re-planned on every
        // statement, which measured twice the per-query cost of the cached PL/pgSQL body.
        format!(
            "CREATE OR REPLACE FUNCTION {CONTEXT_FUNCTION}() RETURNS uuid \
             LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = '' \
             AS $$ BEGIN RETURN nullif(pg_catalog.current_setting('{TENANT_SETTING}', true), '')::pg_catalog.uuid; END $$"
        ),
        format!("REVOKE ALL ON FUNCTION {CONTEXT_FUNCTION}() FROM PUBLIC"),
        // The admin role reads only in a session whose audit row is already committed: a row
        // of `plenum.admin_audit` written by this backend, in an earlier transaction (so a
        // rollback of the reading one cannot take it back), within the last hour, named by
        // the transaction's `plenum.admin_audit_id`. A login that skips `AdminPool::begin`
        // must write that row itself first, and so is audited anyway.
        format!(
            "CREATE OR REPLACE FUNCTION {LIBRARY_SCHEMA}.admin_audited() RETURNS boolean \
             LANGUAGE plpgsql STABLE PARALLEL SAFE SECURITY DEFINER SET search_path = '' \
             AS $$ DECLARE raw text := pg_catalog.current_setting('{ADMIN_AUDIT_SETTING}', true); \
             BEGIN \
             IF raw IS NULL OR raw !~ '^[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}$' \
               THEN RETURN false; END IF; \
             RETURN EXISTS (SELECT 1 FROM {LIBRARY_SCHEMA}.admin_audit a \
               WHERE a.id = raw::pg_catalog.uuid AND a.backend_pid = pg_catalog.pg_backend_pid() \
                 AND a.txid IS DISTINCT FROM pg_catalog.txid_current_if_assigned() \
                 AND a.at > pg_catalog.now() - interval '1 hour'); \
             END $$"
        ),
        format!("REVOKE ALL ON FUNCTION {LIBRARY_SCHEMA}.admin_audited() FROM PUBLIC"),
        format!("GRANT EXECUTE ON FUNCTION {LIBRARY_SCHEMA}.admin_audited() TO {admin}"),
        format!("GRANT EXECUTE ON FUNCTION {CONTEXT_FUNCTION}() TO {app}, {admin}"),
        format!("GRANT USAGE ON SCHEMA {LIBRARY_SCHEMA} TO {app}, {admin}"),
        format!("GRANT USAGE ON SCHEMA {DATA_SCHEMA} TO {app}, {admin}"),
        format!(
            "CREATE TABLE {LIBRARY_SCHEMA}.tenants (\n    id uuid PRIMARY KEY,\n    \
             created_at timestamptz NOT NULL DEFAULT now()\n)"
        ),
    ];
    v1.extend(police(
        &format!("{LIBRARY_SCHEMA}.tenants"),
        "tenants",
        "id",
        roles,
    ));
    v1.extend([
        format!("GRANT SELECT, INSERT ON {LIBRARY_SCHEMA}.tenants TO {app}"),
        format!("GRANT SELECT ON {LIBRARY_SCHEMA}.tenants TO {admin}"),
        // Cross-tenant work leaves a row here before it does anything else (AdminTx). The admin
        // role may only append; the app role may not touch it.
        format!(
            "CREATE TABLE {LIBRARY_SCHEMA}.admin_audit (\n    id uuid PRIMARY KEY,\n    \
             at timestamptz NOT NULL DEFAULT clock_timestamp(),\n    actor jsonb NOT NULL,\n    \
             purpose text NOT NULL,\n    reference text,\n    \
             backend_pid integer NOT NULL DEFAULT pg_backend_pid(),\n    \
             txid bigint NOT NULL DEFAULT txid_current()\n)"
        ),
        format!("REVOKE ALL ON {LIBRARY_SCHEMA}.admin_audit FROM PUBLIC"),
        // Column-level: `at`, `backend_pid` and `txid` keep their defaults, so the admin role
        // cannot date a row, bind it to another backend or pretend it was committed earlier.
        format!(
            "GRANT INSERT (id, actor, purpose, reference) ON {LIBRARY_SCHEMA}.admin_audit TO {admin}"
        ),
    ]);
    let mut v2 = vec![
        format!("SET LOCAL ROLE {owner}"),
        // Wrapped keys: tenant keys wrapped by the root key, subject keys by the tenant data key.
        // Destroying a key erases `wrapped` and keeps the row, so opening old data says "key
        // destroyed" rather than "not found". No DELETE for anyone but the owner.
        format!(
            "CREATE TABLE {LIBRARY_SCHEMA}.keys (\n    \
             tenant_id uuid NOT NULL REFERENCES {LIBRARY_SCHEMA}.tenants (id),\n    \
             scope smallint NOT NULL CHECK (scope IN (1, 2, 3)),\n    \
             subject_id uuid NOT NULL,\n    \
             version integer NOT NULL CHECK (version > 0),\n    \
             state text NOT NULL CHECK (state IN ('active', 'decrypt_only', 'retired', 'destroyed')),\n    \
             wrapped bytea,\n    \
             created_at timestamptz NOT NULL DEFAULT now(),\n    \
             updated_at timestamptz NOT NULL DEFAULT now(),\n    \
             CONSTRAINT keys_pkey PRIMARY KEY (tenant_id, scope, subject_id, version),\n    \
             CONSTRAINT keys_destroyed_means_erased CHECK ((state = 'destroyed') = (wrapped IS NULL))\n)"
        ),
    ];
    v2.extend(police(
        &format!("{LIBRARY_SCHEMA}.keys"),
        "keys",
        "tenant_id",
        roles,
    ));
    v2.push(format!(
        "GRANT SELECT, INSERT, UPDATE ON {LIBRARY_SCHEMA}.keys TO {app}"
    ));
    let mut v3 = vec![
        format!("SET LOCAL ROLE {owner}"),
        // The consent ledger: append-only events with their evidence; a subject's state is
        // derived from them. The runtime role may read and append, never change or delete.
        format!(
            "CREATE TABLE {LIBRARY_SCHEMA}.consent_events (\n    \
             tenant_id uuid NOT NULL REFERENCES {LIBRARY_SCHEMA}.tenants (id),\n    \
             id uuid NOT NULL,\n    \
             subject_id uuid NOT NULL,\n    \
             kind text NOT NULL,\n    \
             purpose text,\n    \
             purpose_version integer NOT NULL,\n    \
             channel text,\n    \
             explicit boolean NOT NULL,\n    \
             expires_at timestamptz,\n    \
             notice_version text NOT NULL,\n    \
             notice_sha256 bytea NOT NULL CHECK (length(notice_sha256) = 32),\n    \
             method text NOT NULL,\n    \
             actor_id uuid NOT NULL,\n    \
             at timestamptz NOT NULL,\n    \
             recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),\n    \
             CONSTRAINT consent_events_pkey PRIMARY KEY (tenant_id, id)\n)"
        ),
        format!(
            "CREATE INDEX consent_events_subject_idx ON {LIBRARY_SCHEMA}.consent_events \
             (tenant_id, subject_id, at)"
        ),
    ];
    v3.extend(police(
        &format!("{LIBRARY_SCHEMA}.consent_events"),
        "consent_events",
        "tenant_id",
        roles,
    ));
    v3.push(format!(
        "GRANT SELECT, INSERT ON {LIBRARY_SCHEMA}.consent_events TO {app}"
    ));
    let v4 = audit_migration(roles);
    let v5 = key_states_migration(&owner);
    let v6 = context_key_migration(&owner);
    let v7 = sequencer_migration(roles);
    // The ledger's state follows recording order (`recorded_at`, the database's clock): the
    // runtime role may append every column but that one, so raw SQL cannot date a consent
    // after every later withdrawal.
    let v8 = vec![
        format!("SET LOCAL ROLE {owner}"),
        format!("REVOKE INSERT ON {LIBRARY_SCHEMA}.consent_events FROM {app}"),
        format!(
            "GRANT INSERT (tenant_id, id, subject_id, kind, purpose, purpose_version, channel, \
             explicit, expires_at, notice_version, notice_sha256, method, actor_id, at) \
             ON {LIBRARY_SCHEMA}.consent_events TO {app}"
        ),
    ];
    // Scope 4: the tenant's subject-wrap keys (erasure epochs), which wrap subject keys so
    // that replacing them makes a backup's copies of erased subjects' keys unreadable.
    let v9 = vec![
        format!("SET LOCAL ROLE {owner}"),
        format!(
            "ALTER TABLE {LIBRARY_SCHEMA}.keys DROP CONSTRAINT keys_scope_check, \
             ADD CONSTRAINT keys_scope_check CHECK (scope IN (1, 2, 3, 4))"
        ),
    ];
    vec![
        migration(1, "context function, tenant registry, admin audit", &v1),
        migration(2, "wrapped keys", &v2),
        migration(3, "consent ledger", &v3),
        migration(4, "audit log", &v4),
        migration(5, "key states only move forward; destroyed is final", &v5),
        migration(6, "authenticated tenant context", &v6),
        migration(7, "only the sequencer numbers audit events", &v7),
        migration(8, "consent recording time is the database's", &v8),
        migration(9, "subject-wrap keys (erasure epochs)", &v9),
        migration(10, "data-subject requests", &requests_migration(roles)),
        migration(11, "legal holds", &holds_migration(roles)),
        migration(
            12,
            "retention trigger events",
            &retention_events_migration(roles),
        ),
        migration(
            13,
            "records of answered requests expire after 24 months",
            &requests_retention_migration(roles),
        ),
        migration(
            14,
            "re-encryption sweep cursors",
            &reencryptions_migration(roles),
        ),
        migration(
            15,
            "seal counts per tenant key version",
            &key_usage_migration(roles),
        ),
    ]
}

/// Key states only move forward (active -> decrypt_only -> retired -> destroyed, steps may be
/// skipped: erasure destroys an active key) and `destroyed` is final: without this, the runtime
/// role (or `DbKeyStore::update` with a key loaded before erasure) could write the old wrapped
/// bytes back and un-erase a subject. A key row never changes identity, and its wrapped bytes
/// change only while it stays in the same live state (root re-wrapping) or become NULL with
/// destruction (the CHECK of migration 2). Only the owner, who can drop the trigger, can do
/// otherwise. SQL text only.
/// Data-subject requests: the receipt and the append-only steps (the state is derived by
/// replaying them). The runtime role may read and append, never change or delete: a request's
/// history is evidence of how it was answered.
fn requests_migration(roles: &Roles) -> Vec<String> {
    let mut v = vec![format!("SET LOCAL ROLE {}", roles.owner())];
    v.extend(append_only(
        roles,
        "subject_requests",
        format!(
            "CREATE TABLE {LIBRARY_SCHEMA}.subject_requests (\n    \
             tenant_id uuid NOT NULL REFERENCES {LIBRARY_SCHEMA}.tenants (id),\n    \
             id uuid NOT NULL,\n    \
             subject_id uuid NOT NULL,\n    \
             kind text NOT NULL,\n    \
             requester text NOT NULL CHECK (requester IN ('subject', 'agent')),\n    \
             evidence_ref text,\n    \
             channel text NOT NULL,\n    \
             received_at timestamptz NOT NULL,\n    \
             recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),\n    \
             CONSTRAINT subject_requests_pkey PRIMARY KEY (tenant_id, id),\n    \
             CONSTRAINT subject_requests_agent_evidence CHECK \
             ((requester = 'agent') = (evidence_ref IS NOT NULL))\n)"
        ),
        "tenant_id, id, subject_id, kind, requester, evidence_ref, channel, received_at",
    ));
    v.push(format!(
        "CREATE INDEX subject_requests_subject_idx ON {LIBRARY_SCHEMA}.subject_requests \
             (tenant_id, subject_id)"
    ));
    v.extend(append_only(
        roles,
        "subject_request_steps",
        format!(
            "CREATE TABLE {LIBRARY_SCHEMA}.subject_request_steps (\n    \
             tenant_id uuid NOT NULL,\n    \
             request_id uuid NOT NULL,\n    \
             seq integer NOT NULL CHECK (seq >= 0),\n    \
             step text NOT NULL,\n    \
             detail text,\n    \
             actor_id uuid NOT NULL,\n    \
             at timestamptz NOT NULL,\n    \
             recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),\n    \
             CONSTRAINT subject_request_steps_pkey PRIMARY KEY (tenant_id, request_id, seq),\n    \
             CONSTRAINT subject_request_steps_request_fkey FOREIGN KEY (tenant_id, request_id) \
             REFERENCES {LIBRARY_SCHEMA}.subject_requests (tenant_id, id)\n)"
        ),
        "tenant_id, request_id, seq, step, detail, actor_id, at",
    ));
    v
}

/// Legal holds: placed and lifted, each append-only (a lift is a row of its own), so the record
/// of who held what and until when cannot be rewritten by the runtime role.
fn holds_migration(roles: &Roles) -> Vec<String> {
    let mut v = vec![format!("SET LOCAL ROLE {}", roles.owner())];
    v.extend(append_only(
        roles,
        "legal_holds",
        format!(
            "CREATE TABLE {LIBRARY_SCHEMA}.legal_holds (\n    \
             tenant_id uuid NOT NULL REFERENCES {LIBRARY_SCHEMA}.tenants (id),\n    \
             id uuid NOT NULL,\n    \
             scope text NOT NULL CHECK (scope IN ('tenant', 'subject', 'record_type', 'record')),\n    \
             subject_id uuid,\n    \
             record_type text,\n    \
             record_id uuid,\n    \
             matter text NOT NULL CHECK (length(matter) BETWEEN 1 AND 200),\n    \
             placed_by uuid NOT NULL,\n    \
             placed_at timestamptz NOT NULL,\n    \
             recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),\n    \
             CONSTRAINT legal_holds_pkey PRIMARY KEY (tenant_id, id),\n    \
             CONSTRAINT legal_holds_scope_columns CHECK (\
             (scope = 'subject') = (subject_id IS NOT NULL) AND \
             (scope IN ('record_type', 'record')) = (record_type IS NOT NULL) AND \
             (scope = 'record') = (record_id IS NOT NULL))\n)"
        ),
        "tenant_id, id, scope, subject_id, record_type, record_id, matter, placed_by, placed_at",
    ));
    v.extend(append_only(
        roles,
        "legal_hold_lifts",
        format!(
            "CREATE TABLE {LIBRARY_SCHEMA}.legal_hold_lifts (\n    \
             tenant_id uuid NOT NULL,\n    \
             hold_id uuid NOT NULL,\n    \
             lifted_by uuid NOT NULL,\n    \
             lifted_at timestamptz NOT NULL,\n    \
             recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),\n    \
             CONSTRAINT legal_hold_lifts_pkey PRIMARY KEY (tenant_id, hold_id),\n    \
             CONSTRAINT legal_hold_lifts_hold_fkey FOREIGN KEY (tenant_id, hold_id) \
             REFERENCES {LIBRARY_SCHEMA}.legal_holds (tenant_id, id)\n)"
        ),
        "tenant_id, hold_id, lifted_by, lifted_at",
    ));
    v
}

/// Retention trigger events the service records (an account closed, the contract terminated):
/// append-only, since the periods that count from them must not move.
fn retention_events_migration(roles: &Roles) -> Vec<String> {
    let mut v = vec![format!("SET LOCAL ROLE {}", roles.owner())];
    v.extend(append_only(
        roles,
        "retention_events",
        format!(
            "CREATE TABLE {LIBRARY_SCHEMA}.retention_events (\n    \
             tenant_id uuid NOT NULL REFERENCES {LIBRARY_SCHEMA}.tenants (id),\n    \
             id uuid NOT NULL,\n    \
             trigger text NOT NULL CHECK (trigger IN ('account_closed', 'contract_terminated')),\n    \
             subject_id uuid,\n    \
             at timestamptz NOT NULL,\n    \
             recorded_by uuid NOT NULL,\n    \
             recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),\n    \
             CONSTRAINT retention_events_pkey PRIMARY KEY (tenant_id, id),\n    \
             CONSTRAINT retention_events_subject CHECK \
             ((trigger = 'account_closed') = (subject_id IS NOT NULL))\n)"
        ),
        "tenant_id, id, trigger, subject_id, at, recorded_by",
    ));
    v
}

/// Where a tenant's re-encryption sweep of a record type stands (the last id done, how many
/// values re-sealed so far): written in the same transaction as the page it describes, so a
/// crash resumes from the last committed page. The runtime role may read and change it; it
/// holds ids and counts only.
fn reencryptions_migration(roles: &Roles) -> Vec<String> {
    let s = LIBRARY_SCHEMA;
    let mut v = vec![
        format!("SET LOCAL ROLE {}", roles.owner()),
        format!(
            "CREATE TABLE {s}.reencryptions (\n    \
             tenant_id uuid NOT NULL REFERENCES {s}.tenants (id),\n    \
             record_type text NOT NULL,\n    \
             after_id uuid NOT NULL,\n    \
             resealed bigint NOT NULL DEFAULT 0 CHECK (resealed >= 0),\n    \
             started_at timestamptz NOT NULL DEFAULT clock_timestamp(),\n    \
             CONSTRAINT reencryptions_pkey PRIMARY KEY (tenant_id, record_type)\n)"
        ),
    ];
    v.extend(police(
        &format!("{s}.reencryptions"),
        "reencryptions",
        "tenant_id",
        roles,
    ));
    v.push(format!(
        "GRANT SELECT, INSERT, UPDATE (after_id, resealed), DELETE ON {s}.reencryptions TO {}",
        roles.app()
    ));
    v
}

/// Seals per tenant key version, added up by every instance (`Keyring::flush_usage`), so the
/// AES-GCM limit per key holds across processes and restarts. The runtime role may read, add
/// rows and change the count; it holds counts only.
fn key_usage_migration(roles: &Roles) -> Vec<String> {
    let s = LIBRARY_SCHEMA;
    let mut v = vec![
        format!("SET LOCAL ROLE {}", roles.owner()),
        format!(
            "CREATE TABLE {s}.key_usage (\n    \
             tenant_id uuid NOT NULL REFERENCES {s}.tenants (id),\n    \
             scope smallint NOT NULL CHECK (scope IN (1, 2, 4)),\n    \
             version integer NOT NULL CHECK (version > 0),\n    \
             seals bigint NOT NULL CHECK (seals >= 0),\n    \
             CONSTRAINT key_usage_pkey PRIMARY KEY (tenant_id, scope, version)\n)"
        ),
    ];
    v.extend(police(
        &format!("{s}.key_usage"),
        "key_usage",
        "tenant_id",
        roles,
    ));
    v.push(format!(
        "GRANT SELECT, INSERT, UPDATE (seals) ON {s}.key_usage TO {}",
        roles.app()
    ));
    v
}

/// An append-only tenant table of the library: created, policed like every tenant table, and
/// granted to the runtime role for reading and for inserting `columns` only (no UPDATE, no
/// DELETE: its history cannot be rewritten; `recorded_at`, left out, stays the database's
/// clock).
fn append_only(roles: &Roles, table: &str, create: String, columns: &str) -> Vec<String> {
    let mut v = vec![create];
    v.extend(police(
        &format!("{LIBRARY_SCHEMA}.{table}"),
        table,
        "tenant_id",
        roles,
    ));
    v.push(format!(
        "GRANT SELECT, INSERT ({columns}) ON {LIBRARY_SCHEMA}.{table} TO {}",
        roles.app()
    ));
    v
}

/// The runtime role may delete a request (its steps follow by cascade), and only once its answer
/// (a final step) was recorded, by the database's clock, more than 24 months ago: the retention
/// sweep's deleting capability is bounded by the database, not by the caller's clock.
fn requests_retention_migration(roles: &Roles) -> Vec<String> {
    let (owner, app) = (roles.owner(), roles.app());
    let s = LIBRARY_SCHEMA;
    vec![
        format!("SET LOCAL ROLE {owner}"),
        format!(
            "ALTER TABLE {s}.subject_request_steps \
             DROP CONSTRAINT subject_request_steps_request_fkey, \
             ADD CONSTRAINT subject_request_steps_request_fkey FOREIGN KEY (tenant_id, request_id) \
             REFERENCES {s}.subject_requests (tenant_id, id) ON DELETE CASCADE"
        ),
        format!(
            "CREATE FUNCTION {s}.subject_requests_kept() RETURNS trigger LANGUAGE plpgsql \
             SET search_path = '' AS $$ BEGIN \
             IF NOT EXISTS (SELECT 1 FROM {s}.subject_request_steps st \
             WHERE st.tenant_id = OLD.tenant_id AND st.request_id = OLD.id \
             AND st.step IN ('complete', 'refuse', 'verification_failed') \
             AND st.recorded_at < pg_catalog.now() - interval '24 months') THEN \
             RAISE EXCEPTION 'records of data-subject requests are kept for 24 months after their answer' \
             USING ERRCODE = '42501'; \
             END IF; RETURN OLD; END $$"
        ),
        format!(
            "CREATE TRIGGER subject_requests_kept BEFORE DELETE ON {s}.subject_requests \
             FOR EACH ROW EXECUTE FUNCTION {s}.subject_requests_kept()"
        ),
        format!("GRANT DELETE ON {s}.subject_requests TO {app}"),
    ]
}

fn key_states_migration(owner: &str) -> Vec<String> {
    let s = LIBRARY_SCHEMA;
    vec![
        format!("SET LOCAL ROLE {owner}"),
        format!(
            "CREATE FUNCTION {s}.keys_forward_only() RETURNS trigger \
             LANGUAGE plpgsql SET search_path = '' AS $$ BEGIN \
             IF (NEW.tenant_id, NEW.scope, NEW.subject_id, NEW.version) \
                IS DISTINCT FROM (OLD.tenant_id, OLD.scope, OLD.subject_id, OLD.version) THEN \
               RAISE EXCEPTION 'a key row never changes identity' USING ERRCODE = 'check_violation'; \
             END IF; \
             IF OLD.state = 'destroyed' THEN \
               RAISE EXCEPTION 'a destroyed key stays destroyed' USING ERRCODE = 'check_violation'; \
             END IF; \
             IF array_position(ARRAY['active', 'decrypt_only', 'retired', 'destroyed'], NEW.state) \
                < array_position(ARRAY['active', 'decrypt_only', 'retired', 'destroyed'], OLD.state) THEN \
               RAISE EXCEPTION 'key states only move forward' USING ERRCODE = 'check_violation'; \
             END IF; \
             IF NEW.wrapped IS DISTINCT FROM OLD.wrapped AND NEW.state <> 'destroyed' \
                AND NEW.state <> OLD.state THEN \
               RAISE EXCEPTION 'wrapped bytes change only by re-wrapping or destruction' \
                 USING ERRCODE = 'check_violation'; \
             END IF; \
             RETURN NEW; END $$"
        ),
        format!("REVOKE ALL ON FUNCTION {s}.keys_forward_only() FROM PUBLIC"),
        format!(
            "CREATE TRIGGER keys_forward_only BEFORE UPDATE ON {s}.keys \
             FOR EACH ROW EXECUTE FUNCTION {s}.keys_forward_only()"
        ),
    ]
}

/// The body of `plenum.audit_sequence()`, as migration 7 writes it and the verifier expects it:
/// numbers the current tenant's committed, unnumbered events in append order from its head,
/// under the head's row lock (held until the caller's transaction ends), and moves the head.
pub(crate) fn sequencer_body() -> String {
    let s = LIBRARY_SCHEMA;
    format!(
        " DECLARE v_tenant uuid := {CONTEXT_FUNCTION}(); v_size bigint; v_numbered bigint; \
         BEGIN \
         IF v_tenant IS NULL THEN \
           RAISE EXCEPTION 'no tenant context' USING ERRCODE = 'insufficient_privilege'; \
         END IF; \
         INSERT INTO {s}.audit_heads (tenant_id, size) VALUES (v_tenant, 0) \
           ON CONFLICT (tenant_id) DO NOTHING; \
         SELECT h.size INTO v_size FROM {s}.audit_heads h WHERE h.tenant_id = v_tenant FOR UPDATE; \
         WITH pending AS (SELECT p.entry, pg_catalog.row_number() OVER (ORDER BY p.entry) - 1 AS i \
           FROM {s}.audit_log p WHERE p.tenant_id = v_tenant AND p.seq IS NULL) \
         UPDATE {s}.audit_log l SET seq = v_size + pending.i FROM pending \
           WHERE l.tenant_id = v_tenant AND l.entry = pending.entry; \
         GET DIAGNOSTICS v_numbered = ROW_COUNT; \
         IF v_numbered > 0 THEN \
           UPDATE {s}.audit_heads h SET size = h.size + v_numbered WHERE h.tenant_id = v_tenant; \
         END IF; \
         RETURN v_numbered; \
         END "
    )
}

/// Migration 7: only the sequencer numbers events, and only in append order. The runtime role
/// loses UPDATE of `seq` and of the heads (it could number pending events in any order and
/// move a head, and the next checkpoint would sign that), and its view of `entry` (a counter
/// shared by all tenants: B would see how many events happened elsewhere). The sequencer is a
/// `SECURITY DEFINER` function owned by the owner, which acts only within the caller's verified
/// tenant (an owner policy with the canonical predicate on the two tables it writes). SQL text
/// only.
fn sequencer_migration(roles: &Roles) -> Vec<String> {
    let (owner, app) = (roles.owner(), roles.app());
    let s = LIBRARY_SCHEMA;
    let p = crate::table::tenant_predicate("tenant_id");
    let mut v = vec![format!("SET LOCAL ROLE {owner}")];
    for table in ["audit_log", "audit_heads"] {
        v.push(format!(
            "CREATE POLICY {table}_sequencer ON {s}.{table} AS PERMISSIVE FOR ALL TO {owner} \
             USING ({p}) WITH CHECK ({p})"
        ));
    }
    v.extend([
        format!(
            "CREATE FUNCTION {s}.audit_sequence() RETURNS bigint \
             LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = '' \
             AS $${body}$$",
            body = sequencer_body()
        ),
        format!("REVOKE ALL ON FUNCTION {s}.audit_sequence() FROM PUBLIC"),
        format!("GRANT EXECUTE ON FUNCTION {s}.audit_sequence() TO {app}"),
        format!("REVOKE INSERT, UPDATE ON {s}.audit_heads FROM {app}"),
        format!("REVOKE SELECT, UPDATE ON {s}.audit_log FROM {app}"),
        format!(
            "GRANT SELECT (tenant_id, seq, event_id, at, leaf_hash, body, recorded_at), \
             UPDATE (body) ON {s}.audit_log TO {app}"
        ),
    ]);
    v
}

/// The per-tenant audit log. An access appends its event in its own transaction as a plain
/// insert (no lock, no counter): `entry` orders appends, `seq` is NULL until the sequencer
/// (`AuditLog::sequence`, run by every checkpoint) numbers the committed events of a tenant
/// gaplessly under that tenant's head row. The runtime role may read and append; the only
/// changes it may make, enforced by a trigger, are the sequencer's (a NULL `seq` set once) and
/// retention's (a body older than two years set to NULL). SQL text only (a data table).
fn audit_migration(roles: &Roles) -> Vec<String> {
    let (owner, app, admin) = (roles.owner(), roles.app(), roles.admin());
    let s = LIBRARY_SCHEMA;
    let mut v = vec![
        format!("SET LOCAL ROLE {owner}"),
        format!(
            "CREATE TABLE {s}.audit_heads (\n    \
             tenant_id uuid PRIMARY KEY REFERENCES {s}.tenants (id),\n    \
             size bigint NOT NULL CHECK (size >= 0)\n)"
        ),
        format!(
            "CREATE TABLE {s}.audit_log (\n    \
             tenant_id uuid NOT NULL REFERENCES {s}.tenants (id),\n    \
             entry bigint GENERATED ALWAYS AS IDENTITY,\n    \
             seq bigint CHECK (seq >= 0),\n    \
             event_id uuid NOT NULL,\n    \
             at timestamptz NOT NULL,\n    \
             leaf_hash bytea NOT NULL CHECK (length(leaf_hash) = 32),\n    \
             body text,\n    \
             recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),\n    \
             CONSTRAINT audit_log_pkey PRIMARY KEY (tenant_id, entry),\n    \
             CONSTRAINT audit_log_body_until_numbered CHECK (body IS NOT NULL OR seq IS NOT NULL)\n)"
        ),
        format!(
            "CREATE UNIQUE INDEX audit_log_seq_key ON {s}.audit_log (tenant_id, seq) \
             WHERE seq IS NOT NULL"
        ),
        format!(
            "CREATE INDEX audit_log_pending_idx ON {s}.audit_log (tenant_id, entry) \
             WHERE seq IS NULL"
        ),
        format!(
            "CREATE TABLE {s}.audit_checkpoints (\n    \
             tenant_id uuid NOT NULL REFERENCES {s}.tenants (id),\n    \
             size bigint NOT NULL CHECK (size >= 0),\n    \
             issued_at timestamptz NOT NULL,\n    \
             note text NOT NULL,\n    \
             frontier bytea NOT NULL,\n    \
             CONSTRAINT audit_checkpoints_pkey PRIMARY KEY (tenant_id, size, issued_at)\n)"
        ),
        format!(
            "CREATE FUNCTION {s}.audit_heads_guard() RETURNS trigger LANGUAGE plpgsql \
             SET search_path = '' AS $$ BEGIN \
             IF NEW.tenant_id <> OLD.tenant_id OR NEW.size < OLD.size THEN \
             RAISE EXCEPTION 'an audit head only moves forward' USING ERRCODE = '42501'; \
             END IF; RETURN NEW; END $$"
        ),
        format!(
            "CREATE TRIGGER audit_heads_guard BEFORE UPDATE ON {s}.audit_heads \
             FOR EACH ROW EXECUTE FUNCTION {s}.audit_heads_guard()"
        ),
        format!(
            "CREATE FUNCTION {s}.audit_log_guard() RETURNS trigger LANGUAGE plpgsql \
             SET search_path = '' AS $$ BEGIN \
             IF TG_OP = 'DELETE' \
             OR (NEW.tenant_id, NEW.entry, NEW.event_id, NEW.at, NEW.leaf_hash, NEW.recorded_at) \
             IS DISTINCT FROM (OLD.tenant_id, OLD.entry, OLD.event_id, OLD.at, OLD.leaf_hash, OLD.recorded_at) \
             OR (OLD.seq IS NOT NULL AND NEW.seq IS DISTINCT FROM OLD.seq) \
             OR (NEW.body IS DISTINCT FROM OLD.body AND NEW.body IS NOT NULL) THEN \
             RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = '42501'; \
             END IF; \
             IF NEW.body IS DISTINCT FROM OLD.body \
             AND OLD.recorded_at > pg_catalog.now() - interval '2 years' THEN \
             RAISE EXCEPTION 'audit event bodies are kept for two years' USING ERRCODE = '42501'; \
             END IF; RETURN NEW; END $$"
        ),
        format!(
            "CREATE TRIGGER audit_log_guard BEFORE UPDATE OR DELETE ON {s}.audit_log \
             FOR EACH ROW EXECUTE FUNCTION {s}.audit_log_guard()"
        ),
        format!("REVOKE ALL ON FUNCTION {s}.audit_heads_guard() FROM PUBLIC"),
        format!("REVOKE ALL ON FUNCTION {s}.audit_log_guard() FROM PUBLIC"),
    ];
    for (table, short) in [
        ("audit_heads", "audit_heads"),
        ("audit_log", "audit_log"),
        ("audit_checkpoints", "audit_checkpoints"),
    ] {
        v.extend(police(&format!("{s}.{table}"), short, "tenant_id", roles));
    }
    v.extend([
        format!("GRANT SELECT, INSERT, UPDATE (size) ON {s}.audit_heads TO {app}"),
        // recorded_at is the database's clock and entry its counter: the runtime role can set
        // neither, so it cannot date an event into the retention window or reorder appends.
        format!(
            "GRANT SELECT, INSERT (tenant_id, event_id, at, leaf_hash, body), \
             UPDATE (seq, body) ON {s}.audit_log TO {app}"
        ),
        format!("GRANT SELECT, INSERT ON {s}.audit_checkpoints TO {app}"),
        // The platform log (admin transactions): a reserved tenant, registered here (the owner
        // is bound by forced RLS, so it is lifted for this one insert), and the admin role's
        // right to append to that log and no other.
        format!("ALTER TABLE {s}.tenants NO FORCE ROW LEVEL SECURITY"),
        format!(
            "INSERT INTO {s}.tenants (id) VALUES ('{}') ON CONFLICT (id) DO NOTHING",
            crate::contract::PLATFORM_LOG
        ),
        format!("ALTER TABLE {s}.tenants FORCE ROW LEVEL SECURITY"),
        format!(
            "CREATE POLICY audit_log_admin_append ON {s}.audit_log AS PERMISSIVE FOR INSERT \
             TO {admin} WITH CHECK (tenant_id = '{}'::uuid)",
            crate::contract::PLATFORM_LOG
        ),
        format!(
            "GRANT INSERT (tenant_id, event_id, at, leaf_hash, body) ON {s}.audit_log TO {admin}"
        ),
    ]);
    v
}

fn migration(version: i64, description: &'static str, statements: &[String]) -> Migration {
    // Back to the migrator before sqlx records the migration in its history table (which the
    // migrator, not the owner, created).
    let sql = statements.join(";\n") + ";\nRESET ROLE;\n";
    Migration::new(
        version,
        Cow::Borrowed(description),
        MigrationType::Simple,
        AssertSqlSafe(sql).into_sql_str(),
        false,
    )
}

/// A sqlx migrator for the library's migrations, keeping its history in
/// `plenum._sqlx_migrations`.
pub(crate) fn migrator(roles: &Roles) -> Migrator {
    let mut m = Migrator::with_migrations(library_migrations(roles));
    m.dangerous_set_table_name(format!("{LIBRARY_SCHEMA}._sqlx_migrations"));
    m
}

/// DDL for extra tables, prefixed with `SET LOCAL ROLE` so the owner owns them.
pub(crate) fn owned_ddl(roles: &Roles, ddl: Vec<String>) -> String {
    let mut all = vec![format!("SET LOCAL ROLE {}", roles.owner())];
    all.extend(ddl);
    all.join(";\n") + ";\n"
}
