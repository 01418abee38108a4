//! Shared fixtures of the integration suites: the two backends (`Env`), unrestricted grants for
//! storage tests, a recording access hook, the example customer, consent evidence, and
//! recording consent without the begin/record/commit ceremony.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test fixtures: a failed set-up is a failed test"
)]

use std::sync::{Arc, LazyLock, Mutex};

use chrono::{TimeZone as _, Utc};
use plenum::consent::{ConsentEvent, Evidence, Method};
use plenum::crypto::secrecy::SecretBox;
use plenum::crypto::{Backend, Keyring, KeyringConfig, LocalKeyProvider};
use plenum::prelude::*;
use plenum::store::{
    Access, Authorisation, BackendKind, DbKeyStore, Error, Gate, PurposeGrant, Request,
};
use plenum_hvac::Customer;
use plenum_test::pg::TestDb;

/// The gate of these storage tests: one role that may take unrestricted grants.
static GATE: LazyLock<Gate> = LazyLock::new(|| {
    Gate::new(
        Policy::plenum_default(),
        Authorisation::new().allow_unrestricted(plenum::core::role!("migrator")),
    )
});

/// An unrestricted grant in `tenant`: these tests are about storage, tenancy and keys; purposes
/// are tested in `consent.rs`. The request is leaked so the grant can be `'static` in a test.
pub(crate) fn grant(tenant: TenantId) -> PurposeGrant<'static> {
    GATE.unrestricted(request(tenant), "storage test").unwrap()
}

/// A request in `tenant` by a system job that may take unrestricted grants, leaked so it can be
/// `'static` in a test.
pub(crate) fn request(tenant: TenantId) -> &'static Request {
    let actor = Actor::new(ActorKind::SystemJob, ActorId::generate())
        .with_role(plenum::core::role!("migrator"));
    Box::leak(Box::new(Request::new(tenant, actor)))
}

/// A recording hook: what a test sees of every operation.
#[derive(Default)]
pub(crate) struct Recorded(Mutex<Vec<Access>>);

impl Recorded {
    pub(crate) fn take(&self) -> Vec<Access> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl AccessHook for Recorded {
    fn on_access<'a>(
        &'a self,
        _tx: &'a mut TenantTx,
        access: &'a Access,
    ) -> plenum::crypto::BoxFuture<'a, Result<(), Error>> {
        self.0.lock().unwrap().push(access.clone());
        Box::pin(async { Ok(()) })
    }
}

pub(crate) struct Env {
    pub(crate) pool: TenantPool,
    pub(crate) records: Records,
    pub(crate) hook: Arc<Recorded>,
    pub(crate) db: Option<TestDb>,
    pub(crate) keys: Arc<DbKeyStore>,
}

/// A keyring over `keys`: each call is another process's keyring (cold caches).
pub(crate) fn keyring(keys: &Arc<DbKeyStore>) -> Arc<Keyring> {
    let root = SecretBox::new(Box::new([0x42u8; 32]));
    Arc::new(Keyring::new(
        Arc::new(LocalKeyProvider::new(Backend::default(), 1, &root).unwrap()),
        keys.clone(),
        KeyringConfig::default(),
    ))
}

impl Env {
    pub(crate) async fn sqlite() -> Self {
        let pool = TenantPool::sqlite(None, &plenum_hvac::tables())
            .await
            .unwrap();
        Self::with(pool, None)
    }

    pub(crate) async fn postgres() -> Self {
        let db = TestDb::create(&plenum_hvac::tables()).await;
        let pool = db.app(4).await;
        Self::with(pool, Some(db))
    }

    fn with(pool: TenantPool, db: Option<TestDb>) -> Self {
        let hook = Arc::new(Recorded::default());
        let keys = Arc::new(DbKeyStore::new(pool.clone()));
        let records = Records::new(keyring(&keys), hook.clone())
            .with_record_types(plenum_hvac::record_types());
        Self {
            pool,
            records,
            hook,
            db,
            keys,
        }
    }

    /// Both backends, PostgreSQL first.
    pub(crate) async fn both() -> [Self; 2] {
        [Self::postgres().await, Self::sqlite().await]
    }

    pub(crate) fn name(&self) -> &'static str {
        match self.pool.backend() {
            BackendKind::Postgres => "postgres",
            _ => "sqlite",
        }
    }

    pub(crate) async fn tenant(&self) -> TenantId {
        let t = TenantId::generate();
        self.pool.register_tenant(t).await.unwrap();
        t
    }

    /// Every stored byte of a table's row, as the owner/superuser sees it (no RLS, no
    /// decryption): what a database dump or a stolen backup holds.
    pub(crate) async fn raw_bytes(&self, table: &str, columns: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for column in columns {
            let sql = format!("SELECT {column} FROM {table}");
            let values: Vec<Option<Vec<u8>>> = match &self.db {
                Some(db) => {
                    let su = db.superuser().await;
                    let sql = format!("SELECT {column} FROM app.{table}");
                    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .fetch_all(&su)
                        .await
                        .unwrap()
                }
                None => {
                    let mut tx = self.pool.begin(TenantId::generate()).await.unwrap();
                    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .fetch_all(tx.dangerous_sqlite().unwrap())
                        .await
                        .unwrap()
                }
            };
            for v in values.into_iter().flatten() {
                out.extend_from_slice(&v);
                out.push(0);
            }
        }
        out
    }

    /// Runs one raw statement bypassing the library (superuser on PostgreSQL): the attacker
    /// with write access to the database.
    pub(crate) async fn tamper(&self, sql: &str) {
        match &self.db {
            Some(db) => {
                let su = db.superuser().await;
                let sql = sql.replace(" customers", " app.customers");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&su)
                    .await
                    .unwrap();
            }
            None => {
                let mut tx = self.pool.begin(TenantId::generate()).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(tx.dangerous_sqlite().unwrap())
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        }
    }
}

pub(crate) fn customer(tenant: TenantId, email: &str, phone: &str) -> Customer {
    Customer {
        id: RecordId::generate(),
        tenant,
        subject: SubjectId::generate(),
        name: Encrypted::new("Ada Lovelace".to_owned()),
        email: Encrypted::new(email.to_owned()),
        phone: Encrypted::new(phone.to_owned()),
        service_address: Encrypted::new("12 Furnace Lane, Springfield".to_owned()),
        created_at: Utc.with_ymd_and_hms(2026, 11, 27, 9, 30, 0).unwrap(),
    }
}

/// A property of `c`'s, owned by the same subject.
pub(crate) fn property(c: &Customer) -> plenum_hvac::Property {
    plenum_hvac::Property {
        id: RecordId::generate(),
        tenant: c.tenant,
        subject: c.subject,
        customer_id: c.id,
        address: Encrypted::new("12 Furnace Lane".to_owned()),
        square_feet: Some(1850),
    }
}

/// A unit installed at `p`.
pub(crate) fn equipment(p: &plenum_hvac::Property) -> plenum_hvac::Equipment {
    plenum_hvac::Equipment {
        id: RecordId::generate(),
        tenant: p.tenant,
        subject: p.subject,
        property_id: p.id,
        model: "Carrier 59MN7".to_owned(),
        serial: Encrypted::new("SN-4471-XQ".to_owned()),
        installed_on: chrono::NaiveDate::from_ymd_opt(2021, 4, 2),
    }
}

/// Consent evidence collected now through the UI, for notice `privacy-2026-11`.
pub(crate) fn evidence() -> Evidence {
    Evidence {
        notice_version: "privacy-2026-11".to_owned(),
        notice_sha256: [9; 32],
        method: Method::Ui,
        actor: ActorId::generate(),
        at: Utc::now(),
    }
}

impl Env {
    /// Library table `name` as raw SQL spells it on this backend (`plenum.x` / `plenum_x`).
    pub(crate) fn library_table(&self, name: &str) -> String {
        match self.pool.backend() {
            BackendKind::Postgres => format!("plenum.{name}"),
            _ => format!("plenum_{name}"),
        }
    }

    /// Runs `statement` as raw SQL in a transaction of `tenant` (as the runtime role on
    /// PostgreSQL), then drops the transaction: what SQL an attacker controls inside one
    /// tenant's transaction can do.
    pub(crate) async fn raw_in_tenant(
        &self,
        tenant: TenantId,
        statement: &str,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin(tenant).await.unwrap();
        let sql = || sqlx::AssertSqlSafe(statement.to_owned());
        match self.pool.backend() {
            BackendKind::Postgres => sqlx::query(sql())
                .execute(tx.dangerous_postgres().unwrap())
                .await
                .map(|_| ()),
            _ => sqlx::query(sql())
                .execute(tx.dangerous_sqlite().unwrap())
                .await
                .map(|_| ()),
        }
    }

    /// Records `event` in `tx` under an unrestricted grant (an import), which must succeed.
    pub(crate) async fn consent(&self, tx: &mut TenantTx, tenant: TenantId, event: &ConsentEvent) {
        self.records
            .record_consent(tx, &grant(tenant), event)
            .await
            .unwrap();
    }
}

/// Every `.rs` file under `dir` (not descending into `target` or `.git`), for the tests that
/// scan the workspace's sources (`claims.rs`, `plaintext_paths.rs`).
pub(crate) fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            if !path.ends_with("target") && !path.ends_with(".git") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
