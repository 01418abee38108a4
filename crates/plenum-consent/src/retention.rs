//! Retention as data: the privacy policy's fixed periods as rules of (retention class x trigger
//! event x offset x action), a tenant's narrowing of them (shorter only, never below a legal
//! minimum; longer only on a legal ground), and legal holds that suspend every action they
//! cover. Pure: when something is due is computed from the trigger's time, which the caller
//! (the store's sweep, with an injectable clock) supplies. Rendered in `docs/retention.md`.

use core::fmt::Write as _;

use chrono::{DateTime, Duration, Months, Utc};
use plenum_core::{ActorId, RecordId, RecordType, SubjectId, TenantId};

use crate::basis::RetainGround;
use crate::error::Error;

/// What the policy's retention periods are about.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RetentionClass {
    /// A tenant's user accounts (owners, dispatchers, technicians): kept for the account's life
    /// plus 30 days.
    AccountData,
    /// Everything a tenant stored about its customers and its business, once the tenant's
    /// contract ends: kept through a 30-day export window.
    TenantBusinessData,
    /// Invoices, payments and other financial records: kept 7 years from the transaction (a
    /// legal obligation, also against erasure requests).
    FinancialRecords,
    /// Data held only for marketing: kept until the subject unsubscribes.
    MarketingData,
    /// The bodies of audit events: kept 2 years; the log's hashes and checkpoints stay, so it
    /// still verifies.
    AuditLogBodies,
    /// Records of data-subject requests: kept 24 months after the request is answered.
    SubjectRequests,
}

impl RetentionClass {
    /// Every class, in the order of the policy's table.
    pub const ALL: [Self; 6] = [
        Self::AccountData,
        Self::TenantBusinessData,
        Self::FinancialRecords,
        Self::MarketingData,
        Self::AuditLogBodies,
        Self::SubjectRequests,
    ];

    /// A stable key for storage, audit and the data map.
    pub const fn key(self) -> &'static str {
        match self {
            Self::AccountData => "account_data",
            Self::TenantBusinessData => "tenant_business_data",
            Self::FinancialRecords => "financial_records",
            Self::MarketingData => "marketing_data",
            Self::AuditLogBodies => "audit_log_bodies",
            Self::SubjectRequests => "subject_requests",
        }
    }

    /// What the class holds, in a few words (the policy's wording).
    pub const fn description(self) -> &'static str {
        match self {
            Self::AccountData => "Account data",
            Self::TenantBusinessData => "A terminated tenant's business data",
            Self::FinancialRecords => "Financial records",
            Self::MarketingData => "Marketing data",
            Self::AuditLogBodies => "Audit logs",
            Self::SubjectRequests => "Records of data-subject requests",
        }
    }
}

/// The event a retention period counts from.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// The record was created.
    Created,
    /// The account was closed (recorded by the service).
    AccountClosed,
    /// The tenant's contract was terminated (recorded by the service).
    ContractTerminated,
    /// The transaction a financial record documents (its date).
    TransactionDate,
    /// The subject withdrew consent to the purpose the data was held for (recorded by the
    /// library with the ledger event).
    ConsentWithdrawn,
    /// The audit event happened.
    EventTime,
    /// The data-subject request was answered (completed or refused).
    RequestAnswered,
}

impl Trigger {
    /// A stable key.
    pub const fn key(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::AccountClosed => "account_closed",
            Self::ContractTerminated => "contract_terminated",
            Self::TransactionDate => "transaction_date",
            Self::ConsentWithdrawn => "consent_withdrawn",
            Self::EventTime => "event_time",
            Self::RequestAnswered => "request_answered",
        }
    }
}

/// How long after its trigger data is kept: days, or calendar years (a year from 29 February
/// ends on 28 February).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Offset {
    /// This many days (24-hour periods).
    Days(u32),
    /// This many calendar months.
    Months(u32),
}

impl Offset {
    /// `from` plus this offset; `None` past the end of time.
    pub fn after(self, from: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Self::Days(d) => from.checked_add_signed(Duration::days(i64::from(d))),
            Self::Months(m) => from.checked_add_months(Months::new(m)),
        }
    }

    /// An approximate length in days, to compare offsets of different units (a month counts as
    /// 30.44 days, rounded down, so comparison is strict only where it matters: never across
    /// units within a day of each other).
    pub fn approx_days(self) -> u64 {
        match self {
            Self::Days(d) => u64::from(d),
            Self::Months(m) => u64::from(m) * 3044 / 100,
        }
    }

    /// How the policy says it: `30 days`, `7 years`, `18 months`, `immediately`.
    pub fn describe(self) -> String {
        match self {
            Self::Days(0) => "immediately".to_owned(),
            Self::Days(d) => format!("{d} days"),
            Self::Months(m) if m % 12 == 0 => format!("{} years", m / 12),
            Self::Months(m) => format!("{m} months"),
        }
    }
}

/// What happens when a period ends.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetentionAction {
    /// The rows are deleted.
    Delete,
    /// The keys are destroyed (every field sealed under them unreadable, backups included per
    /// the erasure design), then the rows deleted.
    CryptoShred,
    /// The audit bodies are dropped; leaf hashes and checkpoints stay, so the log verifies.
    DropAuditBodies,
}

impl RetentionAction {
    /// A stable key.
    pub const fn key(self) -> &'static str {
        match self {
            Self::Delete => "delete",
            Self::CryptoShred => "crypto_shred",
            Self::DropAuditBodies => "drop_audit_bodies",
        }
    }
}

/// One rule of a retention schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionRule {
    /// What it is about.
    pub class: RetentionClass,
    /// What the period counts from.
    pub trigger: Trigger,
    /// How long after the trigger.
    pub offset: Offset,
    /// What happens then.
    pub action: RetentionAction,
    /// Where a law sets the period: the ground, and the rule's offset is then also a minimum
    /// that no tenant may shorten.
    pub legal_minimum: Option<RetainGround>,
}

impl RetentionRule {
    /// When data triggered at `trigger_at` is due for the action; `None` past the end of time.
    pub fn due_at(&self, trigger_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.offset.after(trigger_at)
    }

    /// The latest trigger time whose data is due at `now`: `now` minus the offset (`None`
    /// before the beginning of time).
    pub fn offset_before(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.offset {
            Offset::Days(d) => now.checked_sub_signed(Duration::days(i64::from(d))),
            Offset::Months(m) => now.checked_sub_months(Months::new(m)),
        }
    }
}

/// A retention schedule: one rule per class, from the privacy policy or a tenant's narrowing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSchedule {
    version: String,
    rules: Vec<RetentionRule>,
}

impl RetentionSchedule {
    /// The version of the default schedule, part of every sweep's audit record.
    pub const DEFAULT_VERSION: &'static str = "plenum-retention-1";

    /// Plenum's privacy policy: account data for the account's life plus 30 days; a terminated
    /// tenant's data after a 30-day export window; financial records 7 years; marketing data
    /// until unsubscribe; audit logs 2 years (bodies only); records of requests 24 months.
    pub fn plenum_default() -> Self {
        let rule = |class, trigger, offset, action, legal_minimum| RetentionRule {
            class,
            trigger,
            offset,
            action,
            legal_minimum,
        };
        use RetentionAction::{CryptoShred, Delete, DropAuditBodies};
        use RetentionClass::*;
        Self {
            version: Self::DEFAULT_VERSION.to_owned(),
            rules: vec![
                rule(
                    AccountData,
                    Trigger::AccountClosed,
                    Offset::Days(30),
                    CryptoShred,
                    None,
                ),
                rule(
                    TenantBusinessData,
                    Trigger::ContractTerminated,
                    Offset::Days(30),
                    CryptoShred,
                    None,
                ),
                rule(
                    FinancialRecords,
                    Trigger::TransactionDate,
                    Offset::Months(7 * 12),
                    Delete,
                    Some(RetainGround::LegalObligation),
                ),
                rule(
                    MarketingData,
                    Trigger::ConsentWithdrawn,
                    Offset::Days(0),
                    Delete,
                    None,
                ),
                rule(
                    AuditLogBodies,
                    Trigger::EventTime,
                    Offset::Months(2 * 12),
                    DropAuditBodies,
                    None,
                ),
                rule(
                    SubjectRequests,
                    Trigger::RequestAnswered,
                    Offset::Months(24),
                    Delete,
                    None,
                ),
            ],
        }
    }

    /// The schedule's version (`plenum-retention-1`, or with a tenant's label appended).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Every rule, in the policy's order.
    pub fn rules(&self) -> &[RetentionRule] {
        &self.rules
    }

    /// The rule for `class`.
    pub fn rule(&self, class: RetentionClass) -> Option<&RetentionRule> {
        self.rules.iter().find(|r| r.class == class)
    }

    /// This schedule with a tenant's changes, versioned `<version>+<label>`.
    ///
    /// # Errors
    ///
    /// [`Error::Wider`] for a change that keeps data longer without a legal ground, or keeps
    /// it shorter than a legal minimum; [`Error::UnknownConsentTerm`] for a label that is not
    /// `[a-z0-9_-]{1,32}`.
    pub fn narrowed(&self, label: &str, changes: &RetentionNarrowing) -> Result<Self, Error> {
        if label.is_empty()
            || label.len() > 32
            || !label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(Error::UnknownConsentTerm("retention label"));
        }
        let mut rules = self.rules.clone();
        for change in &changes.changes {
            let Some(rule) = rules.iter_mut().find(|r| r.class == change.class) else {
                continue;
            };
            let longer = change.offset.approx_days() > rule.offset.approx_days();
            if rule.class == RetentionClass::AuditLogBodies
                && !longer
                && change.offset != rule.offset
            {
                return Err(Error::Wider(
                    "audit event bodies are kept two years: the database refuses to drop them sooner",
                ));
            }
            match (longer, change.ground, rule.legal_minimum) {
                (true, None, _) => {
                    return Err(Error::Wider(
                        "a tenant keeps data longer than the policy only on a legal ground",
                    ));
                }
                (false, _, Some(_)) if change.offset != rule.offset => {
                    return Err(Error::Wider(
                        "a period the law sets cannot be shortened by a tenant",
                    ));
                }
                _ => {}
            }
            rule.offset = change.offset;
            if change.ground.is_some() {
                rule.legal_minimum = change.ground;
            }
        }
        Ok(Self {
            version: format!("{}+{label}", self.version),
            rules,
        })
    }

    /// The schedule as a Markdown table: what, from when, how long, then what, and why.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from(
            "| Data | Class | Counted from | Kept for | Then | Set by |\n\
             |---|---|---|---|---|---|\n",
        );
        for r in &self.rules {
            let set_by = match r.legal_minimum {
                Some(g) => format!("law (`{}`): a minimum too", g.key()),
                None => "the privacy policy".to_owned(),
            };
            // Writing to a String cannot fail.
            let _ = writeln!(
                out,
                "| {} | `{}` | `{}` | {} | `{}` | {} |",
                r.class.description(),
                r.class.key(),
                r.trigger.key(),
                r.offset.describe(),
                r.action.key(),
                set_by,
            );
        }
        out
    }
}

/// One change a tenant makes to a retention period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PeriodChange {
    class: RetentionClass,
    offset: Offset,
    ground: Option<RetainGround>,
}

/// A tenant's changes to the retention schedule: shorter periods, or longer ones on a legal
/// ground.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionNarrowing {
    changes: Vec<PeriodChange>,
}

impl RetentionNarrowing {
    /// No change yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps `class` for `offset` instead (refused by [`RetentionSchedule::narrowed`] if
    /// longer than the policy's period, or different from a period the law sets).
    #[must_use]
    pub fn shorten(mut self, class: RetentionClass, offset: Offset) -> Self {
        self.changes.push(PeriodChange {
            class,
            offset,
            ground: None,
        });
        self
    }

    /// Keeps `class` for the longer `offset` because `ground` requires it (a tax law with a
    /// longer period, pending litigation).
    #[must_use]
    pub fn lengthen(mut self, class: RetentionClass, offset: Offset, ground: RetainGround) -> Self {
        self.changes.push(PeriodChange {
            class,
            offset,
            ground: Some(ground),
        });
        self
    }
}

/// What a legal hold covers.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HoldScope {
    /// Everything of the tenant.
    Tenant,
    /// Everything about one data subject.
    Subject(SubjectId),
    /// Every record of one type.
    RecordType(RecordType),
    /// One record.
    Record(RecordType, RecordId),
}

/// A legal hold: while placed, no retention action, erasure or tenant shredding touches what
/// it covers. Who placed it, why and when are part of it; lifting it records when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegalHold {
    /// The tenant it applies in.
    pub tenant: TenantId,
    /// What it covers.
    pub scope: HoldScope,
    /// The matter (a case or ticket reference, never personal data).
    pub matter: String,
    /// Who placed it.
    pub placed_by: ActorId,
    /// When.
    pub placed_at: DateTime<Utc>,
    /// When it was lifted, if it was.
    pub lifted_at: Option<DateTime<Utc>>,
}

impl LegalHold {
    /// Whether, at `now`, the hold covers a record of `record_type` with `id` about `subject`
    /// in `tenant`.
    pub fn covers(
        &self,
        now: DateTime<Utc>,
        tenant: TenantId,
        record_type: &RecordType,
        id: RecordId,
        subject: Option<SubjectId>,
    ) -> bool {
        let live = self.placed_at <= now && self.lifted_at.is_none_or(|l| l > now);
        live && self.tenant == tenant
            && match &self.scope {
                HoldScope::Tenant => true,
                HoldScope::Subject(s) => subject == Some(*s),
                HoldScope::RecordType(t) => t == record_type,
                HoldScope::Record(t, r) => t == record_type && *r == id,
            }
    }
}

/// When a subject's consent to marketing ended, which is when their marketing data's period
/// (`Trigger::ConsentWithdrawn`) starts: from `events`, the subject's ledger events in
/// recording order, at `now`. `None` while consent to some marketing purpose stands and is not
/// objected to (given to an earlier version of the purpose counts: asking again is not an
/// unsubscribe). Otherwise the latest time a marketing consent ended (a withdrawal, a lapse, an
/// objection, or an `expires_at` passed); [`DateTime::<Utc>::MIN_UTC`] if the subject never
/// consented to marketing at all, since marketing data held without consent is due at once.
pub fn marketing_consent_ended(
    events: &[crate::ConsentEvent],
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    use crate::{ConsentCheck, EventKind, Purpose, PurposeGroup, SubjectStatus};
    let marketing = |p: Option<Purpose>| p.is_some_and(|p| p.group() == PurposeGroup::Marketing);
    let status = SubjectStatus::from_events(events);
    // Consent given to an earlier version of a purpose, or not explicitly enough, needs asking
    // again before marketing uses it, but the subject did not unsubscribe: their data stays.
    let live = Purpose::ALL.iter().any(|p| {
        p.group() == PurposeGroup::Marketing
            && matches!(
                status.consent(*p, now),
                ConsentCheck::Live | ConsentCheck::Outdated | ConsentCheck::NotExplicit
            )
            && !status.objects_to(*p)
    });
    if live {
        return None;
    }
    let ended = events
        .iter()
        .filter(|e| marketing(e.purpose))
        .filter_map(|e| match e.kind {
            EventKind::Withdrawn | EventKind::Expired | EventKind::Objected => Some(e.evidence.at),
            // A consent that lapsed without an event ended when it expired.
            EventKind::Given => e.expires_at.filter(|at| *at <= now),
            _ => None,
        })
        .max();
    Some(ended.unwrap_or(DateTime::<Utc>::MIN_UTC))
}
