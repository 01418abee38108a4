//! The subject export's formats (`docs/subject-export.md`): what one subject's export holds,
//! and two writers of it, JSON (one document, written as it streams) and CSV (one file per
//! record type and per section, through the `csv` crate). Writers see one page of records at a
//! time, so an export's memory does not grow with the subject's record count.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use plenum_core::{RecordId, SubjectId, TenantId};
use serde_json::{Value as Json, json};

use crate::record::{FieldSpec, RecordSpec, Storage, Value};

/// The JSON document's `format`.
pub const EXPORT_FORMAT: &str = "plenum.subject-export";
/// The JSON document's `version` (and the CSV files' `#` header line).
pub const EXPORT_VERSION: u32 = 1;

/// One field of an exported record, as the export renders it.
#[non_exhaustive]
#[derive(Clone, PartialEq)]
pub enum ExportValue {
    /// The value: a plain column's, or an encrypted field's opened plaintext.
    Value(Value),
    /// The field's key was destroyed (the subject, or this data, was erased): nothing to show.
    Erased,
    /// The stored value does not open (tampered with, or under an unknown key).
    Unreadable,
    /// The field is declared withheld from every export (`not_exported = "<reason>"`); it was
    /// not opened.
    Withheld,
}

/// Values are a person's data: `Debug` names the variant only.
impl core::fmt::Debug for ExportValue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Value(_) => "ExportValue::Value(..)",
            Self::Erased => "ExportValue::Erased",
            Self::Unreadable => "ExportValue::Unreadable",
            Self::Withheld => "ExportValue::Withheld",
        })
    }
}

/// The type an export declares for a field (`docs/subject-export.md`, "Field types").
pub fn field_type(field: &FieldSpec) -> &'static str {
    match (&field.storage, field.plaintext) {
        (Storage::Plain(ty), _) => match ty {
            crate::SqlType::Uuid => "uuid",
            crate::SqlType::Text => "text",
            crate::SqlType::Bytes => "bytes",
            crate::SqlType::BigInt | crate::SqlType::Int => "integer",
            crate::SqlType::Bool => "boolean",
            crate::SqlType::Timestamp => "timestamp",
        },
        (Storage::Encrypted { .. }, Some("String")) => "text",
        (Storage::Encrypted { .. }, Some("NaiveDate")) => "date",
        (Storage::Encrypted { .. }, Some("i32" | "i64" | "u32" | "u64")) => "integer",
        (Storage::Encrypted { .. }, _) => "bytes",
    }
}

/// An opened plaintext as the value its declared type says: `String` and `NaiveDate` as text,
/// the integers as integers (a `u64` above `i64::MAX` as its decimal text), anything else as
/// bytes. `None` if the bytes are not a value of the declared type.
pub(crate) fn plaintext_value(type_name: Option<&str>, bytes: Vec<u8>) -> Option<Value> {
    let fixed = |b: &[u8]| -> Option<[u8; 8]> {
        match b.len() {
            4 => {
                let mut out = [0u8; 8];
                out[4..].copy_from_slice(b);
                Some(out)
            }
            8 => b.try_into().ok(),
            _ => None,
        }
    };
    Some(match type_name {
        Some("String" | "NaiveDate") => Value::Text(String::from_utf8(bytes).ok()?),
        Some("i32") => Value::BigInt(i64::from(i32::from_be_bytes(bytes.try_into().ok()?))),
        Some("i64") => Value::BigInt(i64::from_be_bytes(bytes.try_into().ok()?)),
        Some("u32") => Value::BigInt(i64::from(u32::from_be_bytes(bytes.try_into().ok()?))),
        Some("u64") => {
            let v = u64::from_be_bytes(fixed(&bytes)?);
            i64::try_from(v).map_or_else(|_| Value::Text(v.to_string()), Value::BigInt)
        }
        _ => Value::Bytes(bytes),
    })
}

/// A value as JSON: bytes as lowercase hex, timestamps as RFC 3339 UTC, ids as strings.
fn json_value(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Uuid(u) => Json::String(u.to_string()),
        Value::Text(t) => Json::String(t.clone()),
        Value::Bytes(b) => Json::String(hex::encode(b)),
        Value::BigInt(i) => json!(i),
        Value::Bool(b) => Json::Bool(*b),
        Value::Timestamp(t) => Json::String(timestamp(*t)),
    }
}

/// A value as one CSV cell, the JSON encoding's text (empty for NULL).
fn csv_cell(v: &ExportValue) -> String {
    match v {
        ExportValue::Value(Value::Null)
        | ExportValue::Erased
        | ExportValue::Unreadable
        | ExportValue::Withheld => String::new(),
        ExportValue::Value(Value::Text(t)) => t.clone(),
        ExportValue::Value(Value::Bool(b)) => b.to_string(),
        ExportValue::Value(v) => match json_value(v) {
            Json::String(s) => s,
            other => other.to_string(),
        },
    }
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// What an export is about, written first.
#[derive(Debug, Clone)]
pub struct ExportHeader {
    /// The tenant whose data it is.
    pub tenant: TenantId,
    /// The data subject; `None` for a tenant's whole export (offboarding).
    pub subject: Option<SubjectId>,
    /// When the export was made.
    pub generated_at: DateTime<Utc>,
    /// The processing policy's version the purposes section describes.
    pub policy_version: String,
}

/// One exported record: its id and its fields in declaration order.
#[derive(Debug)]
pub struct ExportRecord<'a> {
    /// The record's id.
    pub id: RecordId,
    /// The record type's declared fields.
    pub fields: &'a [FieldSpec],
    /// Each field's value, in the same order.
    pub values: &'a [ExportValue],
}

/// One purpose the subject's data may be processed for, with its legal basis and, for a
/// consent purpose, whether the subject's consent is live.
#[derive(Debug, Clone)]
pub struct ExportPurpose {
    /// The purpose's key.
    pub purpose: &'static str,
    /// Its legal basis's key.
    pub legal_basis: &'static str,
    /// Whether this subject's data is processed for it now (consent, objection and
    /// restriction taken into account).
    pub applies: bool,
    /// Why not, when it does not (a stable reason key).
    pub reason: Option<&'static str>,
}

/// What happens to one record type's data when the subject is erased, and on what ground it
/// is kept.
#[derive(Debug, Clone)]
pub struct ExportRetention {
    /// The record type.
    pub record_type: String,
    /// `delete`, `scrub` or `retain`.
    pub on_erasure: &'static str,
    /// For `retain`: the legal ground.
    pub ground: Option<&'static str>,
    /// The retention class the rows fall under (`financial_records`; otherwise
    /// `tenant_business_data`: kept while the tenant is a customer).
    pub class: &'static str,
    /// How long, per the privacy policy's schedule (`7 years`, `30 days`).
    pub kept_for: String,
    /// What the period counts from: the record's field, or the class's event
    /// (`contract_terminated`).
    pub counted_from: String,
}

/// One consent ledger event of the subject, with its evidence.
#[derive(Debug, Clone)]
pub struct ExportConsent {
    /// The event's kind (`given`, `withdrawn`, ...).
    pub kind: &'static str,
    /// The purpose, for purpose events.
    pub purpose: Option<&'static str>,
    /// The channel, for channel-specific consent.
    pub channel: Option<&'static str>,
    /// When the act happened, per its evidence.
    pub at: DateTime<Utc>,
    /// The notice version shown.
    pub notice_version: String,
    /// SHA-256 of the notice text, hex.
    pub notice_sha256: String,
    /// How it was collected (`ui`, `email_link`, ...).
    pub method: &'static str,
}

/// One access to the subject's data, from the audit log (who, when, what, why).
#[derive(Debug, Clone)]
pub struct ExportAccess {
    /// The audit log position, once sequenced.
    pub seq: Option<u64>,
    /// When.
    pub at: String,
    /// The actor's kind (`account_user`, `technician`, ...).
    pub actor_kind: String,
    /// The actor's role, if any.
    pub actor_role: Option<String>,
    /// The action (`read`, `list`, `update`, ...).
    pub action: String,
    /// The record type.
    pub record_type: Option<String>,
    /// The purpose's key.
    pub purpose: Option<String>,
    /// `success`, or the failure or refusal.
    pub outcome: String,
}

/// Where an export goes. [`JsonExport`] and [`CsvExport`] are the formats the library writes;
/// the order of calls is `begin`, then per record type `record_type` and its `record`s, then
/// `purposes`, `retention`, `consent`, `access_log`, `finish`.
pub trait ExportSink {
    /// The header.
    ///
    /// # Errors
    ///
    /// The writer's.
    fn begin(&mut self, header: &ExportHeader) -> io::Result<()>;
    /// A record type starts; its records follow.
    ///
    /// # Errors
    ///
    /// The writer's.
    fn record_type(&mut self, spec: &RecordSpec) -> io::Result<()>;
    /// One record of the current record type.
    ///
    /// # Errors
    ///
    /// The writer's.
    fn record(&mut self, record: &ExportRecord<'_>) -> io::Result<()>;
    /// The purposes and legal bases.
    ///
    /// # Errors
    ///
    /// The writer's.
    fn purposes(&mut self, purposes: &[ExportPurpose]) -> io::Result<()>;
    /// Retention per record type.
    ///
    /// # Errors
    ///
    /// The writer's.
    fn retention(&mut self, retention: &[ExportRetention]) -> io::Result<()>;
    /// The consent history.
    ///
    /// # Errors
    ///
    /// The writer's.
    fn consent(&mut self, events: &[ExportConsent]) -> io::Result<()>;
    /// Who accessed the subject's data.
    ///
    /// # Errors
    ///
    /// The writer's.
    fn access_log(&mut self, entries: &[ExportAccess]) -> io::Result<()>;
    /// The end: flush everything.
    ///
    /// # Errors
    ///
    /// The writer's.
    fn finish(&mut self) -> io::Result<()>;
}

/// Fields the JSON record object lists under `erased` or `unreadable` instead of a value.
fn record_json(r: &ExportRecord<'_>) -> Json {
    let mut fields = serde_json::Map::new();
    let (mut erased, mut unreadable) = (Vec::new(), Vec::new());
    for (f, v) in r.fields.iter().zip(r.values) {
        let name = f.name.to_string();
        match v {
            ExportValue::Value(v) => {
                fields.insert(name, json_value(v));
            }
            ExportValue::Erased => {
                fields.insert(name.clone(), Json::Null);
                erased.push(name);
            }
            ExportValue::Unreadable => {
                fields.insert(name.clone(), Json::Null);
                unreadable.push(name);
            }
            ExportValue::Withheld => {
                fields.insert(name, Json::Null);
            }
        }
    }
    json!({
        "id": r.id.to_string(),
        "fields": fields,
        "erased": erased,
        "unreadable": unreadable,
    })
}

fn spec_json(spec: &RecordSpec) -> Json {
    let fields: Vec<Json> = spec
        .fields()
        .iter()
        .map(|f| {
            json!({
                "name": f.name.as_str(),
                "category": f.category.as_str(),
                "type": field_type(f),
                "encrypted": f.is_encrypted(),
                "withheld": f.not_exported,
            })
        })
        .collect();
    json!({ "record_type": spec.record_type().as_str(), "fields": fields })
}

fn purposes_json(purposes: &[ExportPurpose]) -> Json {
    Json::Array(
        purposes
            .iter()
            .map(|p| {
                json!({
                    "purpose": p.purpose,
                    "legal_basis": p.legal_basis,
                    "applies": p.applies,
                    "reason": p.reason,
                })
            })
            .collect(),
    )
}

fn retention_json(retention: &[ExportRetention]) -> Json {
    Json::Array(
        retention
            .iter()
            .map(|r| {
                json!({
                    "record_type": r.record_type,
                    "on_erasure": r.on_erasure,
                    "ground": r.ground,
                    "class": r.class,
                    "kept_for": r.kept_for,
                    "counted_from": r.counted_from,
                })
            })
            .collect(),
    )
}

fn consent_json(events: &[ExportConsent]) -> Json {
    Json::Array(
        events
            .iter()
            .map(|e| {
                json!({
                    "kind": e.kind,
                    "purpose": e.purpose,
                    "channel": e.channel,
                    "at": timestamp(e.at),
                    "notice_version": e.notice_version,
                    "notice_sha256": e.notice_sha256,
                    "method": e.method,
                })
            })
            .collect(),
    )
}

fn access_json(entries: &[ExportAccess]) -> Json {
    Json::Array(
        entries
            .iter()
            .map(|a| {
                json!({
                    "seq": a.seq,
                    "at": a.at,
                    "actor_kind": a.actor_kind,
                    "actor_role": a.actor_role,
                    "action": a.action,
                    "record_type": a.record_type,
                    "purpose": a.purpose,
                    "outcome": a.outcome,
                })
            })
            .collect(),
    )
}

/// The JSON format: one object, written as the export streams (`docs/subject-export.md`).
#[derive(Debug)]
pub struct JsonExport<W: Write> {
    out: W,
    stage: JsonStage,
}

/// Where the JSON writer is in the document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonStage {
    /// Nothing written yet.
    Start,
    /// Inside `record_types`, no record type yet.
    Types,
    /// Inside a record type's `records`; whether one was written.
    Records { any: bool },
    /// Past `record_types`: the sections.
    Sections,
}

impl<W: Write> JsonExport<W> {
    /// A JSON export into `out` (buffer it: the export writes many small pieces).
    pub fn new(out: W) -> Self {
        Self {
            out,
            stage: JsonStage::Start,
        }
    }

    /// The writer back, after [`ExportSink::finish`].
    pub fn into_inner(self) -> W {
        self.out
    }

    fn misuse(what: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("export: {what} out of order"),
        )
    }

    /// Closes the record types array (and an open record type), once.
    fn end_types(&mut self) -> io::Result<()> {
        match self.stage {
            JsonStage::Start => return Err(Self::misuse("a section before the header")),
            JsonStage::Types => self.out.write_all(b"]")?,
            JsonStage::Records { .. } => self.out.write_all(b"]}]")?,
            JsonStage::Sections => return Ok(()),
        }
        self.stage = JsonStage::Sections;
        Ok(())
    }

    fn section(&mut self, name: &str, value: &Json) -> io::Result<()> {
        self.end_types()?;
        write!(self.out, ",{}:", Json::String(name.to_owned()))?;
        serde_json::to_writer(&mut self.out, value).map_err(io::Error::other)
    }
}

impl<W: Write> ExportSink for JsonExport<W> {
    fn begin(&mut self, h: &ExportHeader) -> io::Result<()> {
        if self.stage != JsonStage::Start {
            return Err(Self::misuse("the header"));
        }
        let head = json!({
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "tenant": h.tenant.to_string(),
            "subject": h.subject.map(|s| s.to_string()),
            "generated_at": timestamp(h.generated_at),
            "policy_version": h.policy_version,
        });
        let head = serde_json::to_string(&head).map_err(io::Error::other)?;
        // The header object, left open for the streamed `record_types`.
        let open = head.strip_suffix('}').unwrap_or(&head);
        write!(self.out, "{open},\"record_types\":[")?;
        self.stage = JsonStage::Types;
        Ok(())
    }

    fn record_type(&mut self, spec: &RecordSpec) -> io::Result<()> {
        match self.stage {
            JsonStage::Types => {}
            JsonStage::Records { .. } => self.out.write_all(b"]},")?,
            _ => return Err(Self::misuse("a record type")),
        }
        let described = serde_json::to_string(&spec_json(spec)).map_err(io::Error::other)?;
        let open = described.strip_suffix('}').unwrap_or(&described);
        write!(self.out, "{open},\"records\":[")?;
        self.stage = JsonStage::Records { any: false };
        Ok(())
    }

    fn record(&mut self, record: &ExportRecord<'_>) -> io::Result<()> {
        let JsonStage::Records { any } = self.stage else {
            return Err(Self::misuse("a record"));
        };
        if any {
            self.out.write_all(b",")?;
        }
        serde_json::to_writer(&mut self.out, &record_json(record)).map_err(io::Error::other)?;
        self.stage = JsonStage::Records { any: true };
        Ok(())
    }

    fn purposes(&mut self, purposes: &[ExportPurpose]) -> io::Result<()> {
        self.section("purposes", &purposes_json(purposes))
    }

    fn retention(&mut self, retention: &[ExportRetention]) -> io::Result<()> {
        self.section("retention", &retention_json(retention))
    }

    fn consent(&mut self, events: &[ExportConsent]) -> io::Result<()> {
        self.section("consent", &consent_json(events))
    }

    fn access_log(&mut self, entries: &[ExportAccess]) -> io::Result<()> {
        self.section("access_log", &access_json(entries))
    }

    fn finish(&mut self) -> io::Result<()> {
        self.end_types()?;
        self.out.write_all(b"}")?;
        self.out.flush()
    }
}

/// The CSV format: a directory with one file per record type (`<record_type>.csv`: `id`, then
/// each field, then `erased` and `unreadable`, the fields without a value, `;`-separated) and
/// one per section (`purposes.csv`, `retention.csv`, `consent.csv`, `access_log.csv`), plus
/// `export.csv` (the header), written through the `csv` crate.
#[derive(Debug)]
pub struct CsvExport {
    dir: PathBuf,
    current: Option<csv::Writer<io::BufWriter<File>>>,
}

impl CsvExport {
    /// A CSV export into `dir`, which must exist and be empty of the export's file names (an
    /// existing file is never overwritten).
    pub fn new(dir: impl AsRef<Path>) -> Self {
        Self {
            dir: dir.as_ref().to_owned(),
            current: None,
        }
    }

    fn create(&self, name: &str) -> io::Result<csv::Writer<io::BufWriter<File>>> {
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(self.dir.join(format!("{name}.csv")))?;
        Ok(csv::Writer::from_writer(io::BufWriter::new(file)))
    }

    fn close_current(&mut self) -> io::Result<()> {
        if let Some(mut w) = self.current.take() {
            w.flush()?;
        }
        Ok(())
    }

    fn table(&mut self, name: &str, header: &[&str], rows: Vec<Vec<String>>) -> io::Result<()> {
        self.close_current()?;
        let mut w = self.create(name)?;
        w.write_record(header).map_err(io::Error::other)?;
        for row in rows {
            w.write_record(&row).map_err(io::Error::other)?;
        }
        w.flush()
    }
}

fn opt(v: Option<&str>) -> String {
    v.unwrap_or_default().to_owned()
}

impl ExportSink for CsvExport {
    fn begin(&mut self, h: &ExportHeader) -> io::Result<()> {
        self.table(
            "export",
            &[
                "format",
                "version",
                "tenant",
                "subject",
                "generated_at",
                "policy_version",
            ],
            vec![vec![
                EXPORT_FORMAT.to_owned(),
                EXPORT_VERSION.to_string(),
                h.tenant.to_string(),
                h.subject.map(|s| s.to_string()).unwrap_or_default(),
                timestamp(h.generated_at),
                h.policy_version.clone(),
            ]],
        )
    }

    fn record_type(&mut self, spec: &RecordSpec) -> io::Result<()> {
        self.close_current()?;
        let mut w = self.create(spec.record_type().as_str())?;
        let mut header = vec!["id"];
        header.extend(spec.fields().iter().map(|f| f.name.as_str()));
        header.extend(["erased", "unreadable"]);
        w.write_record(&header).map_err(io::Error::other)?;
        self.current = Some(w);
        Ok(())
    }

    fn record(&mut self, r: &ExportRecord<'_>) -> io::Result<()> {
        let Some(w) = self.current.as_mut() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "export: a record before its record type",
            ));
        };
        let names = |want: fn(&ExportValue) -> bool| {
            r.fields
                .iter()
                .zip(r.values)
                .filter(|(_, v)| want(v))
                .map(|(f, _)| f.name.as_str())
                .collect::<Vec<_>>()
                .join(";")
        };
        let mut row = vec![r.id.to_string()];
        row.extend(r.values.iter().map(csv_cell));
        row.push(names(|v| matches!(v, ExportValue::Erased)));
        row.push(names(|v| matches!(v, ExportValue::Unreadable)));
        w.write_record(&row).map_err(io::Error::other)
    }

    fn purposes(&mut self, purposes: &[ExportPurpose]) -> io::Result<()> {
        let rows = purposes
            .iter()
            .map(|p| {
                vec![
                    p.purpose.to_owned(),
                    p.legal_basis.to_owned(),
                    p.applies.to_string(),
                    opt(p.reason),
                ]
            })
            .collect();
        self.table(
            "purposes",
            &["purpose", "legal_basis", "applies", "reason"],
            rows,
        )
    }

    fn retention(&mut self, retention: &[ExportRetention]) -> io::Result<()> {
        let rows = retention
            .iter()
            .map(|r| {
                vec![
                    r.record_type.clone(),
                    r.on_erasure.to_owned(),
                    opt(r.ground),
                    r.class.to_owned(),
                    r.kept_for.clone(),
                    r.counted_from.clone(),
                ]
            })
            .collect();
        self.table(
            "retention",
            &[
                "record_type",
                "on_erasure",
                "ground",
                "class",
                "kept_for",
                "counted_from",
            ],
            rows,
        )
    }

    fn consent(&mut self, events: &[ExportConsent]) -> io::Result<()> {
        let rows = events
            .iter()
            .map(|e| {
                vec![
                    e.kind.to_owned(),
                    opt(e.purpose),
                    opt(e.channel),
                    timestamp(e.at),
                    e.notice_version.clone(),
                    e.notice_sha256.clone(),
                    e.method.to_owned(),
                ]
            })
            .collect();
        self.table(
            "consent",
            &[
                "kind",
                "purpose",
                "channel",
                "at",
                "notice_version",
                "notice_sha256",
                "method",
            ],
            rows,
        )
    }

    fn access_log(&mut self, entries: &[ExportAccess]) -> io::Result<()> {
        let rows = entries
            .iter()
            .map(|a| {
                vec![
                    a.seq.map(|s| s.to_string()).unwrap_or_default(),
                    a.at.clone(),
                    a.actor_kind.clone(),
                    opt(a.actor_role.as_deref()),
                    a.action.clone(),
                    opt(a.record_type.as_deref()),
                    opt(a.purpose.as_deref()),
                    a.outcome.clone(),
                ]
            })
            .collect();
        self.table(
            "access_log",
            &[
                "seq",
                "at",
                "actor_kind",
                "actor_role",
                "action",
                "record_type",
                "purpose",
                "outcome",
            ],
            rows,
        )
    }

    fn finish(&mut self) -> io::Result<()> {
        self.close_current()
    }
}
