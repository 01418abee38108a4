//! Tenant-scoped repositories: the everyday way to read and write records.

use core::fmt;
use core::marker::PhantomData;
use std::sync::Arc;

use plenum_consent::{ConsentEvent, Purpose};
use plenum_core::{FieldName, RecordId, SubjectId, TenantId};
use plenum_crypto::{BlindIndexer, Envelope, FieldKey, FieldLocator, KeyStore, Keyring, Owner};

use crate::access::{Access, AccessHook, Action, Outcome};
use crate::encrypted::KeySlot;
use crate::error::Error;
use crate::gate::PurposeGrant;
use crate::record::{
    KeyOwner, Record, RecordSpec, RowReader, RowWriter, Slot, Storage, Value, View,
};
use crate::sql::{self, Conn, Dialect};
use crate::table::SqlType;
use crate::tx::{TenantTx, check_tenant};

/// What every repository shares: the key hierarchy, where wrapped keys live, and the access
/// hook. Build one per service and hand out [`Records::repository`]s.
#[derive(Clone)]
pub struct Records {
    shared: Arc<Shared>,
}

struct Shared {
    keyring: Arc<Keyring>,
    keys: Arc<dyn KeyStore>,
    hook: Arc<dyn AccessHook>,
}

impl fmt::Debug for Records {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Records").finish_non_exhaustive()
    }
}

impl Records {
    /// Repositories sealing with `keyring`, keeping wrapped keys in `keys` (a
    /// [`DbKeyStore`](crate::DbKeyStore) in a service), reporting every operation to `hook`.
    pub fn new(keyring: Arc<Keyring>, keys: Arc<dyn KeyStore>, hook: Arc<dyn AccessHook>) -> Self {
        Self {
            shared: Arc::new(Shared {
                keyring,
                keys,
                hook,
            }),
        }
    }

    /// The repository of `R`. Cheap: the SQL is rendered once per call, so keep it.
    pub fn repository<R: Record>(&self) -> Repository<R> {
        Repository {
            shared: self.shared.clone(),
            sql: Arc::new(Statements::new(R::spec())),
            _record: PhantomData,
        }
    }

    /// The keyring.
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.shared.keyring
    }

    /// The key store.
    pub fn key_store(&self) -> &Arc<dyn KeyStore> {
        &self.shared.keys
    }

    /// Records a consent ledger event (given, withdrawn, objection, restriction, ...) under
    /// `grant`, and reports it to the access hook in the same transaction: the audit log holds
    /// every consent change. Which grant may record what:
    ///
    /// - events that narrow processing (withdrawn, expired, objected, restriction placed): any
    ///   grant of the tenant, so whoever hears "stop" can record it;
    /// - consent given: a grant for that same purpose (the flow that collected it), or for
    ///   `compliance.rights_fulfilment`;
    /// - events that widen processing again (objection withdrawn, restriction lifted): a grant
    ///   for `compliance.rights_fulfilment`;
    /// - anything: an unrestricted grant (imports).
    ///
    /// Evidence dated more than five minutes ahead of this clock is refused: ledger state is
    /// ordered by evidence time, and a future-dated consent would outrank every withdrawal.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`] (`consent_event_needs_rights_fulfilment`); [`Error::InvalidRecord`]
    /// for future-dated evidence or an event without its purpose; [`Error::TenantMismatch`];
    /// the errors of the ledger and of the hook.
    pub async fn record_consent(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        event: &ConsentEvent,
    ) -> Result<RecordId, Error> {
        use plenum_consent::EventKind;
        let request = grant.request();
        let mut access = describe(
            grant,
            Action::Consent(event.kind),
            plenum_core::record_type!("consent_events"),
        );
        access.subjects = vec![event.subject];
        access.rows = 1;
        // The consent's purpose: what the log must say the change is about (the policy's
        // basis and version belong to data processing, not to the ledger).
        access.purpose = event.purpose;
        access.legal_basis = None;
        access.policy_version = None;
        let narrows = matches!(
            event.kind,
            EventKind::Withdrawn
                | EventKind::Expired
                | EventKind::Objected
                | EventKind::RestrictionPlaced
        );
        let allowed = match grant.purpose() {
            None => true,
            Some(Purpose::RightsFulfilment) => true,
            Some(p) => narrows || (event.kind == EventKind::Given && event.purpose == Some(p)),
        };
        let result = if request.tenant() != tx.tenant() {
            Err(Error::TenantMismatch {
                record_type: "consent_events".to_owned(),
            })
        } else if !allowed {
            Err(Error::Denied {
                purpose: grant.purpose().map_or("unrestricted", Purpose::key),
                reason: "consent_event_needs_rights_fulfilment",
            })
        } else if event.evidence.at > chrono::Utc::now() + chrono::Duration::minutes(5) {
            Err(Error::InvalidRecord {
                record_type: "consent_events".to_owned(),
                reason: "consent evidence dated in the future",
            })
        } else {
            crate::consent::ConsentLedger::record(tx, event).await
        };
        match result {
            Ok(id) => {
                access.records = vec![id];
                self.shared.hook.on_access(tx, &access).await?;
                Ok(id)
            }
            Err(e) => {
                access.rows = 0;
                access.outcome = match &e {
                    Error::Denied { reason, .. } => Outcome::Denied(reason),
                    other => Outcome::Failed(other.kind()),
                };
                if let Err(hook_error) = self.shared.hook.on_access(tx, &access).await {
                    tracing::warn!(kind = ?hook_error.kind(), "access hook failed on a refused consent write");
                }
                Err(e)
            }
        }
    }

    /// Erases a data subject: destroys every version of their key, so every field sealed under
    /// it (in rows, backups and replicas) becomes unreadable and the audit log's pseudonyms for
    /// them cannot be recomputed. Needs a grant for `compliance.rights_fulfilment` or an
    /// unrestricted one.
    ///
    /// The key store commits on its own, so the event does not wait for `tx` either: with the
    /// database log it is written in a transaction of its own, before the key is destroyed
    /// (while the pseudonym can still be computed). If the destruction then fails, a `failed`
    /// event follows it.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`] for another purpose; [`Error::TenantMismatch`]; key store and hook
    /// errors.
    pub async fn erase_subject(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        subject: SubjectId,
    ) -> Result<usize, Error> {
        let access = self
            .key_operation(
                tx,
                grant,
                Action::Erase,
                Some(subject),
                Purpose::RightsFulfilment,
            )
            .await?;
        let result = self
            .shared
            .keyring
            .destroy_scope(
                &*self.shared.keys,
                tx.tenant(),
                plenum_crypto::KeyScope::Subject(subject),
            )
            .await
            .map_err(Error::from);
        self.key_operation_failed(tx, access, result).await
    }

    /// Rotates a key of this tenant (its data or index key, or a subject's): a new active
    /// version, the old one kept for decryption. Needs a grant for `security.protection` or an
    /// unrestricted one; audited like [`Records::erase_subject`].
    ///
    /// # Errors
    ///
    /// As [`Records::erase_subject`].
    pub async fn rotate_key(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        scope: plenum_crypto::KeyScope,
    ) -> Result<plenum_crypto::KeyRef, Error> {
        let subject = match scope {
            plenum_crypto::KeyScope::Subject(s) => Some(s),
            _ => None,
        };
        let access = self
            .key_operation(
                tx,
                grant,
                Action::KeyRotate,
                subject,
                Purpose::SecurityProtection,
            )
            .await?;
        let result = self
            .shared
            .keyring
            .rotate(&*self.shared.keys, tx.tenant(), scope)
            .await
            .map_err(Error::from);
        self.key_operation_failed(tx, access, result).await
    }

    /// After a key operation whose success was already recorded: if it failed after all, say so.
    async fn key_operation_failed<T>(
        &self,
        tx: &mut TenantTx,
        mut access: Access,
        result: Result<T, Error>,
    ) -> Result<T, Error> {
        if let Err(e) = &result {
            access.rows = 0;
            access.outcome = Outcome::Failed(e.kind());
            if let Err(hook_error) = self.shared.hook.on_access(tx, &access).await {
                tracing::warn!(kind = ?hook_error.kind(), "access hook failed on a failed key operation");
            }
        }
        result
    }

    /// Checks the grant for a key operation and records it (refusals too); returns the
    /// description recorded.
    async fn key_operation(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        action: Action,
        subject: Option<SubjectId>,
        purpose: Purpose,
    ) -> Result<Access, Error> {
        let mut access = describe(grant, action, plenum_core::record_type!("keys"));
        access.subjects = subject.into_iter().collect();
        access.rows = 1;
        let refusal = if grant.request().tenant() != tx.tenant() {
            Some(Error::TenantMismatch {
                record_type: "keys".to_owned(),
            })
        } else if grant.purpose().is_some_and(|p| p != purpose) {
            Some(Error::Denied {
                purpose: grant.purpose().map_or("unrestricted", Purpose::key),
                reason: match action {
                    Action::Erase => "erasure_needs_rights_fulfilment",
                    _ => "key_operation_needs_security_protection",
                },
            })
        } else {
            None
        };
        if let Some(e) = refusal {
            access.rows = 0;
            access.outcome = match &e {
                Error::Denied { reason, .. } => Outcome::Denied(reason),
                other => Outcome::Failed(other.kind()),
            };
            if let Err(hook_error) = self.shared.hook.on_access(tx, &access).await {
                tracing::warn!(kind = ?hook_error.kind(), "access hook failed on a refused key operation");
            }
            return Err(e);
        }
        self.shared.hook.on_access(tx, &access).await?;
        Ok(access)
    }
}

/// One page of a keyset-paginated list.
#[derive(Debug)]
pub struct Page<R> {
    /// The records, in id order (creation order, ids being UUIDv7).
    pub items: Vec<R>,
    /// Pass this as `after` for the next page; `None` on the last page.
    pub next: Option<RecordId>,
}

/// The operations on records of type `R`. Every one takes the tenant transaction it runs in:
/// there is no way to touch a record without one.
///
/// Each statement filters by `tenant_id = $1` (besides row-level security on PostgreSQL), every
/// row read is checked against the transaction's tenant, encrypted fields are sealed on write
/// and left sealed on read until opened, and the operation is described to the access hook.
pub struct Repository<R> {
    shared: Arc<Shared>,
    sql: Arc<Statements>,
    _record: PhantomData<fn() -> R>,
}

impl<R> Clone for Repository<R> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            sql: self.sql.clone(),
            _record: PhantomData,
        }
    }
}

impl<R: Record> fmt::Debug for Repository<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repository")
            .field("record_type", R::spec().record_type())
            .finish_non_exhaustive()
    }
}

/// The SQL of one record type, rendered once for each dialect.
struct Statements {
    /// Positions and names of the subject-owned encrypted fields: their keys are looked up as
    /// one bundle per row.
    subject_positions: Vec<usize>,
    subject_names: Vec<FieldName>,
    /// Types of the selected columns: tenant, id, [subject], fields.
    read_types: Vec<SqlType>,
    /// Types of the inserted columns: tenant, id, [subject], fields, blind indexes.
    write_types: Vec<SqlType>,
    pg: DialectStatements,
    lite: DialectStatements,
}

struct DialectStatements {
    get: String,
    list_first: String,
    list_after: String,
    count: String,
    subject_of: String,
    delete: String,
    insert: String,
    table: String,
    select: String,
}

impl Statements {
    fn new(spec: &RecordSpec) -> Self {
        let mut read_cols = vec!["tenant_id".to_owned(), "id".to_owned()];
        let mut read_types = vec![SqlType::Uuid, SqlType::Uuid];
        if spec.has_subject() {
            read_cols.push("subject_id".to_owned());
            read_types.push(SqlType::Uuid);
        }
        for f in spec.fields() {
            read_cols.push(f.name.to_string());
            read_types.push(f.sql_type());
        }
        let mut write_cols = read_cols.clone();
        let mut write_types = read_types.clone();
        for f in spec.fields() {
            if let Some(b) = f.blind_index_spec() {
                write_cols.push(b.column.to_string());
                write_types.push(SqlType::Bytes);
            }
        }
        let build = |d: Dialect| {
            let table = d.table(spec.record_type().as_str());
            let select = format!("SELECT {} FROM {table}", read_cols.join(", "));
            DialectStatements {
                get: format!("{select} WHERE tenant_id = {} AND id = {}", d.p(1), d.p(2)),
                list_first: format!(
                    "{select} WHERE tenant_id = {} ORDER BY id LIMIT {}",
                    d.p(1),
                    d.p(2)
                ),
                list_after: format!(
                    "{select} WHERE tenant_id = {} AND id > {} ORDER BY id LIMIT {}",
                    d.p(1),
                    d.p(2),
                    d.p(3)
                ),
                count: format!("SELECT count(*) FROM {table} WHERE tenant_id = {}", d.p(1)),
                subject_of: format!(
                    "SELECT tenant_id, subject_id FROM {table} WHERE tenant_id = {} AND id = {}{}",
                    d.p(1),
                    d.p(2),
                    match d {
                        Dialect::Postgres => " FOR UPDATE",
                        Dialect::Sqlite => "",
                    }
                ),
                delete: format!(
                    "DELETE FROM {table} WHERE tenant_id = {} AND id = {}",
                    d.p(1),
                    d.p(2)
                ),
                insert: sql::insert_statement(d, &table, &write_cols, &write_types),
                table,
                select,
            }
        };
        let (pg, lite) = (build(Dialect::Postgres), build(Dialect::Sqlite));
        let (mut subject_positions, mut subject_names) = (Vec::new(), Vec::new());
        for (i, f) in spec.fields().iter().enumerate() {
            if let Storage::Encrypted {
                owner: KeyOwner::Subject,
                ..
            } = f.storage
            {
                subject_positions.push(i);
                subject_names.push(f.name.clone());
            }
        }
        Self {
            subject_positions,
            subject_names,
            read_types,
            write_types,
            pg,
            lite,
        }
    }

    fn for_dialect(&self, d: Dialect) -> &DialectStatements {
        match d {
            Dialect::Postgres => &self.pg,
            Dialect::Sqlite => &self.lite,
        }
    }
}

/// What a read asks for: one record, one keyset page, or the rows a blind index names.
enum Read {
    One(RecordId),
    Page(Option<RecordId>, u32),
    Find {
        column: &'static str,
        candidates: Vec<Vec<u8>>,
    },
}

/// The subject-level decisions of one operation: which subjects the grant's purpose may not
/// process, and why.
#[derive(Default)]
struct Decisions {
    denied: std::collections::HashMap<SubjectId, &'static str>,
    /// The decision for rows without a subject (an empty ledger).
    without_subject: Option<&'static str>,
}

impl Decisions {
    fn denial(&self, subject: Option<SubjectId>) -> Option<&'static str> {
        match subject {
            Some(s) => self.denied.get(&s).copied(),
            None => self.without_subject,
        }
    }
}

/// The subject-owned field keys of a row, or the scope of the destroyed key that sealed them.
type KeyBundle = Result<Arc<[FieldKey]>, plenum_crypto::KeyScopeKind>;

/// Per-call key material: tenant-owned field keys and blind indexers resolved once per
/// operation, subject-owned field keys per row.
struct WriteKeys {
    tenant_keys: Vec<Option<FieldKey>>,
    indexers: Vec<Option<BlindIndexer>>,
}

/// Every operation takes a [`PurposeGrant`]: reads return only what the grant's purpose may
/// see of the subjects it may process, writes touch only fields and subjects the purpose may,
/// and each operation reaches the access hook with the grant's actor, request and purpose.
impl<R: Record> Repository<R> {
    fn spec(&self) -> &'static RecordSpec {
        R::spec()
    }

    /// Inserts one record (its id must be new in this tenant).
    ///
    /// # Errors
    ///
    /// As [`Repository::insert_many`].
    pub async fn insert(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        record: &R,
    ) -> Result<(), Error> {
        self.insert_many(tx, grant, core::slice::from_ref(record))
            .await
    }

    /// Inserts records in one statement (one round trip on PostgreSQL, `unnest` binds). Under
    /// a purpose, every field's category must be one the purpose may touch and every subject
    /// one it may process (a restricted subject takes compliance purposes only, a consent
    /// purpose needs consent); otherwise nothing is written. Subject keys missing for any
    /// record are created first, in one key store round trip.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`] (`field_not_in_purpose`, or the policy's reason for a subject);
    /// [`Error::TenantMismatch`] if a record or the grant belongs to another tenant (nothing
    /// is written); [`Error::UniqueViolation`] naming the logical field;
    /// [`Error::ForeignKeyViolation`]; key and sealing failures ([`Error::Crypto`]).
    pub async fn insert_many(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        records: &[R],
    ) -> Result<(), Error> {
        let mut access = self.describe(grant, Action::Insert);
        access.records = records.iter().map(R::id).collect();
        access.subjects = subjects_of(records.iter().filter_map(R::subject));
        access.fields = self.all_fields();
        let result = self.insert_inner(tx, grant, records).await;
        if let Ok(created) = &result
            && !created.is_empty()
        {
            // The subjects' keys were created in their own committed key transaction: a key
            // event of its own, before the insert's.
            let mut keys = self.describe(grant, Action::KeyCreate);
            keys.record_type = plenum_core::record_type!("keys");
            keys.subjects.clone_from(created);
            keys.rows = created.len() as u64;
            self.shared.hook.on_access(tx, &keys).await?;
        }
        self.report(tx, access, result.map(|_| ()), |_| records.len() as u64)
            .await
    }

    async fn insert_inner(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        records: &[R],
    ) -> Result<Vec<SubjectId>, Error> {
        self.check_grant(tx, grant)?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let tenant = tx.tenant();
        self.check_write_tenant(tenant, records)?;
        self.check_writable(grant, self.spec().fields().iter())?;
        let subjects = subjects_of(records.iter().filter_map(R::subject));
        let decisions = self.decide(tx, grant, &subjects).await?;
        if let Some(reason) = records.iter().find_map(|r| decisions.denial(r.subject())) {
            return Err(self.denied(grant, reason));
        }
        let created = self.prepare(tenant, &subjects, true).await?;
        let keys = self.write_keys(tenant).await?;
        let mut rows = Vec::with_capacity(records.len());
        for record in records {
            let row_keys = self.row_keys(tenant, record.subject(), &keys).await?;
            let mut writer = RowWriter::new(record.id(), &row_keys, &keys.indexers, false);
            record.write(&mut writer)?;
            rows.push(self.insert_row(tenant, record, writer.slots)?);
        }
        let d = Dialect::of(tx);
        let statement = &self.sql.for_dialect(d).insert;
        sql::insert_rows(Conn::of(tx)?, statement, &self.sql.write_types, rows)
            .await
            .map_err(|e| self.db_error(e))?;
        Ok(created)
    }

    /// Reads one record by id for the grant's purpose: the subject's consent, objection and
    /// restriction are checked against the ledger as this transaction sees it, and fields whose
    /// category the purpose may not see come back [withheld](crate::Encrypted::is_withheld),
    /// never decrypted. Under an unrestricted grant every field comes back.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`] (the policy's reason, or `plain_field_not_visible` when the record has
    /// a plain field the purpose may not see); [`Error::NotFound`] if this tenant has no such
    /// record (whether or not another tenant does); [`Error::IsolationViolation`] if a row of
    /// another tenant came back; [`Error::TenantMismatch`] for a grant of another tenant.
    pub async fn get(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        id: RecordId,
    ) -> Result<R, Error> {
        let mut access = self.describe(grant, Action::Read);
        access.records = vec![id];
        let result = self
            .read(tx, grant, Read::One(id), None, &mut access)
            .await
            .and_then(|mut page| page.items.pop().ok_or_else(|| self.not_found()));
        if result.is_err() {
            // What was asked for, whether or not it exists or may be read.
            access.records = vec![id];
        }
        self.report(tx, access, result, |_| 1).await
    }

    /// [`Repository::get`] into the purpose's view type `V`, in which the fields the purpose
    /// may not see do not exist.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`] (`grant_for_another_purpose` if the grant is not for `V::PURPOSE`),
    /// and the errors of [`Repository::get`].
    pub async fn get_view<V: View<Record = R>>(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        id: RecordId,
    ) -> Result<V, Error> {
        let mut access = self.describe(grant, Action::Read);
        access.records = vec![id];
        let result = match self.view_purpose::<V>(grant) {
            Ok(()) => self
                .read(tx, grant, Read::One(id), Some(V::FIELDS), &mut access)
                .await
                .and_then(|mut page| page.items.pop().ok_or_else(|| self.not_found())),
            Err(e) => Err(e),
        };
        if result.is_err() {
            access.records = vec![id];
        }
        self.report(tx, access, result, |_| 1)
            .await
            .map(V::from_record)
    }

    /// One keyset page in id order, after `after` (the previous page's `next`), scanning at
    /// most `limit` rows: each page is an index range scan on the primary key. Rows whose
    /// subject the purpose may not process (no live consent for a consent purpose, an
    /// objection, a restriction) are left out, so a marketing list holds exactly the consented
    /// subjects, and pages can hold fewer than `limit` records; fields the purpose may not see
    /// are withheld.
    ///
    /// # Errors
    ///
    /// As [`Repository::get`], without `NotFound`.
    pub async fn list(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        after: Option<RecordId>,
        limit: u32,
    ) -> Result<Page<R>, Error> {
        let mut access = self.describe(grant, Action::List);
        let result = self
            .read(tx, grant, Read::Page(after, limit), None, &mut access)
            .await;
        self.report(tx, access, result, |p| p.items.len() as u64)
            .await
    }

    /// [`Repository::list`] into the purpose's view type `V`.
    ///
    /// # Errors
    ///
    /// As [`Repository::get_view`], without `NotFound`.
    pub async fn list_views<V: View<Record = R>>(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        after: Option<RecordId>,
        limit: u32,
    ) -> Result<Page<V>, Error> {
        let mut access = self.describe(grant, Action::List);
        let result = match self.view_purpose::<V>(grant) {
            Ok(()) => {
                self.read(
                    tx,
                    grant,
                    Read::Page(after, limit),
                    Some(V::FIELDS),
                    &mut access,
                )
                .await
            }
            Err(e) => Err(e),
        };
        self.report(tx, access, result, |p| p.items.len() as u64)
            .await
            .map(|page| Page {
                items: page.items.into_iter().map(V::from_record).collect(),
                next: page.next,
            })
    }

    /// The records whose blind-indexed `field` equals `value` after normalisation, under every
    /// live index key version (so a rotation's re-index sweep does not hide rows), filtered and
    /// withheld for the grant's purpose like [`Repository::list`]. The lookup is an index scan
    /// on `(tenant_id, <field>_bidx)`.
    ///
    /// # Errors
    ///
    /// Normalisation failures ([`Error::Crypto`], kind `InvalidInput`), and the errors of
    /// [`Repository::list`].
    pub async fn find(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        field: crate::record::BlindIndexField<R>,
        value: &str,
    ) -> Result<Vec<R>, Error> {
        let mut access = self.describe(grant, Action::Search);
        let searchable = self.check_grant(tx, grant).and_then(|()| {
            // Searching by a field is reading it (a match answers "is this their email?").
            let category = self
                .spec()
                .fields()
                .get(field.position())
                .map(|f| &f.category)
                .ok_or(Error::Config("blind index field out of range"))?;
            match grant.purpose() {
                Some(p) if !grant.policy().allows_category(p, category) => {
                    Err(self.denied(grant, "field_not_in_purpose"))
                }
                _ => Ok(()),
            }
        });
        let result = match searchable {
            Ok(()) => match self.find_candidates(tx.tenant(), field, value).await {
                Ok(read) => self
                    .read(tx, grant, read, None, &mut access)
                    .await
                    .map(|page| page.items),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        self.report(tx, access, result, |v| v.len() as u64).await
    }

    async fn find_candidates(
        &self,
        tenant: TenantId,
        field: crate::record::BlindIndexField<R>,
        value: &str,
    ) -> Result<Read, Error> {
        let spec = self.spec();
        let f = spec
            .fields()
            .get(field.position())
            .ok_or(Error::Config("blind index field out of range"))?;
        let b = f
            .blind_index_spec()
            .ok_or(Error::Config("field has no blind index"))?;
        let candidates = self
            .shared
            .keyring
            .blind_index_candidates(
                &*self.shared.keys,
                tenant,
                spec.record_type(),
                &f.name,
                b.normaliser,
                value,
            )
            .await?;
        Ok(Read::Find {
            column: b.column.as_str(),
            candidates: candidates.iter().map(|c| c.as_bytes().to_vec()).collect(),
        })
    }

    /// The statement [`Repository::find`] runs on `backend` for `field` with `candidates` blind
    /// index values (`$1` the tenant, then the candidates): for `EXPLAIN` in tests and reviews.
    pub fn find_statement(
        &self,
        field: crate::record::BlindIndexField<R>,
        backend: crate::tx::BackendKind,
        candidates: usize,
    ) -> String {
        let d = Dialect::from(backend);
        let column = self
            .spec()
            .fields()
            .get(field.position())
            .and_then(|f| f.blind_index_spec())
            .map_or("NULL", |b| b.column.as_str());
        sql::any_of(
            d,
            &self.sql.for_dialect(d).select,
            column,
            (SqlType::Uuid, Value::Null),
            vec![Vec::new(); candidates],
        )
        .0
    }

    /// How many records this tenant has. A count reveals no field and no subject, so it is
    /// not filtered by subject decisions; it still needs a grant and reaches the hook.
    ///
    /// # Errors
    ///
    /// [`Error::TenantMismatch`] for a grant of another tenant; database failures.
    pub async fn count(&self, tx: &mut TenantTx, grant: &PurposeGrant<'_>) -> Result<u64, Error> {
        let access = self.describe(grant, Action::Count);
        let result = match self.check_grant(tx, grant) {
            Ok(()) => self.count_inner(tx).await,
            Err(e) => Err(e),
        };
        self.report(tx, access, result, |n| *n).await
    }

    async fn count_inner(&self, tx: &mut TenantTx) -> Result<u64, Error> {
        let tenant = tx.tenant();
        let statement = &self.sql.for_dialect(Dialect::of(tx)).count;
        let rows = sql::fetch(
            Conn::of(tx)?,
            statement,
            &[(SqlType::Uuid, Value::Uuid(*tenant.as_uuid()))],
            &[SqlType::BigInt],
        )
        .await
        .map_err(|e| self.db_error(e))?;
        match rows.first().and_then(|r| r.first()) {
            Some(Value::BigInt(n)) => u64::try_from(*n).map_err(|_| self.decode_error("count")),
            _ => Err(self.decode_error("count")),
        }
    }

    /// Writes a changed record: plain fields, and only the encrypted fields set since the record
    /// was read (each re-sealed, with its blind index). Under a purpose, the written fields'
    /// categories and the subject must be ones the purpose may touch. A record's subject
    /// cannot change: an update naming another subject finds no row.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`]; [`Error::NotFound`] if this tenant has no such record;
    /// [`Error::TenantMismatch`]; constraint, key and sealing failures.
    pub async fn update(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        record: &R,
    ) -> Result<(), Error> {
        let mut access = self.describe(grant, Action::Update);
        access.records = vec![record.id()];
        access.subjects = subjects_of(record.subject());
        let result = self.update_inner(tx, grant, record).await;
        if let Ok(changed) = &result {
            access.fields.clone_from(changed);
        }
        self.report(tx, access, result.map(|_| ()), |_| 1).await
    }

    async fn update_inner(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        record: &R,
    ) -> Result<Vec<(FieldName, plenum_core::DataCategory)>, Error> {
        self.check_grant(tx, grant)?;
        let tenant = tx.tenant();
        self.check_write_tenant(tenant, core::slice::from_ref(record))?;
        let spec = self.spec();
        let subjects = subjects_of(record.subject());
        if let Some(reason) = self
            .decide(tx, grant, &subjects)
            .await?
            .denial(record.subject())
        {
            return Err(self.denied(grant, reason));
        }
        self.prepare(tenant, &subjects, true).await?;
        let keys = self.write_keys(tenant).await?;
        let row_keys = self.row_keys(tenant, record.subject(), &keys).await?;
        let mut writer = RowWriter::new(record.id(), &row_keys, &keys.indexers, true);
        record.write(&mut writer)?;
        let mut sets: Vec<(String, SqlType, Value)> = Vec::new();
        let mut written = Vec::new();
        for (f, slot) in spec.fields().iter().zip(writer.slots) {
            match slot {
                Slot::Empty => return Err(self.unwritten()),
                Slot::Unchanged => {}
                Slot::Set(value, index) => {
                    written.push(f);
                    sets.push((f.name.to_string(), f.sql_type(), value));
                    if let (Some(b), Some(index)) = (f.blind_index_spec(), index) {
                        sets.push((b.column.to_string(), SqlType::Bytes, index));
                    }
                }
            }
        }
        self.check_writable(grant, written.iter().copied())?;
        // Encrypted fields first, then plain ones: the order the hook has always seen.
        let mut changed: Vec<_> = written
            .iter()
            .filter(|f| f.is_encrypted())
            .chain(written.iter().filter(|f| !f.is_encrypted()))
            .map(|f| (f.name.clone(), f.category.clone()))
            .collect();
        let d = Dialect::of(tx);
        let mut binds = vec![
            (SqlType::Uuid, Value::Uuid(*tenant.as_uuid())),
            (SqlType::Uuid, Value::Uuid(*record.id().as_uuid())),
        ];
        let mut guard = String::new();
        if let Some(s) = record.subject() {
            binds.push((SqlType::Uuid, Value::Uuid(*s.as_uuid())));
            guard = format!(" AND subject_id = {}", d.p(binds.len()));
        }
        if sets.is_empty() {
            // Nothing to write; still prove the row exists in this tenant.
            if self
                .fetch_rows(tx, &Read::One(record.id()))
                .await?
                .is_empty()
            {
                return Err(self.not_found());
            }
            changed.clear();
            return Ok(changed);
        }
        let mut assignments = Vec::with_capacity(sets.len());
        for (column, ty, value) in sets {
            binds.push((ty, value));
            assignments.push(format!("{column} = {}", d.p(binds.len())));
        }
        let statement = format!(
            "UPDATE {} SET {} WHERE tenant_id = {} AND id = {}{guard}",
            self.sql.for_dialect(d).table,
            assignments.join(", "),
            d.p(1),
            d.p(2),
        );
        let affected = sql::execute(Conn::of(tx)?, &statement, &binds)
            .await
            .map_err(|e| self.db_error(e))?;
        if affected == 0 {
            return Err(self.not_found());
        }
        Ok(changed)
    }

    /// Deletes one record. Under a purpose, the purpose must be one that may touch every field
    /// of the record, and its subject one the purpose may process (erasure for a restricted
    /// subject goes through a compliance purpose).
    ///
    /// # Errors
    ///
    /// [`Error::Denied`]; [`Error::NotFound`] if this tenant has no such record;
    /// [`Error::ForeignKeyViolation`] if other records still reference it.
    pub async fn delete(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        id: RecordId,
    ) -> Result<(), Error> {
        let mut access = self.describe(grant, Action::Delete);
        access.records = vec![id];
        access.fields = self.all_fields();
        let result = self.delete_inner(tx, grant, id, &mut access).await;
        self.report(tx, access, result, |_| 1).await
    }

    async fn delete_inner(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        id: RecordId,
        access: &mut Access,
    ) -> Result<(), Error> {
        self.check_grant(tx, grant)?;
        // Deleting a row takes every field of it: the purpose must be one that may touch them.
        self.check_writable(grant, self.spec().fields().iter())?;
        let tenant = tx.tenant();
        let s = self.sql.for_dialect(Dialect::of(tx));
        let key = [
            (SqlType::Uuid, Value::Uuid(*tenant.as_uuid())),
            (SqlType::Uuid, Value::Uuid(*id.as_uuid())),
        ];
        let mut subject = None;
        if self.spec().has_subject() {
            // The subject decides whether the purpose may delete; FOR UPDATE on PostgreSQL
            // keeps the row from changing subject between the decision and the delete.
            let rows = sql::fetch(
                Conn::of(tx)?,
                &s.subject_of,
                &key,
                &[SqlType::Uuid, SqlType::Uuid],
            )
            .await
            .map_err(|e| self.db_error(e))?;
            let row = rows.first().ok_or_else(|| self.not_found())?;
            match row.as_slice() {
                [Value::Uuid(t), Value::Uuid(sub)] => {
                    check_tenant(tenant, *t, self.spec().record_type().as_str())?;
                    subject = Some(SubjectId::from_trusted_uuid(*sub));
                }
                _ => return Err(self.decode_error("subject_id")),
            }
            // Named in the event whether or not the delete is allowed.
            access.subjects = subjects_of(subject);
        }
        let subjects = subjects_of(subject);
        if let Some(reason) = self.decide(tx, grant, &subjects).await?.denial(subject) {
            return Err(self.denied(grant, reason));
        }
        let affected = sql::execute(Conn::of(tx)?, &s.delete, &key)
            .await
            .map_err(|e| self.db_error(e))?;
        if affected == 0 {
            return Err(self.not_found());
        }
        Ok(())
    }

    // --- purposes --------------------------------------------------------------------------

    fn view_purpose<V: View<Record = R>>(&self, grant: &PurposeGrant<'_>) -> Result<(), Error> {
        if grant.purpose() == Some(V::PURPOSE) {
            Ok(())
        } else {
            Err(self.denied(grant, "grant_for_another_purpose"))
        }
    }

    fn check_grant(&self, tx: &TenantTx, grant: &PurposeGrant<'_>) -> Result<(), Error> {
        if grant.request().tenant() == tx.tenant() {
            Ok(())
        } else {
            Err(Error::TenantMismatch {
                record_type: self.spec().record_type().to_string(),
            })
        }
    }

    fn denied(&self, grant: &PurposeGrant<'_>, reason: &'static str) -> Error {
        Error::Denied {
            purpose: grant.purpose().map_or("unrestricted", Purpose::key),
            reason,
        }
    }

    /// Refuses a write touching a field whose category the grant's purpose may not touch.
    fn check_writable<'f>(
        &self,
        grant: &PurposeGrant<'_>,
        mut fields: impl Iterator<Item = &'f crate::record::FieldSpec>,
    ) -> Result<(), Error> {
        let Some(purpose) = grant.purpose() else {
            return Ok(());
        };
        if fields.any(|f| !grant.policy().allows_category(purpose, &f.category)) {
            return Err(self.denied(grant, "field_not_in_purpose"));
        }
        Ok(())
    }

    /// The policy's decision for each of `subjects` under the grant's purpose, from the ledger
    /// as this transaction sees it. An unrestricted grant denies nobody and reads no ledger.
    async fn decide(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        subjects: &[SubjectId],
    ) -> Result<Decisions, Error> {
        let Some(purpose) = grant.purpose() else {
            return Ok(Decisions::default());
        };
        let policy = grant.policy();
        let now = chrono::Utc::now();
        let reason =
            |status: &plenum_consent::SubjectStatus| match policy.decide(purpose, status, now) {
                plenum_consent::Decision::Allow(_) => None,
                plenum_consent::Decision::Deny(reason) => Some(reason.key()),
                _ => Some("undecided"),
            };
        let mut out = Decisions {
            without_subject: reason(&plenum_consent::SubjectStatus::default()),
            ..Decisions::default()
        };
        if subjects.is_empty() {
            return Ok(out);
        }
        let statuses = crate::consent::ConsentLedger::statuses(tx, subjects).await?;
        for (subject, status) in &statuses {
            if let Some(r) = reason(status) {
                out.denied.insert(*subject, r);
            }
        }
        // A subject the ledger did not answer for has no events: decide on the empty status.
        for s in subjects {
            if let (false, Some(r)) = (statuses.contains_key(s), out.without_subject) {
                out.denied.insert(*s, r);
            }
        }
        Ok(out)
    }

    /// The rows of a read (tenant, id, [subject], fields).
    async fn fetch_rows(&self, tx: &mut TenantTx, read: &Read) -> Result<Vec<Vec<Value>>, Error> {
        let d = Dialect::of(tx);
        let s = self.sql.for_dialect(d);
        let tenant_bind = (SqlType::Uuid, Value::Uuid(*tx.tenant().as_uuid()));
        let limit_bind = |limit: u32| (SqlType::BigInt, Value::BigInt(i64::from(limit)));
        let found;
        let (statement, binds) = match read {
            Read::One(id) => (
                &s.get,
                vec![tenant_bind, (SqlType::Uuid, Value::Uuid(*id.as_uuid()))],
            ),
            Read::Page(None, limit) => (&s.list_first, vec![tenant_bind, limit_bind(*limit)]),
            Read::Page(Some(a), limit) => (
                &s.list_after,
                vec![
                    tenant_bind,
                    (SqlType::Uuid, Value::Uuid(*a.as_uuid())),
                    limit_bind(*limit),
                ],
            ),
            Read::Find { column, candidates } => {
                let (statement, binds) =
                    sql::any_of(d, &s.select, column, tenant_bind, candidates.clone());
                found = statement;
                (&found, binds)
            }
        };
        sql::fetch(Conn::of(tx)?, statement, &binds, &self.sql.read_types)
            .await
            .map_err(|e| self.db_error(e))
    }

    /// A read under `grant`: rows fetched, subjects decided, fields withheld, records built.
    async fn read(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        read: Read,
        view_fields: Option<&[&str]>,
        access: &mut Access,
    ) -> Result<Page<R>, Error> {
        let spec = self.spec();
        self.check_grant(tx, grant)?;
        let tenant = tx.tenant();
        // A view drops the fields it does not hold, so only its own fields need be visible.
        let in_view = |name: &str| view_fields.is_none_or(|fields| fields.contains(&name));
        let allowed: Vec<bool> = spec
            .fields()
            .iter()
            .map(|f| {
                grant
                    .purpose()
                    .is_none_or(|p| grant.policy().allows_category(p, &f.category))
            })
            .collect();
        // Plain columns are loaded into the record whatever the view keeps (a `View` only
        // chooses what to hand on), so every one of them must be visible to the purpose.
        if spec
            .fields()
            .iter()
            .zip(&allowed)
            .any(|(f, a)| !a && !f.is_encrypted())
        {
            return Err(self.denied(grant, "plain_field_not_visible"));
        }
        // Encrypted fields are kept only when the purpose may see them and the view holds them.
        let visible: Vec<bool> = spec
            .fields()
            .iter()
            .zip(&allowed)
            .map(|(f, a)| *a && in_view(f.name.as_str()))
            .collect();
        access.fields = spec
            .fields()
            .iter()
            .zip(&visible)
            .filter(|(f, v)| **v || !f.is_encrypted())
            .map(|(f, _)| (f.name.clone(), f.category.clone()))
            .collect();
        let limit = match read {
            Read::Page(_, limit) => Some(limit),
            _ => None,
        };
        let rows = self.fetch_rows(tx, &read).await?;
        let scanned = rows.len();
        let last_scanned = rows.last().and_then(|r| match r.get(1) {
            Some(Value::Uuid(id)) => Some(RecordId::from_trusted_uuid(*id)),
            _ => None,
        });
        let subject_of = |row: &Vec<Value>| match (spec.has_subject(), row.get(2)) {
            (true, Some(Value::Uuid(s))) => Some(SubjectId::from_trusted_uuid(*s)),
            _ => None,
        };
        let subjects = subjects_of(rows.iter().filter_map(subject_of));
        let decisions = self.decide(tx, grant, &subjects).await?;
        let mut kept = Vec::with_capacity(rows.len());
        let mut first_denial = None;
        for row in rows {
            match decisions.denial(subject_of(&row)) {
                None => kept.push(row),
                Some(reason) => {
                    access.excluded += 1;
                    first_denial.get_or_insert(reason);
                }
            }
        }
        if let (Read::One(_), Some(reason)) = (&read, first_denial) {
            // Whose record was asked for belongs in the record of a refused attempt.
            access.subjects = subjects;
            return Err(self.denied(grant, reason));
        }
        // Plain fields are never withheld here: a visible one is returned, an invisible one
        // outside the view is dropped by the view, and an invisible one inside it refused above.
        let keep: Vec<bool> = spec
            .fields()
            .iter()
            .zip(&visible)
            .map(|(f, v)| *v || !f.is_encrypted())
            .collect();
        let items = self.materialise(tenant, kept, &keep).await?;
        access.records = items.iter().map(R::id).collect();
        access.subjects = subjects_of(items.iter().filter_map(R::subject));
        let next = match limit {
            Some(l) if l > 0 && scanned as u64 >= u64::from(l) => last_scanned,
            _ => None,
        };
        Ok(Page { items, next })
    }

    // --- shared plumbing -------------------------------------------------------------------

    fn check_write_tenant(&self, tenant: TenantId, records: &[R]) -> Result<(), Error> {
        if records.iter().any(|r| r.tenant() != tenant) {
            return Err(Error::TenantMismatch {
                record_type: self.spec().record_type().to_string(),
            });
        }
        Ok(())
    }

    /// Loads (and with `create`, creates) the subject keys of `subjects`; returns the subjects
    /// whose keys were created.
    async fn prepare(
        &self,
        tenant: TenantId,
        subjects: &[SubjectId],
        create: bool,
    ) -> Result<Vec<SubjectId>, Error> {
        // Only subject-owned fields need subject keys.
        if self.sql.subject_positions.is_empty() || subjects.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .shared
            .keyring
            .prepare_subjects(&*self.shared.keys, tenant, subjects, create)
            .await?)
    }

    fn locator(&self, tenant: TenantId, field: &FieldName, owner: Owner) -> FieldLocator {
        FieldLocator {
            tenant,
            record_type: self.spec().record_type().clone(),
            field: field.clone(),
            owner,
        }
    }

    async fn write_keys(&self, tenant: TenantId) -> Result<WriteKeys, Error> {
        let spec = self.spec();
        let (keyring, store) = (&self.shared.keyring, &*self.shared.keys);
        let mut tenant_keys = Vec::with_capacity(spec.fields().len());
        let mut indexers = Vec::with_capacity(spec.fields().len());
        for f in spec.fields() {
            let (key, indexer) = match &f.storage {
                Storage::Plain(_) => (None, None),
                Storage::Encrypted { owner, blind_index } => {
                    let key = match owner {
                        KeyOwner::Tenant => Some(
                            keyring
                                .field_key(store, &self.locator(tenant, &f.name, Owner::Tenant))
                                .await?,
                        ),
                        KeyOwner::Subject => None,
                    };
                    let indexer = match blind_index {
                        Some(b) => Some(
                            keyring
                                .blind_indexer(
                                    store,
                                    tenant,
                                    spec.record_type(),
                                    &f.name,
                                    b.normaliser,
                                )
                                .await?,
                        ),
                        None => None,
                    };
                    (key, indexer)
                }
            };
            tenant_keys.push(key);
            indexers.push(indexer);
        }
        Ok(WriteKeys {
            tenant_keys,
            indexers,
        })
    }

    async fn row_keys(
        &self,
        tenant: TenantId,
        subject: Option<SubjectId>,
        keys: &WriteKeys,
    ) -> Result<Vec<Option<FieldKey>>, Error> {
        let mut out = keys.tenant_keys.clone();
        if self.sql.subject_positions.is_empty() {
            return Ok(out);
        }
        let s = subject.ok_or_else(|| self.invalid("a subject-owned field needs a subject"))?;
        let bundle = self
            .shared
            .keyring
            .field_keys(
                &*self.shared.keys,
                tenant,
                Owner::Subject(s),
                None,
                self.spec().record_type(),
                &self.sql.subject_names,
            )
            .await?;
        for (position, key) in self.sql.subject_positions.iter().zip(bundle.iter()) {
            if let Some(slot) = out.get_mut(*position) {
                *slot = Some(key.clone());
            }
        }
        Ok(out)
    }

    /// The keys that open a row's sealed values: the subject-owned fields as one bundle (for
    /// the version the first of them names), anything else field by field. A destroyed key is
    /// not an error here: the row is returned and its erased fields refuse to open.
    async fn read_keys(
        &self,
        tenant: TenantId,
        subject: Option<SubjectId>,
        values: &[Option<Value>],
    ) -> Result<Vec<Option<KeySlot>>, Error> {
        let spec = self.spec();
        let mut out: Vec<Option<KeySlot>> = vec![None; values.len()];
        let envelope = |pos: usize| match values.get(pos) {
            Some(Some(Value::Bytes(b))) => Some(b.as_slice()),
            _ => None,
        };
        let mut bundle: Option<(u32, KeyBundle)> = None;
        if let Some(s) = subject {
            let version = self
                .sql
                .subject_positions
                .iter()
                .find_map(|p| envelope(*p).and_then(Envelope::peek_key_version));
            if let Some(v) = version {
                let keys = match self
                    .shared
                    .keyring
                    .field_keys(
                        &*self.shared.keys,
                        tenant,
                        Owner::Subject(s),
                        Some(v),
                        spec.record_type(),
                        &self.sql.subject_names,
                    )
                    .await
                {
                    Ok(keys) => Ok(keys),
                    Err(plenum_crypto::Error::KeyDestroyed { scope, .. }) => Err(scope),
                    Err(e) => return Err(e.into()),
                };
                bundle = Some((v, keys));
            }
        }
        if let Some((v, keys)) = &bundle {
            for (i, pos) in self.sql.subject_positions.iter().enumerate() {
                // A field sealed under another version (mid-rotation) is opened on its own below.
                if envelope(*pos).and_then(Envelope::peek_key_version) != Some(*v) {
                    continue;
                }
                out[*pos] = match keys {
                    Ok(keys) => keys.get(i).cloned().map(KeySlot::Ready),
                    Err(scope) => Some(KeySlot::Destroyed {
                        scope: *scope,
                        version: *v,
                    }),
                };
            }
        }
        for (pos, (f, value)) in spec.fields().iter().zip(values).enumerate() {
            let (Storage::Encrypted { owner, .. }, Some(Value::Bytes(bytes))) = (&f.storage, value)
            else {
                continue;
            };
            if out[pos].is_some() {
                continue;
            }
            let owner = match (owner, subject) {
                (KeyOwner::Subject, Some(s)) => Owner::Subject(s),
                (KeyOwner::Subject, None) => return Err(self.decode_error("subject_id")),
                _ => Owner::Tenant,
            };
            let locator = self.locator(tenant, &f.name, owner);
            out[pos] = Some(
                match self
                    .shared
                    .keyring
                    .opening_key(&*self.shared.keys, &locator, bytes)
                    .await
                {
                    Ok(k) => KeySlot::Ready(k),
                    Err(plenum_crypto::Error::KeyDestroyed { scope, version }) => {
                        KeySlot::Destroyed { scope, version }
                    }
                    Err(e) => return Err(e.into()),
                },
            );
        }
        Ok(out)
    }

    fn insert_row(
        &self,
        tenant: TenantId,
        record: &R,
        slots: Vec<Slot>,
    ) -> Result<Vec<Value>, Error> {
        let spec = self.spec();
        let mut row = Vec::with_capacity(self.sql.write_types.len());
        row.push(Value::Uuid(*tenant.as_uuid()));
        row.push(Value::Uuid(*record.id().as_uuid()));
        if spec.has_subject() {
            let s = record
                .subject()
                .ok_or_else(|| self.invalid("the record declares a subject but has none"))?;
            row.push(Value::Uuid(*s.as_uuid()));
        }
        let mut indexes = Vec::new();
        for (f, slot) in spec.fields().iter().zip(slots) {
            match slot {
                Slot::Set(value, index) => {
                    row.push(value);
                    if f.blind_index_spec().is_some() {
                        indexes.push(index.unwrap_or(Value::Null));
                    }
                }
                Slot::Empty | Slot::Unchanged => return Err(self.unwritten()),
            }
        }
        row.extend(indexes);
        Ok(row)
    }

    /// Rows (tenant, id, [subject], fields) to records: tenant checked, keys resolved for every
    /// sealed value the record keeps, nothing decrypted. Fields with `visible[i] == false` are
    /// withheld: their keys are never resolved, their values never kept.
    async fn materialise(
        &self,
        tenant: TenantId,
        rows: Vec<Vec<Value>>,
        visible: &[bool],
    ) -> Result<Vec<R>, Error> {
        let spec = self.spec();
        let rt = spec.record_type().as_str();
        let mut heads = Vec::with_capacity(rows.len());
        for row in &rows {
            let (t, id, subject) = match row.as_slice() {
                [Value::Uuid(t), Value::Uuid(id), rest @ ..] => {
                    let subject = match (spec.has_subject(), rest.first()) {
                        (true, Some(Value::Uuid(s))) => Some(SubjectId::from_trusted_uuid(*s)),
                        (false, _) => None,
                        _ => return Err(self.decode_error("subject_id")),
                    };
                    (*t, RecordId::from_trusted_uuid(*id), subject)
                }
                _ => return Err(self.decode_error("id")),
            };
            check_tenant(tenant, t, rt)?;
            heads.push((id, subject));
        }
        let subjects = subjects_of(heads.iter().filter_map(|h| h.1));
        self.prepare(tenant, &subjects, false).await?;
        let skip = if spec.has_subject() { 3 } else { 2 };
        let mut out = Vec::with_capacity(rows.len());
        for ((id, subject), row) in heads.into_iter().zip(rows) {
            let mut values: Vec<Option<Value>> = row.into_iter().skip(skip).map(Some).collect();
            let withheld: Vec<bool> = (0..values.len())
                .map(|i| !visible.get(i).copied().unwrap_or(false))
                .collect();
            for (value, hidden) in values.iter_mut().zip(&withheld) {
                if *hidden {
                    // Dropped before any key is looked up: a withheld envelope is never opened.
                    *value = Some(Value::Null);
                }
            }
            let keys = self.read_keys(tenant, subject, &values).await?;
            let mut reader = RowReader::new(spec, tenant, id, subject, values, keys, withheld);
            out.push(R::read(&mut reader)?);
        }
        Ok(out)
    }

    fn all_fields(&self) -> Vec<(FieldName, plenum_core::DataCategory)> {
        self.spec()
            .fields()
            .iter()
            .map(|f| (f.name.clone(), f.category.clone()))
            .collect()
    }

    fn describe(&self, grant: &PurposeGrant<'_>, action: Action) -> Access {
        describe(grant, action, self.spec().record_type().clone())
    }

    /// Tells the hook, failing closed on success and keeping the original error on failure.
    /// A refusal by the purpose layer is reported as `Denied`, with nothing read or written.
    async fn report<T>(
        &self,
        tx: &mut TenantTx,
        mut access: Access,
        result: Result<T, Error>,
        rows: impl FnOnce(&T) -> u64,
    ) -> Result<T, Error> {
        match result {
            Ok(value) => {
                access.rows = rows(&value);
                self.shared.hook.on_access(tx, &access).await?;
                Ok(value)
            }
            Err(e) => {
                access.outcome = match &e {
                    Error::Denied { reason, .. } => Outcome::Denied(reason),
                    other => Outcome::Failed(other.kind()),
                };
                if let Err(hook_error) = self.shared.hook.on_access(tx, &access).await {
                    tracing::warn!(
                        record_type = access.record_type.as_str(),
                        kind = ?hook_error.kind(),
                        "access hook failed while reporting an operation that did not happen"
                    );
                }
                Err(e)
            }
        }
    }

    fn db_error(&self, e: sqlx::Error) -> Error {
        let spec = self.spec();
        match Error::from_sqlx(e, spec.record_type().as_str()) {
            Error::UniqueViolation { record_type, field } => Error::UniqueViolation {
                field: spec
                    .field_of_column(&field)
                    .map_or(field, FieldName::to_string),
                record_type,
            },
            other => other,
        }
    }

    fn not_found(&self) -> Error {
        Error::NotFound {
            record_type: self.spec().record_type().to_string(),
        }
    }

    fn invalid(&self, reason: &'static str) -> Error {
        Error::InvalidRecord {
            record_type: self.spec().record_type().to_string(),
            reason,
        }
    }

    fn unwritten(&self) -> Error {
        self.invalid("Record::write left a field unwritten")
    }

    fn decode_error(&self, field: &str) -> Error {
        Error::Decode {
            record_type: self.spec().record_type().to_string(),
            field: field.to_owned(),
        }
    }
}

/// The description of an operation under `grant`, before anything happened: actor, request,
/// purpose, basis and policy from the grant, nothing touched yet.
fn describe(
    grant: &PurposeGrant<'_>,
    action: Action,
    record_type: plenum_core::RecordType,
) -> Access {
    let purpose = grant.purpose();
    let rule = purpose.and_then(|p| grant.policy().rule(p));
    Access {
        actor: grant.request().actor().clone(),
        request: grant.request().id(),
        action,
        record_type,
        records: Vec::new(),
        fields: Vec::new(),
        subjects: Vec::new(),
        rows: 0,
        outcome: Outcome::Success,
        purpose,
        unrestricted: grant.unrestricted_reason(),
        legal_basis: rule.map(|r| r.basis),
        policy_version: purpose.map(|_| grant.policy().version().to_owned()),
        excluded: 0,
    }
}

/// Distinct subjects, in first-seen order.
fn subjects_of(subjects: impl IntoIterator<Item = SubjectId>) -> Vec<SubjectId> {
    let mut out: Vec<SubjectId> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for s in subjects {
        if seen.insert(s) {
            out.push(s);
        }
    }
    out
}
