//! Repositories against hand-written sqlx, in one run against the local PostgreSQL.
//!
//! The record: a customer with four encrypted fields (name, email, phone, address; each sealed
//! under the customer's own subject key) and one blind index (email). The baseline: the same
//! columns as plaintext `text` in a table with the same keys and the same row-level security,
//! written and read with hand-written sqlx inside the same kind of tenant transaction. So the
//! ratio is the price of encryption, blind indexing, per-subject keys and the repository, not of
//! tenancy (measured in `tenancy.rs`).
//!
//! - **insert-10k**: 10,000 new customers of a fresh tenant, in 10 transactions of 1,000 (one
//!   `unnest` insert each). Plenum also creates and stores 10,000 subject keys (one extra
//!   statement and commit per batch) and derives 40,000 field keys.
//! - **insert-10k-known-subjects**: 10,000 new rows for customers whose subject keys exist and
//!   are cached (what an appointment or invoice for a known customer costs): no key creation.
//! - **read-10k**: the same 10,000 rows back in 20 keyset pages of 500, every field decoded
//!   (Plenum: every encrypted field opened), warm key caches.
//! - **floor** (per case): what no design can avoid, measured in the same run. Insert: the
//!   hand-written insert of the same envelope-shaped rows (four `bytea` columns sealed with raw
//!   AES-256-GCM, one blind-index HMAC), plus, for new customers, one wrapped key row each in
//!   the same round trip (a CTE). Read: the encrypted table's rows read by hand, plus one raw
//!   AES-256-GCM open per field of ciphertexts of the same lengths. The library's ratio to its
//!   floor is what its design costs beyond the primitives and the bytes.
//! - **floor-screened** (inserts): the floor plus the consent screen every library write under a purpose runs
//!   (the ledger read for the batch's subjects, in the writing transaction): the floor of a
//!   design that honours restriction and objection on writes.
//! - **Peers** in the same run: pgcrypto in the statement, as a PostgreSQL user would write it
//!   (`pgp_sym_encrypt` with AES-256; raw AES-256-CBC with a random IV through `encrypt_iv`), the
//!   key sent with each statement, the same 10,000 rows inserted and read back.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "bench harness: a panic aborts the bench, and criterion's macros generate items"
)]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use chrono::{DateTime, Utc};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use plenum::Record;
use plenum::consent::{Policy, Purpose};
use plenum::core::{
    Actor, ActorId, ActorKind, RecordId, SubjectId, TenantId, field_name, record_type, role,
};
use plenum::crypto::secrecy::SecretBox;
use plenum::crypto::{Backend, Keyring, KeyringConfig, LocalKeyProvider};
use plenum::store::{
    Authorisation, DbKeyStore, DiscardAccess, Encrypted, Gate, Record as _, Records, Repository,
    Request, SqlType, TableSpec, TenantPool,
};
use plenum_benches::paired;
use plenum_test::pg::TestDb;
use rand::RngCore;
use sha2::Sha256;
use uuid::Uuid;

const ROWS: usize = 10_000;
const BATCH: usize = 1_000;
const PAGE: u32 = 500;

#[derive(Debug, Record)]
#[plenum(record_type = "bench_customers", erasure = "delete")]
struct Customer {
    #[plenum(id)]
    id: RecordId,
    #[plenum(tenant)]
    tenant: TenantId,
    #[plenum(subject)]
    subject: SubjectId,
    #[plenum(pii = "user.name")]
    name: Encrypted<String>,
    #[plenum(pii = "user.contact.email", blind_index = "email-v1")]
    email: Encrypted<String>,
    #[plenum(pii = "user.contact.phone_number")]
    phone: Encrypted<String>,
    #[plenum(pii = "user.contact.address")]
    address: Encrypted<String>,
    #[plenum(category = "system.operations")]
    created_at: DateTime<Utc>,
}

/// The plaintext twin: same keys, same RLS, `text` instead of envelopes, the email indexed.
/// The bench runs as an office user acting for scheduling: every call pays for the purpose
/// checks (authorisation, field categories, the consent ledger lookup per page or batch).
static GATE: LazyLock<Gate> = LazyLock::new(|| {
    Gate::new(
        Policy::plenum_default(),
        Authorisation::new().allow(role!("office"), [Purpose::Scheduling]),
    )
});

fn office(tenant: TenantId) -> Request {
    Request::new(
        tenant,
        Actor::new(ActorKind::AccountUser, ActorId::generate()).with_role(role!("office")),
    )
}

fn plain_table() -> TableSpec {
    TableSpec::new(record_type!("plain_customers"))
        .column(field_name!("subject_id"), SqlType::Uuid, false)
        .column(field_name!("name"), SqlType::Text, false)
        .column(field_name!("email"), SqlType::Text, false)
        .column(field_name!("phone"), SqlType::Text, false)
        .column(field_name!("address"), SqlType::Text, false)
        .column(field_name!("created_at"), SqlType::Timestamp, false)
        .index(field_name!("subject_id"))
        .index(field_name!("email"))
}

/// The peer a PostgreSQL user reaches for first: pgcrypto in the `INSERT` and `SELECT`, the same
/// columns as `bytea`, same keys, same row-level security.
fn pgcrypto_table() -> TableSpec {
    TableSpec::new(record_type!("pgcrypto_customers"))
        .column(field_name!("subject_id"), SqlType::Uuid, false)
        .column(field_name!("name"), SqlType::Bytes, false)
        .column(field_name!("email"), SqlType::Bytes, false)
        .column(field_name!("phone"), SqlType::Bytes, false)
        .column(field_name!("address"), SqlType::Bytes, false)
        .column(field_name!("created_at"), SqlType::Timestamp, false)
        .index(field_name!("subject_id"))
}

/// The floor's tables: envelope-shaped rows sealed by hand (4 fields, a blind index), and one
/// wrapped key row per customer.
fn floor_tables() -> [TableSpec; 2] {
    [
        TableSpec::new(record_type!("floor_customers"))
            .column(field_name!("subject_id"), SqlType::Uuid, false)
            .column(field_name!("name"), SqlType::Bytes, false)
            .column(field_name!("email"), SqlType::Bytes, false)
            .column(field_name!("phone"), SqlType::Bytes, false)
            .column(field_name!("address"), SqlType::Bytes, false)
            .column(field_name!("email_bidx"), SqlType::Bytes, false)
            .column(field_name!("created_at"), SqlType::Timestamp, false)
            .index(field_name!("subject_id"))
            .index(field_name!("email_bidx")),
        TableSpec::new(record_type!("floor_keys")).column(
            field_name!("wrapped"),
            SqlType::Bytes,
            false,
        ),
    ]
}

/// Raw AES-256-GCM: `nonce || ciphertext || tag` under a prepared cipher, a random nonce.
fn raw_seal(cipher: &Aes256Gcm, plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(12 + plaintext.len() + 16);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_in_place_detached(&nonce.into(), &[], &mut out[12..])
        .unwrap();
    out.extend_from_slice(&tag);
    out
}

/// Raw AES-256-GCM open of [`raw_seal`]'s output into a fresh buffer.
fn raw_open(cipher: &Aes256Gcm, sealed: &[u8]) -> Vec<u8> {
    let (nonce, rest) = sealed.split_at(12);
    let (body, tag) = rest.split_at(rest.len() - 16);
    let mut out = body.to_vec();
    cipher
        .decrypt_in_place_detached(nonce.into(), &[], &mut out, tag.into())
        .unwrap();
    out
}

/// The consent screen as a hand-written service would run it before writing: the ledger's
/// events of the batch's subjects, read in the transaction that writes (so a restriction or
/// objection recorded a moment ago stops the write), in the statement the library sends
/// (`sql::fetch_per_subject` with the ledger's columns: a probe per subject, rows sorted once).
const SCREEN: &str = "SELECT tenant_id, subject_id, kind, purpose, purpose_version, channel, \
     explicit, expires_at, notice_version, notice_sha256, method, actor_id, at \
     FROM (SELECT r.* FROM unnest($2::uuid[]) AS s(id) \
     CROSS JOIN LATERAL (SELECT * FROM plenum.consent_events \
         WHERE tenant_id = $1 AND subject_id = s.id OFFSET 0) AS r) AS r \
     ORDER BY recorded_at, id";

/// The insert floor: 10,000 rows of `tenant` for `subjects`, each field sealed with raw
/// AES-256-GCM under the customer's own prepared key and the email HMAC-indexed, in batches of
/// 1,000; with `new_keys`, each customer's key generated, set up, wrapped under the tenant key and stored as one
/// more row in the same statement; with `screen`, the batch's subjects screened first
/// ([`SCREEN`]): the floor of a design that honours restriction and objection on every write.
async fn insert_floor_for(
    pool: &TenantPool,
    tenant: TenantId,
    subjects: &[SubjectId],
    new_keys: bool,
    screen: bool,
) {
    let tenant_cipher = Aes256Gcm::new_from_slice(&[3u8; 32]).unwrap();
    let index = <Hmac<Sha256> as Mac>::new_from_slice(&[9u8; 32]).unwrap();
    let now = Utc::now();
    let data = "INSERT INTO app.floor_customers \
         (tenant_id, id, subject_id, name, email, phone, address, email_bidx, created_at) \
         SELECT $1::uuid, u.* FROM unnest($2::uuid[], $3::uuid[], $4::bytea[], $5::bytea[], \
         $6::bytea[], $7::bytea[], $8::bytea[], $9::timestamptz[]) AS u";
    let with_keys = format!(
        "WITH k AS (INSERT INTO app.floor_keys (tenant_id, id, wrapped) \
         SELECT $1::uuid, k.* FROM unnest($3::uuid[], $10::bytea[]) AS k) {data}"
    );
    for start in (0..ROWS).step_by(BATCH) {
        let (mut ids, mut subject_ids) = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH));
        let mut fields: [Vec<Vec<u8>>; 5] = Default::default();
        let mut wrapped = Vec::with_capacity(BATCH);
        for (i, subject) in subjects.iter().enumerate().skip(start).take(BATCH) {
            // A new customer's key is generated, wrapped and set up; a known customer's is
            // already prepared (as in the library's warm cache), so one prepared key stands in.
            let fresh;
            let cipher = if new_keys {
                let mut key = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut key);
                wrapped.push(raw_seal(&tenant_cipher, &key));
                fresh = Aes256Gcm::new_from_slice(&key).unwrap();
                &fresh
            } else {
                &tenant_cipher
            };
            let (name, email, phone, address) = values(i);
            ids.push(*RecordId::generate().as_uuid());
            subject_ids.push(*subject.as_uuid());
            let mut mac = index.clone();
            mac.update(email.as_bytes());
            fields[4].push(mac.finalize().into_bytes()[..16].to_vec());
            for (column, value) in fields.iter_mut().zip([name, email, phone, address]) {
                column.push(raw_seal(cipher, value.as_bytes()));
            }
        }
        let mut tx = pool.begin(tenant).await.unwrap();
        if screen {
            let events = sqlx::query(SCREEN)
                .bind(tenant.as_uuid())
                .bind(&subject_ids)
                .fetch_all(tx.dangerous_postgres().unwrap())
                .await
                .unwrap();
            std::hint::black_box(events.len());
        }
        let statement = if new_keys { with_keys.as_str() } else { data };
        let query = sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
            .bind(tenant.as_uuid())
            .bind(&ids)
            .bind(&subject_ids)
            .bind(&fields[0])
            .bind(&fields[1])
            .bind(&fields[2])
            .bind(&fields[3])
            .bind(&fields[4])
            .bind(vec![now; BATCH]);
        let query = if new_keys {
            query.bind(&wrapped)
        } else {
            query
        };
        query
            .execute(tx.dangerous_postgres().unwrap())
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}

async fn insert_floor(pool: &TenantPool, screen: bool) -> TenantId {
    let tenant = TenantId::generate();
    pool.register_tenant(tenant).await.unwrap();
    let subjects: Vec<SubjectId> = (0..ROWS).map(|_| SubjectId::generate()).collect();
    insert_floor_for(pool, tenant, &subjects, true, screen).await;
    tenant
}

/// The read floor's keys and ciphertexts: every field of every row sealed raw, same lengths as
/// Plenum's plaintexts, each under a prepared key of its own, as a key per customer and field
/// makes them (40,000 AES key schedules: reading them is memory traffic that one shared key
/// would hide). The floor looks no key up: it holds them in order.
#[allow(
    clippy::vec_box,
    reason = "each key a separate allocation, as the library's field keys are, not one array"
)]
fn floor_ciphertexts() -> (Vec<Box<Aes256Gcm>>, Vec<Vec<u8>>) {
    let mut keys = Vec::with_capacity(ROWS * 4);
    let mut sealed = Vec::with_capacity(ROWS * 4);
    for i in 0..ROWS {
        let (name, email, phone, address) = values(i);
        for v in [name, email, phone, address] {
            let mut key = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut key);
            let cipher = Box::new(Aes256Gcm::new_from_slice(&key).unwrap());
            sealed.push(raw_seal(&cipher, v.as_bytes()));
            keys.push(cipher);
        }
    }
    (keys, sealed)
}

/// The read floor: the encrypted rows read by hand (what the database and the driver cost for
/// envelopes), then one raw open per field under its own key.
async fn read_floor(
    pool: &TenantPool,
    tenant: TenantId,
    keys: &[Box<Aes256Gcm>],
    sealed: &[Vec<u8>],
) -> usize {
    let mut bytes = read_envelopes(pool, tenant).await;
    for (cipher, s) in keys.iter().zip(sealed) {
        bytes += raw_open(cipher, s).len();
    }
    bytes
}

/// How a pgcrypto user seals a value: `pgp_sym_encrypt` with AES-256 (OpenPGP, an S2K key
/// derivation per value, a SHA-1 MDC), or raw AES-256-CBC with a random IV prepended
/// (`encrypt_iv`; no integrity at all).
#[derive(Clone, Copy)]
enum Pgcrypto {
    Pgp,
    Cbc,
}

impl Pgcrypto {
    fn seal(self, column: &str) -> String {
        match self {
            Self::Pgp => format!("public.pgp_sym_encrypt({column}, $9, 'cipher-algo=aes256')"),
            Self::Cbc => format!(
                "(SELECT iv || public.encrypt_iv(convert_to({column}, 'UTF8'), $9, iv, \
                 'aes-cbc/pad:pkcs') FROM (SELECT public.gen_random_bytes(16) AS iv) AS r)"
            ),
        }
    }

    fn open(self, column: &str) -> String {
        match self {
            Self::Pgp => format!("public.pgp_sym_decrypt({column}, $4)"),
            Self::Cbc => format!(
                "convert_from(public.decrypt_iv(substring({column} from 17), $4, \
                 substring({column} from 1 for 16), 'aes-cbc/pad:pkcs'), 'UTF8')"
            ),
        }
    }
}

/// The key a pgcrypto user passes with every statement (32 bytes for AES-256; as text for pgp).
const PGCRYPTO_KEY: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

async fn insert_pgcrypto(pool: &TenantPool, mode: Pgcrypto) -> TenantId {
    let tenant = TenantId::generate();
    pool.register_tenant(tenant).await.unwrap();
    let now = Utc::now();
    let statement = format!(
        "INSERT INTO app.pgcrypto_customers \
         (tenant_id, id, subject_id, name, email, phone, address, created_at) \
         SELECT $1::uuid, u.id, u.subject_id, {}, {}, {}, {}, u.created_at \
         FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], \
         $8::timestamptz[]) AS u(id, subject_id, name, email, phone, address, created_at)",
        mode.seal("u.name"),
        mode.seal("u.email"),
        mode.seal("u.phone"),
        mode.seal("u.address"),
    );
    for start in (0..ROWS).step_by(BATCH) {
        let (mut ids, mut subjects) = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH));
        let mut fields: [Vec<String>; 4] = Default::default();
        for i in start..start + BATCH {
            let (name, email, phone, address) = values(i);
            ids.push(*RecordId::generate().as_uuid());
            subjects.push(*SubjectId::generate().as_uuid());
            for (column, value) in fields.iter_mut().zip([name, email, phone, address]) {
                column.push(value);
            }
        }
        let mut tx = pool.begin(tenant).await.unwrap();
        let query = sqlx::query(sqlx::AssertSqlSafe(statement.clone()))
            .bind(tenant.as_uuid())
            .bind(&ids)
            .bind(&subjects)
            .bind(&fields[0])
            .bind(&fields[1])
            .bind(&fields[2])
            .bind(&fields[3])
            .bind(vec![now; BATCH]);
        let query = match mode {
            Pgcrypto::Pgp => query.bind(std::str::from_utf8(PGCRYPTO_KEY).unwrap()),
            Pgcrypto::Cbc => query.bind(PGCRYPTO_KEY.as_slice()),
        };
        query
            .execute(tx.dangerous_postgres().unwrap())
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    tenant
}

async fn read_pgcrypto(pool: &TenantPool, tenant: TenantId, mode: Pgcrypto) -> usize {
    let statement = format!(
        "SELECT tenant_id, id, subject_id, {}, {}, {}, {}, created_at \
         FROM app.pgcrypto_customers WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        mode.open("name"),
        mode.open("email"),
        mode.open("phone"),
        mode.open("address"),
    );
    read_by_hand::<String>(pool, tenant, &statement, Some(mode)).await
}

/// The values of row `i`, shared by both variants.
fn values(i: usize) -> (String, String, String, String) {
    (
        format!("Customer Number {i}"),
        format!("customer.{i}@example.com"),
        format!("+1217555{:04}", i % 10_000),
        format!("{i} Furnace Lane, Springfield, IL 62701"),
    )
}

async fn insert_plenum(pool: &TenantPool, repo: &Repository<Customer>) -> TenantId {
    let tenant = TenantId::generate();
    pool.register_tenant(tenant).await.unwrap();
    let subjects: Vec<SubjectId> = (0..ROWS).map(|_| SubjectId::generate()).collect();
    insert_plenum_for(pool, repo, tenant, &subjects).await;
    tenant
}

/// 10,000 customer rows for `subjects` (one each) in `tenant`.
async fn insert_plenum_for(
    pool: &TenantPool,
    repo: &Repository<Customer>,
    tenant: TenantId,
    subjects: &[SubjectId],
) {
    let now = Utc::now();
    for start in (0..ROWS).step_by(BATCH) {
        let batch: Vec<Customer> = (start..start + BATCH)
            .map(|i| {
                let (name, email, phone, address) = values(i);
                Customer {
                    id: RecordId::generate(),
                    tenant,
                    subject: subjects[i],
                    name: Encrypted::new(name),
                    email: Encrypted::new(email),
                    phone: Encrypted::new(phone),
                    address: Encrypted::new(address),
                    created_at: now,
                }
            })
            .collect();
        let request = office(tenant);
        let grant = GATE.grant(&request, Purpose::Scheduling).unwrap();
        let mut tx = pool.begin(tenant).await.unwrap();
        repo.insert_many(&mut tx, &grant, &batch).await.unwrap();
        tx.commit().await.unwrap();
    }
}

async fn insert_hand_written(pool: &TenantPool) -> TenantId {
    let tenant = TenantId::generate();
    pool.register_tenant(tenant).await.unwrap();
    let subjects: Vec<SubjectId> = (0..ROWS).map(|_| SubjectId::generate()).collect();
    insert_hand_written_for(pool, tenant, &subjects).await;
    tenant
}

async fn insert_hand_written_for(pool: &TenantPool, tenant: TenantId, subjects: &[SubjectId]) {
    let now = Utc::now();
    for start in (0..ROWS).step_by(BATCH) {
        let (mut ids, mut subject_ids) = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH));
        let (mut names, mut emails) = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH));
        let (mut phones, mut addresses) = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH));
        let mut created = Vec::with_capacity(BATCH);
        for (i, subject) in subjects.iter().enumerate().skip(start).take(BATCH) {
            let (name, email, phone, address) = values(i);
            ids.push(*RecordId::generate().as_uuid());
            subject_ids.push(*subject.as_uuid());
            names.push(name);
            emails.push(email);
            phones.push(phone);
            addresses.push(address);
            created.push(now);
        }
        let mut tx = pool.begin(tenant).await.unwrap();
        sqlx::query(
            "INSERT INTO app.plain_customers \
             (tenant_id, id, subject_id, name, email, phone, address, created_at) \
             SELECT $1::uuid, u.* FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], \
             $6::text[], $7::text[], $8::timestamptz[]) AS u",
        )
        .bind(tenant.as_uuid())
        .bind(&ids)
        .bind(&subject_ids)
        .bind(&names)
        .bind(&emails)
        .bind(&phones)
        .bind(&addresses)
        .bind(&created)
        .execute(tx.dangerous_postgres().unwrap())
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
}

async fn read_plenum(pool: &TenantPool, repo: &Repository<Customer>, tenant: TenantId) -> usize {
    let request = office(tenant);
    let grant = GATE.grant(&request, Purpose::Scheduling).unwrap();
    let mut tx = pool.begin(tenant).await.unwrap();
    let (mut after, mut bytes, mut rows) = (None, 0, 0);
    loop {
        let page = repo.list(&mut tx, &grant, after, PAGE).await.unwrap();
        for c in &page.items {
            for field in [&c.name, &c.email, &c.phone, &c.address] {
                bytes += field.open().unwrap().expose().len();
            }
        }
        rows += page.items.len();
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    tx.commit().await.unwrap();
    assert_eq!(rows, ROWS);
    bytes
}

/// A hand-written read: tenant, id, subject, four columns decoded as `T`, the timestamp.
type HandRow<T> = (Uuid, Uuid, Uuid, T, T, T, T, DateTime<Utc>);

/// Every row of `tenant` through `statement` (`$1` tenant, `$2` after, `$3` limit, `$4` the
/// pgcrypto key when `key` is set), in keyset pages of `PAGE`, each of the four columns decoded
/// as `T`; returns their total length. The one paging loop of every hand-written read.
async fn read_by_hand<T>(
    pool: &TenantPool,
    tenant: TenantId,
    statement: &str,
    key: Option<Pgcrypto>,
) -> usize
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    T: AsRef<[u8]> + Send + Unpin,
{
    let mut tx = pool.begin(tenant).await.unwrap();
    let (mut after, mut bytes, mut rows) = (Uuid::nil(), 0, 0);
    loop {
        let query = sqlx::query_as(sqlx::AssertSqlSafe(statement.to_owned()))
            .bind(tenant.as_uuid())
            .bind(after)
            .bind(i64::from(PAGE));
        let query = match key {
            None => query,
            Some(Pgcrypto::Pgp) => query.bind(std::str::from_utf8(PGCRYPTO_KEY).unwrap()),
            Some(Pgcrypto::Cbc) => query.bind(PGCRYPTO_KEY.as_slice()),
        };
        let page: Vec<HandRow<T>> = query
            .fetch_all(tx.dangerous_postgres().unwrap())
            .await
            .unwrap();
        for r in &page {
            bytes += [&r.3, &r.4, &r.5, &r.6]
                .iter()
                .map(|c| c.as_ref().len())
                .sum::<usize>();
        }
        rows += page.len();
        match page.last() {
            Some(last) if page.len() == PAGE as usize => after = last.1,
            _ => break,
        }
    }
    tx.commit().await.unwrap();
    assert_eq!(rows, ROWS);
    bytes
}

async fn read_hand_written(pool: &TenantPool, tenant: TenantId) -> usize {
    read_by_hand::<String>(
        pool,
        tenant,
        "SELECT tenant_id, id, subject_id, name, email, phone, address, created_at \
         FROM app.plain_customers WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        None,
    )
    .await
}

/// The encrypted table read by hand without opening anything: separates what the larger rows
/// cost the database from what the library does with them.
async fn read_envelopes(pool: &TenantPool, tenant: TenantId) -> usize {
    read_by_hand::<Vec<u8>>(
        pool,
        tenant,
        "SELECT tenant_id, id, subject_id, name, email, phone, address, created_at \
         FROM app.bench_customers WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        None,
    )
    .await
}

fn records(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (db, pool) = rt.block_on(async {
        let [floor_customers, floor_keys] = floor_tables();
        let db = TestDb::create(&[
            Customer::spec().table(),
            plain_table(),
            pgcrypto_table(),
            floor_customers,
            floor_keys,
        ])
        .await;
        let su = db.superuser().await;
        sqlx::query("CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public")
            .execute(&su)
            .await
            .unwrap();
        su.close().await;
        let pool = db.app(2).await;
        (db, pool)
    });
    let records = |config: KeyringConfig| {
        let root = SecretBox::new(Box::new([7u8; 32]));
        let keyring = Arc::new(Keyring::new(
            Arc::new(LocalKeyProvider::new(Backend::default(), 1, &root).unwrap()),
            Arc::new(DbKeyStore::new(pool.clone())),
            config,
        ));
        Records::new(keyring, Arc::new(DiscardAccess)).with_record_types([Customer::spec()])
    };
    // Writers see new subjects only: the default caches, churned by every batch.
    let repo = records(KeyringConfig::default()).repository::<Customer>();
    // Readers: a keyring sized to the working set (10,000 subjects x 4 fields), warmed by the
    // first read, as a service reading the same customers again would have it.
    let reader = records(KeyringConfig::default().with_cache_capacity(20_000, 100_000))
        .repository::<Customer>();

    // Paired: every iteration runs both variants back to back and times only its own.
    let mut g = c.benchmark_group("records");
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("insert-10k/hand-written/batch-1000", |b| {
        paired(
            &rt,
            b,
            || insert_plenum(&pool, &repo),
            || insert_hand_written(&pool),
        )
    });
    g.bench_function("insert-10k/plenum/batch-1000", |b| {
        paired(
            &rt,
            b,
            || insert_hand_written(&pool),
            || insert_plenum(&pool, &repo),
        )
    });
    g.bench_function("insert-10k/floor/batch-1000", |b| {
        paired(
            &rt,
            b,
            || insert_plenum(&pool, &repo),
            || insert_floor(&pool, false),
        )
    });
    g.bench_function("insert-10k/floor-screened/batch-1000", |b| {
        paired(
            &rt,
            b,
            || insert_plenum(&pool, &repo),
            || insert_floor(&pool, true),
        )
    });

    // Steady state: new rows for customers whose keys exist and are cached (an appointment or
    // invoice for a known customer): no key is created, only sealed under.
    let steady = records(KeyringConfig::default().with_cache_capacity(20_000, 100_000))
        .repository::<Customer>();
    let (steady_tenant, steady_subjects) = rt.block_on(async {
        let tenant = TenantId::generate();
        pool.register_tenant(tenant).await.unwrap();
        let subjects: Vec<SubjectId> = (0..ROWS).map(|_| SubjectId::generate()).collect();
        insert_plenum_for(&pool, &steady, tenant, &subjects).await;
        (tenant, subjects)
    });
    g.bench_function("insert-10k-known-subjects/hand-written/batch-1000", |b| {
        paired(
            &rt,
            b,
            || insert_plenum_for(&pool, &steady, steady_tenant, &steady_subjects),
            || insert_hand_written_for(&pool, steady_tenant, &steady_subjects),
        )
    });
    g.bench_function("insert-10k-known-subjects/plenum/batch-1000", |b| {
        paired(
            &rt,
            b,
            || insert_hand_written_for(&pool, steady_tenant, &steady_subjects),
            || insert_plenum_for(&pool, &steady, steady_tenant, &steady_subjects),
        )
    });
    g.bench_function("insert-10k-known-subjects/floor/batch-1000", |b| {
        paired(
            &rt,
            b,
            || insert_plenum_for(&pool, &steady, steady_tenant, &steady_subjects),
            || insert_floor_for(&pool, steady_tenant, &steady_subjects, false, false),
        )
    });
    g.bench_function("insert-10k-known-subjects/floor-screened/batch-1000", |b| {
        paired(
            &rt,
            b,
            || insert_plenum_for(&pool, &steady, steady_tenant, &steady_subjects),
            || insert_floor_for(&pool, steady_tenant, &steady_subjects, false, true),
        )
    });

    let (plain_tenant, plenum_tenant) = rt.block_on(async {
        let p = insert_hand_written(&pool).await;
        let e = insert_plenum(&pool, &repo).await;
        let su = db.superuser().await;
        for table in ["app.plain_customers", "app.bench_customers"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
                .execute(&su)
                .await
                .unwrap();
        }
        (p, e)
    });
    g.bench_function("read-10k/hand-written/page-500", |b| {
        paired(
            &rt,
            b,
            || read_plenum(&pool, &reader, plenum_tenant),
            || read_hand_written(&pool, plain_tenant),
        )
    });
    g.bench_function("read-10k/envelopes-unopened/page-500", |b| {
        paired(
            &rt,
            b,
            || read_hand_written(&pool, plain_tenant),
            || read_envelopes(&pool, plenum_tenant),
        )
    });
    g.bench_function("read-10k/plenum/page-500", |b| {
        paired(
            &rt,
            b,
            || read_hand_written(&pool, plain_tenant),
            || read_plenum(&pool, &reader, plenum_tenant),
        )
    });
    let (floor_keys, floor_sealed) = floor_ciphertexts();
    g.bench_function("read-10k/floor/page-500", |b| {
        paired(
            &rt,
            b,
            || read_plenum(&pool, &reader, plenum_tenant),
            || read_floor(&pool, plenum_tenant, &floor_keys, &floor_sealed),
        )
    });

    // Peers, paired with the same plaintext baseline: pgcrypto sealing in the statement.
    for (label, mode) in [
        ("pgcrypto-pgp-aes256", Pgcrypto::Pgp),
        ("pgcrypto-aes256-cbc", Pgcrypto::Cbc),
    ] {
        g.bench_function(format!("insert-10k/{label}/batch-1000"), |b| {
            paired(
                &rt,
                b,
                || insert_hand_written(&pool),
                || insert_pgcrypto(&pool, mode),
            )
        });
        let peer_tenant = rt.block_on(insert_pgcrypto(&pool, mode));
        g.bench_function(format!("read-10k/{label}/page-500"), |b| {
            paired(
                &rt,
                b,
                || read_hand_written(&pool, plain_tenant),
                || read_pgcrypto(&pool, peer_tenant, mode),
            )
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .sample_size(10)
}

criterion_group! { name = benches; config = config(); targets = records }
criterion_main!(benches);
