//! The data map: record types x fields x categories x purposes x legal bases, exported as a
//! fideslang manifest (dataset + system) and as a record of processing activities (GDPR Art. 30).

use std::fmt::Write as _;

use plenum_core::{DataCategory, FieldName, RecordType};
use serde_json::{Value, json};

use crate::category::{SubjectKind, describe, is_personal};
use crate::policy::Policy;
use crate::purpose::ConsentRequirement;

/// One field of the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedField {
    /// The field.
    pub field: FieldName,
    /// Its category.
    pub category: DataCategory,
    /// For a person's data kept under the tenant key: why it outlives their erasure.
    pub retained: Option<crate::RetainGround>,
}

impl MappedField {
    /// A field with its category, kept no longer than its subject's erasure.
    pub fn new(field: FieldName, category: DataCategory) -> Self {
        Self {
            field,
            category,
            retained: None,
        }
    }
}

/// One record type of the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedRecord {
    /// The record type.
    pub record_type: RecordType,
    /// Whose data it is, if anyone's.
    pub subject: Option<SubjectKind>,
    /// Its fields.
    pub fields: Vec<MappedField>,
    /// The retention class its rows declare; `None`: the tenant's business data, kept while
    /// the tenant's contract runs and through the export window after it.
    pub retention: Option<crate::RetentionClass>,
}

/// What data Plenum holds and what each purpose does with it, under one policy.
#[derive(Debug, Clone)]
pub struct DataMap {
    policy: Policy,
    schedule: crate::RetentionSchedule,
    records: Vec<MappedRecord>,
}

impl DataMap {
    /// An empty map under `policy`.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            schedule: crate::RetentionSchedule::plenum_default(),
            records: Vec::new(),
        }
    }

    /// This map with a tenant's retention schedule instead of the privacy policy's.
    #[must_use]
    pub fn with_schedule(mut self, schedule: crate::RetentionSchedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// Adds a record type with its fields (`FieldSpec::mapped` in `plenum-store`, or
    /// [`MappedField::new`]); returns it, to set its [`MappedRecord::retention`].
    pub fn add_record(
        &mut self,
        record_type: RecordType,
        subject: Option<SubjectKind>,
        fields: impl IntoIterator<Item = MappedField>,
    ) -> &mut MappedRecord {
        let i = self.records.len();
        self.records.push(MappedRecord {
            record_type,
            subject,
            fields: fields.into_iter().collect(),
            retention: None,
        });
        &mut self.records[i]
    }

    /// How long `record`'s rows are kept, under this map's schedule, as JSON: the class, the
    /// event the period counts from, the period, and what happens then.
    fn retention_of(&self, record: &MappedRecord) -> Value {
        let class = record
            .retention
            .unwrap_or(crate::RetentionClass::TenantBusinessData);
        match self.schedule.rule(class) {
            Some(rule) => json!({
                "class": class.key(),
                "counted_from": rule.trigger.key(),
                "kept_for": rule.offset.describe(),
                "then": rule.action.key(),
            }),
            None => json!({ "class": class.key() }),
        }
    }

    /// The records mapped so far.
    pub fn records(&self) -> &[MappedRecord] {
        &self.records
    }

    /// A fideslang manifest as JSON: one `dataset` (a collection per record type, a field per
    /// field with its data category) and one `system` whose privacy declarations say, per
    /// purpose, which of the mapped categories it uses, about whom, on which basis.
    pub fn to_fides_json(&self) -> Value {
        let collections: Vec<Value> = self
            .records
            .iter()
            .map(|r| {
                json!({
                    "name": r.record_type.as_str(),
                    "plenum_retention": self.retention_of(r),
                    "fields": r.fields.iter().map(|f| {
                        let mut field = json!({
                            "name": f.field.as_str(),
                            "data_categories": [f.category.as_str()],
                        });
                        if let Some(g) = f.retained {
                            // fideslang's free-text field retention, and the ground by key.
                            field["retention"] = json!(format!(
                                "kept after the subject's erasure: {} ({})",
                                g.key(),
                                g.article()
                            ));
                            field["plenum_retain"] = json!(g.key());
                        }
                        field
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
        let declarations: Vec<Value> = self
            .policy
            .purposes()
            .filter_map(|p| {
                let rule = self.policy.rule(p)?;
                let mut categories: Vec<&str> = Vec::new();
                let mut subjects: Vec<&str> = Vec::new();
                for r in &self.records {
                    for f in r.fields.iter().filter(|f| rule.allows(&f.category)) {
                        categories.push(f.category.as_str());
                        if let Some(s) = r.subject.filter(|_| is_personal(&f.category)) {
                            subjects.push(s.fideslang());
                        }
                    }
                }
                categories.sort_unstable();
                categories.dedup();
                subjects.sort_unstable();
                subjects.dedup();
                (!categories.is_empty()).then(|| {
                    json!({
                        "name": p.description(),
                        "data_use": p.fideslang_data_use(),
                        "data_categories": categories,
                        "data_subjects": subjects,
                        "legal_basis_for_processing": rule.basis.fideslang(),
                        "plenum": {
                            "purpose": p.key(),
                            "purpose_version": p.version(),
                            "dpv_purpose": p.dpv_purpose(),
                            "legal_basis": rule.basis.key(),
                            "gdpr": rule.basis.article(),
                            "consent": match p.consent() {
                                ConsentRequirement::None => "none",
                                ConsentRequirement::Consent => "consent",
                                ConsentRequirement::Explicit => "explicit",
                            },
                        },
                    })
                })
            })
            .collect();
        json!({
            "dataset": [{
                "fides_key": "plenum",
                "name": "Plenum",
                "description": "Records stored by Plenum services",
                "collections": collections,
            }],
            "system": [{
                "fides_key": "plenum",
                "name": "Plenum",
                "description": "CRM for HVAC businesses",
                "system_type": "Service",
                "privacy_declarations": declarations,
                "plenum_policy_version": self.policy.version(),
            }],
        })
    }

    /// A record of processing activities (GDPR Art. 30(1)), as Markdown: one section per
    /// purpose with its basis, the categories of data and of data subjects, the rights that
    /// apply; then the inventory of record types and fields.
    pub fn to_record_of_processing(&self) -> String {
        let mut out = format!(
            "# Record of processing activities\n\nPolicy version: `{}`\n",
            self.policy.version()
        );
        for p in self.policy.purposes() {
            let Some(rule) = self.policy.rule(p) else {
                continue;
            };
            let mut rows = Vec::new();
            let mut subjects = Vec::new();
            for r in &self.records {
                for f in r.fields.iter().filter(|f| rule.allows(&f.category)) {
                    rows.push(format!("{}.{} ({})", r.record_type, f.field, f.category));
                    if let Some(s) = r.subject.filter(|_| is_personal(&f.category)) {
                        subjects.push(s.key());
                    }
                }
            }
            if rows.is_empty() {
                continue;
            }
            subjects.sort_unstable();
            subjects.dedup();
            let rights: Vec<&str> = rule.basis.rights().iter().map(|r| r.article()).collect();
            // Writing to a String cannot fail.
            let _ = write!(
                out,
                "\n## {} (`{}` v{})\n\n- Legal basis: {} ({})\n- Data subjects: {}\n- Rights in force: {}\n- Data: {}\n",
                p.description(),
                p.key(),
                p.version(),
                rule.basis.key(),
                rule.basis.article(),
                if subjects.is_empty() {
                    "none".to_owned()
                } else {
                    subjects.join(", ")
                },
                rights.join(", "),
                rows.join(", "),
            );
        }
        out.push_str("\n## Inventory\n\n| Record | Field | Category | CCPA | Kept after the subject's erasure |\n|---|---|---|---|---|\n");
        for r in &self.records {
            for f in &r.fields {
                let ccpa: String = describe(&f.category)
                    .map(|k| k.ccpa.iter().map(|c| c.letter()).collect())
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "| {} | {} | `{}` | {} | {} |",
                    r.record_type,
                    f.field,
                    f.category,
                    if ccpa.is_empty() {
                        "-".to_owned()
                    } else {
                        ccpa
                    },
                    f.retained.map_or_else(
                        || "no".to_owned(),
                        |g| format!("{} ({})", g.key(), g.article())
                    ),
                );
            }
        }
        // Art. 30(1)(f): the envisaged time limits for erasure, per record type.
        out.push_str("\n## Retention\n\n| Record | Class | Counted from | Kept for | Then |\n|---|---|---|---|---|\n");
        for r in &self.records {
            let kept = self.retention_of(r);
            let cell = |k: &str| kept[k].as_str().unwrap_or("-").to_owned();
            let _ = writeln!(
                out,
                "| {} | `{}` | `{}` | {} | `{}` |",
                r.record_type,
                cell("class"),
                cell("counted_from"),
                cell("kept_for"),
                cell("then"),
            );
        }
        out
    }
}
