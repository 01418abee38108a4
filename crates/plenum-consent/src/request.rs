//! Data-subject requests as data: what was asked, by whom, through which channel, and the state
//! machine every request moves through, with its append-only history and its due date (30 days
//! from receipt; the clock pauses while identity verification is pending; one extension of two
//! months, GDPR Art. 12(3)). Pure: every transition takes its time from the caller, so tests and
//! services inject the clock. Storage and the acting on a request live in the store.

use chrono::{DateTime, Duration, Utc};
use plenum_core::{ActorId, SubjectId, TenantId};

use crate::basis::Right;
use crate::error::Error;

/// How long a controller has to answer: one month, counted as 30 days.
pub const ANSWER_WITHIN: Duration = Duration::days(30);

/// How much an extension adds (two further months, counted as 60 days), once per request.
pub const EXTENSION: Duration = Duration::days(60);

/// Who made a request.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requester {
    /// The data subject themself.
    Subject,
    /// Someone acting for the subject, with a reference to the evidence of their authority (a
    /// document id in the service's own store; the library never holds identity documents).
    Agent {
        /// Where the service keeps the evidence of the agent's authority.
        evidence_ref: String,
    },
}

/// How a request reached the controller.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestChannel {
    /// A form in the product.
    Web,
    /// Email.
    Email,
    /// Telephone.
    Phone,
    /// Post.
    Post,
    /// In person.
    InPerson,
}

/// Why a request was refused (Art. 12(5), Art. 17(3), identity).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// The requester's identity could not be verified.
    IdentityNotVerified,
    /// Manifestly unfounded or excessive (Art. 12(5)).
    ManifestlyUnfounded,
    /// Erasure refused (in part) because a legal obligation requires keeping the data
    /// (Art. 17(3)(b)), e.g. financial records for 7 years.
    LegalObligation,
    /// The data is needed for legal claims (Art. 17(3)(e)).
    LegalClaims,
}

impl Requester {
    /// A stable key for storage: `subject` or `agent`.
    pub const fn key(&self) -> &'static str {
        match self {
            Self::Subject => "subject",
            Self::Agent { .. } => "agent",
        }
    }

    /// The reference to the agent's evidence, for an agent.
    pub fn evidence_ref(&self) -> Option<&str> {
        match self {
            Self::Subject => None,
            Self::Agent { evidence_ref } => Some(evidence_ref),
        }
    }

    /// The requester stored as `key` with `evidence_ref`.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownConsentTerm`] for an unknown key, an agent without evidence or a
    /// subject with some.
    pub fn from_parts(key: &str, evidence_ref: Option<&str>) -> Result<Self, Error> {
        match (key, evidence_ref) {
            ("subject", None) => Ok(Self::Subject),
            ("agent", Some(e)) if !e.is_empty() => Ok(Self::Agent {
                evidence_ref: e.to_owned(),
            }),
            _ => Err(Error::UnknownConsentTerm("requester")),
        }
    }
}

/// Declares `key()`, `ALL` and `from_key()` for a fieldless enum stored by key.
macro_rules! keyed {
    ($ty:ident, $what:literal, { $($variant:ident => $key:literal),* $(,)? }) => {
        impl $ty {
            /// Every value.
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            /// A stable key for storage and audit.
            pub const fn key(self) -> &'static str {
                match self {
                    $(Self::$variant => $key),*
                }
            }

            /// Looks a value up by key.
            ///
            /// # Errors
            ///
            /// [`Error::UnknownConsentTerm`] for a key that names none.
            pub fn from_key(key: &str) -> Result<Self, Error> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.key() == key)
                    .ok_or(Error::UnknownConsentTerm($what))
            }
        }
    };
}

keyed!(RequestChannel, "request channel", {
    Web => "web", Email => "email", Phone => "phone", Post => "post", InPerson => "in_person",
});
keyed!(RefusalReason, "refusal reason", {
    IdentityNotVerified => "identity_not_verified",
    ManifestlyUnfounded => "manifestly_unfounded",
    LegalObligation => "legal_obligation",
    LegalClaims => "legal_claims",
});
keyed!(ExtensionReason, "extension reason", {
    Complex => "complex", NumberOfRequests => "number_of_requests",
});

/// Why the answer was extended (Art. 12(3)).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtensionReason {
    /// The request is complex.
    Complex,
    /// Many requests at once.
    NumberOfRequests,
}

/// The outcome of identity verification, as the service's verifier reports it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Verified, and how (a method name the service chooses, e.g. "account_login").
    Verified {
        /// How the identity was verified.
        method: String,
    },
    /// Not verified.
    Failed,
}

/// Where a request stands.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestState {
    /// Received, not yet looked at.
    Received,
    /// Waiting for identity verification: the answer clock is paused.
    IdentityPending,
    /// Identity verified (or not needed); being acted on.
    InProgress,
    /// Still being acted on, its deadline extended once.
    Extended(ExtensionReason),
    /// Done.
    Completed,
    /// Refused, and why.
    Refused(RefusalReason),
}

impl RequestState {
    /// Whether nothing can follow this state.
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Refused(_))
    }

    /// A stable key for storage and audit.
    pub const fn key(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::IdentityPending => "identity_pending",
            Self::InProgress => "in_progress",
            Self::Extended(_) => "extended",
            Self::Completed => "completed",
            Self::Refused(_) => "refused",
        }
    }
}

/// One step of a request's history: append-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The state left.
    pub from: RequestState,
    /// The state entered.
    pub to: RequestState,
    /// When.
    pub at: DateTime<Utc>,
    /// Who moved it.
    pub actor: ActorId,
}

/// One act on a request, as stored: a request is its receipt plus its steps, and replaying the
/// steps through [`SubjectRequest::apply`] rebuilds it, checking every transition again (a
/// history that the state machine would not allow does not load).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// [`SubjectRequest::await_identity`].
    AwaitIdentity,
    /// [`SubjectRequest::record_verification`].
    Verification(Verification),
    /// [`SubjectRequest::extend`].
    Extend(ExtensionReason),
    /// [`SubjectRequest::complete`].
    Complete,
    /// [`SubjectRequest::refuse`].
    Refuse(RefusalReason),
}

impl Step {
    /// A stable key for storage.
    pub const fn key(&self) -> &'static str {
        match self {
            Self::AwaitIdentity => "await_identity",
            Self::Verification(Verification::Verified { .. }) => "verified",
            Self::Verification(Verification::Failed) => "verification_failed",
            Self::Extend(_) => "extend",
            Self::Complete => "complete",
            Self::Refuse(_) => "refuse",
        }
    }

    /// What the step carries beside its key: the verification method, or the reason's key.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::Verification(Verification::Verified { method }) => Some(method),
            Self::Extend(r) => Some(r.key()),
            Self::Refuse(r) => Some(r.key()),
            _ => None,
        }
    }

    /// The step stored as `key` with `detail`.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownConsentTerm`] for an unknown key or reason, or a detail where none
    /// belongs (or none where one must be).
    pub fn from_parts(key: &str, detail: Option<&str>) -> Result<Self, Error> {
        let unknown = Error::UnknownConsentTerm("request step");
        Ok(match (key, detail) {
            ("await_identity", None) => Self::AwaitIdentity,
            ("verified", Some(m)) if !m.is_empty() => Self::Verification(Verification::Verified {
                method: m.to_owned(),
            }),
            ("verification_failed", None) => Self::Verification(Verification::Failed),
            ("extend", Some(r)) => Self::Extend(ExtensionReason::from_key(r)?),
            ("complete", None) => Self::Complete,
            ("refuse", Some(r)) => Self::Refuse(RefusalReason::from_key(r)?),
            _ => return Err(unknown),
        })
    }
}

/// A data-subject request of one tenant: what was asked, its state and its history.
#[derive(Debug, Clone)]
pub struct SubjectRequest {
    tenant: TenantId,
    subject: SubjectId,
    kind: Right,
    requester: Requester,
    channel: RequestChannel,
    received_at: DateTime<Utc>,
    verification: Option<Verification>,
    /// The state is the last transition's target (`Received` before the first): never stored
    /// apart from the history it must agree with.
    history: Vec<Transition>,
}

impl SubjectRequest {
    /// A request as received at `received_at`. A tenant's homeowner asks that tenant: the
    /// request belongs to the tenant whose data it is about, never to the platform.
    pub fn received(
        tenant: TenantId,
        subject: SubjectId,
        kind: Right,
        requester: Requester,
        channel: RequestChannel,
        received_at: DateTime<Utc>,
    ) -> Self {
        Self {
            tenant,
            subject,
            kind,
            requester,
            channel,
            received_at,
            verification: None,
            history: Vec::new(),
        }
    }

    /// The tenant the request belongs to.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// Whose data it is about.
    pub fn subject(&self) -> SubjectId {
        self.subject
    }

    /// Which right is exercised.
    pub fn kind(&self) -> Right {
        self.kind
    }

    /// Who asked.
    pub fn requester(&self) -> &Requester {
        &self.requester
    }

    /// Through which channel.
    pub fn channel(&self) -> RequestChannel {
        self.channel
    }

    /// When it was received.
    pub fn received_at(&self) -> DateTime<Utc> {
        self.received_at
    }

    /// Where it stands.
    pub fn state(&self) -> RequestState {
        self.history.last().map_or(RequestState::Received, |t| t.to)
    }

    /// The recorded verification outcome, if any.
    pub fn verification(&self) -> Option<&Verification> {
        self.verification.as_ref()
    }

    /// Every transition so far, oldest first.
    pub fn history(&self) -> &[Transition] {
        &self.history
    }

    /// Starts identity verification: the answer clock pauses from `at`.
    ///
    /// # Errors
    ///
    /// [`Error::IllegalTransition`] unless the request is `Received`.
    pub fn await_identity(&mut self, actor: ActorId, at: DateTime<Utc>) -> Result<(), Error> {
        self.move_to(RequestState::IdentityPending, actor, at, |from| {
            from == RequestState::Received
        })
    }

    /// Records the verifier's outcome: verified moves the request to `InProgress` (the clock
    /// runs again), failed refuses it (`IdentityNotVerified`).
    ///
    /// # Errors
    ///
    /// [`Error::IllegalTransition`] unless identity verification is pending.
    pub fn record_verification(
        &mut self,
        outcome: Verification,
        actor: ActorId,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let to = match outcome {
            Verification::Verified { .. } => RequestState::InProgress,
            Verification::Failed => RequestState::Refused(RefusalReason::IdentityNotVerified),
        };
        self.move_to(to, actor, at, |from| from == RequestState::IdentityPending)?;
        self.verification = Some(outcome);
        Ok(())
    }

    /// Extends the deadline once by [`EXTENSION`], while the request is in progress and before
    /// its deadline (Art. 12(3): the subject is told within the first month).
    ///
    /// # Errors
    ///
    /// [`Error::IllegalTransition`] unless in progress (an extended request cannot be extended
    /// again); [`Error::ExtensionAfterDeadline`] once the deadline has passed.
    pub fn extend(
        &mut self,
        reason: ExtensionReason,
        actor: ActorId,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        if self.state() == RequestState::InProgress && at > self.due_at(at) {
            return Err(Error::ExtensionAfterDeadline);
        }
        self.move_to(RequestState::Extended(reason), actor, at, |from| {
            from == RequestState::InProgress
        })
    }

    /// Completes the request.
    ///
    /// # Errors
    ///
    /// [`Error::IllegalTransition`] unless in progress or extended: nothing is acted on before
    /// a verification outcome is recorded.
    pub fn complete(&mut self, actor: ActorId, at: DateTime<Utc>) -> Result<(), Error> {
        self.move_to(RequestState::Completed, actor, at, |from| {
            matches!(from, RequestState::InProgress | RequestState::Extended(_))
        })
    }

    /// Refuses the request for `reason`, from any state that is not final.
    ///
    /// # Errors
    ///
    /// [`Error::IllegalTransition`] once the request is completed or refused.
    pub fn refuse(
        &mut self,
        reason: RefusalReason,
        actor: ActorId,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.move_to(RequestState::Refused(reason), actor, at, |from| {
            !from.is_final()
        })
    }

    /// Takes `step`: the one entry point that storage replays and services call alike.
    ///
    /// # Errors
    ///
    /// Those of the step's own method.
    pub fn apply(&mut self, step: Step, actor: ActorId, at: DateTime<Utc>) -> Result<(), Error> {
        match step {
            Step::AwaitIdentity => self.await_identity(actor, at),
            Step::Verification(outcome) => self.record_verification(outcome, actor, at),
            Step::Extend(reason) => self.extend(reason, actor, at),
            Step::Complete => self.complete(actor, at),
            Step::Refuse(reason) => self.refuse(reason, actor, at),
        }
    }

    /// The due date as of `now`: receipt + [`ANSWER_WITHIN`], plus every interval spent waiting
    /// for identity (up to `now` if still waiting), plus [`EXTENSION`] once extended.
    pub fn due_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let mut paused = Duration::zero();
        let mut pending_since: Option<DateTime<Utc>> = None;
        let mut extended = false;
        for t in &self.history {
            if t.to == RequestState::IdentityPending {
                pending_since = Some(t.at);
            } else if let Some(since) = pending_since.take() {
                paused += t.at - since;
            }
            extended |= matches!(t.to, RequestState::Extended(_));
        }
        if let Some(since) = pending_since {
            paused += (now - since).max(Duration::zero());
        }
        let due = self.received_at + ANSWER_WITHIN + paused;
        if extended { due + EXTENSION } else { due }
    }

    /// Whether the request is open past its due date at `now`.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        !self.state().is_final() && now > self.due_at(now)
    }

    fn move_to(
        &mut self,
        to: RequestState,
        actor: ActorId,
        at: DateTime<Utc>,
        allowed_from: impl Fn(RequestState) -> bool,
    ) -> Result<(), Error> {
        let from = self.state();
        if !allowed_from(from) {
            return Err(Error::IllegalTransition {
                from: from.key(),
                to: to.key(),
            });
        }
        if at < self.history.last().map_or(self.received_at, |t| t.at) {
            return Err(Error::TransitionBeforePrevious);
        }
        self.history.push(Transition {
            from,
            to,
            at,
            actor,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

    use chrono::TimeZone as _;

    use super::*;

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, d, 9, 0, 0).unwrap()
    }

    fn request() -> SubjectRequest {
        SubjectRequest::received(
            TenantId::generate(),
            SubjectId::generate(),
            Right::Erasure,
            Requester::Subject,
            RequestChannel::Email,
            day(1),
        )
    }

    #[test]
    fn every_key_round_trips_and_unknown_keys_are_refused() {
        for c in RequestChannel::ALL {
            assert_eq!(RequestChannel::from_key(c.key()).unwrap(), *c);
        }
        for r in RefusalReason::ALL {
            assert_eq!(RefusalReason::from_key(r.key()).unwrap(), *r);
        }
        for r in ExtensionReason::ALL {
            assert_eq!(ExtensionReason::from_key(r.key()).unwrap(), *r);
        }
        let steps = [
            Step::AwaitIdentity,
            Step::Verification(Verification::Verified {
                method: "account_login".into(),
            }),
            Step::Verification(Verification::Failed),
            Step::Extend(ExtensionReason::Complex),
            Step::Complete,
            Step::Refuse(RefusalReason::LegalObligation),
        ];
        for step in steps {
            assert_eq!(Step::from_parts(step.key(), step.detail()).unwrap(), step);
        }
        for (key, detail) in [
            ("complete", Some("x")),
            ("refuse", None),
            ("refuse", Some("because")),
            ("verified", Some("")),
            ("teleport", None),
        ] {
            assert!(Step::from_parts(key, detail).is_err(), "{key} {detail:?}");
        }
        let agent = Requester::Agent {
            evidence_ref: "doc-1".into(),
        };
        assert_eq!(
            Requester::from_parts(agent.key(), agent.evidence_ref()).unwrap(),
            agent
        );
        assert!(Requester::from_parts("agent", None).is_err());
        assert!(Requester::from_parts("subject", Some("doc")).is_err());
    }

    #[test]
    fn replaying_steps_rebuilds_the_request_and_refuses_an_impossible_history() {
        let officer = ActorId::generate();
        let mut live = request();
        let steps = [
            (Step::AwaitIdentity, day(2)),
            (
                Step::Verification(Verification::Verified {
                    method: "account_login".into(),
                }),
                day(5),
            ),
            (Step::Complete, day(9)),
        ];
        let mut replayed = request();
        for (step, at) in steps.clone() {
            live.apply(step.clone(), officer, at).unwrap();
            replayed.apply(step, officer, at).unwrap();
        }
        assert_eq!(replayed.history(), live.history());
        assert_eq!(replayed.state(), RequestState::Completed);
        // Completing before verification is not a history that loads.
        let mut forged = request();
        let err = forged.apply(Step::Complete, officer, day(2)).unwrap_err();
        assert!(matches!(err, Error::IllegalTransition { .. }), "{err}");
    }

    #[test]
    fn due_in_30_days_with_the_clock_paused_while_identity_is_pending() {
        let officer = ActorId::generate();
        let mut r = request();
        assert_eq!(r.due_at(day(1)), day(1) + ANSWER_WITHIN);
        r.await_identity(officer, day(2)).unwrap();
        // Still pending at day 10: eight days paused so far, and counting.
        assert_eq!(
            r.due_at(day(10)),
            day(1) + ANSWER_WITHIN + Duration::days(8)
        );
        r.record_verification(
            Verification::Verified {
                method: "account_login".to_owned(),
            },
            officer,
            day(5),
        )
        .unwrap();
        assert_eq!(r.state(), RequestState::InProgress);
        // Three days paused, fixed from now on.
        assert_eq!(
            r.due_at(day(20)),
            day(1) + ANSWER_WITHIN + Duration::days(3)
        );
        assert!(!r.is_overdue(day(28)));
        assert!(r.is_overdue(day(1) + Duration::days(34)));
        r.extend(ExtensionReason::Complex, officer, day(20))
            .unwrap();
        assert_eq!(
            r.due_at(day(20)),
            day(1) + ANSWER_WITHIN + Duration::days(3) + EXTENSION
        );
        r.complete(officer, day(25)).unwrap();
        assert!(
            !r.is_overdue(day(1) + Duration::days(400)),
            "done is never overdue"
        );
        let states: Vec<&str> = r.history().iter().map(|t| t.to.key()).collect();
        assert_eq!(
            states,
            ["identity_pending", "in_progress", "extended", "completed"]
        );
    }

    #[test]
    fn nothing_is_acted_on_before_a_verification_outcome_and_final_states_stay_final() {
        let officer = ActorId::generate();
        let mut r = request();
        assert_eq!(
            r.complete(officer, day(2)).unwrap_err(),
            Error::IllegalTransition {
                from: "received",
                to: "completed"
            }
        );
        assert!(r.extend(ExtensionReason::Complex, officer, day(2)).is_err());
        r.await_identity(officer, day(2)).unwrap();
        assert!(r.complete(officer, day(3)).is_err(), "still pending");
        r.record_verification(Verification::Failed, officer, day(3))
            .unwrap();
        assert_eq!(
            r.state(),
            RequestState::Refused(RefusalReason::IdentityNotVerified)
        );
        assert!(r.state().is_final());
        for attempt in [
            r.clone().complete(officer, day(4)),
            r.clone()
                .refuse(RefusalReason::ManifestlyUnfounded, officer, day(4)),
            r.clone().await_identity(officer, day(4)),
        ] {
            assert!(attempt.is_err());
        }
        assert!(!r.is_overdue(day(1) + Duration::days(100)));
    }

    #[test]
    fn a_second_extension_and_a_step_back_in_time_are_refused() {
        let officer = ActorId::generate();
        let mut r = request();
        r.await_identity(officer, day(2)).unwrap();
        assert_eq!(
            r.record_verification(
                Verification::Verified {
                    method: "x".to_owned()
                },
                officer,
                day(1),
            )
            .unwrap_err(),
            Error::TransitionBeforePrevious
        );
        assert_eq!(r.state(), RequestState::IdentityPending, "nothing changed");
        r.record_verification(
            Verification::Verified {
                method: "x".to_owned(),
            },
            officer,
            day(3),
        )
        .unwrap();
        assert_eq!(
            r.clone()
                .extend(
                    ExtensionReason::Complex,
                    officer,
                    day(1) + Duration::days(40)
                )
                .unwrap_err(),
            Error::ExtensionAfterDeadline,
            "too late to extend"
        );
        r.extend(ExtensionReason::NumberOfRequests, officer, day(4))
            .unwrap();
        assert!(
            r.extend(ExtensionReason::Complex, officer, day(5)).is_err(),
            "one extension only"
        );
        r.refuse(RefusalReason::LegalObligation, officer, day(6))
            .unwrap();
        assert_eq!(r.history().len(), 4);
    }
}
