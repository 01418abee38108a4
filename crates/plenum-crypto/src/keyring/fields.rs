//! Field keys and blind indexers: what sealing, opening and searching one field needs,
//! derived from a scope's key and cached. Nothing here touches the store except through the
//! scope loading in `mod.rs`.

use std::sync::Arc;

use plenum_core::{FieldName, RecordId, RecordType, TenantId};

use super::{
    BundleCacheKey, FieldCacheKey, IndexCacheKey, Keyring, ScopeKeys, destroyed_or_missing, lock,
    scope_of, usable_material,
};
use crate::backend::PreparedMac;
use crate::blind::{BlindIndex, BlindIndexer, Normaliser};
use crate::envelope::{FieldKey, FieldLocator, Owner};
use crate::error::{Error, Malformed};
use crate::format::{Header, blind_index_info, field_key_info};
use crate::keys::{KeyRef, KeyScope};
use crate::pii::{Pii, PiiValue};
use crate::primitives::{derive, derive_each, prepare};

impl Keyring {
    /// The active field key for `locator`, creating the tenant or subject key on first use.
    ///
    /// Dangerous: a `FieldKey` opens every value of this field under this key, with no purpose,
    /// grant or audit event. Services read through `plenum-store`'s repositories.
    ///
    /// # Errors
    ///
    /// Key store or provider failures; [`Error::KeyDestroyed`] if the subject's key was destroyed
    /// (an erased subject gets no new data).
    pub async fn dangerous_field_key(&self, locator: &FieldLocator) -> Result<FieldKey, Error> {
        let scope = scope_of(locator.owner);
        let keys = match self.cached_scope(locator.tenant, scope) {
            Some(keys) if keys.active.is_some() => keys,
            _ => self.scope_keys(locator.tenant, scope, true).await?,
        };
        let version = match keys.active {
            Some(v) => v,
            None => return Err(destroyed_or_missing(&keys, scope)),
        };
        let key = KeyRef {
            tenant: locator.tenant,
            scope,
            version,
        };
        self.seed_usage(key).await?;
        self.field_key_version(&keys, key, locator)
    }

    /// Dangerous, as [`Keyring::dangerous_field_key`]: the active field key for `locator` if
    /// its tenant or subject key exists and has an active version, creating nothing (`None`
    /// otherwise: a subject never keyed, or erased). What a sweep over stored rows uses, so a
    /// pseudonymised row of an erased subject never gets a key of its own.
    ///
    /// # Errors
    ///
    /// Key store or provider failures.
    pub async fn dangerous_existing_field_key(
        &self,
        locator: &FieldLocator,
    ) -> Result<Option<FieldKey>, Error> {
        let scope = scope_of(locator.owner);
        let keys = match self.cached_scope(locator.tenant, scope) {
            Some(keys) if keys.active.is_some() => keys,
            _ => self.scope_keys(locator.tenant, scope, false).await?,
        };
        let Some(version) = keys.active else {
            return Ok(None);
        };
        let key = KeyRef {
            tenant: locator.tenant,
            scope,
            version,
        };
        self.seed_usage(key).await?;
        self.field_key_version(&keys, key, locator).map(Some)
    }

    /// Seals one value for `record` under the active key: [`Keyring::dangerous_field_key`] then
    /// [`FieldKey::seal`]. Prefer holding the `FieldKey` when sealing many values of one field.
    ///
    /// # Errors
    ///
    /// As [`Keyring::dangerous_field_key`].
    pub async fn seal<T: PiiValue>(
        &self,
        locator: &FieldLocator,
        record: RecordId,
        value: &Pii<T>,
    ) -> Result<crate::Envelope, Error> {
        self.dangerous_field_key(locator).await?.seal(record, value)
    }

    /// Opens an envelope stored at `locator` in record `record`, with whatever key version its
    /// header names (looked up in O(1), no trial decryption).
    ///
    /// Dangerous: plaintext with no purpose, grant or audit event (a marketing service could
    /// open the phone numbers its grant withholds). Services read through `plenum-store`'s
    /// repositories, which call this only for fields the grant may see, and report the read.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`], [`Error::DecryptionFailed`], [`Error::KeyDestroyed`],
    /// [`Error::KeyNotFound`], [`Error::PlaintextType`], or a store/provider failure.
    pub async fn dangerous_open<T: PiiValue>(
        &self,
        locator: &FieldLocator,
        record: RecordId,
        envelope: &[u8],
    ) -> Result<Pii<T>, Error> {
        let header = Header::parse(envelope)?;
        let scope = scope_of(locator.owner);
        if header.scope != scope.kind() {
            return Err(Error::Malformed(Malformed::ScopeMismatch));
        }
        let keys = self.scope_keys(locator.tenant, scope, false).await?;
        let key = KeyRef {
            tenant: locator.tenant,
            scope,
            version: header.key_version,
        };
        self.field_key_version(&keys, key, locator)?
            .open(record, envelope)
    }

    /// How many versions of the tenant's index key are live (not destroyed): more than one
    /// while an index-key rotation's old rows are not re-indexed yet. A cache lookup once
    /// loaded.
    ///
    /// # Errors
    ///
    /// Key store or provider failures.
    pub async fn live_index_versions(&self, tenant: TenantId) -> Result<usize, Error> {
        let keys = self.scope_keys(tenant, KeyScope::TenantIndex, true).await?;
        Ok(keys.live_versions().len())
    }

    /// The blind indexer for a field, under the tenant's active index key (created on first use).
    ///
    /// # Errors
    ///
    /// Key store or provider failures.
    pub async fn blind_indexer(
        &self,
        tenant: TenantId,
        record_type: &RecordType,
        field: &FieldName,
        normaliser: Normaliser,
    ) -> Result<BlindIndexer, Error> {
        let scope = KeyScope::TenantIndex;
        let keys = self.scope_keys(tenant, scope, true).await?;
        let version = keys
            .active
            .ok_or_else(|| destroyed_or_missing(&keys, scope))?;
        self.indexer_version(
            &keys,
            KeyRef {
                tenant,
                scope,
                version,
            },
            record_type,
            field,
            normaliser,
        )
    }

    /// One blind index of `value` per live (not destroyed) index key version, active first: query
    /// with all of them while a rotation's re-index sweep is under way.
    ///
    /// # Errors
    ///
    /// [`Error::Normalisation`], or key store or provider failures.
    pub async fn blind_index_candidates(
        &self,
        tenant: TenantId,
        record_type: &RecordType,
        field: &FieldName,
        normaliser: Normaliser,
        value: &str,
    ) -> Result<Vec<BlindIndex>, Error> {
        let scope = KeyScope::TenantIndex;
        let keys = self.scope_keys(tenant, scope, true).await?;
        let normalised = normaliser.normalise(value)?;
        let mut versions = keys.live_versions();
        if let Some(active) = keys.active {
            versions.retain(|v| *v != active);
            versions.insert(0, active);
        }
        versions
            .into_iter()
            .map(|version| {
                let indexer = self.indexer_version(
                    &keys,
                    KeyRef {
                        tenant,
                        scope,
                        version,
                    },
                    record_type,
                    field,
                    normaliser,
                )?;
                Ok(indexer.compute_normalised(normalised.as_bytes()))
            })
            .collect()
    }

    /// Dangerous, as [`Keyring::dangerous_field_key`]: the repositories' building block.
    ///
    /// The field key that opens `envelope` stored at `locator`: the version its header names,
    /// looked up without decrypting anything. Repositories resolve keys when rows arrive and
    /// decrypt only the fields a caller opens.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] for a bad header or one naming another key scope,
    /// [`Error::KeyDestroyed`], [`Error::KeyNotFound`], or a store/provider failure.
    pub async fn dangerous_opening_key(
        &self,
        locator: &FieldLocator,
        envelope: &[u8],
    ) -> Result<FieldKey, Error> {
        let header = Header::parse(envelope)?;
        let scope = scope_of(locator.owner);
        if header.scope != scope.kind() {
            return Err(Error::Malformed(Malformed::ScopeMismatch));
        }
        let keys = match self.cached_scope(locator.tenant, scope) {
            Some(keys) => keys,
            None => self.scope_keys(locator.tenant, scope, false).await?,
        };
        let key = KeyRef {
            tenant: locator.tenant,
            scope,
            version: header.key_version,
        };
        self.field_key_version(&keys, key, locator)
    }

    /// Dangerous, as [`Keyring::dangerous_field_key`]: the repositories' building block.
    ///
    /// The field keys of `fields` of one record type for one owner, in the order given: under
    /// `version` (what an envelope's header names), or under the active version (creating the
    /// key on first use) when `None`. One cache lookup for the whole set, which is what a
    /// repository sealing or opening a row wants; derived and cached together on a miss.
    ///
    /// # Errors
    ///
    /// As [`Keyring::dangerous_field_key`]; [`Error::KeyDestroyed`] for a destroyed version.
    pub async fn dangerous_field_keys(
        &self,
        tenant: TenantId,
        owner: Owner,
        version: Option<u32>,
        record_type: &RecordType,
        fields: &[FieldName],
    ) -> Result<Arc<[FieldKey]>, Error> {
        let scope = scope_of(owner);
        let sealing = version.is_none();
        // The read path: a row names its version, so a cached bundle answers with one lookup.
        // Bundles expire with the scope they were derived from (`insert_at`), and
        // `invalidate` drops both, so this sees no key the scope lookup would refuse.
        if let Some(version) = version
            && let Some(bundle) =
                self.dangerous_cached_field_keys(tenant, owner, version, record_type, fields)
        {
            return Ok(bundle);
        }
        let keys = match self.cached_scope(tenant, scope) {
            Some(keys) if version.is_some() || keys.active.is_some() => keys,
            _ => self.scope_keys(tenant, scope, version.is_none()).await?,
        };
        let version = match version {
            Some(v) => v,
            None => keys
                .active
                .ok_or_else(|| destroyed_or_missing(&keys, scope))?,
        };
        let key = KeyRef {
            tenant,
            scope,
            version,
        };
        if sealing {
            self.seed_usage(key).await?;
        }
        let cache_key = BundleCacheKey {
            key,
            record_type: record_type.clone(),
        };
        if let Some(bundle) = self.cached_bundle(&cache_key, fields) {
            return Ok(bundle);
        }
        let material = usable_material(&keys, &key)?;
        let usage = self.usage_counter(key);
        let mut bundle = Vec::with_capacity(fields.len());
        let derived = derive_each(
            material,
            fields.iter().map(|f| field_key_info(&key, record_type, f)),
        )?;
        for (field, derived) in fields.iter().zip(derived) {
            let aead = prepare(self.config.backend, &derived)?;
            let locator = FieldLocator {
                tenant,
                record_type: record_type.clone(),
                field: field.clone(),
                owner,
            };
            bundle.push(FieldKey::new(key, &locator, aead, usage.clone()));
        }
        let bundle: Arc<[FieldKey]> = bundle.into();
        let names = self.field_list(fields);
        lock(&self.bundles).insert_at(cache_key, (names, bundle.clone()), keys.loaded_at);
        Ok(bundle)
    }

    /// Dangerous, as [`Keyring::dangerous_field_keys`]: the same bundle for `version`, if this
    /// keyring holds it, and `None` otherwise; it never reads the key store nor derives. What
    /// a repository tries first for every row of a page, so that a page whose keys are all
    /// cached costs one lookup per row and no pass over its subjects. A cached bundle is
    /// as fresh as its scope's entry: it expires with it and an invalidation drops both.
    pub fn dangerous_cached_field_keys(
        &self,
        tenant: TenantId,
        owner: Owner,
        version: u32,
        record_type: &RecordType,
        fields: &[FieldName],
    ) -> Option<Arc<[FieldKey]>> {
        let cache_key = BundleCacheKey {
            key: KeyRef {
                tenant,
                scope: scope_of(owner),
                version,
            },
            record_type: record_type.clone(),
        };
        self.cached_bundle(&cache_key, fields)
    }

    /// The cached bundle for `cache_key` if it was derived for exactly `fields`; only the
    /// bundle's reference count is touched.
    fn cached_bundle(
        &self,
        cache_key: &BundleCacheKey,
        fields: &[FieldName],
    ) -> Option<Arc<[FieldKey]>> {
        let bundles = lock(&self.bundles);
        let (names, bundle) = bundles.get_ref(cache_key)?;
        (**names == *fields).then(|| bundle.clone())
    }

    /// One shared copy of each field list bundles are derived for (a record type has one),
    /// so that every bundle's check of its field names reads the same, warm memory rather
    /// than a copy of its own.
    fn field_list(&self, fields: &[FieldName]) -> Arc<[FieldName]> {
        let mut lists = lock(&self.field_lists);
        if let Some(list) = lists.iter().find(|l| ***l == *fields) {
            return list.clone();
        }
        let list: Arc<[FieldName]> = fields.into();
        // Bounded by the record types a service declares; a caller inventing field lists
        // without end would only lose the sharing, never correctness.
        if lists.len() < 256 {
            lists.push(list.clone());
        }
        list
    }

    pub(super) fn field_key_version(
        &self,
        keys: &ScopeKeys,
        key: KeyRef,
        locator: &FieldLocator,
    ) -> Result<FieldKey, Error> {
        let cache_key = FieldCacheKey {
            key,
            record_type: locator.record_type.clone(),
            field: locator.field.clone(),
        };
        if let Some(hit) = lock(&self.field_keys).get(&cache_key) {
            return Ok(hit);
        }
        let material = usable_material(keys, &key)?;
        let derived = derive(
            material,
            &field_key_info(&key, &locator.record_type, &locator.field),
        )?;
        let aead = prepare(self.config.backend, &derived)?;
        let field_key = FieldKey::new(key, locator, aead, self.usage_counter(key));
        // Expires with the scope it was derived from, like a bundle: deriving never extends
        // the lifetime of a key erased elsewhere (and needs no reading of the clock).
        lock(&self.field_keys).insert_at(cache_key, field_key.clone(), keys.loaded_at);
        Ok(field_key)
    }

    pub(super) fn indexer_version(
        &self,
        keys: &ScopeKeys,
        key: KeyRef,
        record_type: &RecordType,
        field: &FieldName,
        normaliser: Normaliser,
    ) -> Result<BlindIndexer, Error> {
        let cache_key = IndexCacheKey {
            key,
            record_type: record_type.clone(),
            field: field.clone(),
            normaliser,
        };
        if let Some(hit) = lock(&self.indexers).get(&cache_key) {
            return Ok(hit);
        }
        let material = usable_material(keys, &key)?;
        let derived = derive(
            material,
            &blind_index_info(&key, record_type, field, normaliser.id()),
        )?;
        let mac = PreparedMac::new(
            self.config.backend,
            secrecy::ExposeSecret::expose_secret(&derived),
        )
        .map_err(|_| Error::ApiMisuse("backend rejected a 32-byte key"))?;
        let indexer = BlindIndexer::new(key, normaliser, mac)?;
        lock(&self.indexers).insert_at(cache_key, indexer.clone(), keys.loaded_at);
        Ok(indexer)
    }
}
