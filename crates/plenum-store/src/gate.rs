//! Purpose-bound access: every repository operation takes a [`PurposeGrant`], and the only ways
//! to a grant are [`Gate::grant`] (for a purpose, checked against the policy) and
//! [`Gate::unrestricted`] (the named escape hatch for migrations, tests and rights tooling).

use core::fmt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use plenum_consent::{Policy, Purpose};
use plenum_core::{Actor, RequestId, Role, TenantId};

use crate::denial::Denial;
use crate::error::Error;

/// One request (or job run): who acts, for which tenant, since when. Grants borrow it, so none
/// outlives it in safe code; and a grant stops working once the request is older than its
/// gate's grant lifetime ([`Gate::with_grant_lifetime`]), so a request leaked to `'static`
/// (`Box::leak`) and its grants do not work forever in a spawned task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    tenant: TenantId,
    actor: Actor,
    id: RequestId,
    issued: Instant,
}

impl Request {
    /// A request by `actor` in `tenant`, issued now.
    pub fn new(tenant: TenantId, actor: Actor) -> Self {
        Self {
            tenant,
            actor,
            id: RequestId::generate(),
            issued: Instant::now(),
        }
    }

    /// When it was issued (a monotonic instant of this process).
    pub fn issued(&self) -> Instant {
        self.issued
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
    unrestricted: BTreeSet<String>,
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

    /// Lets actors with `role` take [`Gate::unrestricted`] grants, which skip the policy. Give it
    /// to the role migrations and data-subject-request tooling run as, and to nobody else.
    #[must_use]
    pub fn allow_unrestricted(mut self, role: Role) -> Self {
        self.unrestricted.insert(role.as_str().to_owned());
        self
    }

    /// Whether `actor` holds a role that may take unrestricted grants.
    pub fn permits_unrestricted(&self, actor: &Actor) -> bool {
        actor
            .roles()
            .any(|r| self.unrestricted.contains(r.as_str()))
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
    grant_lifetime: Duration,
}

/// How long after its request was issued a grant works, unless the gate says otherwise: longer
/// than any web request, short enough that a leaked request is soon useless.
pub const DEFAULT_GRANT_LIFETIME: Duration = Duration::from_secs(5 * 60);

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
                grant_lifetime: DEFAULT_GRANT_LIFETIME,
            }),
        }
    }

    /// The same gate whose grants work for `lifetime` after their request was issued (default
    /// [`DEFAULT_GRANT_LIFETIME`]). A job that runs longer takes a new [`Request`] per batch.
    #[must_use]
    pub fn with_grant_lifetime(self, lifetime: Duration) -> Self {
        Self {
            inner: Arc::new(GateInner {
                policy: self.inner.policy.clone(),
                authorisation: self.inner.authorisation.clone(),
                grant_lifetime: lifetime,
            }),
        }
    }

    fn expiry(&self, request: &Request) -> Instant {
        request
            .issued
            .checked_add(self.inner.grant_lifetime)
            .unwrap_or(request.issued)
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// Mints a grant to act for `purpose` in `request`, after checking that the policy enables
    /// the purpose and that the actor holds a role authorised for it. The rest is checked when
    /// the grant is used: that the transaction is the request's tenant's, and per row the
    /// subject's consent, objection and restriction, against the ledger as that transaction
    /// sees it.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`] with the reason.
    pub fn grant<'r>(
        &'r self,
        request: &'r Request,
        purpose: Purpose,
    ) -> Result<PurposeGrant<'r>, Error> {
        if self.inner.policy.rule(purpose).is_none() {
            return Err(Error::Denied {
                purpose: purpose.key(),
                reason: Denial::Policy(plenum_consent::DenyReason::PurposeDisabled),
            });
        }
        if !self.inner.authorisation.permits(&request.actor, purpose) {
            return Err(Error::Denied {
                purpose: purpose.key(),
                reason: Denial::ActorNotAuthorised,
            });
        }
        Ok(PurposeGrant {
            request,
            policy: &self.inner.policy,
            scope: Scope::Purpose(purpose),
            expires: self.expiry(request),
        })
    }

    /// Mints a grant that skips the policy: no purpose, no field withholding, no consent,
    /// objection or restriction checks. Every use still reaches the access hook, with `reason`
    /// and no purpose, so the audit log shows each one. The actor must hold a role given
    /// [`Authorisation::allow_unrestricted`]. The name is the point: `grep unrestricted` finds
    /// every place a service steps outside purpose limitation.
    ///
    /// # Errors
    ///
    /// [`Error::Denied`] (`actor_not_authorised`, or `no_reason` when `reason` is empty).
    pub fn unrestricted<'r>(
        &'r self,
        request: &'r Request,
        reason: &'static str,
    ) -> Result<PurposeGrant<'r>, Error> {
        let denied = |reason| Error::Denied {
            purpose: "unrestricted",
            reason,
        };
        if reason.trim().is_empty() {
            return Err(denied(Denial::NoReason));
        }
        if !self
            .inner
            .authorisation
            .permits_unrestricted(&request.actor)
        {
            return Err(denied(Denial::ActorNotAuthorised));
        }
        Ok(PurposeGrant {
            request,
            policy: &self.inner.policy,
            scope: Scope::Unrestricted(reason),
            expires: self.expiry(request),
        })
    }
}

/// What a grant permits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Purpose(Purpose),
    Unrestricted(&'static str),
}

/// Permission to act for one purpose (or, from [`Gate::unrestricted`], for none) within one
/// request. It has no public constructor and borrows the request, so it cannot be forged,
/// stored past the request in safe code, or carried into another tenant's transaction; and it
/// is refused (`grant_expired`) once its request is older than the gate's grant lifetime, so
/// even a request leaked to `'static` yields grants that stop working.
#[derive(Debug, Clone, Copy)]
pub struct PurposeGrant<'r> {
    request: &'r Request,
    policy: &'r Policy,
    scope: Scope,
    expires: Instant,
}

impl PurposeGrant<'_> {
    /// The purpose; `None` for an unrestricted grant.
    pub fn purpose(&self) -> Option<Purpose> {
        match self.scope {
            Scope::Purpose(p) => Some(p),
            Scope::Unrestricted(_) => None,
        }
    }

    /// For an unrestricted grant, the reason it was taken.
    pub fn unrestricted_reason(&self) -> Option<&'static str> {
        match self.scope {
            Scope::Purpose(_) => None,
            Scope::Unrestricted(reason) => Some(reason),
        }
    }

    /// The request it was minted for.
    pub fn request(&self) -> &Request {
        self.request
    }

    /// The policy it is checked against.
    pub fn policy(&self) -> &Policy {
        self.policy
    }

    /// Whether it has expired (its request is older than the gate's grant lifetime).
    pub fn is_expired(&self) -> bool {
        Instant::now() >= self.expires
    }
}
