//! Who is asking: the service's own verification of a request, as a tenant and an actor.

use plenum_core::{Actor, TenantId};

/// A verified identity: the tenant the request acts in and the actor acting.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The tenant, as the credential says (never as the caller chooses).
    pub tenant: TenantId,
    /// The actor, with the roles the credential grants.
    pub actor: Actor,
}

/// The service's authentication: from a request's head, the identity its credential proves,
/// or `None` (the request is refused with 401 before any handler runs). Implement it over
/// verified JWT claims, a client certificate, or a server-side session; a tenant id read from
/// a header, path or query that the caller controls is not an identity.
pub trait IdentityProvider: Send + Sync + 'static {
    /// The identity `parts` proves, if any.
    fn identify(&self, parts: &axum::http::request::Parts) -> Option<Identity>;
}
