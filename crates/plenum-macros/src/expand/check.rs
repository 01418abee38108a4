//! The checks a declaration must pass: a declaration the runtime would reject does not compile,
//! and each error says what to write instead. Plain functions over the parsed declarations,
//! unit-tested in `tests.rs` and pinned for users by trybuild in `tests/ui/`.

use super::{Container, FieldDecl, MAX_INDEXED_NAME, NORMALISERS, RETAIN_GROUNDS, Role, err};
use syn::LitStr;

use super::parse::category_ok;

/// Checks a record's declarations.
pub(super) fn check(ident: &syn::Ident, decls: &[FieldDecl]) -> syn::Result<()> {
    let has_subject = check_roles(ident, decls)?;
    for d in decls.iter().filter(|d| d.role == Role::Field) {
        check_field(d, has_subject)?;
    }
    Ok(())
}

/// Exactly one id and one tenant, at most one subject, none with another attribute. Returns
/// whether the record has a subject.
fn check_roles(ident: &syn::Ident, decls: &[FieldDecl]) -> syn::Result<bool> {
    let mut seen = [None::<&FieldDecl>; 3];
    for d in decls {
        let slot = match d.role {
            Role::Id => 0,
            Role::Tenant => 1,
            Role::Subject => 2,
            Role::Field => continue,
        };
        if let Some(first) = seen[slot] {
            let what = ["id", "tenant", "subject"][slot];
            let mut e = err(
                d.ident.span(),
                format!("a second `#[plenum({what})]` field: a record has exactly one {what}"),
            );
            e.combine(err(first.ident.span(), format!("the first `{what}` field")));
            return Err(e);
        }
        seen[slot] = Some(d);
        if d.pii.is_some() || d.blind_index.is_some() || d.category.is_some() || d.unique {
            return Err(err(
                d.span,
                "an `id`, `tenant` or `subject` field takes no other attribute",
            ));
        }
    }
    if seen[0].is_none() {
        return Err(err(
            ident.span(),
            "a record needs one `#[plenum(id)]` field of type `RecordId`",
        ));
    }
    if seen[1].is_none() {
        return Err(err(
            ident.span(),
            "a record needs one `#[plenum(tenant)]` field of type `TenantId`: every row belongs to a tenant",
        ));
    }
    Ok(seen[2].is_some())
}

/// One data field: a valid column name, attributes that fit an encrypted or a plain field, a
/// known normaliser.
fn check_field(d: &FieldDecl, has_subject: bool) -> syn::Result<()> {
    let name = d.ident.to_string();
    if !plenum_core::__is_valid_name(&name)
        || ["tenant_id", "id", "subject_id"].contains(&name.as_str())
    {
        return Err(err(
            d.ident.span(),
            "a field name is a column name: [a-z][a-z0-9_]*, at most 63 bytes, not `id`, `tenant_id` or `subject_id`",
        ));
    }
    match &d.pii {
        Some(category) => check_encrypted(d, category, has_subject)?,
        None => check_plain(d)?,
    }
    check_retain(d)?;
    check_blind_index(d, &name)
}

/// A person's data sealed under the tenant key survives their erasure, so it says on what
/// ground (GDPR Art. 17(3)); and only such a field may say so.
fn check_retain(d: &FieldDecl) -> syn::Result<()> {
    let personal = d.pii.as_ref().is_some_and(|c| {
        plenum_core::DataCategory::new(c.value()).is_ok_and(|c| plenum_consent::is_personal(&c))
    });
    match &d.retain {
        None if d.owner_tenant && personal => Err(err(
            d.span,
            "this person's data is sealed under the tenant key, so it outlives their erasure: say why with `retain = \"legal_obligation\"` (e.g. invoices kept for tax law) or `retain = \"legal_claims\"`, or drop `owner = \"tenant\"` so erasure reaches it",
        )),
        Some(r) if !(d.owner_tenant && personal) => Err(err(
            r.span(),
            "`retain` applies to a person's data kept under the tenant key: a `pii = \"user.*\"` field with `owner = \"tenant\"`",
        )),
        Some(r) if !RETAIN_GROUNDS.iter().any(|(k, _)| *k == r.value()) => Err(err(
            r.span(),
            "`retain` is `\"legal_obligation\"` (GDPR Art. 17(3)(b)) or `\"legal_claims\"` (Art. 17(3)(e))",
        )),
        _ => Ok(()),
    }
}

/// An encrypted field: a known category, sealed under a key it has, unique only through a
/// blind index, referencing nothing.
fn check_encrypted(d: &FieldDecl, category: &LitStr, has_subject: bool) -> syn::Result<()> {
    category_ok(category)?;
    if let Some(c) = &d.category {
        return Err(err(
            c.span(),
            "a `pii` field names its category in `pii = \"...\"`",
        ));
    }
    if d.references.is_some() {
        return Err(err(
            d.span,
            "an encrypted field cannot reference another record",
        ));
    }
    if !d.owner_tenant && !has_subject {
        return Err(err(
            category.span(),
            "this record has no `#[plenum(subject)]` field, so its PII is sealed under a subject key it does not have: add a subject, or `owner = \"tenant\"`",
        ));
    }
    if d.unique && d.blind_index.is_none() {
        return Err(err(
            d.span,
            "an encrypted field can only be unique through a blind index: add `blind_index = \"...\"`",
        ));
    }
    Ok(())
}

/// A plain field: no blind index, no key owner, a known category, a valid referenced type.
fn check_plain(d: &FieldDecl) -> syn::Result<()> {
    if let Some(b) = &d.blind_index {
        return Err(err(
            b.span(),
            "`blind_index` needs an encrypted field: declare it `pii = \"<category>\"` and type it `Encrypted<String>`; a plain column is searchable as it is",
        ));
    }
    if d.owner_tenant {
        return Err(err(d.span, "`owner` applies to `pii` fields only"));
    }
    match &d.category {
        Some(c) => category_ok(c)?,
        None => {
            return Err(err(
                d.ident.span(),
                "every field declares its data category, which decides the purposes that may see it: add `#[plenum(category = \"system.operations\")]` for data about no one, a `user.*` category for a person's data in the clear, or make it `pii = \"user.*\"` and `Encrypted<_>`",
            ));
        }
    }
    if let Some(r) = &d.references
        && !plenum_core::__is_valid_record_type(&r.value())
    {
        return Err(err(r.span(), "`references` names a record type"));
    }
    Ok(())
}

/// A blind index names a known normaliser and leaves room for its `_bidx` column.
fn check_blind_index(d: &FieldDecl, name: &str) -> syn::Result<()> {
    if let Some(b) = &d.blind_index {
        if !NORMALISERS.iter().any(|(id, _)| *id == b.value()) {
            let known: Vec<String> = NORMALISERS
                .iter()
                .map(|(id, _)| format!("`{id}`"))
                .collect();
            return Err(err(
                b.span(),
                format!(
                    "unknown normaliser `{}`; expected one of {}",
                    b.value(),
                    known.join(", ")
                ),
            ));
        }
        if name.len() > MAX_INDEXED_NAME {
            return Err(err(
                d.ident.span(),
                format!(
                    "a blind-indexed field name has at most {MAX_INDEXED_NAME} bytes (its index column adds `_bidx`)"
                ),
            ));
        }
    }
    Ok(())
}

/// A record with a subject says what erasing the subject does to its rows; one without a
/// subject has nothing to erase. `"retain"` names its ground; nothing else takes one.
pub(super) fn check_erasure(
    ident: &syn::Ident,
    c: &Container,
    decls: &[FieldDecl],
) -> syn::Result<()> {
    let has_subject = decls.iter().any(|d| d.role == Role::Subject);
    let Some(erasure) = &c.erasure else {
        if has_subject {
            return Err(err(
                ident.span(),
                "a record with a subject declares what erasing the subject does to its rows: `#[plenum(erasure = \"delete\")]` (the rows go), `\"scrub\"` (the rows stay, as other records reference them: the subject's fields and blind indexes are destroyed, the subject id pseudonymised), or `\"retain\", retain = \"legal_obligation\"` (kept under a legal obligation, pseudonymised and restricted)",
            ));
        }
        return match &c.retain {
            Some(r) => Err(err(r.span(), "`retain` goes with `erasure = \"retain\"`")),
            None => Ok(()),
        };
    };
    if !has_subject {
        return Err(err(
            erasure.span(),
            "`erasure` applies to records with a `#[plenum(subject)]` field",
        ));
    }
    match (erasure.value().as_str(), &c.retain) {
        ("delete" | "scrub", None) => Ok(()),
        ("delete" | "scrub", Some(r)) => {
            Err(err(r.span(), "`retain` goes with `erasure = \"retain\"`"))
        }
        ("retain", Some(r)) if RETAIN_GROUNDS.iter().any(|(k, _)| *k == r.value()) => Ok(()),
        ("retain", _) => Err(err(
            erasure.span(),
            "`erasure = \"retain\"` needs its ground: `retain = \"legal_obligation\"` (GDPR Art. 17(3)(b)) or `retain = \"legal_claims\"` (Art. 17(3)(e))",
        )),
        _ => Err(err(
            erasure.span(),
            "`erasure` is `\"delete\"`, `\"scrub\"` or `\"retain\"`",
        )),
    }
}

/// Record-level retention classes: those whose period counts from a date the row itself holds.
/// The retention classes a record type may declare for its rows: the key, the
/// `RetentionClass` variant, and whether the period counts from a field of the row (`true`) or
/// from an event the library records (`false`: the subject's marketing consent ending).
const RECORD_RETENTION_CLASSES: &[(&str, &str, bool)] = &[
    ("financial_records", "FinancialRecords", true),
    ("marketing_data", "MarketingData", false),
];

pub(super) fn check_retention(c: &Container, decls: &[FieldDecl]) -> syn::Result<()> {
    let Some((class, field)) = &c.retention else {
        return Ok(());
    };
    let Some((_, _, dated)) = RECORD_RETENTION_CLASSES
        .iter()
        .find(|(k, _, _)| *k == class.value())
    else {
        let known: Vec<&str> = RECORD_RETENTION_CLASSES
            .iter()
            .map(|(k, _, _)| *k)
            .collect();
        return Err(err(
            class.span(),
            format!(
                "unknown record retention class; a record's rows can be `{}` (the others are not rows of a record type)",
                known.join("`, `")
            ),
        ));
    };
    let field = match (dated, field) {
        (true, Some(field)) => field,
        (true, None) => {
            return Err(err(
                class.span(),
                "this class's period counts from a date of the row: add `counted_from = \"<date or timestamp field>\"`",
            ));
        }
        (false, Some(field)) => {
            return Err(err(
                field.span(),
                "this class's period counts from the subject's marketing consent ending (read from the consent ledger), not from a field: remove `counted_from`",
            ));
        }
        (false, None) => {
            if !decls.iter().any(|d| d.role == Role::Subject) {
                return Err(err(
                    class.span(),
                    "marketing data is a data subject's: the record needs a `#[plenum(subject)]` field",
                ));
            }
            return Ok(());
        }
    };
    let Some(decl) = decls.iter().find(|d| d.ident == field.value().as_str()) else {
        return Err(err(
            field.span(),
            "`counted_from` names a field of this record",
        ));
    };
    let ty = quote::ToTokens::to_token_stream(&decl.ty)
        .to_string()
        .replace(' ', "");
    let dated = matches!(
        ty.as_str(),
        "NaiveDate"
            | "chrono::NaiveDate"
            | "DateTime<Utc>"
            | "chrono::DateTime<chrono::Utc>"
            | "DateTime<chrono::Utc>"
    );
    if decl.role != Role::Field || decl.pii.is_some() || !dated {
        return Err(err(
            field.span(),
            "`counted_from` is a plain (unencrypted) `NaiveDate` or `DateTime<Utc>` field: the database compares it with the period's cut-off",
        ));
    }
    Ok(())
}

/// The store's variant name of a checked record retention class.
pub(super) fn retention_variant(class: &str) -> Option<&'static str> {
    RECORD_RETENTION_CLASSES
        .iter()
        .find(|(k, _, _)| *k == class)
        .map(|(_, v, _)| *v)
}
