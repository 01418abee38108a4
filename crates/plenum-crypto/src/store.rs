//! Where wrapped keys live: the `KeyStore` trait and the in-memory store for tests. The store
//! only keeps wrapped material and states; it never unwraps.

use std::collections::HashMap;
use std::sync::Mutex;

use plenum_core::{SubjectId, TenantId};

use crate::error::Error;
use crate::keys::{KeyRef, KeyScope, StoredKey};
use crate::provider::BoxFuture;

/// Where wrapped keys live: an in-memory map here, library tables under RLS in `plenum-store`.
///
/// Keys are few per scope (one per version), so the store hands back all versions of a scope at
/// once and the [`Keyring`](crate::Keyring) looks versions up in memory, in O(1), from then on.
pub trait KeyStore: Send + Sync {
    /// Every stored version of `scope` in `tenant`, in any order.
    fn load<'a>(
        &'a self,
        tenant: TenantId,
        scope: KeyScope,
    ) -> BoxFuture<'a, Result<Vec<StoredKey>, Error>>;

    /// Stores a new key version unless that `(tenant, scope, version)` exists already, and
    /// returns what is stored afterwards: the new key, or the one another writer stored first.
    /// This is how two processes creating a tenant's first key agree on one.
    fn insert<'a>(&'a self, key: StoredKey) -> BoxFuture<'a, Result<StoredKey, Error>>;

    /// Replaces the state and wrapped material of an existing key version.
    fn update<'a>(&'a self, key: StoredKey) -> BoxFuture<'a, Result<(), Error>>;

    /// Every stored version of the subject keys of `subjects` in `tenant`: what a repository
    /// reading or writing a page of rows needs, in one query instead of one per subject. The
    /// default calls [`KeyStore::load`] per subject.
    fn load_subjects<'a>(
        &'a self,
        tenant: TenantId,
        subjects: &'a [SubjectId],
    ) -> BoxFuture<'a, Result<Vec<StoredKey>, Error>> {
        Box::pin(async move {
            let mut all = Vec::new();
            for s in subjects {
                all.extend(self.load(tenant, KeyScope::Subject(*s)).await?);
            }
            Ok(all)
        })
    }

    /// Every stored version of the subject keys of up to `limit` subjects of `tenant`, the
    /// subjects ordered by id and all after `after` (the last subject of the previous page):
    /// how an erasure epoch walks every subject key in bounded memory.
    fn load_subject_page<'a>(
        &'a self,
        tenant: TenantId,
        after: Option<SubjectId>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredKey>, Error>>;

    /// Adds `seals` to the persisted seal count of the tenant key version `key` and returns
    /// the count after the addition: the seals every instance has added so far. `seals = 0`
    /// reads. What [`Keyring::flush_usage`](crate::Keyring::flush_usage) batches into, so the
    /// AES-GCM limit of 2^32 random-nonce seals per key holds across processes and restarts.
    fn add_usage<'a>(&'a self, key: KeyRef, seals: u64) -> BoxFuture<'a, Result<u64, Error>>;

    /// [`KeyStore::insert`] for many keys, returning what is stored afterwards for each, in any
    /// order. The default calls [`KeyStore::insert`] per key.
    fn insert_many<'a>(
        &'a self,
        keys: Vec<StoredKey>,
    ) -> BoxFuture<'a, Result<Vec<StoredKey>, Error>> {
        Box::pin(async move {
            let mut all = Vec::with_capacity(keys.len());
            for k in keys {
                all.push(self.insert(k).await?);
            }
            Ok(all)
        })
    }
}

/// A [`KeyStore`] in process memory, for tests and for the embedded quickstart.
#[derive(Debug, Default)]
pub struct MemoryKeyStore {
    keys: Mutex<HashMap<(TenantId, KeyScope), Vec<StoredKey>>>,
    usage: Mutex<HashMap<KeyRef, u64>>,
}

impl MemoryKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(
        &self,
        f: impl FnOnce(&mut HashMap<(TenantId, KeyScope), Vec<StoredKey>>) -> R,
    ) -> R {
        // A panic while holding the lock cannot leave a half-written entry (every mutation is a
        // single push or assignment), so a poisoned map is still consistent.
        let mut guard = self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }
}

impl KeyStore for MemoryKeyStore {
    fn load<'a>(
        &'a self,
        tenant: TenantId,
        scope: KeyScope,
    ) -> BoxFuture<'a, Result<Vec<StoredKey>, Error>> {
        let found = self.with(|m| m.get(&(tenant, scope)).cloned().unwrap_or_default());
        Box::pin(async move { Ok(found) })
    }

    fn add_usage<'a>(&'a self, key: KeyRef, seals: u64) -> BoxFuture<'a, Result<u64, Error>> {
        let total = {
            // As `with`: every mutation is one assignment, so a poisoned map is consistent.
            let mut usage = self
                .usage
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let count = usage.entry(key).or_default();
            *count = count.saturating_add(seals);
            *count
        };
        Box::pin(async move { Ok(total) })
    }

    fn insert<'a>(&'a self, key: StoredKey) -> BoxFuture<'a, Result<StoredKey, Error>> {
        let stored = self.with(|m| {
            let versions = m
                .entry((key.key_ref.tenant, key.key_ref.scope))
                .or_default();
            match versions
                .iter()
                .find(|k| k.key_ref.version == key.key_ref.version)
            {
                Some(existing) => existing.clone(),
                None => {
                    versions.push(key.clone());
                    key
                }
            }
        });
        Box::pin(async move { Ok(stored) })
    }

    fn load_subject_page<'a>(
        &'a self,
        tenant: TenantId,
        after: Option<SubjectId>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<StoredKey>, Error>> {
        let found = self.with(|m| {
            let mut subjects: Vec<(SubjectId, &Vec<StoredKey>)> = m
                .iter()
                .filter_map(|((t, scope), keys)| match scope {
                    KeyScope::Subject(s) if *t == tenant && after.is_none_or(|a| *s > a) => {
                        Some((*s, keys))
                    }
                    _ => None,
                })
                .collect();
            subjects.sort_unstable_by_key(|(s, _)| *s);
            subjects
                .into_iter()
                .take(limit)
                .flat_map(|(_, keys)| keys.iter().cloned())
                .collect::<Vec<_>>()
        });
        Box::pin(async move { Ok(found) })
    }

    fn update<'a>(&'a self, key: StoredKey) -> BoxFuture<'a, Result<(), Error>> {
        let result = self.with(|m| {
            let slot = m
                .get_mut(&(key.key_ref.tenant, key.key_ref.scope))
                .and_then(|vs| {
                    vs.iter_mut()
                        .find(|k| k.key_ref.version == key.key_ref.version)
                });
            match slot {
                Some(slot) => {
                    *slot = key;
                    Ok(())
                }
                None => Err(Error::KeyNotFound {
                    scope: key.key_ref.scope.kind(),
                    version: key.key_ref.version,
                }),
            }
        });
        Box::pin(async move { result })
    }
}
