//! Who acts: an [`Actor`] (kind, id, roles) as every request and audit event names it. Holds no
//! credentials and decides nothing; authorisation is `plenum-store`'s gate.

use core::fmt;
use core::str::FromStr;
use std::collections::BTreeSet;

use crate::error::Error;
use crate::id::{ActorId, SubjectId};
use crate::name::Role;

/// What kind of party an [`Actor`] is.
///
/// String forms (serde and `Display`): `account_user`, `technician`, `service`, `support`,
/// `system_job`, `data_subject`.
#[non_exhaustive]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A person signed in to a tenant's account (owner, dispatcher, office staff).
    AccountUser,
    /// A field technician using the mobile app.
    Technician,
    /// Another service acting on its own behalf (an integration, an API client).
    Service,
    /// Plenum support staff, acting across tenants only through audited admin access.
    Support,
    /// A scheduled or queued job (retention sweep, reminder sender).
    SystemJob,
    /// The data subject themself, for example exercising a right of access.
    DataSubject,
}

impl ActorKind {
    /// The stable string form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AccountUser => "account_user",
            Self::Technician => "technician",
            Self::Service => "service",
            Self::Support => "support",
            Self::SystemJob => "system_job",
            Self::DataSubject => "data_subject",
        }
    }

    const ALL: [Self; 6] = [
        Self::AccountUser,
        Self::Technician,
        Self::Service,
        Self::Support,
        Self::SystemJob,
        Self::DataSubject,
    ];
}

impl fmt::Display for ActorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ActorKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or(Error::UnknownActorKind)
    }
}

/// Who performs an access: recorded in every audit event and checked by purpose policies.
///
/// Serialised as `{"kind": "...", "id": "...", "roles": [...], "on_behalf_of": null | "..."}`
/// with roles sorted, so equal actors serialise to equal bytes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    kind: ActorKind,
    id: ActorId,
    roles: BTreeSet<Role>,
    on_behalf_of: Option<ActorId>,
}

impl Actor {
    /// An actor of `kind` with no roles, acting for itself.
    pub fn new(kind: ActorKind, id: ActorId) -> Self {
        Self {
            kind,
            id,
            roles: BTreeSet::new(),
            on_behalf_of: None,
        }
    }

    /// The data subject acting for themself (a homeowner downloading their data).
    ///
    /// The actor id is the subject id, so "who accessed my data" and "what did I do" line up.
    pub fn data_subject(subject: SubjectId) -> Self {
        Self::new(
            ActorKind::DataSubject,
            ActorId::from_trusted_uuid(*subject.as_uuid()),
        )
    }

    /// Adds a role.
    #[must_use]
    pub fn with_role(mut self, role: Role) -> Self {
        self.roles.insert(role);
        self
    }

    /// Records that this actor acts on behalf of another (support staff for an account user, a
    /// service for the user who triggered it).
    #[must_use]
    pub fn acting_for(mut self, principal: ActorId) -> Self {
        self.on_behalf_of = Some(principal);
        self
    }

    /// What kind of party this is.
    pub fn kind(&self) -> ActorKind {
        self.kind
    }

    /// The actor's id.
    pub fn id(&self) -> ActorId {
        self.id
    }

    /// The actor's roles, sorted.
    pub fn roles(&self) -> impl ExactSizeIterator<Item = &Role> {
        self.roles.iter()
    }

    /// Whether the actor holds `role`.
    pub fn has_role(&self, role: &Role) -> bool {
        self.roles.contains(role)
    }

    /// The principal this actor acts for, if any.
    pub fn on_behalf_of(&self) -> Option<ActorId> {
        self.on_behalf_of
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_strings_and_serde() {
        for kind in ActorKind::ALL {
            assert_eq!(kind.to_string().parse::<ActorKind>().unwrap(), kind);
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert_eq!("robot".parse::<ActorKind>(), Err(Error::UnknownActorKind));
    }

    #[test]
    fn actor_serialises_deterministically() {
        let id = ActorId::generate();
        let a = Actor::new(ActorKind::AccountUser, id)
            .with_role(Role::new("dispatcher").unwrap())
            .with_role(Role::new("billing").unwrap());
        let b = Actor::new(ActorKind::AccountUser, id)
            .with_role(Role::new("billing").unwrap())
            .with_role(Role::new("dispatcher").unwrap());
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, serde_json::to_string(&b).unwrap());
        assert_eq!(
            json,
            format!(
                r#"{{"kind":"account_user","id":"{id}","roles":["billing","dispatcher"],"on_behalf_of":null}}"#
            )
        );
        assert_eq!(serde_json::from_str::<Actor>(&json).unwrap(), a);
    }

    #[test]
    fn actor_deserialisation_validates_parts() {
        let bad_role = r#"{"kind":"service","id":"0192f0c4-5a3e-7b21-9c4d-3e2f1a0b9c8d","roles":["Root"],"on_behalf_of":null}"#;
        assert!(serde_json::from_str::<Actor>(bad_role).is_err());
        let extra = r#"{"kind":"service","id":"0192f0c4-5a3e-7b21-9c4d-3e2f1a0b9c8d","roles":[],"on_behalf_of":null,"admin":true}"#;
        assert!(serde_json::from_str::<Actor>(extra).is_err());
    }

    #[test]
    fn data_subject_actor_uses_the_subject_id() {
        let subject = SubjectId::generate();
        let actor = Actor::data_subject(subject);
        assert_eq!(actor.kind(), ActorKind::DataSubject);
        assert_eq!(actor.id().as_uuid(), subject.as_uuid());
        let support = Actor::new(ActorKind::Support, ActorId::generate()).acting_for(actor.id());
        assert_eq!(support.on_behalf_of(), Some(actor.id()));
    }
}
