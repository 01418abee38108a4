//! The key hierarchy and its caches: the `Keyring` itself, how a scope's keys are loaded once
//! (single flight) and unwrapped, and how a missing tenant or subject key is created. What is
//! done with the keys lives beside it: `fields.rs` (field keys, blind indexers), `subjects.rs`
//! (bulk subject keys, audit pseudonyms), `lifecycle.rs` (rotate, retire, destroy, usage),
//! `epoch.rs` (erasure epochs: the subject-wrap key replaced so erasure reaches backups).
//! Nothing here opens an envelope or knows a database.

mod config;
mod epoch;
mod fields;
mod lifecycle;
mod subjects;

pub use self::config::KeyringConfig;
pub use self::epoch::EpochReport;

use core::fmt;
use core::sync::atomic::AtomicU64;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use plenum_core::{FieldName, RecordType, TenantId};
use tokio::sync::OnceCell;

use crate::backend::Backend;
use crate::blind::{BlindIndexer, Normaliser};
use crate::cache::Bounded;
use crate::envelope::{FieldKey, Owner};
use crate::error::Error;
use crate::format::{WRAP_V1, WRAP_V2_SUBJECT, key_wrap_context, subject_wrap_info};
use crate::keys::{KeyMaterial, KeyRef, KeyScope, KeyState, StoredKey};
use crate::primitives::{derive, prepare, random_key, subject_wrapping, unwrap_key, wrap_key_as};
use crate::provider::KeyProvider;
use crate::store::KeyStore;

/// The key hierarchy, with its caches: root key provider -> tenant keys (data, index) -> subject
/// keys -> per-field keys derived with HKDF.
///
/// The keyring owns its [`KeyStore`]: a store is not a view of the caller's transaction (the
/// database store runs each operation in a short committed transaction of its own, so a key is
/// never lost with a rolled-back data transaction), so nothing needs to thread it through calls.
pub struct Keyring {
    config: KeyringConfig,
    provider: Arc<dyn KeyProvider>,
    store: Arc<dyn KeyStore>,
    scopes: Mutex<Bounded<(TenantId, KeyScope), ScopeSlot>>,
    field_keys: Mutex<Bounded<FieldCacheKey, FieldKey>>,
    indexers: Mutex<Bounded<IndexCacheKey, BlindIndexer>>,
    /// All field keys of one record type under one key version, for repositories that seal
    /// or open a whole row: one lookup per row instead of one per field.
    bundles: Mutex<Bounded<BundleCacheKey, FieldKeyBundle>>,
    /// The field lists bundles were derived for, shared by every bundle of a record type.
    field_lists: Mutex<Vec<Arc<[FieldName]>>>,
    /// Seal counts of tenant keys. Subject keys share `subject_usage`: each seals a handful of
    /// values, and a map entry per subject would grow without bound.
    usage: Mutex<HashMap<KeyRef, Arc<AtomicU64>>>,
    /// Per tenant key version, the count as of the last exchange with the key store (absent:
    /// not read from the store yet in this process).
    usage_flushed: Mutex<HashMap<KeyRef, u64>>,
    /// Held by `flush_usage`, so flushes of one keyring take turns.
    usage_flush: tokio::sync::Mutex<()>,
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
    /// foldhash, as in `Bounded`: a scope holds a few versions and is built on every cold load,
    /// where the default hasher's per-map seeding and SipHash showed in the profile.
    versions: HashMap<u32, VersionEntry, foldhash::fast::RandomState>,
    active: Option<u32>,
    /// When loading began: what is derived from these keys expires with them (TTL from here).
    loaded_at: Instant,
}

impl ScopeKeys {
    /// Empty, loading since `loaded_at` (one reading of the clock serves a whole load).
    fn new(loaded_at: Instant) -> Self {
        Self {
            versions: HashMap::default(),
            active: None,
            loaded_at,
        }
    }

    /// The versions not destroyed (material present), newest first.
    fn live_versions(&self) -> Vec<u32> {
        let mut versions: Vec<u32> = self
            .versions
            .iter()
            .filter(|(_, e)| e.material.is_some())
            .map(|(v, _)| *v)
            .collect();
        versions.sort_unstable_by(|a, b| b.cmp(a));
        versions
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
                wrapper: std::sync::OnceLock::new(),
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
    /// The prepared key this version wraps subject keys with (derived from a subject-wrap or,
    /// for format 1, a tenant data key), on first use: a point read of an uncached subject
    /// would otherwise pay an HKDF derivation and an AES key setup for it every time. Dropped
    /// with the cached scope, like the pseudonym.
    wrapper: std::sync::OnceLock<Arc<crate::backend::PreparedAead>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The caches hold derived data only; a panic elsewhere cannot leave them inconsistent in a
    // way that matters more than a cache miss.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Keyring {
    /// A keyring whose tenant keys are wrapped by `provider` and whose wrapped keys live in
    /// `store`.
    pub fn new(
        provider: Arc<dyn KeyProvider>,
        store: Arc<dyn KeyStore>,
        config: KeyringConfig,
    ) -> Self {
        Self {
            scopes: Mutex::new(Bounded::new(config.max_scopes, config.ttl)),
            field_keys: Mutex::new(Bounded::new(config.max_field_keys, config.ttl)),
            indexers: Mutex::new(Bounded::new(config.max_field_keys, config.ttl)),
            bundles: Mutex::new(Bounded::new(config.max_field_keys, config.ttl)),
            field_lists: Mutex::new(Vec::new()),
            usage: Mutex::new(HashMap::new()),
            usage_flushed: Mutex::new(HashMap::new()),
            usage_flush: tokio::sync::Mutex::new(()),
            subject_usage: Arc::new(AtomicU64::new(0)),
            config,
            provider,
            store,
        }
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.config.backend
    }

    /// Forgets everything cached for one scope (after this or another process changed it).
    pub fn invalidate(&self, tenant: TenantId, scope: KeyScope) {
        lock(&self.scopes).remove_where(|(t, s)| *t == tenant && *s == scope);
        let hit = |k: &KeyRef| k.tenant == tenant && k.scope == scope;
        lock(&self.field_keys).remove_where(|k| hit(&k.key));
        lock(&self.bundles).remove_where(|k| hit(&k.key));
        lock(&self.indexers).remove_where(|k| hit(&k.key));
    }

    /// The unwrapped versions of a scope, loaded once per TTL under concurrent demand. With
    /// `create`, a scope with no active version gets one (first use of a tenant or subject).
    ///
    /// Loading a subject scope loads the tenant's subject-wrap scope (recursion): the one box
    /// that breaks the cycle is in [`Keyring::subject_wrapper`], so the outer load, which every
    /// cold lookup makes, is not boxed and moved to the heap as well.
    async fn scope_keys(
        &self,
        tenant: TenantId,
        scope: KeyScope,
        create: bool,
    ) -> Result<Arc<ScopeKeys>, Error> {
        let keys = self.load_scope_once(tenant, scope).await?;
        if keys.active.is_some() || !create {
            return Ok(keys);
        }
        if !keys.versions.is_empty() && matches!(scope, KeyScope::Subject(_)) {
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
        self.create_key(KeyRef {
            tenant,
            scope,
            version: next,
        })
        .await?;
        self.invalidate(tenant, scope);
        self.load_scope_once(tenant, scope).await
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
        tenant: TenantId,
        scope: KeyScope,
    ) -> Result<Arc<ScopeKeys>, Error> {
        let (cell, since) = {
            let mut scopes = lock(&self.scopes);
            match scopes.get(&(tenant, scope)) {
                Some(cell) => (cell, None),
                None => {
                    let cell = Arc::new(OnceCell::new());
                    let now = Instant::now();
                    scopes.insert_at((tenant, scope), cell.clone(), now);
                    (cell, Some(now))
                }
            }
        };
        cell.get_or_try_init(|| self.fetch_scope(tenant, scope, since.unwrap_or_else(Instant::now)))
            .await
            .cloned()
    }

    /// Loads and unwraps a scope's stored versions; `since` is when the load began (the
    /// scope's cache entry carries the same instant).
    async fn fetch_scope(
        &self,
        tenant: TenantId,
        scope: KeyScope,
        since: Instant,
    ) -> Result<Arc<ScopeKeys>, Error> {
        let mut keys = ScopeKeys::new(since);
        for key in self.store.load(tenant, scope).await? {
            let material = match &key.wrapped {
                Some(wrapped) if key.state != KeyState::Destroyed => {
                    Some(self.unwrap_stored(&key.key_ref, wrapped).await?)
                }
                _ => None,
            };
            keys.add(&key, material);
        }
        Ok(Arc::new(keys))
    }

    async fn unwrap_stored(
        &self,
        key: &KeyRef,
        wrapped: &crate::keys::WrappedKey,
    ) -> Result<KeyMaterial, Error> {
        let context = key_wrap_context(key);
        match key.scope {
            KeyScope::TenantData | KeyScope::TenantIndex | KeyScope::SubjectWrap => {
                self.provider.unwrap(wrapped, &context).await
            }
            KeyScope::Subject(_) => {
                let wrapping = subject_wrapping(wrapped)?;
                let (_, aead) = self.subject_wrapper(key.tenant, Some(wrapping)).await?;
                unwrap_key(&aead, wrapped, &context)
            }
        }
    }

    /// The key that wraps subject keys, for a wrap format and version: format 2 derives it from
    /// the tenant's subject-wrap key of that version, format 1 (read only) from the tenant data
    /// key of that version. With `None`, the active subject-wrap key (created on first use),
    /// which is what every new wrap uses. Returns the format and version used.
    async fn subject_wrapper(
        &self,
        tenant: TenantId,
        wrapping: Option<(u8, u32)>,
    ) -> Result<((u8, u32), Arc<crate::backend::PreparedAead>), Error> {
        let (format, scope) = match wrapping {
            Some((WRAP_V1, _)) => (WRAP_V1, KeyScope::TenantData),
            _ => (WRAP_V2_SUBJECT, KeyScope::SubjectWrap),
        };
        // Boxed: the recursion of `scope_keys` (a subject scope's load lands here) needs one
        // indirection, and a wrapping scope is loaded once per tenant, not per subject.
        let wrapping_keys = Box::pin(self.scope_keys(tenant, scope, wrapping.is_none())).await?;
        let version = match wrapping {
            Some((_, v)) => v,
            None => wrapping_keys
                .active
                .ok_or_else(|| destroyed_or_missing(&wrapping_keys, scope))?,
        };
        let wrapping_ref = KeyRef {
            tenant,
            scope,
            version,
        };
        let wrapping_key = usable_material(&wrapping_keys, &wrapping_ref)?;
        let cached = wrapping_keys
            .versions
            .get(&version)
            .and_then(|entry| entry.wrapper.get().cloned());
        if let Some(aead) = cached {
            return Ok(((format, version), aead));
        }
        let material = derive(wrapping_key, &subject_wrap_info(tenant, version))?;
        let aead = Arc::new(prepare(self.config.backend, &material)?);
        if let Some(entry) = wrapping_keys.versions.get(&version) {
            // A concurrent first use may have set it: both derived the same key.
            let _ = entry.wrapper.set(aead.clone());
        }
        Ok(((format, version), aead))
    }

    async fn create_key(&self, key: KeyRef) -> Result<KeyRef, Error> {
        let material = random_key();
        let context = key_wrap_context(&key);
        let wrapped = match key.scope {
            KeyScope::TenantData | KeyScope::TenantIndex | KeyScope::SubjectWrap => {
                self.provider.wrap(&material, &context).await?
            }
            KeyScope::Subject(_) => {
                let ((format, version), aead) = self.subject_wrapper(key.tenant, None).await?;
                wrap_key_as(format, &aead, version, &material, &context)?
            }
        };
        let stored = self
            .store
            .insert(StoredKey {
                key_ref: key,
                state: KeyState::Active,
                wrapped: Some(wrapped),
            })
            .await?;
        Ok(stored.key_ref)
    }
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
