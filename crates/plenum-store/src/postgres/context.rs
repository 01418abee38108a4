//! The tenant context token: what `TenantPool::begin` sends with `BEGIN` so that the database,
//! not the runtime role, decides which tenant a transaction belongs to. A token is
//! `tenant (16 bytes) || expiry (8 bytes, big-endian Unix seconds) || HMAC-SHA256(K, label ||
//! tenant || expiry)`, hex-encoded; `plenum.current_tenant_id()` (migration 6, `SECURITY
//! DEFINER`, the key in an owner-only table) returns the tenant only when the MAC verifies and
//! the expiry is not before the transaction's start. Raw SQL can set the setting to anything,
//! but without K it cannot produce a value naming another tenant. Holds the key; decides
//! nothing about access.

use core::fmt;
use std::sync::Arc;

use plenum_core::TenantId;
use plenum_crypto::secrecy::{ExposeSecret as _, SecretBox, SecretString};

use crate::error::Error;

/// Domain separation for the context MAC (also in the database's function body).
pub(crate) const CONTEXT_LABEL: &[u8] = b"plenum-tenant-context-v1";

/// How long a token is good for after it was minted. The database checks it against the
/// transaction's start (`now()`), so a long transaction keeps its context; the window only has
/// to cover the gap between minting and `BEGIN` plus clock skew between service and database.
const TOKEN_LIFETIME_SECS: i64 = 60;

/// The key that authenticates tenant contexts between the service and its database: the same
/// 32 bytes in [`PgPoolConfig::context_key`](crate::postgres::PgPoolConfig) and, installed by
/// [`migrate`](crate::postgres::migrate), in the owner-only `plenum.context_key` table. Keep it
/// in the service's secret store beside the database password; a runtime role that cannot read
/// it cannot switch tenant, whatever SQL it runs.
#[derive(Clone)]
pub struct ContextKey {
    key: Arc<SecretBox<[u8; 32]>>,
}

impl fmt::Debug for ContextKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ContextKey([REDACTED])")
    }
}

impl ContextKey {
    /// A fresh random key (for tests, and to print once when provisioning a database).
    pub fn generate() -> Self {
        Self::from_bytes(plenum_crypto::digest::random_bytes::<32>())
    }

    /// The key with these bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self {
            key: Arc::new(SecretBox::new(Box::new(bytes))),
        }
    }

    /// The key from its standard base64 form (as a secret store holds it).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] unless it decodes to exactly 32 bytes; the input is not echoed.
    pub fn from_base64(encoded: &SecretString) -> Result<Self, Error> {
        let material = plenum_crypto::LocalKeyProvider::key_from_base64(encoded)
            .map_err(|_| Error::Config("context key must be 32 bytes of standard base64"))?;
        Ok(Self {
            key: Arc::new(material),
        })
    }

    /// The token that sets `tenant` as the context of a transaction starting within the next
    /// minute: what [`TenantPool::begin`](crate::TenantPool::begin) sends. For tools that open
    /// their own connections as the runtime role; whoever holds the key can act for any tenant.
    pub fn token(&self, tenant: TenantId) -> String {
        self.token_expiring(tenant, chrono::Utc::now().timestamp() + TOKEN_LIFETIME_SECS)
    }

    /// The token for `tenant` valid for transactions that start no later than `expires`
    /// (Unix seconds).
    pub fn token_expiring(&self, tenant: TenantId, expires: i64) -> String {
        let expiry = expires.to_be_bytes();
        let mac = plenum_crypto::digest::hmac_sha256(
            self.key.expose_secret(),
            &[CONTEXT_LABEL, tenant.as_bytes(), &expiry],
        );
        // Once per transaction: hex by table rather than a `format!` per byte.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(112);
        for b in tenant.as_bytes().iter().chain(&expiry).chain(&mac) {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        out
    }

    /// The HMAC inner and outer padded keys (RFC 2104, `K || 0^32` XOR 0x36 / 0x5c), which is
    /// how the database stores the key: its `sha256` needs no HMAC function.
    pub(crate) fn pads(&self) -> ([u8; 64], [u8; 64]) {
        let mut ipad = [0x36u8; 64];
        let mut opad = [0x5cu8; 64];
        for (i, k) in self.key.expose_secret().iter().enumerate() {
            ipad[i] ^= k;
            opad[i] ^= k;
        }
        (ipad, opad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pads_reproduce_hmac() {
        let key = ContextKey::from_bytes([7; 32]);
        let tenant = TenantId::generate();
        let token = key.token_expiring(tenant, 1_800_000_000);
        let (ipad, opad) = key.pads();
        let mut msg = CONTEXT_LABEL.to_vec();
        msg.extend_from_slice(tenant.as_bytes());
        msg.extend_from_slice(&1_800_000_000i64.to_be_bytes());
        let inner = plenum_crypto::digest::sha256(&[&ipad, &msg]);
        let mac = plenum_crypto::digest::sha256(&[&opad, &inner]);
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(token.len(), 112);
        assert!(token.ends_with(&hex));
        assert!(format!("{key:?}").contains("REDACTED"));
    }
}
