//! The price of the audit log, in one run against the local PostgreSQL.
//!
//! Two repositories over the same pool, keyring, key store and data, differing only in their
//! access hook: `DiscardAccess` (unaudited) and `Auditor` writing to the database log
//! (audited). Both go through the same purpose grant (`service.scheduling`), so the ratio is
//! the audit log alone: building the event (subject pseudonyms, canonical JSON, SHA-256), the
//! head-row update and the entry insert, in the access's own transaction.
//!
//! - **point-read**: one transaction reading one customer by id (4 encrypted fields) and
//!   committing.
//! - **read-10-in-one-tx**: ten point reads in one transaction (the flush paid once).
//! - **insert**: one transaction inserting one customer of a known subject (key cached) and
//!   committing.
//! - **point-read/audited-rolled-back**: the audited read, rolled back: the library writes the
//!   read's event in a transaction of its own (what keeps a read on record whatever the caller
//!   does with its transaction), paired with the committed audited read.
//! - **point-read/floor**: the physical floor of an audited read: the unaudited read plus one
//!   hand-written insert of an event-sized row into the same audit log table, committed (one
//!   durable write), paired with the audited read; the target is the audited read within 1.10x
//!   of it.
//! - **point-read/audited-async-commit**: the audited read with `synchronous_commit = off` for
//!   its transaction (bench only, not a library option): how much of the audited read's cost is
//!   the WAL flush that a transaction with a write pays at commit and a read-only one does not.
//! - **append-200**: 8 tasks x 25 transactions, each a `count` and a commit, all on one (empty)
//!   tenant or spread over 8 (empty) tenants; audited and unaudited. Appends take no lock, so the
//!   hot tenant should cost what the spread ones do. Throughput = 200 / time.
//! - **sequence-200**: numbering 200 pending events of one tenant and signing a checkpoint
//!   (`AuditLog::checkpoint`), the background half of an append.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "bench harness: a panic aborts the bench, and criterion's macros generate items"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use chrono::Utc;
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use plenum::audit::checkpoint::CheckpointSigner;
use plenum::consent::{Policy, Purpose};
use plenum::core::{Actor, ActorId, ActorKind, RecordId, SubjectId, TenantId, role};
use plenum::crypto::secrecy::SecretBox;
use plenum::crypto::signing::SigningKey;
use plenum::crypto::{Backend, Keyring, KeyringConfig, LocalKeyProvider};
use plenum::store::{
    AccessHook, AuditLog, Auditor, Authorisation, DbKeyStore, DiscardAccess, Encrypted, Gate,
    Record as _, Records, Repository, Request, TenantPool,
};
use plenum_benches::paired;
use plenum_hvac::Customer;
use plenum_test::pg::TestDb;
use tokio::runtime::Runtime;

static SIGNER: LazyLock<CheckpointSigner> =
    LazyLock::new(|| CheckpointSigner::new("plenum.bench", SigningKey::generate()).unwrap());

static GATE: LazyLock<Gate> = LazyLock::new(|| {
    Gate::new(
        Policy::plenum_default(),
        Authorisation::new().allow(role!("office"), [Purpose::Scheduling]),
    )
});

/// An event body of the size a point read's event has (~700 bytes of canonical JSON).
static FLOOR_BODY: LazyLock<String> =
    LazyLock::new(|| format!("{{\"floor\":\"{}\"}}", "x".repeat(690)));

fn office(tenant: TenantId) -> Request {
    Request::new(
        tenant,
        Actor::new(ActorKind::AccountUser, ActorId::generate()).with_role(role!("office")),
    )
}

fn customer(tenant: TenantId, subject: SubjectId, i: usize) -> Customer {
    Customer {
        id: RecordId::generate(),
        tenant,
        subject,
        name: Encrypted::new(format!("Customer {i}")),
        email: Encrypted::new(format!("c{i}.{}@example.com", RecordId::generate())),
        phone: Encrypted::new(format!("217555{:04}", i % 10_000)),
        service_address: Encrypted::new(format!("{i} Furnace Lane")),
        created_at: Utc::now(),
    }
}

struct Setup {
    pool: TenantPool,
    plain: Repository<Customer>,
    audited: Repository<Customer>,
    plain_records: Records,
    audited_records: Records,
    tenant: TenantId,
    ids: Vec<RecordId>,
    subjects: Vec<SubjectId>,
    next: AtomicUsize,
    spread: Vec<TenantId>,
    hot: TenantId,
}

async fn setup(db: &TestDb) -> Setup {
    let pool = db.app(8).await;
    let root = SecretBox::new(Box::new([7u8; 32]));
    let keys = Arc::new(DbKeyStore::new(pool.clone()));
    let keyring = Arc::new(Keyring::new(
        Arc::new(LocalKeyProvider::new(Backend::default(), 1, &root).unwrap()),
        keys.clone(),
        KeyringConfig::default().with_cache_capacity(20_000, 100_000),
    ));
    let auditor: Arc<dyn AccessHook> =
        Arc::new(Auditor::new(keyring.clone(), &pool, "bench").unwrap());
    let plain_records = Records::new(keyring.clone(), Arc::new(DiscardAccess))
        .with_record_types(plenum_hvac::record_types());
    let audited_records =
        Records::new(keyring, auditor).with_record_types(plenum_hvac::record_types());
    let plain = plain_records.repository::<Customer>();
    let audited = audited_records.repository::<Customer>();
    let tenant = TenantId::generate();
    pool.register_tenant(tenant).await.unwrap();
    let subjects: Vec<SubjectId> = (0..1000).map(|_| SubjectId::generate()).collect();
    let rows: Vec<Customer> = subjects
        .iter()
        .enumerate()
        .map(|(i, s)| customer(tenant, *s, i))
        .collect();
    let request = office(tenant);
    let grant = GATE.grant(&request, Purpose::Scheduling).unwrap();
    let mut tx = pool.begin(tenant).await.unwrap();
    plain.insert_many(&mut tx, &grant, &rows).await.unwrap();
    tx.commit().await.unwrap();
    let hot = TenantId::generate();
    pool.register_tenant(hot).await.unwrap();
    let mut spread = Vec::new();
    for _ in 0..8 {
        let t = TenantId::generate();
        pool.register_tenant(t).await.unwrap();
        spread.push(t);
    }
    Setup {
        pool,
        plain,
        audited,
        plain_records,
        audited_records,
        tenant,
        ids: rows.iter().map(|c| c.id).collect(),
        subjects,
        next: AtomicUsize::new(0),
        spread,
        hot,
    }
}

impl Setup {
    fn tick(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    async fn read(&self, repo: &Repository<Customer>) {
        let request = office(self.tenant);
        let grant = GATE.grant(&request, Purpose::Scheduling).unwrap();
        let id = self.ids[self.tick() % self.ids.len()];
        let mut tx = self.pool.begin(self.tenant).await.unwrap();
        let c = repo.get(&mut tx, &grant, id).await.unwrap();
        assert!(c.email.is_loaded());
        tx.commit().await.unwrap();
    }

    /// The physical floor of an audited read: the same unaudited read plus one hand-written
    /// insert of an event-sized row into the tenant's audit log (same table, policies, indexes
    /// and checks), committed: the one durable write an audited read cannot do without.
    async fn read_floor(&self) {
        let request = office(self.tenant);
        let grant = GATE.grant(&request, Purpose::Scheduling).unwrap();
        let id = self.ids[self.tick() % self.ids.len()];
        let mut tx = self.pool.begin(self.tenant).await.unwrap();
        let c = self.plain.get(&mut tx, &grant, id).await.unwrap();
        assert!(c.email.is_loaded());
        sqlx::query(
            "INSERT INTO plenum.audit_log (tenant_id, event_id, at, leaf_hash, body) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(self.tenant.as_uuid())
        .bind(RecordId::generate().as_uuid())
        .bind(Utc::now())
        .bind([7u8; 32].as_slice())
        .bind(FLOOR_BODY.as_str())
        .execute(tx.dangerous_postgres().unwrap())
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    /// The point read, then a rollback: the read's event, held by the transaction, is written
    /// by the library in a transaction of its own.
    async fn read_rolled_back(&self, repo: &Repository<Customer>) {
        let request = office(self.tenant);
        let grant = GATE.grant(&request, Purpose::Scheduling).unwrap();
        let id = self.ids[self.tick() % self.ids.len()];
        let mut tx = self.pool.begin(self.tenant).await.unwrap();
        let c = repo.get(&mut tx, &grant, id).await.unwrap();
        assert!(c.email.is_loaded());
        tx.rollback().await.unwrap();
    }

    /// Ten point reads in one transaction: the commit's WAL flush is paid once.
    async fn read_ten(&self, repo: &Repository<Customer>) {
        let request = office(self.tenant);
        let grant = GATE.grant(&request, Purpose::Scheduling).unwrap();
        let mut tx = self.pool.begin(self.tenant).await.unwrap();
        for _ in 0..10 {
            let id = self.ids[self.tick() % self.ids.len()];
            let c = repo.get(&mut tx, &grant, id).await.unwrap();
            assert!(c.email.is_loaded());
        }
        tx.commit().await.unwrap();
    }

    async fn read_async_commit(&self, repo: &Repository<Customer>) {
        let request = office(self.tenant);
        let grant = GATE.grant(&request, Purpose::Scheduling).unwrap();
        let id = self.ids[self.tick() % self.ids.len()];
        let mut tx = self.pool.begin(self.tenant).await.unwrap();
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(tx.dangerous_postgres().unwrap())
            .await
            .unwrap();
        let c = repo.get(&mut tx, &grant, id).await.unwrap();
        assert!(c.email.is_loaded());
        tx.commit().await.unwrap();
    }

    /// 200 audited counts on a fresh tenant, then its first checkpoint: returns the tenant.
    async fn pending_200(&self) -> TenantId {
        let t = TenantId::generate();
        self.pool.register_tenant(t).await.unwrap();
        self.append_200(&self.audited_records, &[t]).await;
        t
    }

    async fn checkpoint(&self, tenant: TenantId) {
        let mut tx = self.pool.begin(tenant).await.unwrap();
        AuditLog::checkpoint(&mut tx, &SIGNER).await.unwrap();
        tx.commit().await.unwrap();
    }

    async fn insert(&self, repo: &Repository<Customer>) {
        let request = office(self.tenant);
        let grant = GATE.grant(&request, Purpose::Scheduling).unwrap();
        let i = self.tick();
        let c = customer(self.tenant, self.subjects[i % self.subjects.len()], i);
        let mut tx = self.pool.begin(self.tenant).await.unwrap();
        repo.insert(&mut tx, &grant, &c).await.unwrap();
        tx.commit().await.unwrap();
    }

    /// 8 tasks x 25 transactions of one `count` each, on `tenants` (round robin per task).
    async fn append_200(&self, records: &Records, tenants: &[TenantId]) {
        let repo = records.repository::<Customer>();
        let mut tasks = Vec::with_capacity(8);
        for task in 0..8 {
            let tenant = tenants[task % tenants.len()];
            let (pool, repo) = (self.pool.clone(), repo.clone());
            tasks.push(async move {
                let request = office(tenant);
                let grant = GATE.grant(&request, Purpose::Scheduling).unwrap();
                for _ in 0..25 {
                    let mut tx = pool.begin(tenant).await.unwrap();
                    repo.count(&mut tx, &grant).await.unwrap();
                    tx.commit().await.unwrap();
                }
            });
        }
        let handles: Vec<_> = tasks.into_iter().map(tokio::spawn).collect();
        for h in handles {
            h.await.unwrap();
        }
    }
}

fn audit(c: &mut Criterion) {
    let rt: Runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(TestDb::create(&[Customer::spec().table()]));
    let s = rt.block_on(setup(&db));
    // Warm both paths (keys, pseudonyms, the tenant's audit head).
    rt.block_on(async {
        s.read(&s.plain).await;
        s.read(&s.audited).await;
    });

    let mut g = c.benchmark_group("audit");
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("point-read/unaudited/one", |b| {
        paired(&rt, b, || s.read(&s.audited), || s.read(&s.plain))
    });
    g.bench_function("point-read/audited/one", |b| {
        paired(&rt, b, || s.read(&s.plain), || s.read(&s.audited))
    });
    g.bench_function("point-read/floor/one", |b| {
        paired(&rt, b, || s.read(&s.audited), || s.read_floor())
    });
    g.bench_function("point-read/audited-rolled-back/one", |b| {
        paired(
            &rt,
            b,
            || s.read(&s.audited),
            || s.read_rolled_back(&s.audited),
        )
    });
    g.bench_function("point-read/audited-async-commit/one", |b| {
        paired(
            &rt,
            b,
            || s.read(&s.plain),
            || s.read_async_commit(&s.audited),
        )
    });
    g.bench_function("read-10-in-one-tx/unaudited/ten", |b| {
        paired(&rt, b, || s.read_ten(&s.audited), || s.read_ten(&s.plain))
    });
    g.bench_function("read-10-in-one-tx/audited/ten", |b| {
        paired(&rt, b, || s.read_ten(&s.plain), || s.read_ten(&s.audited))
    });
    g.bench_function("insert/unaudited/one", |b| {
        paired(&rt, b, || s.insert(&s.audited), || s.insert(&s.plain))
    });
    g.bench_function("insert/audited/one", |b| {
        paired(&rt, b, || s.insert(&s.plain), || s.insert(&s.audited))
    });
    let hot = [s.hot];
    g.bench_function("append-200/unaudited/one-tenant", |b| {
        paired(
            &rt,
            b,
            || s.append_200(&s.audited_records, &hot),
            || s.append_200(&s.plain_records, &hot),
        )
    });
    g.bench_function("append-200/audited/one-tenant", |b| {
        paired(
            &rt,
            b,
            || s.append_200(&s.plain_records, &hot),
            || s.append_200(&s.audited_records, &hot),
        )
    });
    g.bench_function("append-200/unaudited/eight-tenants", |b| {
        paired(
            &rt,
            b,
            || s.append_200(&s.audited_records, &s.spread),
            || s.append_200(&s.plain_records, &s.spread),
        )
    });
    g.bench_function("append-200/audited/eight-tenants", |b| {
        paired(
            &rt,
            b,
            || s.append_200(&s.plain_records, &s.spread),
            || s.append_200(&s.audited_records, &s.spread),
        )
    });
    // The background half: numbering 200 pending events and signing (paired with producing
    // them, which is not timed).
    g.bench_function("sequence-200/audited/checkpoint", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let t = s.pending_200().await;
                    let start = std::time::Instant::now();
                    s.checkpoint(t).await;
                    timed += start.elapsed();
                }
                timed
            })
        })
    });
    g.finish();

    // CPU only: building one event (an actor, one record, four fields, one pseudonym given),
    // its canonical body and its leaf hash.
    let mut e = c.benchmark_group("audit-event");
    let actor = Actor::new(ActorKind::AccountUser, ActorId::generate()).with_role(role!("office"));
    e.bench_function("build+canonical+leaf-hash", |b| {
        b.iter(|| {
            let mut ev = plenum::audit::Event::new(s.tenant, actor.clone(), "read");
            ev.service = "bench".to_owned();
            ev.record_type = Some("customers".to_owned());
            ev.records = vec![s.ids[0]];
            ev.fields = ["name", "email", "phone", "service_address"]
                .iter()
                .map(|f| ((*f).to_owned(), "user.contact".to_owned()))
                .collect();
            ev.subjects = vec![[7; 16]];
            ev.purpose = Some(("service.scheduling".to_owned(), 1));
            let body = ev.canonical().unwrap();
            plenum::audit::merkle::leaf_hash(body.as_bytes())
        })
    });
    e.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .sample_size(20)
}

criterion_group! { name = benches; config = config(); targets = audit }
criterion_main!(benches);
