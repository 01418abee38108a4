//! The processing policy: which purpose may touch which data categories, under which legal
//! basis, and what the subject's consent, objection and restriction do to that.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use plenum_core::DataCategory;

use crate::basis::LegalBasis;
use crate::error::Error;
use crate::ledger::{ConsentCheck, SubjectStatus};
use crate::purpose::{ConsentRequirement, Purpose, PurposeGroup};

/// What one purpose may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The legal basis processing for this purpose rests on.
    pub basis: LegalBasis,
    /// The categories it may see (each with everything below it).
    pub categories: Vec<DataCategory>,
    /// Categories carved out of those (a tenant's narrowing).
    pub excluded: Vec<DataCategory>,
}

impl Rule {
    /// Whether `category` is visible under this rule.
    pub fn allows(&self, category: &DataCategory) -> bool {
        self.categories.iter().any(|c| category.is_within(c))
            && !self.excluded.iter().any(|c| category.is_within(c))
    }
}

/// Why a subject-level decision refused.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// The policy does not enable this purpose (a tenant disabled it).
    PurposeDisabled,
    /// Processing of this subject is restricted; only compliance purposes remain.
    Restricted,
    /// The subject objected to this purpose.
    Objected,
    /// The purpose needs consent and there is none.
    ConsentMissing,
    /// Consent was withdrawn.
    ConsentWithdrawn,
    /// Consent lapsed.
    ConsentExpired,
    /// Consent was given to an earlier version of the purpose.
    ConsentOutdated,
    /// The purpose needs explicit consent and the consent given was not explicit.
    ConsentNotExplicit,
}

impl DenyReason {
    /// A stable key, for audit events.
    pub const fn key(self) -> &'static str {
        match self {
            Self::PurposeDisabled => "purpose_disabled",
            Self::Restricted => "restricted",
            Self::Objected => "objected",
            Self::ConsentMissing => "consent_missing",
            Self::ConsentWithdrawn => "consent_withdrawn",
            Self::ConsentExpired => "consent_expired",
            Self::ConsentOutdated => "consent_outdated",
            Self::ConsentNotExplicit => "consent_not_explicit",
        }
    }
}

/// The outcome of checking one subject against one purpose.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Processing may go ahead, on this basis.
    Allow(LegalBasis),
    /// It may not.
    Deny(DenyReason),
}

impl Decision {
    /// Whether it allows.
    pub fn is_allowed(self) -> bool {
        matches!(self, Self::Allow(_))
    }
}

/// A processing policy: Plenum's own ([`Policy::plenum_default`]), or a tenant's narrowing of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    version: String,
    rules: BTreeMap<Purpose, Rule>,
}

fn cats(keys: &[&'static str]) -> Vec<DataCategory> {
    // The keys are literals of this file, checked by `default_policy_keys_are_valid`.
    keys.iter()
        .filter_map(|k| DataCategory::new(*k).ok())
        .collect()
}

impl Policy {
    /// The version of the default policy; part of every decision's audit record.
    pub const DEFAULT_VERSION: &'static str = "plenum-default-1";

    /// Plenum's privacy policy, as a table (rendered in `docs/policy.md` by
    /// [`Policy::to_markdown`], and tested row by row):
    ///
    /// - provide the service (scheduling, dispatch, billing, support, authentication) under the
    ///   contract, each seeing only what it needs; technicians' precise location only with
    ///   explicit consent;
    /// - improve the service from system data only (aggregated, anonymised: no `user` data);
    /// - security and fraud prevention under legitimate interests;
    /// - compliance purposes (legal obligations, seven-year financial records, rights requests,
    ///   audit, legal holds) under legal obligation; these alone survive a restriction;
    /// - transactional messages under the contract; marketing by email or SMS only with consent,
    ///   per channel, and seeing only that channel's contact detail.
    pub fn plenum_default() -> Self {
        let rules = default_rows()
            .into_iter()
            .map(|(p, basis, keys)| {
                (
                    p,
                    Rule {
                        basis,
                        categories: cats(&keys),
                        excluded: Vec::new(),
                    },
                )
            })
            .collect();
        Self {
            version: Self::DEFAULT_VERSION.to_owned(),
            rules,
        }
    }
}

/// The default policy's rows: purpose, basis, visible category keys. A data table (one row
/// per purpose, read by `docs/policy.md`'s test), so its length is the policy's, not logic.
fn default_rows() -> Vec<(Purpose, LegalBasis, Vec<&'static str>)> {
    use LegalBasis as B;
    use Purpose as P;
    let identity = ["user.name", "user.unique_id", "system"];
    vec![
        (
            P::Scheduling,
            B::Contract,
            [
                &identity[..],
                &[
                    "user.contact",
                    "user.content",
                    "user.device",
                    "user.behavior.purchase_history",
                    "user.location.imprecise",
                ],
            ]
            .concat(),
        ),
        (
            P::Dispatch,
            B::Contract,
            [
                &identity[..],
                &[
                    "user.contact.address",
                    "user.contact.phone_number",
                    "user.content",
                    "user.device",
                    "user.location.imprecise",
                ],
            ]
            .concat(),
        ),
        (
            P::TechnicianLocation,
            B::ExplicitConsent,
            vec!["user.unique_id", "system", "user.location.precise"],
        ),
        (
            P::Billing,
            B::Contract,
            [
                &identity[..],
                &[
                    "user.contact",
                    "user.financial",
                    "user.behavior.purchase_history",
                ],
            ]
            .concat(),
        ),
        (
            P::Support,
            B::Contract,
            [
                &identity[..],
                &[
                    "user.contact",
                    "user.content",
                    "user.device",
                    "user.behavior.purchase_history",
                ],
            ]
            .concat(),
        ),
        (
            P::Authentication,
            B::Contract,
            vec![
                "user.unique_id",
                "system",
                "user.contact.email",
                "user.authorization",
            ],
        ),
        (P::ImproveAggregated, B::LegitimateInterests, vec!["system"]),
        (
            P::SecurityProtection,
            B::LegitimateInterests,
            vec![
                "user.unique_id",
                "system",
                "user.device",
                "user.authorization",
                "user.telemetry",
            ],
        ),
        (
            P::FraudPrevention,
            B::LegitimateInterests,
            vec![
                "user.unique_id",
                "system",
                "user.name",
                "user.contact",
                "user.financial",
                "user.device",
            ],
        ),
        (
            P::LegalObligation,
            B::LegalObligation,
            vec!["user", "system"],
        ),
        (
            P::FinancialRecords,
            B::LegalObligation,
            [
                &identity[..],
                &[
                    "user.contact.address",
                    "user.financial",
                    "user.behavior.purchase_history",
                ],
            ]
            .concat(),
        ),
        (
            P::RightsFulfilment,
            B::LegalObligation,
            vec!["user", "system"],
        ),
        (
            P::Audit,
            B::LegalObligation,
            vec!["user.unique_id", "system"],
        ),
        (P::LegalHold, B::LegalObligation, vec!["user", "system"]),
        (
            P::TransactionalCommunications,
            B::Contract,
            [&identity[..], &["user.contact"]].concat(),
        ),
        (
            P::MarketingEmail,
            B::Consent,
            [&identity[..], &["user.contact.email"]].concat(),
        ),
        (
            P::MarketingSms,
            B::Consent,
            [&identity[..], &["user.contact.phone_number"]].concat(),
        ),
    ]
}

impl Policy {
    /// The policy's version label (`plenum-default-1`, or with a tenant's narrowing appended).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The rule of `purpose`, if the policy enables it.
    pub fn rule(&self, purpose: Purpose) -> Option<&Rule> {
        self.rules.get(&purpose)
    }

    /// The purposes the policy enables, in order.
    pub fn purposes(&self) -> impl Iterator<Item = Purpose> + '_ {
        self.rules.keys().copied()
    }

    /// Whether `purpose` may see `category` at all (before any subject's state).
    pub fn allows_category(&self, purpose: Purpose, category: &DataCategory) -> bool {
        self.rule(purpose).is_some_and(|r| r.allows(category))
    }

    /// Whether `purpose` may process the data of a subject in `status` at `now`.
    pub fn decide(&self, purpose: Purpose, status: &SubjectStatus, now: DateTime<Utc>) -> Decision {
        let Some(rule) = self.rule(purpose) else {
            return Decision::Deny(DenyReason::PurposeDisabled);
        };
        if status.restricted() && purpose.group() != PurposeGroup::Compliance {
            return Decision::Deny(DenyReason::Restricted);
        }
        // Art. 21 stops legitimate-interest (and public-task) processing; for consent-based
        // purposes an objection (a GPC opt-out, say) counts as a refusal too. Contract and legal
        // obligation processing is not objectable.
        let objectable = matches!(
            rule.basis,
            LegalBasis::LegitimateInterests
                | LegalBasis::PublicTask
                | LegalBasis::Consent
                | LegalBasis::ExplicitConsent
        );
        if objectable && status.objects_to(purpose) {
            return Decision::Deny(DenyReason::Objected);
        }
        if rule.basis.is_consent() || purpose.consent() != ConsentRequirement::None {
            match status.consent(purpose, now) {
                ConsentCheck::Live => {}
                ConsentCheck::Missing => return Decision::Deny(DenyReason::ConsentMissing),
                ConsentCheck::Withdrawn => return Decision::Deny(DenyReason::ConsentWithdrawn),
                ConsentCheck::Expired => return Decision::Deny(DenyReason::ConsentExpired),
                ConsentCheck::Outdated => return Decision::Deny(DenyReason::ConsentOutdated),
                ConsentCheck::NotExplicit => {
                    return Decision::Deny(DenyReason::ConsentNotExplicit);
                }
            }
        }
        Decision::Allow(rule.basis)
    }

    /// A stricter policy: `narrowing` can only disable purposes and carve categories out.
    /// `label` (a tenant's policy revision) is appended to the version.
    ///
    /// # Errors
    ///
    /// [`Error::Wider`] if the narrowing names a purpose this policy does not enable (it would
    /// be a no-op that looks like a grant).
    pub fn narrowed(&self, label: &str, narrowing: &Narrowing) -> Result<Self, Error> {
        let mut rules = self.rules.clone();
        for p in &narrowing.disabled {
            if rules.remove(p).is_none() {
                return Err(Error::Wider("a disabled purpose was not enabled"));
            }
        }
        for (p, c) in &narrowing.carved {
            match rules.get_mut(p) {
                Some(rule) => rule.excluded.push(c.clone()),
                None if narrowing.disabled.contains(p) => {}
                None => return Err(Error::Wider("a narrowed purpose was not enabled")),
            }
        }
        Ok(Self {
            version: format!("{}+{label}", self.version),
            rules,
        })
    }

    /// The policy as a Markdown table: purpose, basis, consent, categories.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from(
            "| Purpose | Key | Legal basis | Consent | May see (with everything below) | Except |\n\
             |---|---|---|---|---|---|\n",
        );
        for (p, rule) in &self.rules {
            let consent = match p.consent() {
                ConsentRequirement::None => "no",
                ConsentRequirement::Consent => "yes, per channel",
                ConsentRequirement::Explicit => "explicit",
            };
            let list = |v: &[DataCategory]| {
                if v.is_empty() {
                    "-".to_owned()
                } else {
                    v.iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            };
            // Writing to a String cannot fail.
            let _ = writeln!(
                out,
                "| {} | `{}` | {} ({}) | {} | {} | {} |",
                p.description(),
                p.key(),
                rule.basis.key(),
                rule.basis.article(),
                consent,
                list(&rule.categories),
                list(&rule.excluded),
            );
        }
        out
    }
}

/// A tenant's narrowing of a policy: purposes switched off, categories carved out of a purpose.
/// There is no operation that adds anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Narrowing {
    disabled: Vec<Purpose>,
    carved: Vec<(Purpose, DataCategory)>,
}

impl Narrowing {
    /// Nothing narrowed yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Switches `purpose` off.
    #[must_use]
    pub fn disable(mut self, purpose: Purpose) -> Self {
        self.disabled.push(purpose);
        self
    }

    /// Hides `category` (and everything below it) from `purpose`.
    #[must_use]
    pub fn withhold(mut self, purpose: Purpose, category: DataCategory) -> Self {
        self.carved.push((purpose, category));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_keys_are_valid_and_every_purpose_has_a_rule() {
        let policy = Policy::plenum_default();
        for p in Purpose::ALL {
            let rule = policy.rule(p);
            assert!(rule.is_some(), "{p}");
            assert_eq!(rule.map(|r| r.basis), Some(p.default_legal_basis()), "{p}");
            assert!(rule.is_some_and(|r| !r.categories.is_empty()), "{p}");
        }
        // `cats` skips invalid keys; none may be invalid.
        for (p, _, keys) in default_rows() {
            for k in keys {
                assert!(DataCategory::new(k).is_ok(), "{p}: {k}");
            }
        }
    }
}
