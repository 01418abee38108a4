use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use plenum_core::{FieldName, RecordId, RecordType, SubjectId, TenantId};
use tokio::sync::OnceCell;

use crate::backend::{Backend, PreparedMac};
use crate::blind::{BlindIndex, BlindIndexer, Normaliser};
use crate::cache::Bounded;
use crate::envelope::{FieldKey, FieldLocator, Owner};
use crate::error::{Error, Malformed};
use crate::format::{
    Header, blind_index_info, field_key_info, key_wrap_context, pseudonym_info, subject_wrap_info,
};
use crate::keys::{KeyMaterial, KeyRef, KeyScope, KeyState, StoredKey};
use crate::pii::{Pii, PiiValue};
use crate::primitives::{
    derive, derive_each, prepare, random_key, unwrap_key, wrap_key, wrapping_version,
};
use crate::provider::{BoxFuture, KeyProvider};
use crate::store::KeyStore;

/// Tuning of a [`Keyring`]. The defaults suit a service process.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct KeyringConfig {
    /// Which AEAD/HMAC backend to use.
    pub backend: Backend,
    /// How many scopes (tenant keys, subject keys) to keep unwrapped in memory.
    pub max_scopes: usize,
    /// How many derived, prepared field keys and blind indexers to keep.
    pub max_field_keys: usize,
    /// How long an unwrapped key may be used before it is read from the key store again. Bounds
    /// how long another process keeps using a key this process rotated or destroyed.
    pub ttl: Duration,
    /// Seals under one key version after which [`Keyring::rotation_due`] says so. Far below the
    /// NIST SP 800-38D limit of 2^32 random-nonce encryptions per key, because counts are per
    /// process and approximate.
    pub rotation_threshold: u64,
}

impl Default for KeyringConfig {
    fn default() -> Self {
        Self {
            backend: Backend::default(),
            max_scopes: 10_000,
            max_field_keys: 50_000,
            ttl: Duration::from_secs(300),
            rotation_threshold: 1 << 30,
        }
    }
}

impl KeyringConfig {
    /// The defaults with another backend.
    pub fn with_backend(backend: Backend) -> Self {
        Self {
            backend,
            ..Self::default()
        }
    }

    /// Sets the cache capacities. Size them to the working set: the caches evict first-in,
    /// first-out, so a loop over more subjects than `max_scopes` misses on every access. A
    /// service reading pages of N customers with F encrypted fields each wants at least N
    /// scopes and N x F field keys.
    #[must_use]
    pub fn with_cache_capacity(mut self, max_scopes: usize, max_field_keys: usize) -> Self {
        self.max_scopes = max_scopes;
        self.max_field_keys = max_field_keys;
        self
    }
}

/// The key hierarchy, with its caches: root key provider -> tenant keys (data, index) -> subject
/// keys -> per-field keys derived with HKDF.
///
/// The [`KeyStore`] is passed per call rather than owned, because in a service it is a view of
/// the current tenant transaction (wrapped keys are rows under RLS).
pub struct Keyring {
    config: KeyringConfig,
    provider: Arc<dyn KeyProvider>,
    scopes: Mutex<Bounded<(TenantId, KeyScope), ScopeSlot>>,
    field_keys: Mutex<Bounded<FieldCacheKey, FieldKey>>,
    indexers: Mutex<Bounded<IndexCacheKey, BlindIndexer>>,
    /// All field keys of one record type under one key version, for repositories that seal
    /// or open a whole row: one lookup per row instead of one per field.
    bundles: Mutex<Bounded<BundleCacheKey, FieldKeyBundle>>,
    /// Seal counts of tenant keys. Subject keys share `subject_usage`: each seals a handful of
    /// values, and a map entry per subject would grow without bound.
    usage: Mutex<HashMap<KeyRef, Arc<AtomicU64>>>,
    subject_usage: Arc<AtomicU64>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct BundleCacheKey {
    key: KeyRef,
    record_type: RecordType,
}

/// The fields a bundle was derived for, and their keys in that order.
type FieldKeyBundle = (Arc<[FieldName]>, Arc<[FieldKey]>);

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct FieldCacheKey {
    key: KeyRef,
    record_type: RecordType,
    field: FieldName,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct IndexCacheKey {
    key: KeyRef,
    record_type: RecordType,
    field: FieldName,
    normaliser: Normaliser,
}

/// A scope's keys, loaded at most once by concurrent callers (single flight).
type ScopeSlot = Arc<OnceCell<Arc<ScopeKeys>>>;

/// Every version of one scope's key, unwrapped.
struct ScopeKeys {
    versions: HashMap<u32, VersionEntry>,
    active: Option<u32>,
}

impl ScopeKeys {
    fn new() -> Self {
        Self {
            versions: HashMap::new(),
            active: None,
        }
    }

    /// Adds one stored version with its unwrapped material (`None` once destroyed); the
    /// highest active version with material is the active one.
    fn add(&mut self, key: &StoredKey, material: Option<KeyMaterial>) {
        let version = key.key_ref.version;
        if key.state == KeyState::Active && material.is_some() {
            self.active = Some(self.active.map_or(version, |a| a.max(version)));
        }
        self.versions.insert(
            version,
            VersionEntry {
                state: key.state,
                material,
                pseudonym: std::sync::OnceLock::new(),
            },
        );
    }
}

struct VersionEntry {
    state: KeyState,
    /// `None` once destroyed.
    material: Option<KeyMaterial>,
    /// The subject's audit pseudonym under this version, derived on first use. It lives and
    /// dies with the cached scope, so destroying the key (which invalidates the scope) drops it.
    pseudonym: std::sync::OnceLock<[u8; 16]>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The caches hold derived data only; a panic elsewhere cannot leave them inconsistent in a
    // way that matters more than a cache miss.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Keyring {
    /// A keyring whose tenant keys are wrapped by `provider`.
    pub fn new(provider: Arc<dyn KeyProvider>, config: KeyringConfig) -> Self {
        Self {
            scopes: Mutex::new(Bounded::new(config.max_scopes, config.ttl)),
            field_keys: Mutex::new(Bounded::new(config.max_field_keys, config.ttl)),
            indexers: Mutex::new(Bounded::new(config.max_field_keys, config.ttl)),
            bundles: Mutex::new(Bounded::new(config.max_field_keys, config.ttl)),
            usage: Mutex::new(HashMap::new()),
            subject_usage: Arc::new(AtomicU64::new(0)),
            config,
            provider,
        }
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.config.backend
    }

    /// The active field key for `locator`, creating the tenant or subject key on first use.
    ///
    /// # Errors
    ///
    /// Key store or provider failures; [`Error::KeyDestroyed`] if the subject's key was destroyed
    /// (an erased subject gets no new data).
    pub async fn field_key(
        &self,
        store: &dyn KeyStore,
        locator: &FieldLocator,
    ) -> Result<FieldKey, Error> {
        let scope = scope_of(locator.owner);
        let keys = match self.cached_scope(locator.tenant, scope) {
            Some(keys) if keys.active.is_some() => keys,
            _ => self.scope_keys(store, locator.tenant, scope, true).await?,
        };
        let version = match keys.active {
            Some(v) => v,
            None => return Err(destroyed_or_missing(&keys, scope)),
        };
        self.field_key_version(
            &keys,
            KeyRef {
                tenant: locator.tenant,
                scope,
                version,
            },
            locator,
        )
    }

    /// Seals one value for `record` under the active key: [`Keyring::field_key`] then
    /// [`FieldKey::seal`]. Prefer holding the `FieldKey` when sealing many values of one field.
    ///
    /// # Errors
    ///
    /// As [`Keyring::field_key`].
    pub async fn seal<T: PiiValue>(
        &self,
        store: &dyn KeyStore,
        locator: &FieldLocator,
        record: RecordId,
        value: &Pii<T>,
    ) -> Result<crate::Envelope, Error> {
        self.field_key(store, locator).await?.seal(record, value)
    }

    /// Opens an envelope stored at `locator` in record `record`, with whatever key version its
    /// header names (looked up in O(1), no trial decryption).
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`], [`Error::DecryptionFailed`], [`Error::KeyDestroyed`],
    /// [`Error::KeyNotFound`], [`Error::PlaintextType`], or a store/provider failure.
    pub async fn open<T: PiiValue>(
        &self,
        store: &dyn KeyStore,
        locator: &FieldLocator,
        record: RecordId,
        envelope: &[u8],
    ) -> Result<Pii<T>, Error> {
        let header = Header::parse(envelope)?;
        let scope = scope_of(locator.owner);
        if header.scope != scope.kind() {
            return Err(Error::Malformed(Malformed::ScopeMismatch));
        }
        let keys = self.scope_keys(store, locator.tenant, scope, false).await?;
        let key = KeyRef {
            tenant: locator.tenant,
            scope,
            version: header.key_version,
        };
        self.field_key_version(&keys, key, locator)?
            .open(record, envelope)
    }

    /// The blind indexer for a field, under the tenant's active index key (created on first use).
    ///
    /// # Errors
    ///
    /// Key store or provider failures.
    pub async fn blind_indexer(
        &self,
        store: &dyn KeyStore,
        tenant: TenantId,
        record_type: &RecordType,
        field: &FieldName,
        normaliser: Normaliser,
    ) -> Result<BlindIndexer, Error> {
        let scope = KeyScope::TenantIndex;
        let keys = self.scope_keys(store, tenant, scope, true).await?;
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
        store: &dyn KeyStore,
        tenant: TenantId,
        record_type: &RecordType,
        field: &FieldName,
        normaliser: Normaliser,
        value: &str,
    ) -> Result<Vec<BlindIndex>, Error> {
        let scope = KeyScope::TenantIndex;
        let keys = self.scope_keys(store, tenant, scope, true).await?;
        let normalised = normaliser.normalise(value)?;
        let mut versions: Vec<u32> = keys
            .versions
            .iter()
            .filter(|(_, e)| e.material.is_some())
            .map(|(v, _)| *v)
            .collect();
        versions.sort_unstable_by(|a, b| b.cmp(a));
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

    /// The field key that opens `envelope` stored at `locator`: the version its header names,
    /// looked up without decrypting anything. Repositories resolve keys when rows arrive and
    /// decrypt only the fields a caller opens.
    ///
    /// # Errors
    ///
    /// [`Error::Malformed`] for a bad header or one naming another key scope,
    /// [`Error::KeyDestroyed`], [`Error::KeyNotFound`], or a store/provider failure.
    pub async fn opening_key(
        &self,
        store: &dyn KeyStore,
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
            None => self.scope_keys(store, locator.tenant, scope, false).await?,
        };
        let key = KeyRef {
            tenant: locator.tenant,
            scope,
            version: header.key_version,
        };
        self.field_key_version(&keys, key, locator)
    }

    /// The field keys of `fields` of one record type for one owner, in the order given: under
    /// `version` (what an envelope's header names), or under the active version (creating the
    /// key on first use) when `None`. One cache lookup for the whole set, which is what a
    /// repository sealing or opening a row wants; derived and cached together on a miss.
    ///
    /// # Errors
    ///
    /// As [`Keyring::field_key`]; [`Error::KeyDestroyed`] for a destroyed version.
    pub async fn field_keys(
        &self,
        store: &dyn KeyStore,
        tenant: TenantId,
        owner: Owner,
        version: Option<u32>,
        record_type: &RecordType,
        fields: &[FieldName],
    ) -> Result<Arc<[FieldKey]>, Error> {
        let scope = scope_of(owner);
        let keys = match self.cached_scope(tenant, scope) {
            Some(keys) if version.is_some() || keys.active.is_some() => keys,
            _ => {
                self.scope_keys(store, tenant, scope, version.is_none())
                    .await?
            }
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
        let cache_key = BundleCacheKey {
            key,
            record_type: record_type.clone(),
        };
        if let Some((names, bundle)) = lock(&self.bundles).get(&cache_key)
            && *names == *fields
        {
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
        lock(&self.bundles).insert(cache_key, (fields.into(), bundle.clone()));
        Ok(bundle)
    }

    /// Keyed pseudonyms of `subjects` for the audit log, in the order given: 16 bytes of HKDF
    /// output under each subject's active key. Destroying the subject's keys (erasure) makes
    /// the pseudonym impossible to recompute, which unlinks every event that names it. Missing
    /// subject keys are created (one store round trip for all), so every subject the log names
    /// can later be erased; an erased subject gets `None`.
    ///
    /// # Errors
    ///
    /// Store or provider failures.
    pub async fn subject_pseudonyms(
        &self,
        store: &dyn KeyStore,
        tenant: TenantId,
        subjects: &[SubjectId],
    ) -> Result<Vec<Option<[u8; 16]>>, Error> {
        self.prepare_subjects(store, tenant, subjects, true).await?;
        let mut out = Vec::with_capacity(subjects.len());
        for s in subjects {
            let scope = KeyScope::Subject(*s);
            let keys = match self.cached_scope(tenant, scope) {
                Some(keys) => keys,
                None => self.scope_keys(store, tenant, scope, false).await?,
            };
            out.push(match keys.active {
                Some(version) => Some(pseudonym(
                    &keys,
                    KeyRef {
                        tenant,
                        scope,
                        version,
                    },
                )?),
                None => None,
            });
        }
        Ok(out)
    }

    /// Every pseudonym `subject` may appear under in the audit log: one per live (not
    /// destroyed) key version. Empty once the subject is erased. Creates nothing.
    ///
    /// # Errors
    ///
    /// Store or provider failures.
    pub async fn subject_pseudonym_candidates(
        &self,
        store: &dyn KeyStore,
        tenant: TenantId,
        subject: SubjectId,
    ) -> Result<Vec<[u8; 16]>, Error> {
        let scope = KeyScope::Subject(subject);
        let keys = self.scope_keys(store, tenant, scope, false).await?;
        let mut versions: Vec<u32> = keys
            .versions
            .iter()
            .filter(|(_, e)| e.material.is_some())
            .map(|(v, _)| *v)
            .collect();
        versions.sort_unstable_by(|a, b| b.cmp(a));
        versions
            .into_iter()
            .map(|version| {
                pseudonym(
                    &keys,
                    KeyRef {
                        tenant,
                        scope,
                        version,
                    },
                )
            })
            .collect()
    }

    /// Loads the keys of many subjects at once, creating the missing ones when `create` is set:
    /// one [`KeyStore::load_subjects`] and at most one [`KeyStore::insert_many`] for the whole
    /// set, instead of a store round trip per subject. Subjects already cached are skipped; an
    /// erased subject (every version destroyed) gets no new key. Returns the subjects whose keys
    /// this call created (for the audit log's key events). Afterwards
    /// [`Keyring::field_key`] and [`Keyring::opening_key`] for these subjects are cache hits
    /// while the cache holds them.
    ///
    /// # Errors
    ///
    /// Store or provider failures.
    pub async fn prepare_subjects(
        &self,
        store: &dyn KeyStore,
        tenant: TenantId,
        subjects: &[SubjectId],
        create: bool,
    ) -> Result<Vec<SubjectId>, Error> {
        let mut missing: Vec<SubjectId> = {
            let mut scopes = lock(&self.scopes);
            subjects
                .iter()
                .copied()
                .filter(|s| {
                    scopes
                        .get(&(tenant, KeyScope::Subject(*s)))
                        .is_none_or(|cell| !cell.initialized())
                })
                .collect()
        };
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        let mut created = Vec::new();
        let mut by_subject: HashMap<SubjectId, Vec<StoredKey>> = HashMap::new();
        let group = |keys: Vec<StoredKey>, into: &mut HashMap<SubjectId, Vec<StoredKey>>| {
            for key in keys {
                if let KeyScope::Subject(s) = key.key_ref.scope {
                    into.entry(s).or_default().push(key);
                }
            }
        };
        if create {
            // Insert-or-get: a fresh key for every subject not cached, in one store call. A
            // subject that already had keys keeps them (the store returns what it holds), and
            // only those subjects are loaded in full afterwards, since they may have versions
            // beyond the first. A batch of new customers costs one round trip, not two.
            let (version, wrapper) = self.subject_wrapper(store, tenant, None).await?;
            let mut new_keys = Vec::with_capacity(missing.len());
            for s in &missing {
                let key_ref = KeyRef {
                    tenant,
                    scope: KeyScope::Subject(*s),
                    version: 1,
                };
                let wrapped = wrap_key(
                    &wrapper,
                    version,
                    &random_key(),
                    &key_wrap_context(&key_ref),
                )?;
                new_keys.push(StoredKey {
                    key_ref,
                    state: KeyState::Active,
                    wrapped: Some(wrapped),
                });
            }
            let ours: HashMap<SubjectId, Vec<u8>> = new_keys
                .iter()
                .filter_map(|k| match (k.key_ref.scope, &k.wrapped) {
                    (KeyScope::Subject(s), Some(w)) => Some((s, w.as_bytes().to_vec())),
                    _ => None,
                })
                .collect();
            group(store.insert_many(new_keys).await?, &mut by_subject);
            let existing: Vec<SubjectId> = missing
                .iter()
                .copied()
                .filter(|s| {
                    let stored = by_subject.get(s).map(Vec::as_slice).unwrap_or_default();
                    !(stored.len() == 1
                        && stored[0].wrapped.as_ref().map(|w| w.as_bytes())
                            == ours.get(s).map(Vec::as_slice))
                })
                .collect();
            created = missing
                .iter()
                .copied()
                .filter(|s| !existing.contains(s))
                .collect();
            if !existing.is_empty() {
                for s in &existing {
                    by_subject.remove(s);
                }
                group(
                    store.load_subjects(tenant, &existing).await?,
                    &mut by_subject,
                );
            }
        } else {
            group(
                store.load_subjects(tenant, &missing).await?,
                &mut by_subject,
            );
        }
        // One derived wrapping key per tenant key version, not one per subject.
        let mut wrappers: HashMap<u32, crate::backend::PreparedAead> = HashMap::new();
        for (subject, stored) in by_subject {
            let mut keys = ScopeKeys::new();
            for key in stored {
                let material = match &key.wrapped {
                    Some(wrapped) if key.state != KeyState::Destroyed => {
                        let v = wrapping_version(wrapped)?;
                        let wrapper = match wrappers.entry(v) {
                            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                            std::collections::hash_map::Entry::Vacant(e) => {
                                let (_, w) = self.subject_wrapper(store, tenant, Some(v)).await?;
                                e.insert(w)
                            }
                        };
                        Some(unwrap_key(
                            wrapper,
                            wrapped,
                            &key_wrap_context(&key.key_ref),
                        )?)
                    }
                    _ => None,
                };
                keys.add(&key, material);
            }
            let cell = OnceCell::new_with(Some(Arc::new(keys)));
            lock(&self.scopes).insert((tenant, KeyScope::Subject(subject)), Arc::new(cell));
        }
        Ok(created)
    }

    /// Rotates a scope's key: the active version becomes decrypt-only and a new version becomes
    /// active. Returns the new version. Existing data stays readable; re-sealing it is a sweep.
    ///
    /// # Errors
    ///
    /// Key store or provider failures; [`Error::KeyState`] if the scope has no active version.
    pub async fn rotate(
        &self,
        store: &dyn KeyStore,
        tenant: TenantId,
        scope: KeyScope,
    ) -> Result<KeyRef, Error> {
        self.invalidate(tenant, scope);
        let stored = store.load(tenant, scope).await?;
        let next = stored
            .iter()
            .map(|k| k.key_ref.version)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        if scope == KeyScope::TenantIndex && next > u32::from(u8::MAX) {
            return Err(Error::ApiMisuse(
                "blind index keys support at most 255 versions",
            ));
        }
        for key in stored.into_iter().filter(|k| k.state == KeyState::Active) {
            store
                .update(StoredKey {
                    state: KeyState::DecryptOnly,
                    ..key
                })
                .await?;
        }
        let created = self
            .create_key(
                store,
                KeyRef {
                    tenant,
                    scope,
                    version: next,
                },
            )
            .await?;
        self.invalidate(tenant, scope);
        Ok(created)
    }

    /// Marks a decrypt-only version retired: a sweep has verified that no data refers to it.
    ///
    /// # Errors
    ///
    /// [`Error::KeyState`] unless the version is decrypt-only; store failures.
    pub async fn retire(&self, store: &dyn KeyStore, key: KeyRef) -> Result<(), Error> {
        let stored = self.stored(store, key).await?;
        if stored.state != KeyState::DecryptOnly {
            return Err(key_state_error(&stored));
        }
        store
            .update(StoredKey {
                state: KeyState::Retired,
                ..stored
            })
            .await?;
        self.invalidate(key.tenant, key.scope);
        Ok(())
    }

    /// Destroys one key version: its wrapped material is erased from the store and from this
    /// process's caches. Everything sealed under it becomes unreadable for ever, backups included
    /// ([`Error::KeyDestroyed`]). Other processes stop using it within the configured TTL.
    ///
    /// # Errors
    ///
    /// Store failures; [`Error::KeyNotFound`] for an unknown version.
    pub async fn destroy(&self, store: &dyn KeyStore, key: KeyRef) -> Result<(), Error> {
        let stored = self.stored(store, key).await?;
        store
            .update(StoredKey {
                state: KeyState::Destroyed,
                wrapped: None,
                ..stored
            })
            .await?;
        self.invalidate(key.tenant, key.scope);
        Ok(())
    }

    /// Destroys every version of a scope's key: for a subject, this is erasure.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn destroy_scope(
        &self,
        store: &dyn KeyStore,
        tenant: TenantId,
        scope: KeyScope,
    ) -> Result<usize, Error> {
        let stored = store.load(tenant, scope).await?;
        let mut destroyed = 0;
        for key in stored
            .into_iter()
            .filter(|k| k.state != KeyState::Destroyed)
        {
            store
                .update(StoredKey {
                    state: KeyState::Destroyed,
                    wrapped: None,
                    ..key
                })
                .await?;
            destroyed += 1;
        }
        self.invalidate(tenant, scope);
        Ok(destroyed)
    }

    /// Re-wraps a tenant's keys under the provider's current root key (root key rotation). Subject
    /// keys are wrapped by the tenant data key and are not touched; no data is re-encrypted.
    /// Returns how many keys were re-wrapped.
    ///
    /// # Errors
    ///
    /// Store or provider failures.
    pub async fn rewrap_tenant_keys(
        &self,
        store: &dyn KeyStore,
        tenant: TenantId,
    ) -> Result<usize, Error> {
        let mut count = 0;
        for scope in [KeyScope::TenantData, KeyScope::TenantIndex] {
            for key in store.load(tenant, scope).await? {
                let Some(wrapped) = key.wrapped.as_ref() else {
                    continue;
                };
                if !self.provider.needs_rewrap(wrapped) {
                    continue;
                }
                let context = key_wrap_context(&key.key_ref);
                let material = self.provider.unwrap(wrapped, &context).await?;
                let rewrapped = self.provider.wrap(&material, &context).await?;
                store
                    .update(StoredKey {
                        wrapped: Some(rewrapped),
                        ..key
                    })
                    .await?;
                count += 1;
            }
            self.invalidate(tenant, scope);
        }
        Ok(count)
    }

    /// Approximate number of seals this process made under the tenant key `key` (all its field
    /// keys together). Subject keys are not counted one by one (each seals a handful of values,
    /// far from any AES-GCM limit, and a counter per subject would grow without bound): for
    /// them this is 0.
    pub fn usage(&self, key: &KeyRef) -> u64 {
        lock(&self.usage)
            .get(key)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Whether `key` has sealed more than the configured threshold in this process and should be
    /// rotated.
    pub fn rotation_due(&self, key: &KeyRef) -> bool {
        self.usage(key) >= self.config.rotation_threshold
    }

    /// Every key version this process has sealed under, with its approximate count: what a
    /// store persists periodically to aggregate usage across processes.
    pub fn usage_report(&self) -> Vec<(KeyRef, u64)> {
        lock(&self.usage)
            .iter()
            .map(|(k, c)| (*k, c.load(Ordering::Relaxed)))
            .collect()
    }

    /// Forgets everything cached for one scope (after this or another process changed it).
    pub fn invalidate(&self, tenant: TenantId, scope: KeyScope) {
        lock(&self.scopes).remove_where(|(t, s)| *t == tenant && *s == scope);
        let hit = |k: &KeyRef| k.tenant == tenant && k.scope == scope;
        lock(&self.field_keys).remove_where(|k| hit(&k.key));
        lock(&self.bundles).remove_where(|k| hit(&k.key));
        lock(&self.indexers).remove_where(|k| hit(&k.key));
    }

    async fn stored(&self, store: &dyn KeyStore, key: KeyRef) -> Result<StoredKey, Error> {
        store
            .load(key.tenant, key.scope)
            .await?
            .into_iter()
            .find(|k| k.key_ref.version == key.version)
            .ok_or(Error::KeyNotFound {
                scope: key.scope.kind(),
                version: key.version,
            })
    }

    fn usage_counter(&self, key: KeyRef) -> Arc<AtomicU64> {
        if matches!(key.scope, KeyScope::Subject(_)) {
            return self.subject_usage.clone();
        }
        lock(&self.usage).entry(key).or_default().clone()
    }

    fn field_key_version(
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
        lock(&self.field_keys).insert(cache_key, field_key.clone());
        Ok(field_key)
    }

    fn indexer_version(
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
        lock(&self.indexers).insert(cache_key, indexer.clone());
        Ok(indexer)
    }

    /// The unwrapped versions of a scope, loaded once per TTL under concurrent demand. With
    /// `create`, a scope with no active version gets one (first use of a tenant or subject).
    fn scope_keys<'a>(
        &'a self,
        store: &'a dyn KeyStore,
        tenant: TenantId,
        scope: KeyScope,
        create: bool,
    ) -> BoxFuture<'a, Result<Arc<ScopeKeys>, Error>> {
        // Boxed because loading a subject scope loads the tenant data scope (recursion).
        Box::pin(async move {
            let keys = self.load_scope_once(store, tenant, scope).await?;
            if keys.active.is_some() || !create {
                return Ok(keys);
            }
            if !keys.versions.is_empty()
                && scope != KeyScope::TenantData
                && scope != KeyScope::TenantIndex
            {
                // A subject whose keys were all destroyed has been erased: no new key, no new data.
                return Err(destroyed_or_missing(&keys, scope));
            }
            let next = keys
                .versions
                .keys()
                .max()
                .copied()
                .unwrap_or(0)
                .saturating_add(1);
            self.create_key(
                store,
                KeyRef {
                    tenant,
                    scope,
                    version: next,
                },
            )
            .await?;
            self.invalidate(tenant, scope);
            self.load_scope_once(store, tenant, scope).await
        })
    }

    /// The scope's keys if they are cached and loaded: the synchronous fast path of every
    /// field key lookup (no future is boxed, no store is touched).
    fn cached_scope(&self, tenant: TenantId, scope: KeyScope) -> Option<Arc<ScopeKeys>> {
        lock(&self.scopes)
            .get(&(tenant, scope))
            .and_then(|cell| cell.get().cloned())
    }

    async fn load_scope_once(
        &self,
        store: &dyn KeyStore,
        tenant: TenantId,
        scope: KeyScope,
    ) -> Result<Arc<ScopeKeys>, Error> {
        let cell = {
            let mut scopes = lock(&self.scopes);
            match scopes.get(&(tenant, scope)) {
                Some(cell) => cell,
                None => {
                    let cell = Arc::new(OnceCell::new());
                    scopes.insert((tenant, scope), cell.clone());
                    cell
                }
            }
        };
        cell.get_or_try_init(|| self.fetch_scope(store, tenant, scope))
            .await
            .cloned()
    }

    async fn fetch_scope(
        &self,
        store: &dyn KeyStore,
        tenant: TenantId,
        scope: KeyScope,
    ) -> Result<Arc<ScopeKeys>, Error> {
        let mut keys = ScopeKeys::new();
        for key in store.load(tenant, scope).await? {
            let material = match &key.wrapped {
                Some(wrapped) if key.state != KeyState::Destroyed => {
                    Some(self.unwrap_stored(store, &key.key_ref, wrapped).await?)
                }
                _ => None,
            };
            keys.add(&key, material);
        }
        Ok(Arc::new(keys))
    }

    async fn unwrap_stored(
        &self,
        store: &dyn KeyStore,
        key: &KeyRef,
        wrapped: &crate::keys::WrappedKey,
    ) -> Result<KeyMaterial, Error> {
        let context = key_wrap_context(key);
        match key.scope {
            KeyScope::TenantData | KeyScope::TenantIndex => {
                self.provider.unwrap(wrapped, &context).await
            }
            KeyScope::Subject(_) => {
                let version = wrapping_version(wrapped)?;
                let (_, aead) = self
                    .subject_wrapper(store, key.tenant, Some(version))
                    .await?;
                unwrap_key(&aead, wrapped, &context)
            }
        }
    }

    /// The key that wraps subject keys: derived from the tenant data key of `version`, or of
    /// the active version (created on first use) when `None`. Returns the version used.
    async fn subject_wrapper(
        &self,
        store: &dyn KeyStore,
        tenant: TenantId,
        version: Option<u32>,
    ) -> Result<(u32, crate::backend::PreparedAead), Error> {
        let tenant_keys = self
            .scope_keys(store, tenant, KeyScope::TenantData, version.is_none())
            .await?;
        let version = match version {
            Some(v) => v,
            None => tenant_keys
                .active
                .ok_or_else(|| destroyed_or_missing(&tenant_keys, KeyScope::TenantData))?,
        };
        let tenant_ref = KeyRef {
            tenant,
            scope: KeyScope::TenantData,
            version,
        };
        let tenant_key = usable_material(&tenant_keys, &tenant_ref)?;
        let material = derive(tenant_key, &subject_wrap_info(tenant, version))?;
        Ok((version, prepare(self.config.backend, &material)?))
    }

    async fn create_key(&self, store: &dyn KeyStore, key: KeyRef) -> Result<KeyRef, Error> {
        let material = random_key();
        let context = key_wrap_context(&key);
        let wrapped = match key.scope {
            KeyScope::TenantData | KeyScope::TenantIndex => {
                self.provider.wrap(&material, &context).await?
            }
            KeyScope::Subject(_) => {
                let (version, aead) = self.subject_wrapper(store, key.tenant, None).await?;
                wrap_key(&aead, version, &material, &context)?
            }
        };
        let stored = store
            .insert(StoredKey {
                key_ref: key,
                state: KeyState::Active,
                wrapped: Some(wrapped),
            })
            .await?;
        Ok(stored.key_ref)
    }
}

/// The pseudonym under `key`, derived once per cached scope version (every audited access
/// names its subjects, so this is on the hot path).
fn pseudonym(keys: &ScopeKeys, key: KeyRef) -> Result<[u8; 16], Error> {
    use secrecy::ExposeSecret as _;
    let material = usable_material(keys, &key)?;
    let cached = keys.versions.get(&key.version).map(|e| &e.pseudonym);
    if let Some(p) = cached.and_then(std::sync::OnceLock::get) {
        return Ok(*p);
    }
    let derived = derive(material, &pseudonym_info(&key))?;
    let mut out = [0u8; 16];
    out.copy_from_slice(&derived.expose_secret()[..16]);
    if let Some(cell) = cached {
        let _ = cell.set(out);
    }
    Ok(out)
}

fn scope_of(owner: Owner) -> KeyScope {
    match owner {
        Owner::Tenant => KeyScope::TenantData,
        Owner::Subject(s) => KeyScope::Subject(s),
    }
}

fn usable_material<'k>(keys: &'k ScopeKeys, key: &KeyRef) -> Result<&'k KeyMaterial, Error> {
    let entry = keys.versions.get(&key.version).ok_or(Error::KeyNotFound {
        scope: key.scope.kind(),
        version: key.version,
    })?;
    entry.material.as_ref().ok_or(Error::KeyDestroyed {
        scope: key.scope.kind(),
        version: key.version,
    })
}

fn destroyed_or_missing(keys: &ScopeKeys, scope: KeyScope) -> Error {
    match keys.versions.iter().max_by_key(|(v, _)| **v) {
        Some((version, e)) if e.state == KeyState::Destroyed => Error::KeyDestroyed {
            scope: scope.kind(),
            version: *version,
        },
        Some((version, e)) => Error::KeyState {
            scope: scope.kind(),
            version: *version,
            state: e.state,
        },
        None => Error::KeyNotFound {
            scope: scope.kind(),
            version: 1,
        },
    }
}

fn key_state_error(stored: &StoredKey) -> Error {
    Error::KeyState {
        scope: stored.key_ref.scope.kind(),
        version: stored.key_ref.version,
        state: stored.state,
    }
}
