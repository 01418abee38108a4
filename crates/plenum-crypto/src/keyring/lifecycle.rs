//! Key lifecycle: rotation, retirement, destruction (erasure), root re-wrapping, and usage
//! counts. Every state change goes to the store first, then drops this process's caches.

use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use plenum_core::TenantId;

use super::{Keyring, lock};
use crate::error::Error;
use crate::format::key_wrap_context;
use crate::keys::{KeyRef, KeyScope, KeyState, StoredKey};

impl Keyring {
    /// Rotates a scope's key: the active version becomes decrypt-only and a new version becomes
    /// active. Returns the new version. Existing data stays readable; re-sealing it is a sweep.
    ///
    /// # Errors
    ///
    /// Key store or provider failures; [`Error::KeyState`] if the scope has no active version.
    pub async fn rotate(&self, tenant: TenantId, scope: KeyScope) -> Result<KeyRef, Error> {
        self.invalidate(tenant, scope);
        let stored = self.store.load(tenant, scope).await?;
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
            self.store
                .update(StoredKey {
                    state: KeyState::DecryptOnly,
                    ..key
                })
                .await?;
        }
        let created = self
            .create_key(KeyRef {
                tenant,
                scope,
                version: next,
            })
            .await?;
        self.invalidate(tenant, scope);
        Ok(created)
    }

    /// Marks a decrypt-only version retired: a sweep has verified that no data refers to it.
    ///
    /// # Errors
    ///
    /// [`Error::KeyState`] unless the version is decrypt-only; store failures.
    pub async fn retire(&self, key: KeyRef) -> Result<(), Error> {
        let stored = self.stored(key).await?;
        if stored.state != KeyState::DecryptOnly {
            return Err(key_state_error(&stored));
        }
        self.store
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
    pub async fn destroy(&self, key: KeyRef) -> Result<(), Error> {
        let stored = self.stored(key).await?;
        self.store
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
    pub async fn destroy_scope(&self, tenant: TenantId, scope: KeyScope) -> Result<usize, Error> {
        self.destroy_versions(tenant, scope, |_| true).await
    }

    /// Destroys the live versions of a scope's key that `which` selects, then drops this
    /// process's cached copy of the scope. Returns how many were destroyed.
    pub(super) async fn destroy_versions(
        &self,
        tenant: TenantId,
        scope: KeyScope,
        which: impl Fn(u32) -> bool,
    ) -> Result<usize, Error> {
        let stored = self.store.load(tenant, scope).await?;
        let mut destroyed = 0;
        for key in stored
            .into_iter()
            .filter(|k| k.state != KeyState::Destroyed && which(k.key_ref.version))
        {
            self.store
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

    /// Destroys every version of `from`'s keys and records the same versions, destroyed, for
    /// the subject `to`: what erasure does when it keeps a subject's rows under a pseudonym
    /// (`to`), so those rows' sealed fields read as erased (`KeyDestroyed`) rather than as
    /// naming keys that never existed. Returns how many versions were destroyed.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn destroy_subject_into(
        &self,
        tenant: TenantId,
        from: plenum_core::SubjectId,
        to: plenum_core::SubjectId,
    ) -> Result<usize, Error> {
        let versions: Vec<u32> = self
            .store
            .load(tenant, KeyScope::Subject(from))
            .await?
            .iter()
            .map(|k| k.key_ref.version)
            .collect();
        let destroyed = self.destroy_scope(tenant, KeyScope::Subject(from)).await?;
        for version in versions {
            self.store
                .insert(StoredKey {
                    key_ref: KeyRef {
                        tenant,
                        scope: KeyScope::Subject(to),
                        version,
                    },
                    state: KeyState::Destroyed,
                    wrapped: None,
                })
                .await?;
        }
        self.invalidate(tenant, KeyScope::Subject(to));
        Ok(destroyed)
    }

    /// Unwraps every stored live key of `tenant`'s tenant scopes (data, index, subject-wrap)
    /// with the root provider, creating nothing, and returns how many: whether this keyring's
    /// root key is the one that wrapped them. An operator's job runs it before it writes
    /// anything, so a wrong root key is a clear error at start rather than halfway through.
    ///
    /// # Errors
    ///
    /// [`Error::DecryptionFailed`] for a root key that did not wrap these keys; provider and
    /// store failures.
    pub async fn check_root(&self, tenant: TenantId) -> Result<usize, Error> {
        let mut unwrapped = 0;
        for scope in [
            KeyScope::TenantData,
            KeyScope::TenantIndex,
            KeyScope::SubjectWrap,
        ] {
            unwrapped += self.scope_keys(tenant, scope, false).await?.versions.len();
        }
        Ok(unwrapped)
    }

    /// Whether `scope` has a stored version that is not destroyed, read from the key store
    /// (not this process's cache): whether erasing or shredding it is still to be done.
    ///
    /// # Errors
    ///
    /// Key store failures.
    pub async fn has_live_key(&self, tenant: TenantId, scope: KeyScope) -> Result<bool, Error> {
        Ok(self
            .store
            .load(tenant, scope)
            .await?
            .iter()
            .any(|k| k.state != KeyState::Destroyed))
    }

    /// Re-wraps a tenant's keys under the provider's current root key (root key rotation): the
    /// tenant data, index and subject-wrap keys. Subject keys are wrapped by the subject-wrap key
    /// and are not touched; no data is re-encrypted.
    /// Returns how many keys were re-wrapped.
    ///
    /// # Errors
    ///
    /// Store or provider failures.
    pub async fn rewrap_tenant_keys(&self, tenant: TenantId) -> Result<usize, Error> {
        let mut count = 0;
        for scope in [
            KeyScope::TenantData,
            KeyScope::TenantIndex,
            KeyScope::SubjectWrap,
        ] {
            for key in self.store.load(tenant, scope).await? {
                let Some(wrapped) = key.wrapped.as_ref() else {
                    continue;
                };
                if !self.provider.needs_rewrap(wrapped) {
                    continue;
                }
                let context = key_wrap_context(&key.key_ref);
                let material = self.provider.unwrap(wrapped, &context).await?;
                let rewrapped = self.provider.wrap(&material, &context).await?;
                self.store
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

    /// Seals under the tenant key version `key`: every instance's, as of this process's last
    /// [`Keyring::flush_usage`] (or its first use of the key, which reads the persisted
    /// count), plus this process's since. Subject keys are not counted one by one (each seals
    /// a handful of values, far from any AES-GCM limit, and a counter per subject would grow
    /// without bound): for them this is 0.
    pub fn usage(&self, key: &KeyRef) -> u64 {
        lock(&self.usage)
            .get(key)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Whether `key` has sealed more than the configured threshold and should be rotated
    /// before sealing reaches [`KeyringConfig::usage_limit`](crate::KeyringConfig::usage_limit),
    /// where it is refused.
    pub fn rotation_due(&self, key: &KeyRef) -> bool {
        self.usage(key) >= self.config.rotation_threshold
    }

    /// Every tenant key version this process has sealed under, with its count as
    /// [`Keyring::usage`] gives it.
    pub fn usage_report(&self) -> Vec<(KeyRef, u64)> {
        lock(&self.usage)
            .iter()
            .map(|(k, c)| (*k, c.load(Ordering::Relaxed)))
            .collect()
    }

    /// Adds this process's seals since the last flush to the key store's persisted counts (one
    /// store call per key version sealed under) and takes in the other instances' seals, so
    /// the counts, the rotation threshold and the seal limit hold across processes and
    /// restarts. Call it on the service's timer, as checkpoints are: sealing itself never waits
    /// for the store. Returns each key version's count after the exchange.
    ///
    /// # Errors
    ///
    /// Key store failures (the unflushed seals are kept for the next call).
    pub async fn flush_usage(&self) -> Result<Vec<(KeyRef, u64)>, Error> {
        // One flush at a time: two would add the same delta twice.
        let _one = self.usage_flush.lock().await;
        let counters: Vec<(KeyRef, Arc<AtomicU64>)> = lock(&self.usage)
            .iter()
            .map(|(k, c)| (*k, c.clone()))
            .collect();
        let mut flushed = Vec::new();
        for (key, counter) in counters {
            // A counter not seeded from the store yet has sealed nothing (sealing seeds first):
            // only read paths made it, and seeding will add the persisted count.
            let Some(base) = lock(&self.usage_flushed).get(&key).copied() else {
                continue;
            };
            let current = counter.load(Ordering::Relaxed);
            // A zero delta still reads the others' seals.
            let delta = current.saturating_sub(base);
            let total = self.store.add_usage(key, delta).await?;
            // Others' seals raise the count; seals made while the store answered stay counted
            // and are the next flush's delta.
            let others = total.saturating_sub(current);
            counter.fetch_add(others, Ordering::Relaxed);
            lock(&self.usage_flushed).insert(key, current + others);
            flushed.push((key, total));
        }
        Ok(flushed)
    }

    /// Before a process's first seal under the tenant key `key`: starts its count from the
    /// persisted one (one key-store call per key version per process, on the cold path).
    pub(super) async fn seed_usage(&self, key: KeyRef) -> Result<(), Error> {
        if matches!(key.scope, KeyScope::Subject(_)) || lock(&self.usage_flushed).contains_key(&key)
        {
            return Ok(());
        }
        let total = self.store.add_usage(key, 0).await?;
        let mut flushed = lock(&self.usage_flushed);
        if flushed.contains_key(&key) {
            return Ok(());
        }
        // The count before the base, both under the lock a flush reads the base under: a flush
        // that sees the base sees the count with it.
        self.usage_counter(key)
            .0
            .fetch_add(total, Ordering::Relaxed);
        flushed.insert(key, total);
        Ok(())
    }

    async fn stored(&self, key: KeyRef) -> Result<StoredKey, Error> {
        self.store
            .load(key.tenant, key.scope)
            .await?
            .into_iter()
            .find(|k| k.key_ref.version == key.version)
            .ok_or(Error::KeyNotFound {
                scope: key.scope.kind(),
                version: key.version,
            })
    }

    /// The seal counter of `key` and the count from which its field keys refuse to seal.
    pub(super) fn usage_counter(&self, key: KeyRef) -> (Arc<AtomicU64>, u64) {
        if matches!(key.scope, KeyScope::Subject(_)) {
            return (self.subject_usage.clone(), u64::MAX);
        }
        (
            lock(&self.usage).entry(key).or_default().clone(),
            self.config.usage_limit,
        )
    }
}

fn key_state_error(stored: &StoredKey) -> Error {
    Error::KeyState {
        scope: stored.key_ref.scope.kind(),
        version: stored.key_ref.version,
        state: stored.state,
    }
}
