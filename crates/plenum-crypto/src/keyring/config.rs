//! How a keyring is tuned: backend, cache sizes, TTL, rotation threshold.

use std::time::Duration;

use crate::backend::Backend;

/// Tuning of a [`Keyring`](crate::Keyring). The defaults suit a service process.
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
    /// how long another process keeps using a key this process rotated or destroyed: after an
    /// erasure elsewhere, this keyring stops opening the subject's fields within `ttl` (every
    /// field key is reached through its scope, whose entry expires). Default 5 minutes; a
    /// deployment that erases under a tighter bound sets it lower ([`KeyringConfig::with_ttl`])
    /// and pays one key-store read per scope per `ttl`.
    pub ttl: Duration,
    /// Seals under one tenant key version after which
    /// [`Keyring::rotation_due`](crate::Keyring::rotation_due) says so (and `plenum-store`'s
    /// `Records::flush_key_usage` warns), well before [`KeyringConfig::usage_limit`] refuses
    /// to seal. Counts are every instance's as of the last
    /// [`Keyring::flush_usage`](crate::Keyring::flush_usage) plus this process's since.
    pub rotation_threshold: u64,
    /// Seals under one tenant key version after which sealing is refused
    /// ([`Error::UsageLimit`](crate::Error::UsageLimit)): the NIST SP 800-38D bound of 2^32
    /// random-nonce encryptions per key, less a margin for other instances' seals not yet
    /// flushed. Subject keys seal a handful of values each and are not counted.
    pub usage_limit: u64,
}

impl Default for KeyringConfig {
    fn default() -> Self {
        Self {
            backend: Backend::default(),
            max_scopes: 10_000,
            max_field_keys: 50_000,
            ttl: Duration::from_secs(300),
            rotation_threshold: 1 << 30,
            usage_limit: 3 << 30,
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

    /// Sets how long unwrapped keys are used before the key store is read again: the bound on
    /// how long another instance keeps decrypting an erased subject.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
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
