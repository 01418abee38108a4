//! Purpose-bound access: the only way to a purpose-checked repository read is a [`PurposeGrant`],
//! and the only way to a grant is [`Gate::grant`].

use core::fmt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use plenum_consent::{Policy, Purpose};
use plenum_core::{Actor, RequestId, Role, TenantId};

use crate::error::Error;
use crate::tx::TenantTx;

/// One request (or job run): who acts, for which tenant. Grants borrow it, so none outlives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    tenant: TenantId,
    actor: Actor,
    id: RequestId,
}

impl Request {
    /// A request by `actor` in `tenant`.
    pub fn new(tenant: TenantId, actor: Actor) -> Self {
        Self {
            tenant,
            actor,
            id: RequestId::generate(),
        }
    }

    /// The tenant.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The actor.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// The request id (for audit correlation).
    pub fn id(&self) -> RequestId {
        self.id
    }
}

/// Which roles may act for which purposes. Nothing is allowed unless listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authorisation {
    by_role: BTreeMap<String, BTreeSet<Purpose>>,
}

impl Authorisation {
    /// Nobody may do anything yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets actors with `role` act for `purposes`.
    #[must_use]
    pub fn allow(mut self, role: Role, purposes: impl IntoIterator<Item = Purpose>) -> Self {
        self.by_role
            .entry(role.as_str().to_owned())
            .or_default()
            .extend(purposes);
        self
    }

    /// Whether `actor` holds a role that may act for `purpose`.
    pub fn permits(&self, actor: &Actor, purpose: Purpose) -> bool {
        actor.roles().any(|r| {
            self.by_role
                .get(r.as_str())
                .is_some_and(|ps| ps.contains(&purpose))
        })
    }
}

/// The policy layer: a processing [`Policy`] and an [`Authorisation`]. It alone mints
/// [`PurposeGrant`]s.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<GateInner>,
}

struct GateInner {
    policy: Policy,
    authorisation: Authorisation,
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gate")
            .field("policy", &self.inner.policy.version())
            .finish_non_exhaustive()
    }
}

impl Gate {
    /// A gate enforcing `policy` for actors authorised by `authorisation`.
    pub fn new(policy: Policy, authorisation: Authorisation) -> Self {
        Self {
            inner: Arc::new(GateInner {
                policy,
                authorisation,
            }),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// Mints a grant to act for `purpose` in `request`, after checking that the transaction is
    /// the request's tenant's, that the policy enables the purpose, and that the actor holds a
    /// role authorised for it. Subject-level checks (consent, objection, restriction) happen
    /// per row when the grant is used, against the ledger as the transaction sees it.
    ///
    /// # Errors
    ///
    /// [`Error::TenantMismatch`], or [`Error::Denied`] with the reason.
    pub fn grant<'r>(
        &'r self,
        request: &'r Request,
        tx: &TenantTx,
        purpose: Purpose,
    ) -> Result<PurposeGrant<'r>, Error> {
        if tx.tenant() != request.tenant {
            return Err(Error::TenantMismatch {
                record_type: "grant".to_owned(),
            });
        }
        if self.inner.policy.rule(purpose).is_none() {
            return Err(Error::Denied {
                purpose: purpose.key(),
                reason: "purpose_disabled",
            });
        }
        if !self.inner.authorisation.permits(&request.actor, purpose) {
            return Err(Error::Denied {
                purpose: purpose.key(),
                reason: "actor_not_authorised",
            });
        }
        Ok(PurposeGrant {
            request,
            policy: &self.inner.policy,
            purpose,
        })
    }
}

/// Permission to act for one purpose within one request. It has no public constructor (only
/// [`Gate::grant`] makes one) and borrows the request, so it cannot be forged, stored past the
/// request, or carried into another tenant's transaction.
#[derive(Debug, Clone, Copy)]
pub struct PurposeGrant<'r> {
    request: &'r Request,
    policy: &'r Policy,
    purpose: Purpose,
}

impl PurposeGrant<'_> {
    /// The purpose.
    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    /// The request it was minted for.
    pub fn request(&self) -> &Request {
        self.request
    }

    /// The policy it is checked against.
    pub fn policy(&self) -> &Policy {
        self.policy
    }
}
