//! Key preparation: which keys a row needs and getting them from the keyring, once per
//! operation for tenant-owned keys and blind indexers, one bundle per row for the
//! subject-owned fields. A destroyed key is not an error on read (the field comes back
//! erased). Nothing here decides purposes or runs SQL.

use std::sync::Arc;

use plenum_core::{FieldName, SubjectId, TenantId};
use plenum_crypto::{BlindIndexer, Envelope, FieldKey, FieldLocator, KeyScopeKind, Keyring, Owner};

use super::{decode_error, invalid};
use crate::encrypted::{KeySlot, OpeningKey};
use crate::error::Error;
use crate::record::{KeyOwner, RecordSpec, Storage, Value};

/// Where a record type's subject-owned encrypted fields are: their keys are looked up as one
/// bundle per row.
pub(super) struct KeyLayout {
    positions: Vec<usize>,
    names: Vec<FieldName>,
    /// Whether any encrypted field is tenant-owned (its key is looked up field by field).
    tenant_owned: bool,
}

impl KeyLayout {
    pub(super) fn new(spec: &RecordSpec) -> Self {
        let (mut positions, mut names, mut tenant_owned) = (Vec::new(), Vec::new(), false);
        for (i, f) in spec.fields().iter().enumerate() {
            match f.storage {
                Storage::Encrypted {
                    owner: KeyOwner::Subject,
                    ..
                } => {
                    positions.push(i);
                    names.push(f.name.clone());
                }
                Storage::Encrypted { .. } => tenant_owned = true,
                Storage::Plain(_) => {}
            }
        }
        Self {
            positions,
            names,
            tenant_owned,
        }
    }
}

/// The subject-owned field keys of a row, or the scope of the destroyed key that sealed them
/// (`None`: the envelopes name a key version no key of theirs opens, see `unreadable`).
type KeyBundle = Result<Arc<[FieldKey]>, Option<KeyScopeKind>>;

/// Per-operation key material for writes: tenant-owned field keys and blind indexers,
/// resolved once; subject-owned field keys are added per row.
pub(super) struct WriteKeys {
    tenant_keys: Vec<Option<FieldKey>>,
    pub(super) indexers: Vec<Option<BlindIndexer>>,
}

/// The key stage of one repository: the keyring, the record type and where its subject-owned
/// fields are.
pub(super) struct RowKeys<'a> {
    pub(super) keyring: &'a Keyring,
    pub(super) spec: &'static RecordSpec,
    pub(super) layout: &'a KeyLayout,
}

impl RowKeys<'_> {
    /// Loads (and with `create`, creates) the subject keys of `subjects` in one store round
    /// trip; returns the subjects whose keys were created.
    pub(super) async fn prepare(
        &self,
        tenant: TenantId,
        subjects: &[SubjectId],
        create: bool,
    ) -> Result<Vec<SubjectId>, Error> {
        // Only subject-owned fields need subject keys.
        if self.layout.positions.is_empty() || subjects.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .keyring
            .prepare_subjects(tenant, subjects, create)
            .await?)
    }

    fn locator(&self, tenant: TenantId, field: &FieldName, owner: Owner) -> FieldLocator {
        FieldLocator {
            tenant,
            record_type: self.spec.record_type().clone(),
            field: field.clone(),
            owner,
        }
    }

    /// The tenant-owned field keys and blind indexers of a write.
    pub(super) async fn for_writes(&self, tenant: TenantId) -> Result<WriteKeys, Error> {
        let fields = self.spec.fields();
        let mut tenant_keys = Vec::with_capacity(fields.len());
        let mut indexers = Vec::with_capacity(fields.len());
        for f in fields {
            let (key, indexer) = match &f.storage {
                Storage::Plain(_) => (None, None),
                Storage::Encrypted { owner, blind_index } => {
                    let key = match owner {
                        KeyOwner::Tenant => Some(
                            self.keyring
                                .dangerous_field_key(&self.locator(tenant, &f.name, Owner::Tenant))
                                .await?,
                        ),
                        KeyOwner::Subject => None,
                    };
                    let indexer = match blind_index {
                        Some(b) => Some(
                            self.keyring
                                .blind_indexer(
                                    tenant,
                                    self.spec.record_type(),
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

    /// The sealing key of every encrypted field of one row: `keys`' tenant-owned ones plus the
    /// subject's active bundle.
    pub(super) async fn for_row_write(
        &self,
        tenant: TenantId,
        subject: Option<SubjectId>,
        keys: &WriteKeys,
    ) -> Result<Vec<Option<FieldKey>>, Error> {
        let mut out = keys.tenant_keys.clone();
        if self.layout.positions.is_empty() {
            return Ok(out);
        }
        let s =
            subject.ok_or_else(|| invalid(self.spec, "a subject-owned field needs a subject"))?;
        let bundle = self
            .keyring
            .dangerous_field_keys(
                tenant,
                Owner::Subject(s),
                None,
                self.spec.record_type(),
                &self.layout.names,
            )
            .await?;
        for (position, key) in self.layout.positions.iter().zip(bundle.iter()) {
            if let Some(slot) = out.get_mut(*position) {
                *slot = Some(key.clone());
            }
        }
        Ok(out)
    }

    /// [`RowKeys::for_row_read`] from the keyring's caches alone, for the row nearly every row
    /// is: a subject, its sealed subject-owned fields all under one key version, no
    /// tenant-owned encrypted field. `None` for any other row, or a bundle not cached: the
    /// caller loads the missing subjects of the page at once and takes the full path for
    /// those rows. The same slots as the full path wherever this answers.
    pub(super) fn cached_for_row_read(
        &self,
        tenant: TenantId,
        subject: Option<SubjectId>,
        values: &[Option<Value>],
    ) -> Option<Vec<Option<KeySlot>>> {
        if self.layout.tenant_owned {
            return None;
        }
        let mut version = None;
        for pos in &self.layout.positions {
            if let Some(Some(Value::Bytes(b))) = values.get(*pos) {
                // A value no version can be read from goes the full path (it is unreadable).
                let v = Envelope::peek_key_version(b)?;
                if version.is_some_and(|seen| seen != v) {
                    return None;
                }
                version = Some(v);
            }
        }
        let Some(version) = version else {
            // Nothing sealed under a subject key: no key to look up (as the full path).
            return Some(vec![None; values.len()]);
        };
        let bundle = self.keyring.dangerous_cached_field_keys(
            tenant,
            Owner::Subject(subject?),
            version,
            self.spec.record_type(),
            &self.layout.names,
        )?;
        let mut out: Vec<Option<KeySlot>> = vec![None; values.len()];
        for (i, pos) in self.layout.positions.iter().enumerate() {
            if let (Some(Some(Value::Bytes(_))), Some(slot)) = (values.get(*pos), out.get_mut(*pos))
            {
                *slot = Some(KeySlot::Ready(OpeningKey::bundled(&bundle, i)?));
            }
        }
        Some(out)
    }

    /// The keys that open a row's sealed values: the subject-owned fields as one bundle (for
    /// the version the first of them names), anything else field by field. A destroyed key is
    /// not an error here: the row is returned and its erased fields refuse to open.
    pub(super) async fn for_row_read(
        &self,
        tenant: TenantId,
        subject: Option<SubjectId>,
        values: &[Option<Value>],
    ) -> Result<Vec<Option<KeySlot>>, Error> {
        let mut out: Vec<Option<KeySlot>> = vec![None; values.len()];
        let envelope = |pos: usize| match values.get(pos) {
            Some(Some(Value::Bytes(b))) => Some(b.as_slice()),
            _ => None,
        };
        if let Some(s) = subject
            && let Some(v) = self
                .layout
                .positions
                .iter()
                .find_map(|p| envelope(*p).and_then(Envelope::peek_key_version))
        {
            let keys: KeyBundle = match self
                .keyring
                .dangerous_field_keys(
                    tenant,
                    Owner::Subject(s),
                    Some(v),
                    self.spec.record_type(),
                    &self.layout.names,
                )
                .await
            {
                Ok(keys) => Ok(keys),
                Err(plenum_crypto::Error::KeyDestroyed { scope, .. }) => Err(Some(scope)),
                Err(e) if unreadable(&e) => Err(None),
                Err(e) => return Err(e.into()),
            };
            for (i, pos) in self.layout.positions.iter().enumerate() {
                // A field sealed under another version (mid-rotation) is opened on its own below.
                if envelope(*pos).and_then(Envelope::peek_key_version) != Some(v) {
                    continue;
                }
                out[*pos] = match &keys {
                    Ok(keys) => OpeningKey::bundled(keys, i).map(KeySlot::Ready),
                    Err(Some(scope)) => Some(KeySlot::Destroyed {
                        scope: *scope,
                        version: v,
                    }),
                    Err(None) => Some(KeySlot::Unreadable),
                };
            }
        }
        for (pos, (f, value)) in self.spec.fields().iter().zip(values).enumerate() {
            let (Storage::Encrypted { owner, .. }, Some(Value::Bytes(bytes))) = (&f.storage, value)
            else {
                continue;
            };
            if out[pos].is_some() {
                continue;
            }
            let owner = match (owner, subject) {
                (KeyOwner::Subject, Some(s)) => Owner::Subject(s),
                (KeyOwner::Subject, None) => return Err(decode_error(self.spec, "subject_id")),
                _ => Owner::Tenant,
            };
            let locator = self.locator(tenant, &f.name, owner);
            out[pos] = Some(
                match self.keyring.dangerous_opening_key(&locator, bytes).await {
                    Ok(k) => KeySlot::Ready(OpeningKey::Own(k)),
                    Err(plenum_crypto::Error::KeyDestroyed { scope, version }) => {
                        KeySlot::Destroyed { scope, version }
                    }
                    Err(e) if unreadable(&e) => KeySlot::Unreadable,
                    Err(e) => return Err(e.into()),
                },
            );
        }
        Ok(out)
    }
}

/// A stored value no key of this field opens (malformed, a key version that does not exist or
/// is not usable): the field is unreadable, the row and the page are not. Key store and
/// provider failures are not this: they fail the read.
fn unreadable(e: &plenum_crypto::Error) -> bool {
    matches!(
        e.kind(),
        plenum_crypto::ErrorKind::Malformed
            | plenum_crypto::ErrorKind::KeyUnavailable
            | plenum_crypto::ErrorKind::DecryptionFailed
    )
}
