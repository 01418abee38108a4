//! Erasure epochs: replacing a tenant's subject-wrap key so that erasure reaches backups.
//!
//! A backup holds every wrapped subject key as it was when the backup was taken. Destroying an
//! erased subject's key in the live store leaves the backup's copy, and whatever unwraps it,
//! intact. Subject keys are therefore wrapped under a per-tenant subject-wrap key (scope
//! `0x04`) that is replaced on a schedule: live subject keys are re-wrapped under the new
//! version and the old version is destroyed. Once the root key version that wrapped the old
//! subject-wrap key is also gone from the provider, a backup's copy of an erased subject's key
//! has nothing left that unwraps it, while the live store still unwraps every other subject.
//!
//! A version is destroyed only one epoch after it stopped being active, never in the call that
//! replaced it: another instance may still hold it, cached as active, for up to its cache TTL,
//! and wrap new subjects' keys under it. The next epoch's re-wrap pass picks those up.

use plenum_core::{SubjectId, TenantId};

use super::Keyring;
use crate::error::Error;
use crate::format::{WRAP_V2_SUBJECT, key_wrap_context};
use crate::keys::{KeyRef, KeyScope, KeyState, StoredKey};
use crate::primitives::{subject_wrapping, unwrap_key, wrap_key_as};

/// How many subjects' keys an epoch re-wraps per store page.
const PAGE: usize = 500;

/// What one [`Keyring::advance_erasure_epoch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EpochReport {
    /// The subject-wrap key version active from now on.
    pub active: u32,
    /// Subject key versions re-wrapped under the version that was active when the call began.
    pub rewrapped: usize,
    /// Subject-wrap key versions destroyed (those that stopped being active one epoch ago).
    pub destroyed: usize,
    /// Subject key versions that could not be re-wrapped and were left as they are: their
    /// wrapping key is destroyed or missing (wrapped by an instance whose cache outlived the
    /// schedule's interval), or their wrapped bytes do not open (changed in the database).
    /// Their subjects' fields cannot be opened either way; an operator should look at why.
    pub unreadable: usize,
}

impl Keyring {
    /// Advances the tenant's erasure epoch: re-wraps every live subject key still wrapped under
    /// an older subject-wrap key (or, wrap format 1, under the tenant data key) with the active
    /// one, destroys every subject-wrap version older than the active one, then makes a new
    /// version active for the next epoch.
    ///
    /// Run it on a schedule, per tenant, at intervals longer than every instance's key cache
    /// TTL (an instance may wrap new subject keys under a cached version until then; those are
    /// re-wrapped by the next call). A subject erased before call *k* is beyond reach of older
    /// backups once call *k + 1* has destroyed the version that wrapped their key in those
    /// backups, **and** the root key version that wrapped that subject-wrap key has been
    /// rotated out ([`Keyring::rewrap_tenant_keys`]) and destroyed at the provider (SECURITY.md,
    /// "Erasure and backups"). Safe to re-run after a crash: each step is idempotent.
    ///
    /// # Errors
    ///
    /// Store or provider failures: the call stops before destroying anything it has not
    /// re-wrapped around. A subject key that cannot be re-wrapped does not stop it (one lost key
    /// must not keep every other erasure out of reach): it is counted in
    /// [`EpochReport::unreadable`].
    pub async fn advance_erasure_epoch(&self, tenant: TenantId) -> Result<EpochReport, Error> {
        let scope = KeyScope::SubjectWrap;
        self.invalidate(tenant, scope);
        let ((_, active), wrapper) = self.subject_wrapper(tenant, None).await?;
        let (rewrapped, unreadable) = self.rewrap_subjects(tenant, active, &wrapper).await?;
        let destroyed = self
            .destroy_versions(tenant, scope, |version| version < active)
            .await?;
        let next = self.rotate(tenant, scope).await?;
        Ok(EpochReport {
            active: next.version,
            rewrapped,
            destroyed,
            unreadable,
        })
    }

    /// Re-wraps every live subject key of `tenant` that is not wrapped under subject-wrap
    /// version `active`, page by page. Returns how many key versions it re-wrapped and how many
    /// it could not (their wrapping key gone, or bytes that do not open).
    async fn rewrap_subjects(
        &self,
        tenant: TenantId,
        active: u32,
        wrapper: &crate::backend::PreparedAead,
    ) -> Result<(usize, usize), Error> {
        let mut after: Option<SubjectId> = None;
        let (mut count, mut unreadable) = (0, 0);
        // One derived wrapping key per old (format, version), not one per subject; `None` for a
        // version that is destroyed or missing.
        let mut old_wrappers = std::collections::HashMap::new();
        loop {
            let page = self.store.load_subject_page(tenant, after, PAGE).await?;
            let Some(last) = page
                .iter()
                .filter_map(|k| match k.key_ref.scope {
                    KeyScope::Subject(s) => Some(s),
                    _ => None,
                })
                .max()
            else {
                return Ok((count, unreadable));
            };
            for key in page {
                let Some(wrapped) = key.wrapped.as_ref() else {
                    continue;
                };
                if key.state == KeyState::Destroyed {
                    continue;
                }
                let Ok(wrapping) = subject_wrapping(wrapped) else {
                    unreadable += 1;
                    continue;
                };
                if wrapping == (WRAP_V2_SUBJECT, active) {
                    continue;
                }
                let context = key_wrap_context(&key.key_ref);
                let old = match old_wrappers.entry(wrapping) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(match self.subject_wrapper(tenant, Some(wrapping)).await {
                            Ok((_, aead)) => Some(aead),
                            Err(Error::KeyDestroyed { .. } | Error::KeyNotFound { .. }) => None,
                            Err(other) => return Err(other),
                        })
                    }
                };
                let Some(material) = old
                    .as_ref()
                    .and_then(|old| unwrap_key(old, wrapped, &context).ok())
                else {
                    unreadable += 1;
                    continue;
                };
                let rewrapped = wrap_key_as(WRAP_V2_SUBJECT, wrapper, active, &material, &context)?;
                self.store
                    .update(StoredKey {
                        wrapped: Some(rewrapped),
                        ..key
                    })
                    .await?;
                count += 1;
            }
            after = Some(last);
        }
    }

    /// The subject-wrap key versions of `tenant` and their states, oldest first: what an
    /// operator checks to see how far the erasure epochs have gone.
    ///
    /// # Errors
    ///
    /// Store failures.
    pub async fn erasure_epochs(&self, tenant: TenantId) -> Result<Vec<(KeyRef, KeyState)>, Error> {
        let mut out: Vec<(KeyRef, KeyState)> = self
            .store
            .load(tenant, KeyScope::SubjectWrap)
            .await?
            .into_iter()
            .map(|k| (k.key_ref, k.state))
            .collect();
        out.sort_unstable_by_key(|(k, _)| k.version);
        Ok(out)
    }
}
