//! The subject export holds bounded memory: a process that does nothing but export one subject
//! reaches the same peak resident set (`VmHWM`, Linux) whether the subject has 10,000 records or
//! 100,000, while the document it writes grows tenfold. The data is inserted into a SQLite file
//! first; each export then runs in a fresh child process (this test binary again, told so by
//! `PLENUM_EXPORT_CHILD`), so neither the inserting nor the other export is in its peak. A
//! test binary of its own so that nothing else runs beside it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::panic,
    reason = "a measuring harness: a panic is a failed test, its figures are its output"
)]

use std::io::Write;
use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use plenum::consent::{Policy, Purpose};
use plenum::prelude::*;
use plenum::store::{Authorisation, DiscardAccess, JsonExport};
use plenum_hvac::{Customer, Invoice};

/// A writer that keeps nothing: counts the bytes of the export.
#[derive(Default)]
struct Counting(u64);

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A `/proc/self/status` field in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// The child: exports `subject` of `tenant` from the SQLite file at `path`, prints
/// `peak_kib bytes records`.
async fn child(path: &str, tenant: TenantId, subject: SubjectId) {
    let (records, pool, gate) = setup(Some(std::path::Path::new(path))).await;
    let officer = Request::new(
        tenant,
        Actor::new(ActorKind::AccountUser, ActorId::generate()).with_role(role!("privacy")),
    );
    let rights = gate.grant(&officer, Purpose::RightsFulfilment).unwrap();
    let mut out = JsonExport::new(Counting::default());
    let mut tx = pool.begin(tenant).await.unwrap();
    let summary = records
        .export_subject(&mut tx, &rights, subject, &mut out)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let n: u64 = summary.records.iter().map(|(_, n)| n).sum();
    println!("CHILD {} {} {n}", status_kib("VmHWM:"), out.into_inner().0);
}

/// Runs the child for `subject` and returns (peak KiB, bytes written, records).
fn export_in_child(path: &str, tenant: TenantId, subject: SubjectId) -> (u64, u64, u64) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "a_100k_record_export_holds_bounded_memory",
            "--exact",
            "--nocapture",
        ])
        .env("PLENUM_EXPORT_CHILD", format!("{path} {tenant} {subject}"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("CHILD "))
        .unwrap_or_else(|| panic!("the child printed no figures: {stdout}"));
    let v: Vec<u64> = line.split(' ').map(|x| x.parse().unwrap()).collect();
    (v[0], v[1], v[2])
}

async fn setup(path: Option<&std::path::Path>) -> (Records, TenantPool, Gate) {
    let pool = TenantPool::sqlite(path, &plenum_hvac::tables())
        .await
        .unwrap();
    let root = plenum::crypto::secrecy::SecretBox::new(Box::new([7u8; 32]));
    let keyring = Arc::new(Keyring::new(
        Arc::new(LocalKeyProvider::new(plenum::crypto::Backend::default(), 1, &root).unwrap()),
        Arc::new(DbKeyStore::new(pool.clone())),
        KeyringConfig::default(),
    ));
    // The hook does not change what the export holds in memory; the audited path is tested
    // in the integration tests.
    let records = Records::new(keyring, Arc::new(DiscardAccess))
        .with_record_types(plenum_hvac::record_types());
    let gate = Gate::new(
        Policy::plenum_default(),
        Authorisation::new()
            .allow(role!("office"), [Purpose::Billing, Purpose::Scheduling])
            .allow(role!("privacy"), [Purpose::RightsFulfilment]),
    );
    (records, pool, gate)
}

/// Inserts `n` invoices for `c`'s subject in batches of 1,000.
async fn invoices(records: &Records, pool: &TenantPool, gate: &Gate, c: &Customer, n: usize) {
    let office = Request::new(
        c.tenant,
        Actor::new(ActorKind::AccountUser, ActorId::generate()).with_role(role!("office")),
    );
    let billing = gate.grant(&office, Purpose::Billing).unwrap();
    let due = NaiveDate::from_ymd_opt(2026, 12, 15).unwrap();
    for start in (0..n).step_by(1_000) {
        let batch: Vec<Invoice> = (start..n.min(start + 1_000))
            .map(|i| Invoice {
                id: RecordId::generate(),
                tenant: c.tenant,
                subject: c.subject,
                customer_id: c.id,
                amount_cents: Encrypted::new(i64::try_from(i).unwrap()),
                currency: "USD".to_owned(),
                due_on: due,
                paid: i % 2 == 0,
            })
            .collect();
        let mut tx = pool.begin(c.tenant).await.unwrap();
        records
            .repository::<Invoice>()
            .insert_many(&mut tx, &billing, &batch)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_100k_record_export_holds_bounded_memory() {
    if let Ok(args) = std::env::var("PLENUM_EXPORT_CHILD") {
        let mut a = args.split(' ');
        let (path, tenant, subject) = (a.next().unwrap(), a.next().unwrap(), a.next().unwrap());
        child(path, tenant.parse().unwrap(), subject.parse().unwrap()).await;
        return;
    }
    let dir = std::env::temp_dir().join(format!("plenum-export-memory-{}", RecordId::generate()));
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("export.sqlite");
    let (records, pool, gate) = setup(Some(&path)).await;
    let tenant = TenantId::generate();
    pool.register_tenant(tenant).await.unwrap();
    let mut subjects = Vec::new();
    for n in [10_000usize, 100_000] {
        let c = Customer {
            id: RecordId::generate(),
            tenant,
            subject: SubjectId::generate(),
            name: Encrypted::new("Ada Lovelace".to_owned()),
            email: Encrypted::new(format!("ada{n}@example.com")),
            phone: Encrypted::new("+12175550142".to_owned()),
            service_address: Encrypted::new("12 Furnace Lane".to_owned()),
            created_at: Utc::now(),
        };
        let office = Request::new(
            tenant,
            Actor::new(ActorKind::AccountUser, ActorId::generate()).with_role(role!("office")),
        );
        let scheduling = gate.grant(&office, Purpose::Scheduling).unwrap();
        let mut tx = pool.begin(tenant).await.unwrap();
        records
            .repository::<Customer>()
            .insert(&mut tx, &scheduling, &c)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        invoices(&records, &pool, &gate, &c, n).await;
        subjects.push((n, c.subject));
    }
    drop(pool);
    let path = path.to_str().unwrap().to_owned();
    let mut figures = Vec::new();
    for (n, subject) in subjects {
        let (peak, bytes, exported) = export_in_child(&path, tenant, subject);
        assert_eq!(exported, n as u64 + 1, "every invoice and the customer");
        println!(
            "export of {exported} records: {:.1} MiB written, peak resident set {:.1} MiB",
            bytes as f64 / 1_048_576.0,
            peak as f64 / 1_024.0
        );
        figures.push((peak, bytes));
    }
    std::fs::remove_dir_all(&dir).unwrap();
    let ((small, small_bytes), (large, large_bytes)) = (figures[0], figures[1]);
    assert!(large_bytes > 9 * small_bytes, "the document grows tenfold");
    // Holding the records or the document would add at least the ~18 MiB the larger document
    // adds; a page costs well under 4 MiB.
    assert!(
        large <= small + 4 * 1_024,
        "peak {large} KiB at 100k records against {small} KiB at 10k: grows with the count"
    );
}
