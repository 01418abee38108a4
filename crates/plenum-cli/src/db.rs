//! Opening what a command needs from flags and the environment: the runtime pool (the
//! tenant-context key included), the tenant's keyring over the local root key, audited
//! `Records` with the service's record types, and the operator's grant. Values read from the
//! environment are secrets: errors say which is missing or malformed, never what it held.

use std::sync::Arc;

use plenum_consent::{Policy, Purpose};
use plenum_core::{Actor, ActorId, ActorKind, Role, TenantId};
use plenum_crypto::{Backend, Keyring, KeyringConfig, LocalKeyProvider};
use plenum_store::postgres::{ContextKey, PgPoolConfig};
use plenum_store::{Auditor, Authorisation, DbKeyStore, Gate, Records, Request, Roles, TenantPool};
use secrecy::SecretString;

use crate::Services;
use crate::cli::{Db, KeyringArgs};
use crate::output::Failure;

/// The roles of `db`.
pub(crate) fn roles(db: &Db) -> Result<Roles, Failure> {
    Roles::with_prefix(&db.roles).map_err(|_| Failure::usage("--roles: not a valid role prefix"))
}

/// A secret from the environment variable `name`, if set.
pub(crate) fn secret(name: &str) -> Option<SecretString> {
    std::env::var(name).ok().map(SecretString::from)
}

/// The tenant-context key (`PLENUM_CONTEXT_KEY`), if set.
pub(crate) fn context_key() -> Result<Option<ContextKey>, Failure> {
    secret("PLENUM_CONTEXT_KEY")
        .map(|k| {
            ContextKey::from_base64(&k)
                .map_err(|_| Failure::usage("PLENUM_CONTEXT_KEY: not 32 bytes of base64"))
        })
        .transpose()
}

/// The database URL of `db`, or the one sqlx builds from the `PG*` environment.
pub(crate) fn url(db: &Db) -> &str {
    db.database_url.as_deref().unwrap_or("postgres://")
}

/// The runtime pool of `db` (two connections: one command at a time).
pub(crate) async fn pool(db: &Db) -> Result<TenantPool, Failure> {
    let mut config = PgPoolConfig::with_max_connections(2);
    if let Some(key) = context_key()? {
        config = config.with_context_key(key);
    }
    Ok(TenantPool::connect_postgres(url(db), &config).await?)
}

/// Everything a tenant's key or retention command needs.
pub(crate) struct Session {
    pub(crate) pool: TenantPool,
    pub(crate) records: Records,
    pub(crate) tenant: TenantId,
    gate: Gate,
    actor: Actor,
}

/// The role the operator acts in, and the purposes it may ask for.
const OPERATOR: &str = "operator";

impl Session {
    pub(crate) async fn open(args: &KeyringArgs, services: &Services) -> Result<Self, Failure> {
        Self::open_with(args, services, None).await
    }

    /// [`Session::open`] with a second, newer root key version (`PLENUM_NEW_ROOT_KEY`) that
    /// wraps from now on: for re-wrapping.
    pub(crate) async fn open_with(
        args: &KeyringArgs,
        services: &Services,
        new_root: Option<u32>,
    ) -> Result<Self, Failure> {
        let tenant: TenantId = args
            .tenant
            .parse()
            .map_err(|_| Failure::usage("--tenant: not a tenant id"))?;
        let operator: ActorId = match &args.operator {
            Some(id) => id
                .parse()
                .map_err(|_| Failure::usage("--operator: not an actor id"))?,
            None => ActorId::generate(),
        };
        let root = secret("PLENUM_ROOT_KEY")
            .ok_or_else(|| Failure::usage("PLENUM_ROOT_KEY is not set (the root key, base64)"))?;
        let root = LocalKeyProvider::key_from_base64(&root)
            .map_err(|_| Failure::usage("PLENUM_ROOT_KEY: not 32 bytes of base64"))?;
        let version: u32 = match std::env::var("PLENUM_ROOT_KEY_VERSION") {
            Ok(v) => v
                .parse()
                .map_err(|_| Failure::usage("PLENUM_ROOT_KEY_VERSION: not a version number"))?,
            Err(_) => 1,
        };
        let mut provider = LocalKeyProvider::new(Backend::default(), version, &root)
            .map_err(|_| Failure::usage("PLENUM_ROOT_KEY_VERSION: versions start at 1"))?;
        if let Some(new_version) = new_root {
            let new = secret("PLENUM_NEW_ROOT_KEY")
                .ok_or_else(|| Failure::usage("PLENUM_NEW_ROOT_KEY is not set"))?;
            let new = LocalKeyProvider::key_from_base64(&new)
                .map_err(|_| Failure::usage("PLENUM_NEW_ROOT_KEY: not 32 bytes of base64"))?;
            if new_version <= version {
                return Err(Failure::usage(
                    "--to-version must be higher than PLENUM_ROOT_KEY_VERSION",
                ));
            }
            provider = provider.with_version(new_version, &new)?;
        }
        let pool = pool(&args.db).await?;
        let keys = Arc::new(DbKeyStore::new(pool.clone()));
        let keyring = Arc::new(Keyring::new(
            Arc::new(provider),
            keys,
            KeyringConfig::default(),
        ));
        // A wrong root key is an error here, before any command writes.
        match keyring.check_root(tenant).await {
            Ok(_) => {}
            Err(plenum_crypto::Error::DecryptionFailed) => {
                return Err(Failure::new(
                    1,
                    "PLENUM_ROOT_KEY does not unwrap this tenant's keys: nothing was done",
                ));
            }
            Err(e) => return Err(e.into()),
        }
        let auditor = Auditor::new(keyring.clone(), &pool, "plenum-cli")?;
        let records = Records::new(keyring, Arc::new(auditor))
            .with_record_types(services.record_types.clone());
        let role = Role::new(OPERATOR).map_err(|_| Failure::new(1, "operator role"))?;
        let gate = Gate::new(
            Policy::plenum_default(),
            Authorisation::new().allow(
                role.clone(),
                [
                    Purpose::SecurityProtection,
                    Purpose::LegalObligation,
                    Purpose::RightsFulfilment,
                ],
            ),
        );
        Ok(Self {
            pool,
            records,
            tenant,
            gate,
            actor: Actor::new(ActorKind::SystemJob, operator).with_role(role),
        })
    }

    /// The operator's request in this tenant.
    pub(crate) fn request(&self) -> Request {
        Request::new(self.tenant, self.actor.clone())
    }

    pub(crate) fn gate(&self) -> &Gate {
        &self.gate
    }
}
