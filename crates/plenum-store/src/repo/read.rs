//! The reading half of [`Repository`]: `get`, `list`, `find`, `count` and their view forms, each
//! an orchestration of the stages (describe -> screen -> rows -> keys -> report). The one read
//! pipeline is [`Repository::read`].

use plenum_core::RecordId;

use super::report::subjects_of;
use super::rows::{IndexCheck, Read, materialise};
use super::screen::{self, FieldMask};
use super::{Page, Repository, UnreadableRow, invalid, not_found};
use crate::access::{Access, Action};
use crate::denial::Denial;
use crate::error::{Error, ErrorKind};
use crate::gate::PurposeGrant;
use crate::record::{BlindIndexField, Record, View};
use crate::tx::{BackendKind, TenantTx};

impl<R: Record> Repository<R> {
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
        self.get_one(tx, grant, id, None, Ok(())).await
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
        let screened = screen::check_view::<V>(grant);
        self.get_one(tx, grant, id, Some(V::FIELDS), screened)
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
        let read = Read::Page(after, limit);
        let result = match screen::check_view::<V>(grant) {
            Ok(()) => {
                self.read(tx, grant, read, Some(V::FIELDS), &mut access)
                    .await
            }
            Err(e) => Err(e),
        };
        let page = self
            .report(tx, access, result, |p| p.items.len() as u64)
            .await?;
        Ok(Page {
            items: page.items.into_iter().map(V::from_record).collect(),
            next: page.next,
            unreadable: page.unreadable,
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
        field: BlindIndexField<R>,
        value: &str,
    ) -> Result<Vec<R>, Error> {
        let mut access = self.describe(grant, Action::Search);
        let result = match self.find_read(tx, grant, field, value).await {
            Ok(read) => self
                .read(tx, grant, read, None, &mut access)
                .await
                .map(|page| page.items),
            Err(e) => Err(e),
        };
        self.report(tx, access, result, |v| v.len() as u64).await
    }

    /// The statement [`Repository::find`] runs on `backend` for `field` with `candidates` blind
    /// index values (`$1` the tenant, then the candidates): for `EXPLAIN` in tests and reviews.
    pub fn find_statement(
        &self,
        field: BlindIndexField<R>,
        backend: BackendKind,
        candidates: usize,
    ) -> String {
        let column = self
            .spec()
            .fields()
            .get(field.position())
            .and_then(|f| f.blind_index_spec())
            .map_or("NULL", |b| b.column.as_str());
        self.sql.find_statement(backend, column, candidates)
    }

    /// How many records this tenant has. A count reveals no field and no subject, so it is
    /// not filtered by subject decisions; it still needs a grant and reaches the hook.
    ///
    /// # Errors
    ///
    /// [`Error::TenantMismatch`] for a grant of another tenant; database failures.
    pub async fn count(&self, tx: &mut TenantTx, grant: &PurposeGrant<'_>) -> Result<u64, Error> {
        let access = self.describe(grant, Action::Count);
        let result = match screen::check_grant(tx, grant, self.spec().record_type().as_str()) {
            Ok(()) => self.sql.count(tx).await,
            Err(e) => Err(e),
        };
        self.report(tx, access, result, |n| *n).await
    }

    /// This tenant's record counts per value of the plain field `dimension`, largest groups
    /// first. Groups of fewer than `min_group` records (never fewer than
    /// [`MIN_GROUP_SIZE`](crate::MIN_GROUP_SIZE)) are left out, so that no group singles out a
    /// person. Besides [`Repository::count`], the one read an aggregate purpose
    /// (`improve.aggregated`) may make: no rows, no record or subject ids, no encrypted field.
    /// The dimension must be a plain field the purpose may see. Reported to the hook as a
    /// `count` naming the dimension, with the number of groups as its rows.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidRecord`] for a dimension that is not a plain field of this record;
    /// [`Error::Denied`] (`plain_field_not_visible`) for one the purpose may not see;
    /// [`Error::TenantMismatch`]; database failures.
    pub async fn count_by(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        dimension: &plenum_core::FieldName,
        min_group: u64,
    ) -> Result<Vec<(crate::record::Value, u64)>, Error> {
        let spec = self.spec();
        let mut access = self.describe(grant, Action::Count);
        let result = async {
            screen::check_grant(tx, grant, spec.record_type().as_str())?;
            let field = spec
                .field(dimension.as_str())
                .ok_or_else(|| invalid(spec, "count_by needs a field of this record"))?;
            let crate::record::Storage::Plain(ty) = field.storage else {
                return Err(invalid(
                    spec,
                    "count_by groups by a plain field, never an encrypted one",
                ));
            };
            if let Some(p) = grant.purpose()
                && !grant.policy().allows_category(p, &field.category)
            {
                return Err(screen::denied(grant, Denial::PlainFieldNotVisible));
            }
            access.fields = vec![(field.name.clone(), field.category.clone())];
            self.sql
                .count_by(
                    tx,
                    field.name.as_str(),
                    ty,
                    min_group.max(crate::MIN_GROUP_SIZE),
                )
                .await
        }
        .await;
        self.report(tx, access, result, |groups| groups.len() as u64)
            .await
    }

    /// A point read (of the record, or of a view holding `view_fields` of it, `screened` by
    /// the caller for the view's purpose).
    async fn get_one(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        id: RecordId,
        view_fields: Option<&'static [&'static str]>,
        screened: Result<(), Error>,
    ) -> Result<R, Error> {
        let mut access = self.describe(grant, Action::Read);
        access.records = vec![id];
        let result = match screened {
            Ok(()) => self
                .read(tx, grant, Read::One(id), view_fields, &mut access)
                .await
                .and_then(|mut page| page.items.pop().ok_or_else(|| not_found(self.spec()))),
            Err(e) => Err(e),
        };
        if result.is_err() {
            // What was asked for, whether or not it exists or may be read.
            access.records = vec![id];
        }
        self.report(tx, access, result, |_| 1).await
    }

    /// The search a blind-index lookup runs: checked for the purpose, then one candidate
    /// index value per live index key version.
    async fn find_read(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        field: BlindIndexField<R>,
        value: &str,
    ) -> Result<Read, Error> {
        let spec = self.spec();
        screen::check_grant(tx, grant, spec.record_type().as_str())?;
        screen::check_rows(grant)?;
        screen::check_searchable(grant, spec, field.position())?;
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
                tx.tenant(),
                spec.record_type(),
                &f.name,
                b.normaliser,
                value,
            )
            .await?;
        let term = b.normaliser.normalise(value)?;
        Ok(Read::Find {
            column: b.column.as_str(),
            candidates: candidates.iter().map(|c| c.as_bytes().to_vec()).collect(),
            check: Some(IndexCheck {
                position: field.position(),
                normaliser: b.normaliser,
                term: plenum_crypto::Pii::new(term.as_str().to_owned()),
            }),
        })
    }

    /// A read under `grant`: screened, rows fetched, subjects decided, fields withheld,
    /// records built.
    async fn read(
        &self,
        tx: &mut TenantTx,
        grant: &PurposeGrant<'_>,
        read: Read,
        view_fields: Option<&[&str]>,
        access: &mut Access,
    ) -> Result<Page<R>, Error> {
        let spec = self.spec();
        screen::check_grant(tx, grant, spec.record_type().as_str())?;
        screen::check_rows(grant)?;
        let mask: FieldMask = screen::read_mask(grant, spec, view_fields)?;
        access.fields = mask.fields(spec);
        let (rows, mut undecodable) = self.sql.fetch_lenient(tx, &read).await?;
        let scanned = rows.len() + undecodable.len();
        // Rows come in id order; the cursor moves past undecodable rows too.
        let last_scanned = rows
            .last()
            .map(|r| r.head.id)
            .max(undecodable.last().copied());
        let subjects = subjects_of(rows.iter().filter_map(|r| r.head.subject));
        let decisions = screen::decide(tx, grant, &subjects).await?;
        let decoded = rows.len();
        let mut kept = Vec::with_capacity(rows.len());
        let mut first_denial = None;
        for row in rows {
            match decisions.denial(row.head.subject) {
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
            return Err(screen::denied(grant, reason));
        }
        let check = match &read {
            Read::Find { check, .. } => check.as_ref(),
            _ => None,
        };
        let mut unreadable = Vec::new();
        // The subjects whose keys the kept rows need: all of the page's unless some were left out.
        let needed = if kept.len() == decoded {
            subjects.clone()
        } else {
            subjects_of(kept.iter().filter_map(|r| r.head.subject))
        };
        let items: Vec<R> = materialise(
            &self.keys(),
            tx.tenant(),
            &needed,
            kept,
            &mask,
            check,
            &mut unreadable,
            &mut undecodable,
        )
        .await?;
        if let (Read::One(_), Some(id)) = (&read, undecodable.first()) {
            access.records = vec![*id];
            return Err(self.sql.undecodable(*id));
        }
        unreadable.extend(undecodable.iter().copied());
        if !unreadable.is_empty() {
            // The rows are returned (their bad fields refuse to open); the hook hears of them
            // as a failure of their own, so the log shows which records were tampered with.
            let mut bad = access.clone();
            bad.rows = unreadable.len() as u64;
            bad.records = unreadable;
            bad.subjects = Vec::new();
            bad.outcome = crate::access::Outcome::Failed(ErrorKind::Tampered);
            self.shared.hook.on_access(tx, &bad).await?;
        }
        access.records = items.iter().map(R::id).collect();
        access.subjects = subjects_of(items.iter().filter_map(R::subject));
        let next = match read {
            Read::Page(_, l) if l > 0 && scanned as u64 >= u64::from(l) => last_scanned,
            _ => None,
        };
        let unreadable = undecodable
            .into_iter()
            .map(|id| UnreadableRow {
                id,
                kind: ErrorKind::Tampered,
            })
            .collect();
        Ok(Page {
            items,
            next,
            unreadable,
        })
    }
}
