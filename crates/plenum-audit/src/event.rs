//! Audit events, schema version 1: what was done to which data, by whom, for which purpose,
//! with what outcome. Never a value: names, ids, categories, counts and keyed pseudonyms only.

use chrono::{DateTime, SecondsFormat, Utc};
use plenum_core::{Actor, RecordId, RequestId, TenantId};
use serde_json::{Value, json};

use crate::canonical;
use crate::error::Error;
use crate::merkle::{Hash, leaf_hash};

/// The schema version this crate writes and reads.
pub const SCHEMA_VERSION: u64 = 1;

/// Lists of more record ids than this are recorded as a count and a SHA-256 commitment.
pub const MAX_LISTED_RECORDS: usize = 32;

/// A keyed pseudonym of a data subject (16 bytes of HKDF output under the subject's key, see
/// `plenum_crypto::Keyring::subject_pseudonyms`).
pub type Pseudonym = [u8; 16];

/// How an audited operation ended.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It happened.
    Success,
    /// It failed; the error kind (a stable key such as `not_found`).
    Failed(String),
    /// The policy refused it; the reason key. Nothing was read or written.
    Denied(String),
}

/// One audit event. Build it with [`Event::new`], fill in what applies, and append it; the
/// sink fills in nothing but the sequence number (the event's leaf index in the tenant's log).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// UUIDv7, unique per event.
    pub id: uuid::Uuid,
    /// The tenant whose log it belongs to.
    pub tenant: TenantId,
    /// When the access happened (the accessor's clock, millisecond precision).
    pub at: DateTime<Utc>,
    /// 16 random bytes, so a leaf hash whose body was deleted after retention cannot be
    /// confirmed by guessing the body.
    pub salt: [u8; 16],
    /// The service that performed the access.
    pub service: String,
    /// The request or job it belonged to.
    pub request: Option<RequestId>,
    /// Who acted.
    pub actor: Actor,
    /// What was done: `read`, `list`, `search`, `count`, `insert`, `update`, `delete`, `erase`,
    /// `key.create`, `key.rotate`, `consent.<kind>` (the list in `docs/audit-format.md`).
    pub action: String,
    /// The record type, for record operations.
    pub record_type: Option<String>,
    /// The records involved.
    pub records: Vec<RecordId>,
    /// Fields touched, with their data categories (never values).
    pub fields: Vec<(String, String)>,
    /// The data subjects involved, as keyed pseudonyms.
    pub subjects: Vec<Pseudonym>,
    /// Subjects involved whose pseudonym cannot be computed any more (erased).
    pub subjects_unlinked: u64,
    /// The purpose (key, version); `None` outside purposes.
    pub purpose: Option<(String, u32)>,
    /// The legal basis the policy gave the purpose.
    pub legal_basis: Option<String>,
    /// The version of the policy that decided.
    pub policy: Option<String>,
    /// For an unrestricted grant, the reason given.
    pub unrestricted: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Rows returned or changed.
    pub rows: u64,
    /// Rows left out because their subject's consent, objection or restriction forbade it.
    pub excluded: u64,
}

impl Event {
    /// An event of `actor` doing `action` in `tenant`, now, successful, touching nothing yet.
    pub fn new(tenant: TenantId, actor: Actor, action: impl Into<String>) -> Self {
        let salt = plenum_crypto::digest::random_bytes();
        Self {
            id: uuid::Uuid::now_v7(),
            tenant,
            at: Utc::now(),
            salt,
            service: String::new(),
            request: None,
            actor,
            action: action.into(),
            record_type: None,
            records: Vec::new(),
            fields: Vec::new(),
            subjects: Vec::new(),
            subjects_unlinked: 0,
            purpose: None,
            legal_basis: None,
            policy: None,
            unrestricted: None,
            outcome: Outcome::Success,
            rows: 0,
            excluded: 0,
        }
    }

    /// The event as a JSON value (schema version 1).
    pub fn to_value(&self) -> Value {
        let records = if self.records.len() > MAX_LISTED_RECORDS {
            let bytes: Vec<&[u8]> = self
                .records
                .iter()
                .map(|r| r.as_bytes().as_slice())
                .collect();
            json!({
                "count": self.records.len() as u64,
                "sha256": hex(&plenum_crypto::digest::sha256(&bytes)),
            })
        } else {
            json!({ "ids": self.records.iter().map(ToString::to_string).collect::<Vec<_>>() })
        };
        let (status, detail) = match &self.outcome {
            Outcome::Success => ("success", None),
            Outcome::Failed(kind) => ("failed", Some(kind.as_str())),
            Outcome::Denied(reason) => ("denied", Some(reason.as_str())),
        };
        let mut roles: Vec<&str> = self.actor.roles().map(|r| r.as_str()).collect();
        roles.sort_unstable();
        json!({
            "v": SCHEMA_VERSION,
            "id": self.id.to_string(),
            "tenant": self.tenant.to_string(),
            "at": self.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "salt": hex(&self.salt),
            "service": self.service,
            "request": self.request.map(|r| r.to_string()),
            "actor": {
                "kind": self.actor.kind().as_str(),
                "id": self.actor.id().to_string(),
                "roles": roles,
                "on_behalf_of": self.actor.on_behalf_of().map(|s| s.to_string()),
            },
            "action": self.action,
            "record_type": self.record_type,
            "records": records,
            "fields": self.fields.iter().map(|(name, category)| json!({
                "name": name, "category": category,
            })).collect::<Vec<_>>(),
            "subjects": {
                "refs": self.subjects.iter().map(|p| hex(p)).collect::<Vec<_>>(),
                "unlinked": self.subjects_unlinked,
            },
            "purpose": self.purpose.as_ref().map(|(key, version)| json!({
                "key": key, "version": version,
            })),
            "legal_basis": self.legal_basis,
            "policy": self.policy,
            "unrestricted": self.unrestricted,
            "outcome": { "status": status, "detail": detail },
            "rows": self.rows.min(canonical::MAX_SAFE_INTEGER),
            "excluded": self.excluded.min(canonical::MAX_SAFE_INTEGER),
        })
    }

    /// The canonical body: the bytes the log stores and hashes.
    ///
    /// # Errors
    ///
    /// [`Error::NotCanonical`] if a string field breaks the canonical rules (only object keys
    /// are restricted, and this schema's keys are fixed, so in practice never).
    pub fn canonical(&self) -> Result<String, Error> {
        canonical::to_string(&self.to_value())
    }
}

/// What a verifier reads back from a stored body: the fields it checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BodyHead {
    pub(crate) id: String,
    pub(crate) tenant: String,
    pub(crate) at: DateTime<Utc>,
}

/// Checks that `body` is a canonical schema-1 event and returns its leaf hash and head.
pub(crate) fn read_body(body: &str) -> Result<(Hash, BodyHead), Error> {
    let value = canonical::parse_canonical(body)?;
    let field = |name: &str| value.get(name).and_then(Value::as_str);
    if value.get("v").and_then(Value::as_u64) != Some(SCHEMA_VERSION) {
        return Err(Error::NotCanonical("unknown schema version"));
    }
    let (Some(id), Some(tenant), Some(at)) = (field("id"), field("tenant"), field("at")) else {
        return Err(Error::NotCanonical("missing id, tenant or at"));
    };
    let parsed = DateTime::parse_from_rfc3339(at)
        .map_err(|_| Error::NotCanonical("at is not RFC 3339"))?
        .with_timezone(&Utc);
    // One spelling only, the one `to_value` writes (UTC, milliseconds, `Z`).
    if parsed.to_rfc3339_opts(SecondsFormat::Millis, true) != at {
        return Err(Error::NotCanonical("at is not in the canonical form"));
    }
    let at = parsed;
    Ok((
        leaf_hash(body.as_bytes()),
        BodyHead {
            id: id.to_owned(),
            tenant: tenant.to_owned(),
            at,
        },
    ))
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use core::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The inverse of [`hex`] for fixed-size values.
pub(crate) fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    // Exactly the form `hex` writes: lower-case digits only (no `+`, no upper case).
    if text.len() != N * 2 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use plenum_core::{ActorId, ActorKind, role};

    use super::*;

    fn sample() -> Event {
        let actor = Actor::new(ActorKind::AccountUser, ActorId::generate())
            .with_role(role!("office"))
            .with_role(role!("dispatcher"));
        let mut e = Event::new(TenantId::generate(), actor, "read");
        e.service = "quickstart".to_owned();
        e.record_type = Some("customers".to_owned());
        e.records = vec![RecordId::generate()];
        e.fields = vec![("email".to_owned(), "user.contact.email".to_owned())];
        e.subjects = vec![[7; 16]];
        e.purpose = Some(("service.scheduling".to_owned(), 1));
        e.rows = 1;
        e
    }

    #[test]
    fn an_event_is_canonical_and_reads_back() {
        let e = sample();
        let body = e.canonical().unwrap();
        let (hash, head) = read_body(&body).unwrap();
        assert_eq!(hash, leaf_hash(body.as_bytes()));
        assert_eq!(head.tenant, e.tenant.to_string());
        assert_eq!(head.id, e.id.to_string());
        assert!(
            body.contains(r#""roles":["dispatcher","office"]"#),
            "{body}"
        );
        assert!(body.contains(r#""purpose":{"key":"service.scheduling","version":1}"#));
    }

    #[test]
    fn long_record_lists_become_a_count_and_a_commitment() {
        let mut e = sample();
        e.records = (0..=MAX_LISTED_RECORDS)
            .map(|_| RecordId::generate())
            .collect();
        let body = e.canonical().unwrap();
        assert!(
            body.contains(r#""records":{"count":33,"sha256":""#),
            "{body}"
        );
        assert!(!body.contains(&e.records[0].to_string()));
    }

    #[test]
    fn hex_round_trips_and_nothing_else_parses() {
        assert_eq!(unhex::<2>(&hex(&[0xab, 0x01])), Some([0xab, 0x01]));
        for bad in ["abc", "AB01", "+f01", "ab 1", "zz01"] {
            assert_eq!(unhex::<2>(bad), None, "{bad}");
        }
    }
}
