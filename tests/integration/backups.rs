//! Erasure reaches backups: a backup taken before a subject's erasure, restored after the
//! erasure epochs and the root rotation, cannot decrypt that subject, through the library or
//! with any combination of the backup's and the live key rows; every other subject still opens.
//! Real `pg_dump`/`pg_restore` on PostgreSQL, `VACUUM INTO` copies of both files on SQLite.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a panic is a failed test"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use plenum::crypto::secrecy::SecretBox;
use plenum::crypto::{
    Backend, ErrorKind as CryptoErrorKind, FieldLocator, KeyRef, KeyScope, KeyState, KeyStore,
    Keyring, KeyringConfig, LocalKeyProvider, MemoryKeyStore, Owner, StoredKey, WrappedKey,
};
use plenum::prelude::*;
use plenum::store::{DbKeyStore, DiscardAccess, ErrorKind};
use plenum_hvac::Customer;
use plenum_test::pg::{TestDb, superuser_url};
use sqlx::Row as _;

use crate::fixtures::{customer, grant};

/// A provider holding the given root key versions (1 = `[0x51; 32]`, 2 = `[0x52; 32]`).
fn provider(versions: &[u32]) -> Arc<LocalKeyProvider> {
    let mut p: Option<LocalKeyProvider> = None;
    for v in versions {
        let byte = 0x50 + u8::try_from(*v).unwrap();
        let root = SecretBox::new(Box::new([byte; 32]));
        p = Some(match p {
            None => LocalKeyProvider::new(Backend::default(), *v, &root).unwrap(),
            Some(p) => p.with_version(*v, &root).unwrap(),
        });
    }
    Arc::new(p.unwrap())
}

fn keyring(provider: Arc<LocalKeyProvider>, store: Arc<dyn KeyStore>) -> Arc<Keyring> {
    Arc::new(Keyring::new(provider, store, KeyringConfig::default()))
}

fn records(keyring: Arc<Keyring>) -> Records {
    Records::new(keyring, Arc::new(DiscardAccess)).with_record_types(plenum_hvac::record_types())
}

/// Where the database under test lives, and how to back it up and restore it.
enum Site {
    Postgres(TestDb),
    Sqlite(PathBuf),
}

/// A restored copy: a pool over it, and the raw rows of its own (backup) key table.
struct Restored {
    pool: TenantPool,
    backup_keys: Vec<StoredKey>,
    drop_db: Option<String>,
}

impl Site {
    async fn pool(&self) -> TenantPool {
        match self {
            Self::Postgres(db) => db.app(4).await,
            Self::Sqlite(path) => TenantPool::sqlite(Some(path), &plenum_hvac::tables())
                .await
                .unwrap(),
        }
    }

    /// Takes a backup now; returns where it is.
    async fn backup(&self, dir: &Path) -> PathBuf {
        match self {
            Self::Postgres(db) => {
                let file = dir.join("backup.dump");
                run(std::process::Command::new("pg_dump")
                    .arg("--format=custom")
                    .arg(format!("--file={}", file.display()))
                    .arg(db_url(&db.name)));
                file
            }
            Self::Sqlite(path) => {
                let copy = dir.join("backup.db");
                vacuum_into(path, &copy).await;
                vacuum_into(&keys_file(path), &keys_file(&copy)).await;
                copy
            }
        }
    }

    /// Restores `backup` into a fresh database (or file), reads its own key rows, and replaces
    /// them with the live key store's: the restore procedure of SECURITY.md.
    async fn restore(&self, backup: &Path, dir: &Path) -> Restored {
        match self {
            Self::Postgres(db) => {
                let name = format!("{}_restored", db.name);
                let su = sqlx::PgPool::connect(&superuser_url()).await.unwrap();
                // pg_dump without --create carries no database-level grants: the restore
                // gives the contract's roles (and only them) CONNECT again.
                for statement in [
                    format!("CREATE DATABASE {name}"),
                    format!("REVOKE ALL ON DATABASE {name} FROM PUBLIC"),
                    format!(
                        "GRANT CONNECT ON DATABASE {name} TO {}, {}, {}",
                        db.roles.migrator(),
                        db.roles.app(),
                        db.roles.admin()
                    ),
                ] {
                    sqlx::query(sqlx::AssertSqlSafe(statement))
                        .execute(&su)
                        .await
                        .unwrap();
                }
                su.close().await;
                run(std::process::Command::new("pg_restore")
                    .arg("--exit-on-error")
                    .arg(format!("--dbname={}", db_url(&name)))
                    .arg(backup));
                let restored = sqlx::PgPool::connect(&db_url(&name)).await.unwrap();
                let backup_keys = pg_keys(&restored).await;
                // The live key table replaces the backup's.
                let live_keys = dir.join("live-keys.dump");
                run(std::process::Command::new("pg_dump")
                    .arg("--format=custom")
                    .arg("--data-only")
                    .arg("--table=plenum.keys")
                    .arg(format!("--file={}", live_keys.display()))
                    .arg(db_url(&db.name)));
                sqlx::query("TRUNCATE plenum.keys")
                    .execute(&restored)
                    .await
                    .unwrap();
                restored.close().await;
                run(std::process::Command::new("pg_restore")
                    .arg("--exit-on-error")
                    .arg("--data-only")
                    .arg("--disable-triggers")
                    .arg(format!("--dbname={}", db_url(&name)))
                    .arg(&live_keys));
                let app = db.url(&db.roles.app());
                let url = format!("{}/{name}", app.rsplit_once('/').unwrap().0);
                let pool = TenantPool::connect_postgres(&url, &db.pool_config(4))
                    .await
                    .unwrap();
                Restored {
                    pool,
                    backup_keys,
                    drop_db: Some(name),
                }
            }
            Self::Sqlite(live) => {
                let target = dir.join("restored.db");
                std::fs::copy(backup, &target).unwrap();
                let backup_keys = sqlite_keys(&keys_file(backup)).await;
                // The live key file goes beside the restored data file.
                vacuum_into(&keys_file(live), &keys_file(&target)).await;
                let pool = TenantPool::sqlite(Some(&target), &plenum_hvac::tables())
                    .await
                    .unwrap();
                Restored {
                    pool,
                    backup_keys,
                    drop_db: None,
                }
            }
        }
    }

    /// The live key rows, raw.
    async fn live_keys(&self) -> Vec<StoredKey> {
        match self {
            Self::Postgres(db) => {
                let su = sqlx::PgPool::connect(&db_url(&db.name)).await.unwrap();
                let keys = pg_keys(&su).await;
                su.close().await;
                keys
            }
            Self::Sqlite(path) => sqlite_keys(&keys_file(path)).await,
        }
    }
}

fn db_url(name: &str) -> String {
    let base = superuser_url();
    let (server, _) = base.rsplit_once('/').unwrap();
    format!("{server}/{name}")
}

fn keys_file(data: &Path) -> PathBuf {
    let mut name = data.as_os_str().to_owned();
    name.push(".keys");
    PathBuf::from(name)
}

fn run(command: &mut std::process::Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A consistent copy of a live SQLite file, as `sqlite3 .backup` would take it.
async fn vacuum_into(from: &Path, to: &Path) {
    let _ = std::fs::remove_file(to);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", from.display()))
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "VACUUM INTO '{}'",
        to.display()
    )))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}

fn stored(
    tenant: uuid::Uuid,
    scope: i64,
    subject: uuid::Uuid,
    version: i64,
    state: &str,
    wrapped: Option<Vec<u8>>,
) -> StoredKey {
    let scope = match scope {
        1 => KeyScope::TenantData,
        2 => KeyScope::TenantIndex,
        3 => KeyScope::Subject(SubjectId::from_trusted_uuid(subject)),
        4 => KeyScope::SubjectWrap,
        other => panic!("scope {other}"),
    };
    StoredKey {
        key_ref: KeyRef {
            tenant: TenantId::from_trusted_uuid(tenant),
            scope,
            version: u32::try_from(version).unwrap(),
        },
        state: KeyState::parse(state).unwrap(),
        wrapped: wrapped.map(WrappedKey::from_bytes),
    }
}

async fn pg_keys(pool: &sqlx::PgPool) -> Vec<StoredKey> {
    sqlx::query(
        "SELECT tenant_id, scope::int8, subject_id, version::int8, state, wrapped FROM plenum.keys",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|r| stored(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
    .collect()
}

async fn sqlite_keys(file: &Path) -> Vec<StoredKey> {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    let rows = sqlx::query(
        "SELECT tenant_id, scope, subject_id, version, state, wrapped FROM plenum_keys",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.into_iter()
        .map(|r| {
            let t: Vec<u8> = r.get(0);
            let s: Vec<u8> = r.get(2);
            stored(
                uuid::Uuid::from_slice(&t).unwrap(),
                r.get(1),
                uuid::Uuid::from_slice(&s).unwrap(),
                r.get(3),
                r.get(4),
                r.get(5),
            )
        })
        .collect()
}

/// The adversary's best key table: every live row, and every backup row whose key the live
/// store no longer holds (destroyed or absent).
async fn best_of(live: &[StoredKey], backup: &[StoredKey]) -> Arc<MemoryKeyStore> {
    let store = Arc::new(MemoryKeyStore::new());
    for k in live.iter().filter(|k| k.wrapped.is_some()) {
        store.insert(k.clone()).await.unwrap();
    }
    for k in backup.iter().filter(|k| k.wrapped.is_some()) {
        store.insert(k.clone()).await.unwrap();
    }
    store
}

/// Opens the customer's email envelope as it is stored in `pool` with `keyring`, bypassing
/// every repository check: raw key material against raw rows.
async fn raw_open_email(
    pool: &TenantPool,
    keyring: &Keyring,
    c: &Customer,
) -> Result<String, CryptoErrorKind> {
    let mut tx = pool.begin(c.tenant).await.unwrap();
    let envelope: Vec<u8> = match tx.dangerous_postgres() {
        Some(conn) => sqlx::query_scalar("SELECT email FROM app.customers WHERE id = $1")
            .bind(c.id.as_uuid())
            .fetch_one(conn)
            .await
            .unwrap(),
        None => sqlx::query_scalar("SELECT email FROM customers WHERE id = ?1")
            .bind(c.id.as_uuid().as_bytes().to_vec())
            .fetch_one(tx.dangerous_sqlite().unwrap())
            .await
            .unwrap(),
    };
    tx.rollback().await.unwrap();
    let locator = FieldLocator {
        tenant: c.tenant,
        record_type: RecordType::new("customers").unwrap(),
        field: FieldName::new("email").unwrap(),
        owner: Owner::Subject(c.subject),
    };
    keyring
        .dangerous_open::<String>(&locator, c.id, &envelope)
        .await
        .map(|p| p.expose().clone())
        .map_err(|e| e.kind())
}

#[tokio::test]
async fn a_backup_taken_before_erasure_cannot_decrypt_the_erased_subject() {
    let dir = tempdir();
    let sites = [
        Site::Postgres(TestDb::create(&plenum_hvac::tables()).await),
        Site::Sqlite(dir.join("live.db")),
    ];
    for (i, site) in sites.iter().enumerate() {
        let dir = dir.join(format!("site{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let pool = site.pool().await;
        let store: Arc<dyn KeyStore> = Arc::new(DbKeyStore::new(pool.clone()));
        let old_root = keyring(provider(&[1]), store.clone());
        let recs = records(old_root.clone());
        let t = TenantId::generate();
        pool.register_tenant(t).await.unwrap();
        let erased = customer(t, "gone@example.com", "2175550101");
        let kept = customer(t, "stays@example.com", "2175550102");
        let g = grant(t);
        let mut tx = pool.begin(t).await.unwrap();
        for c in [&erased, &kept] {
            recs.repository::<Customer>()
                .insert(&mut tx, &g, c)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();

        let backup = site.backup(&dir).await;

        let mut tx = pool.begin(t).await.unwrap();
        recs.erase_subject(&mut tx, &g, erased.subject)
            .await
            .unwrap();
        tx.commit().await.unwrap();

        // Control: before the epochs and the root rotation, the backup's own keys and the
        // live root still open the erased subject. This is what the key operations change.
        let control = site.restore(&backup, &dir).await;
        let backup_store = Arc::new(MemoryKeyStore::new());
        for k in control.backup_keys.iter().cloned() {
            backup_store.insert(k).await.unwrap();
        }
        assert_eq!(
            raw_open_email(
                &control.pool,
                &keyring(provider(&[1]), backup_store),
                &erased
            )
            .await,
            Ok("gone@example.com".to_owned()),
            "control: a backup with its own key rows and the live root opens the erased subject"
        );
        control.drop(site).await;

        // The documented key operations: two erasure epochs, then the root rotated and the old
        // root version destroyed at the provider.
        let first = old_root.advance_erasure_epoch(t).await.unwrap();
        let second = old_root.advance_erasure_epoch(t).await.unwrap();
        assert_eq!(
            (first.destroyed, second.destroyed),
            (0, 1),
            "one epoch of delay"
        );
        assert_eq!(
            second.rewrapped, 1,
            "the kept subject's key, re-wrapped once"
        );
        let rotating = keyring(provider(&[1, 2]), store.clone());
        assert!(rotating.rewrap_tenant_keys(t).await.unwrap() >= 3);
        let live = keyring(provider(&[2]), store.clone());
        let live_recs = records(live.clone());

        // The live database: the kept subject opens under the new root alone.
        let mut tx = pool.begin(t).await.unwrap();
        let got = live_recs
            .repository::<Customer>()
            .get(&mut tx, &g, kept.id)
            .await
            .unwrap();
        assert_eq!(got.email.open().unwrap().expose(), "stays@example.com");
        tx.rollback().await.unwrap();

        // The backup restored with the live key store, read through the library.
        let restored = site.restore(&backup, &dir).await;
        let restored_recs = records(live.clone());
        let mut tx = restored.pool.begin(t).await.unwrap();
        let got = restored_recs
            .repository::<Customer>()
            .get(&mut tx, &g, kept.id)
            .await
            .unwrap();
        assert_eq!(got.email.open().unwrap().expose(), "stays@example.com");
        let gone = restored_recs
            .repository::<Customer>()
            .get(&mut tx, &g, erased.id)
            .await
            .unwrap();
        assert_eq!(
            gone.email.open().unwrap_err().kind(),
            ErrorKind::KeyDestroyed
        );
        tx.rollback().await.unwrap();

        // Raw key material: the live key rows open the kept subject's backed-up envelope; the
        // adversary's best mix of backup and live key rows, with the root versions the
        // provider still holds, does not open the erased one.
        let live_rows = site.live_keys().await;
        let live_only = Arc::new(MemoryKeyStore::new());
        for k in live_rows.iter().cloned() {
            live_only.insert(k).await.unwrap();
        }
        assert_eq!(
            raw_open_email(&restored.pool, &keyring(provider(&[2]), live_only), &kept).await,
            Ok("stays@example.com".to_owned())
        );
        let mix = best_of(&live_rows, &restored.backup_keys).await;
        let adversary = keyring(provider(&[2]), mix.clone());
        assert!(
            raw_open_email(&restored.pool, &adversary, &erased)
                .await
                .is_err()
        );
        // The operator's part: had the old root version been kept, the backup would open.
        let kept_root = keyring(provider(&[1, 2]), mix);
        assert_eq!(
            raw_open_email(&restored.pool, &kept_root, &erased).await,
            Ok("gone@example.com".to_owned()),
            "the old root version must be destroyed at the provider (SECURITY.md)"
        );
        // The restore procedure's last step: erasures made after the backup are replayed, so
        // the restored rows lose the erased subject's id, plain fields and blind indexes too.
        let mut tx = restored.pool.begin(t).await.unwrap();
        restored_recs
            .erase_subject(&mut tx, &g, erased.subject)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut tx = restored.pool.begin(t).await.unwrap();
        let customers = restored_recs.repository::<Customer>();
        assert!(
            customers
                .find(&mut tx, &g, Customer::EMAIL_INDEX, "gone@example.com")
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            customers
                .find(&mut tx, &g, Customer::EMAIL_INDEX, "stays@example.com")
                .await
                .unwrap()
                .len(),
            1
        );
        tx.rollback().await.unwrap();
        restored.drop(site).await;
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

impl Restored {
    async fn drop(self, site: &Site) {
        drop(self.pool);
        if let (Some(name), Site::Postgres(_)) = (self.drop_db, site) {
            let su = sqlx::PgPool::connect(&superuser_url()).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE {name} WITH (FORCE)"
            )))
            .execute(&su)
            .await
            .unwrap();
            su.close().await;
        }
    }
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "plenum-backups-{}-{}",
        std::process::id(),
        TenantId::generate().as_uuid()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A SQLite key file written before subject-wrap keys existed (its CHECK allowed scopes 1-3
/// only, and SQLite cannot alter a CHECK) is rebuilt on open, its rows kept, and its old
/// format-1 subject keys still open and are re-wrapped by the first epoch.
#[tokio::test]
async fn a_key_file_from_before_subject_wrap_keys_is_upgraded_with_its_keys() {
    let dir = tempdir();
    let path = dir.join("old.db");
    let pool = TenantPool::sqlite(Some(&path), &plenum_hvac::tables())
        .await
        .unwrap();
    let store: Arc<dyn KeyStore> = Arc::new(DbKeyStore::new(pool.clone()));
    let ring = keyring(provider(&[1]), store.clone());
    let recs = records(ring.clone());
    let t = TenantId::generate();
    pool.register_tenant(t).await.unwrap();
    let c = customer(t, "old@example.com", "2175550103");
    let g = grant(t);
    let mut tx = pool.begin(t).await.unwrap();
    recs.repository::<Customer>()
        .insert(&mut tx, &g, &c)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    drop((recs, ring, store, pool));

    // Make the key file what an older version wrote: the old CHECK, no scope-4 rows, and the
    // subject key in wrap format 1 under the tenant data key (vectors-v1.json's layout).
    let rows = sqlite_keys(&keys_file(&path)).await;
    let tenant_data = rows
        .iter()
        .find(|k| k.key_ref.scope == KeyScope::TenantData)
        .cloned();
    let wrap = rows
        .iter()
        .find(|k| k.key_ref.scope == KeyScope::SubjectWrap)
        .unwrap()
        .clone();
    let subject = rows
        .iter()
        .find(|k| k.key_ref.scope == KeyScope::Subject(c.subject))
        .unwrap()
        .clone();
    let root = [0x51u8; 32];
    let swk = plenum::crypto::internal::unwrap(
        Backend::default(),
        root,
        wrap.wrapped.as_ref().unwrap().as_bytes(),
        &plenum::crypto::internal::wrap_context(&wrap.key_ref),
    )
    .unwrap();
    let sk = plenum::crypto::internal::unwrap(
        Backend::default(),
        plenum::crypto::internal::subject_wrap_key(swk, t, wrap.key_ref.version).unwrap(),
        subject.wrapped.as_ref().unwrap().as_bytes(),
        &plenum::crypto::internal::wrap_context(&subject.key_ref),
    )
    .unwrap();
    let tdk = [0x33u8; 32];
    let tdk_ref = KeyRef {
        tenant: t,
        scope: KeyScope::TenantData,
        version: 1,
    };
    assert!(
        tenant_data.is_none(),
        "a customer has no tenant-owned field"
    );
    let wrapped_tdk = plenum::crypto::internal::wrap(
        Backend::default(),
        root,
        1,
        tdk,
        &plenum::crypto::internal::wrap_context(&tdk_ref),
    )
    .unwrap();
    let format_1 = plenum::crypto::internal::wrap(
        Backend::default(),
        plenum::crypto::internal::subject_wrap_key(tdk, t, 1).unwrap(),
        1,
        sk,
        &plenum::crypto::internal::wrap_context(&subject.key_ref),
    )
    .unwrap();
    let keys = sqlx::SqlitePool::connect(&format!("sqlite://{}", keys_file(&path).display()))
        .await
        .unwrap();
    for statement in [
        "DROP TABLE plenum_keys",
        "CREATE TABLE plenum_keys (tenant_id blob NOT NULL, \
         scope integer NOT NULL CHECK (scope IN (1, 2, 3)), subject_id blob NOT NULL, \
         version integer NOT NULL CHECK (version > 0), state text NOT NULL, wrapped blob, \
         created_at text NOT NULL DEFAULT (datetime('now')), \
         updated_at text NOT NULL DEFAULT (datetime('now')), \
         PRIMARY KEY (tenant_id, scope, subject_id, version))",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&keys)
            .await
            .unwrap();
    }
    for (scope, subject_id, wrapped) in [
        (1i64, uuid::Uuid::nil(), wrapped_tdk),
        (3, *c.subject.as_uuid(), format_1),
    ] {
        sqlx::query("INSERT INTO plenum_keys (tenant_id, scope, subject_id, version, state, wrapped) VALUES (?1, ?2, ?3, 1, 'active', ?4)")
            .bind(t.as_uuid().as_bytes().to_vec())
            .bind(scope)
            .bind(subject_id.as_bytes().to_vec())
            .bind(wrapped)
            .execute(&keys)
            .await
            .unwrap();
    }
    keys.close().await;

    // Opened by this version: upgraded in place, the format-1 key still opens, and the first
    // epoch re-wraps it in format 2 under a new subject-wrap key (which the old CHECK refused).
    let pool = TenantPool::sqlite(Some(&path), &plenum_hvac::tables())
        .await
        .unwrap();
    let store: Arc<dyn KeyStore> = Arc::new(DbKeyStore::new(pool.clone()));
    let ring = keyring(provider(&[1]), store.clone());
    let recs = records(ring.clone());
    let mut tx = pool.begin(t).await.unwrap();
    let got = recs
        .repository::<Customer>()
        .get(&mut tx, &g, c.id)
        .await
        .unwrap();
    assert_eq!(got.email.open().unwrap().expose(), "old@example.com");
    tx.rollback().await.unwrap();
    let report = ring.advance_erasure_epoch(t).await.unwrap();
    assert_eq!(report.rewrapped, 1);
    let stored = store.load(t, KeyScope::Subject(c.subject)).await.unwrap();
    assert_eq!(stored[0].wrapped.as_ref().unwrap().as_bytes()[0], 0x02);
    let fresh = keyring(provider(&[1]), store.clone());
    let mut tx = pool.begin(t).await.unwrap();
    let got = records(fresh)
        .repository::<Customer>()
        .get(&mut tx, &g, c.id)
        .await
        .unwrap();
    assert_eq!(got.email.open().unwrap().expose(), "old@example.com");
    tx.rollback().await.unwrap();
    drop(pool);
    std::fs::remove_dir_all(&dir).unwrap();
}
