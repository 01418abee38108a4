//! Subject keys in bulk and the audit log's subject pseudonyms: one store round trip for a page
//! or batch of subjects, and pseudonyms that erasure makes impossible to recompute.

use std::collections::HashMap;
use std::sync::Arc;

use plenum_core::{SubjectId, TenantId};
use tokio::sync::OnceCell;

use super::{Keyring, ScopeKeys, lock, usable_material};
use crate::error::Error;
use crate::format::{key_wrap_context, pseudonym_info};
use crate::keys::{KeyRef, KeyScope, KeyState, StoredKey};
use crate::primitives::{derive, random_key, subject_wrapping, unwrap_key, wrap_key_as};

impl Keyring {
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
        tenant: TenantId,
        subjects: &[SubjectId],
    ) -> Result<Vec<Option<[u8; 16]>>, Error> {
        self.prepare_subjects(tenant, subjects, true).await?;
        let mut out = Vec::with_capacity(subjects.len());
        for s in subjects {
            let scope = KeyScope::Subject(*s);
            let keys = match self.cached_scope(tenant, scope) {
                Some(keys) => keys,
                None => self.scope_keys(tenant, scope, false).await?,
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
        tenant: TenantId,
        subject: SubjectId,
    ) -> Result<Vec<[u8; 16]>, Error> {
        let scope = KeyScope::Subject(subject);
        let keys = self.scope_keys(tenant, scope, false).await?;
        let versions = keys.live_versions();
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
    /// one [`KeyStore::load_subjects`](crate::KeyStore::load_subjects) and at most one [`KeyStore::insert_many`](crate::KeyStore::insert_many) for the whole
    /// set, instead of a store round trip per subject. Subjects already cached are skipped; an
    /// erased subject (every version destroyed) gets no new key. Returns the subjects whose keys
    /// this call created (for the audit log's key events). Afterwards
    /// [`Keyring::dangerous_field_key`] and [`Keyring::dangerous_opening_key`] for these subjects are cache hits
    /// while the cache holds them.
    ///
    /// # Errors
    ///
    /// Store or provider failures.
    pub async fn prepare_subjects(
        &self,
        tenant: TenantId,
        subjects: &[SubjectId],
        create: bool,
    ) -> Result<Vec<SubjectId>, Error> {
        let missing = self.uncached_subjects(tenant, subjects);
        if missing.is_empty() {
            return Ok(Vec::new());
        }
        let (created, stored) = if create {
            self.insert_subject_keys(tenant, &missing).await?
        } else {
            let stored = self.store.load_subjects(tenant, &missing).await?;
            (Vec::new(), by_subject(stored))
        };
        self.cache_subject_keys(tenant, stored).await?;
        Ok(created)
    }

    /// The distinct subjects of `subjects` whose keys are not cached.
    fn uncached_subjects(&self, tenant: TenantId, subjects: &[SubjectId]) -> Vec<SubjectId> {
        let scopes = lock(&self.scopes);
        let mut missing: Vec<SubjectId> = subjects
            .iter()
            .copied()
            .filter(|s| {
                scopes
                    .get_ref(&(tenant, KeyScope::Subject(*s)))
                    .is_none_or(|cell| !cell.initialized())
            })
            .collect();
        missing.sort_unstable();
        missing.dedup();
        missing
    }

    /// Insert-or-get: a fresh key for every subject in `missing`, in one store call. A subject
    /// that already had keys keeps them (the store returns what it holds), and only those
    /// subjects are loaded in full afterwards, since they may have versions beyond the first. A
    /// batch of new customers costs one round trip, not two. Returns the subjects whose keys
    /// this call created, and every subject's stored keys.
    async fn insert_subject_keys(
        &self,
        tenant: TenantId,
        missing: &[SubjectId],
    ) -> Result<(Vec<SubjectId>, HashMap<SubjectId, Vec<StoredKey>>), Error> {
        let ((format, version), wrapper) = self.subject_wrapper(tenant, None).await?;
        let mut new_keys = Vec::with_capacity(missing.len());
        let mut ours: HashMap<SubjectId, Vec<u8>> = HashMap::with_capacity(missing.len());
        for s in missing {
            let key_ref = KeyRef {
                tenant,
                scope: KeyScope::Subject(*s),
                version: 1,
            };
            let wrapped = wrap_key_as(
                format,
                &wrapper,
                version,
                &random_key(),
                &key_wrap_context(&key_ref),
            )?;
            ours.insert(*s, wrapped.as_bytes().to_vec());
            new_keys.push(StoredKey {
                key_ref,
                state: KeyState::Active,
                wrapped: Some(wrapped),
            });
        }
        let mut stored = by_subject(self.store.insert_many(new_keys).await?);
        // Ours is the only version stored: we created it. Anything else was there before.
        let (created, existing): (Vec<SubjectId>, Vec<SubjectId>) =
            missing.iter().copied().partition(|s| {
                let keys = stored.get(s).map(Vec::as_slice).unwrap_or_default();
                keys.len() == 1
                    && keys[0].wrapped.as_ref().map(|w| w.as_bytes())
                        == ours.get(s).map(Vec::as_slice)
            });
        if !existing.is_empty() {
            for s in &existing {
                stored.remove(s);
            }
            stored.extend(by_subject(
                self.store.load_subjects(tenant, &existing).await?,
            ));
        }
        Ok((created, stored))
    }

    /// Unwraps stored subject keys and caches each subject's scope, deriving one wrapping key
    /// per tenant key version rather than one per subject.
    async fn cache_subject_keys(
        &self,
        tenant: TenantId,
        stored: HashMap<SubjectId, Vec<StoredKey>>,
    ) -> Result<(), Error> {
        let mut wrappers: HashMap<(u8, u32), Arc<crate::backend::PreparedAead>> = HashMap::new();
        // One reading of the clock for the batch: every scope here was loaded by one query.
        let loaded_at = std::time::Instant::now();
        for (subject, stored) in stored {
            let mut keys = ScopeKeys::new(loaded_at);
            for key in stored {
                let material = match &key.wrapped {
                    Some(wrapped) if key.state != KeyState::Destroyed => {
                        let v = subject_wrapping(wrapped)?;
                        let wrapper = match wrappers.entry(v) {
                            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                            std::collections::hash_map::Entry::Vacant(e) => {
                                let (_, w) = self.subject_wrapper(tenant, Some(v)).await?;
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
            lock(&self.scopes).insert_at(
                (tenant, KeyScope::Subject(subject)),
                Arc::new(cell),
                loaded_at,
            );
        }
        Ok(())
    }
}

/// Stored subject keys grouped by subject.
fn by_subject(keys: Vec<StoredKey>) -> HashMap<SubjectId, Vec<StoredKey>> {
    let mut out: HashMap<SubjectId, Vec<StoredKey>> = HashMap::new();
    for key in keys {
        if let KeyScope::Subject(s) = key.key_ref.scope {
            out.entry(s).or_default().push(key);
        }
    }
    out
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
