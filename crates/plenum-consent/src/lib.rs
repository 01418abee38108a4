//! Purposes, legal bases, data categories, the consent ledger and the processing policy.
//!
//! - [`Purpose`]: the closed set of purposes Plenum's privacy policy allows (no selling, no
//!   third-party advertising, no AI training: those purposes do not exist), each with a stable
//!   key, a version, a fideslang data use, a W3C DPV purpose and a default [`LegalBasis`].
//! - [`LegalBasis`] (GDPR Art. 6(1)) and the data-subject [`Right`]s each leaves in force.
//! - Data categories are `plenum_core::DataCategory` keys; [`KNOWN_CATEGORIES`] gives Plenum's
//!   with their CCPA categories; [`SubjectKind`] names whose data a record holds.
//! - The ledger's [`ConsentEvent`]s (given, withdrawn, expired, objected, restriction placed and
//!   lifted, each with [`Evidence`]) fold into a [`SubjectStatus`].
//! - A [`Policy`] says which purpose may see which categories under which basis, and
//!   [`Policy::decide`] applies a subject's status: restriction leaves only compliance
//!   purposes, objection stops objectable ones, consent purposes need live consent to the
//!   current purpose version. [`Policy::plenum_default`] is the privacy policy; a tenant may
//!   only narrow it ([`Narrowing`]).
//! - [`DataMap`] exports what is stored and why: a fideslang manifest and a record of
//!   processing (GDPR Art. 30).
//! - [`SubjectRequest`]: a data-subject request as data, its state machine (received ->
//!   identity pending -> in progress -> completed | refused | extended) with an append-only
//!   history and a due date 30 days from receipt that pauses while identity is pending.
//! - [`RetentionSchedule`]: the policy's retention periods as rules (class x trigger x offset x
//!   action), narrowable per tenant (shorter only; never below a legal minimum; longer only on
//!   a legal ground), and [`LegalHold`]s that suspend what they cover.

#![forbid(unsafe_code)]

mod basis;
mod category;
mod datamap;
mod error;
mod ledger;
mod policy;
mod purpose;
mod request;
mod retention;

pub use crate::basis::{LegalBasis, RetainGround, Right};
pub use crate::category::{
    CcpaCategory, KNOWN_CATEGORIES, KnownCategory, SubjectKind, describe, is_personal,
};
pub use crate::datamap::{DataMap, MappedField, MappedRecord};
pub use crate::error::{Error, ErrorKind};
pub use crate::ledger::{ConsentCheck, ConsentEvent, EventKind, Evidence, Method, SubjectStatus};
pub use crate::policy::{Decision, DenyReason, Narrowing, Policy, Rule};
pub use crate::purpose::{Channel, ConsentRequirement, Purpose, PurposeGroup};
pub use crate::request::{
    ANSWER_WITHIN, EXTENSION, ExtensionReason, RefusalReason, RequestChannel, RequestState,
    Requester, Step, SubjectRequest, Transition, Verification,
};
pub use crate::retention::{
    HoldScope, LegalHold, Offset, RetentionAction, RetentionClass, RetentionNarrowing,
    RetentionRule, RetentionSchedule, Trigger, marketing_consent_ended,
};
