//! The `plenum` binary as an operator runs it, against a real PostgreSQL (a scratch database
//! with its own contract roles): migrate as the migrator, verify the contract as the runtime
//! role (and see a broken policy reported with its fix and status 1), rotate a key and
//! re-encrypt a record type (resumable: a second run moves nothing), key status, a retention
//! plan, the audit verifier on an exported log, and usage errors with status 2 that never echo
//! a secret.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failed test"
)]

use std::process::{Command, Output};
use std::sync::Arc;

use base64::Engine as _;
use plenum_audit::checkpoint::CheckpointSigner;
use plenum_core::{Actor, ActorId, ActorKind, RecordId, TenantId, role};
use plenum_crypto::signing::SigningKey;
use plenum_crypto::{Backend, Keyring, KeyringConfig, LocalKeyProvider, secrecy::SecretBox};
use plenum_hvac::{Customer, Invoice};
use plenum_store::postgres::{ContextKey, PgPoolConfig};
use plenum_store::{
    AuditLog, Auditor, Authorisation, DbKeyStore, Encrypted, Gate, Records, Request, TenantPool,
};
use plenum_test::pg::TestDb;
use serde_json::Value;

const ROOT: [u8; 32] = [0x42; 32];
const CONTEXT: [u8; 32] = [0x17; 32];

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Runs `plenum` with `args` and the environment of an operator of `db`.
fn plenum(db: &TestDb, url_role: &str, args: &[&str]) -> Output {
    let prefix = db.roles.app().strip_suffix("_app").unwrap().to_owned();
    Command::new(env!("CARGO_BIN_EXE_plenum"))
        .args(args)
        .args(["--roles", &prefix])
        .env("DATABASE_URL", db.url(url_role))
        .env("PLENUM_CONTEXT_KEY", b64(&CONTEXT))
        .env("PLENUM_ROOT_KEY", b64(&ROOT))
        .env_remove("PLENUM_OPERATOR")
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "status {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn an_operator_migrates_verifies_rotates_reencrypts_and_plans() {
    let db = TestDb::create_empty().await;
    let out = plenum(&db, &db.roles.migrator(), &["migrate", "--json"]);
    assert_eq!(json(&out)["migrated"], true);
    let out = plenum(&db, &db.roles.app(), &["contract", "verify", "--json"]);
    let report = json(&out);
    assert_eq!(report["findings"].as_array().unwrap().len(), 0, "{report}");
    assert!(report["tenant_tables"].as_u64().unwrap() > 10);
    // Without a URL, the standard PG* variables.
    let url = db.url(&db.roles.app());
    let (user, rest) = url
        .strip_prefix("postgres://")
        .unwrap()
        .split_once('@')
        .unwrap();
    let (address, database) = rest.split_once('/').unwrap();
    let (host, port) = address.split_once(':').unwrap();
    let from_env = Command::new(env!("CARGO_BIN_EXE_plenum"))
        .args(["contract", "verify", "--json"])
        .args(["--roles", db.roles.app().strip_suffix("_app").unwrap()])
        .env_remove("DATABASE_URL")
        .env("PGHOST", host)
        .env("PGPORT", port)
        .env("PGUSER", user)
        .env("PGDATABASE", database)
        .env("PLENUM_CONTEXT_KEY", b64(&CONTEXT))
        .output()
        .unwrap();
    assert_eq!(json(&from_env)["findings"], report["findings"]);

    // The service's data, written through the library with the same keys.
    let pool = TenantPool::connect_postgres(
        &db.url(&db.roles.app()),
        &PgPoolConfig::with_max_connections(2).with_context_key(ContextKey::from_bytes(CONTEXT)),
    )
    .await
    .unwrap();
    let keyring = Arc::new(Keyring::new(
        Arc::new(
            LocalKeyProvider::new(Backend::default(), 1, &SecretBox::new(Box::new(ROOT))).unwrap(),
        ),
        Arc::new(DbKeyStore::new(pool.clone())),
        KeyringConfig::default(),
    ));
    let auditor = Auditor::new(keyring.clone(), &pool, "cli-test").unwrap();
    let records =
        Records::new(keyring, Arc::new(auditor)).with_record_types(plenum_hvac::record_types());
    let t = TenantId::generate();
    pool.register_tenant(t).await.unwrap();
    let actor = Actor::new(ActorKind::AccountUser, ActorId::generate()).with_role(role!("office"));
    let gate = Gate::new(
        plenum_consent::Policy::plenum_default(),
        Authorisation::new().allow_unrestricted(role!("office")),
    );
    let request = Request::new(t, actor);
    let grant = gate.unrestricted(&request, "import").unwrap();
    let c = Customer {
        id: RecordId::generate(),
        tenant: t,
        subject: plenum_core::SubjectId::generate(),
        name: Encrypted::new("Ann".to_owned()),
        email: Encrypted::new("ann@example.com".to_owned()),
        phone: Encrypted::new("2175550199".to_owned()),
        service_address: Encrypted::new("1 Elm St".to_owned()),
        created_at: chrono::Utc::now(),
    };
    let bills: Vec<Invoice> = (0..3)
        .map(|i| Invoice {
            id: RecordId::generate(),
            tenant: t,
            subject: c.subject,
            customer_id: c.id,
            amount_cents: Encrypted::new(1_000 + i),
            currency: "USD".to_owned(),
            // Past their seven years: `retention run` deletes them.
            due_on: chrono::NaiveDate::from_ymd_opt(2018, 12, 1).unwrap(),
            paid: false,
        })
        .collect();
    let mut tx = pool.begin(t).await.unwrap();
    records
        .repository::<Customer>()
        .insert(&mut tx, &grant, &c)
        .await
        .unwrap();
    records
        .repository::<Invoice>()
        .insert_many(&mut tx, &grant, &bills)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let tenant = t.to_string();
    let out = plenum(
        &db,
        &db.roles.app(),
        &[
            "keys", "rotate", "--tenant", &tenant, "--scope", "data", "--json",
        ],
    );
    assert_eq!(json(&out)["active"], 2);
    let out = plenum(
        &db,
        &db.roles.app(),
        &["keys", "status", "--tenant", &tenant, "--json"],
    );
    let status = json(&out);
    let data = &status["scopes"][0]["versions"];
    assert_eq!(data.as_array().unwrap().len(), 2, "{status}");
    let amounts: Vec<&Value> = status["values"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["record_type"] == "invoices")
        .collect();
    assert_eq!(amounts.len(), 1, "{status}");
    assert_eq!(
        (
            amounts[0]["version"].as_u64(),
            amounts[0]["values"].as_u64()
        ),
        (Some(1), Some(3))
    );
    let reencrypt = [
        "keys",
        "reencrypt",
        "--tenant",
        &tenant,
        "--record-type",
        "invoices",
        "--page",
        "2",
        "--json",
    ];
    let done = json(&plenum(&db, &db.roles.app(), &reencrypt));
    assert_eq!(
        (done["resealed"].as_u64(), done["finished"].as_bool()),
        (Some(3), Some(true)),
        "{done}"
    );
    let again = json(&plenum(&db, &db.roles.app(), &reencrypt));
    assert_eq!(again["resealed"], 0, "a second run moves nothing: {again}");
    // Every invoice still reads through the library, now under version 2.
    let mut tx = pool.begin(t).await.unwrap();
    let page = records
        .repository::<Invoice>()
        .list(&mut tx, &grant, None, 10)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3);
    assert!(
        page.items
            .iter()
            .all(|i| i.amount_cents.envelope().and_then(|e| e.key_version()) == Some(2))
    );
    tx.commit().await.unwrap();

    // A wrong root key: a clear error before anything is written.
    let wrong = Command::new(env!("CARGO_BIN_EXE_plenum"))
        .args([
            "keys",
            "reencrypt",
            "--tenant",
            &tenant,
            "--record-type",
            "invoices",
        ])
        .args(["--roles", db.roles.app().strip_suffix("_app").unwrap()])
        .env("DATABASE_URL", db.url(&db.roles.app()))
        .env("PLENUM_CONTEXT_KEY", b64(&CONTEXT))
        .env("PLENUM_ROOT_KEY", b64(&[0x24; 32]))
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("does not unwrap"), "{stderr}");

    let plan = json(&plenum(
        &db,
        &db.roles.app(),
        &["retention", "plan", "--tenant", &tenant, "--json"],
    ));
    let classes: Vec<&str> = plan["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["class"].as_str().unwrap())
        .collect();
    assert!(classes.contains(&"financial_records"), "{plan}");

    // The operator's actions are on the tenant's log; the exported log verifies with the
    // command, as it did with `plenum-audit verify`.
    let signer = CheckpointSigner::new("plenum.cli.test", SigningKey::generate()).unwrap();
    let mut tx = pool.begin(t).await.unwrap();
    AuditLog::checkpoint(&mut tx, &signer).await.unwrap();
    let export = AuditLog::export(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    let bodies: String = export
        .entries
        .iter()
        .filter_map(|e| e.body.clone())
        .collect();
    assert!(
        bodies.contains("\"action\":\"key.rotate\"")
            && bodies.contains("\"action\":\"key.reencrypt\"")
    );
    let dir = std::env::temp_dir().join(format!("plenum-cli-{}", ActorId::generate()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("export.json");
    std::fs::write(&file, serde_json::to_string(&export).unwrap()).unwrap();
    let key = signer.verifier().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_plenum"))
        .args(["audit", "verify", file.to_str().unwrap(), "--key", &key])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("verified: "));
    // A tampered body: status 1.
    let mut tampered: Value = serde_json::to_value(&export).unwrap();
    let body = tampered["entries"][0]["body"]
        .as_str()
        .unwrap()
        .replace("key.", "kez.");
    tampered["entries"][0]["body"] = Value::String(body);
    std::fs::write(&file, tampered.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_plenum"))
        .args(["audit", "verify", file.to_str().unwrap(), "--key", &key])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // The rights and retention hooks, and the log through the command alone.
    let dir = std::env::temp_dir().join(format!("plenum-cli-{}", ActorId::generate()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("subject.json");
    let subject = c.subject.to_string();
    let exported = json(&plenum(
        &db,
        &db.roles.app(),
        &[
            "rights",
            "export",
            "--tenant",
            &tenant,
            "--subject",
            &subject,
            "--out",
            file.to_str().unwrap(),
            "--json",
        ],
    ));
    assert!(exported["records"].as_u64().unwrap() >= 4, "{exported}");
    let document = std::fs::read_to_string(&file).unwrap();
    assert!(
        document.contains("ann@example.com"),
        "the subject's export opens their fields"
    );
    let swept = json(&plenum(
        &db,
        &db.roles.app(),
        &["retention", "run", "--tenant", &tenant, "--json"],
    ));
    // Deleting cannot be undone: a run never looks ahead of the clock.
    let ahead = plenum(
        &db,
        &db.roles.app(),
        &[
            "retention",
            "run",
            "--tenant",
            &tenant,
            "--at",
            "2034-01-01T00:00:00Z",
        ],
    );
    assert_eq!(ahead.status.code(), Some(2));
    let invoices_deleted = swept["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["record_type"] == "invoices")
        .map(|r| r["deleted"].as_u64().unwrap());
    assert_eq!(
        invoices_deleted,
        Some(3),
        "seven years on, the invoices go: {swept}"
    );
    let seed = b64(&[0x33; 32]);
    let signed = Command::new(env!("CARGO_BIN_EXE_plenum"))
        .args([
            "audit",
            "checkpoint",
            "--tenant",
            &tenant,
            "--name",
            "plenum.cli.ops",
            "--json",
        ])
        .args(["--roles", db.roles.app().strip_suffix("_app").unwrap()])
        .env("DATABASE_URL", db.url(&db.roles.app()))
        .env("PLENUM_CONTEXT_KEY", b64(&CONTEXT))
        .env("PLENUM_AUDIT_SIGNING_KEY", &seed)
        .output()
        .unwrap();
    let signed = json(&signed);
    let verifier = signed["verifier"].as_str().unwrap().to_owned();
    let log = Command::new(env!("CARGO_BIN_EXE_plenum"))
        .args(["audit", "export", "--tenant", &tenant])
        .args(["--roles", db.roles.app().strip_suffix("_app").unwrap()])
        .env("DATABASE_URL", db.url(&db.roles.app()))
        .env("PLENUM_CONTEXT_KEY", b64(&CONTEXT))
        .output()
        .unwrap();
    assert!(
        log.status.success(),
        "{}",
        String::from_utf8_lossy(&log.stderr)
    );
    let export_file = dir.join("log.json");
    std::fs::write(&export_file, &log.stdout).unwrap();
    let verified = Command::new(env!("CARGO_BIN_EXE_plenum"))
        .args([
            "audit",
            "verify",
            export_file.to_str().unwrap(),
            "--key",
            &verifier,
        ])
        // The checkpoint signed earlier in this test, by the library's signer.
        .args(["--key", &key])
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // Root rotation: re-wrap under version 2, then only the new root key opens the tenant.
    let prefix = db.roles.app().strip_suffix("_app").unwrap().to_owned();
    let operator = |root: [u8; 32], version: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_plenum"))
            .args(args)
            .args(["--roles", &prefix, "--tenant", &tenant, "--json"])
            .env("DATABASE_URL", db.url(&db.roles.app()))
            .env("PLENUM_CONTEXT_KEY", b64(&CONTEXT))
            .env("PLENUM_ROOT_KEY", b64(&root))
            .env("PLENUM_ROOT_KEY_VERSION", version)
            .env("PLENUM_NEW_ROOT_KEY", b64(&[0x77; 32]))
            .output()
            .unwrap()
    };
    let rewrapped = json(&operator(
        ROOT,
        "1",
        &["keys", "rewrap-root", "--to-version", "2"],
    ));
    assert!(rewrapped["rewrapped"].as_u64().unwrap() >= 2, "{rewrapped}");
    let again = json(&operator(
        ROOT,
        "1",
        &["keys", "rewrap-root", "--to-version", "2"],
    ));
    assert_eq!(again["rewrapped"], 0, "idempotent: {again}");
    json(&operator([0x77; 32], "2", &["keys", "status"]));
    let old = operator(ROOT, "1", &["keys", "status"]);
    assert_eq!(
        old.status.code(),
        Some(1),
        "the old root key opens nothing now"
    );

    // A broken contract: the finding names its fix, status 1.
    let owner = db.raw_pool(&db.roles.migrator(), 1).await;
    let break_rls = format!(
        "SET ROLE {}; ALTER TABLE app.invoices DISABLE ROW LEVEL SECURITY",
        db.roles.owner()
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(break_rls))
        .execute(&owner)
        .await
        .unwrap();
    let out = plenum(&db, &db.roles.app(), &["contract", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("app.invoices") && text.contains("fix:"),
        "{text}"
    );
}

#[test]
fn usage_errors_exit_2_and_never_echo_a_secret() {
    let canary = "c2VjcmV0LWNhbmFyeS12YWx1ZS0xMjM0NTY3ODkw";
    let out = Command::new(env!("CARGO_BIN_EXE_plenum"))
        .args([
            "keys",
            "status",
            "--tenant",
            "not-a-tenant",
            "--database-url",
            "postgres://127.0.0.1:1/x",
        ])
        .env("PLENUM_ROOT_KEY", canary)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--tenant"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_plenum"))
        .args([
            "keys",
            "status",
            "--tenant",
            &TenantId::generate().to_string(),
            "--database-url",
            "postgres://127.0.0.1:1/x",
        ])
        .env("PLENUM_ROOT_KEY", canary)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PLENUM_ROOT_KEY") && !stderr.contains(canary),
        "{stderr}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_plenum"))
        .args(["keys", "frobnicate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_plenum"))
        .args(["--help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("reencrypt")
            || String::from_utf8_lossy(&out.stdout).contains("keys")
    );
}
