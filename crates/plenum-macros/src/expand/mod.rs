//! `#[derive(Record)]`: the declaration types and the pipeline parse -> check -> generate. Each
//! stage is a file: `parse.rs` reads the attributes, `check.rs` refuses what the runtime would
//! reject (with the message telling the fix), `generate.rs` writes the `Record` impl and the
//! index constants, `views.rs` the per-purpose view types. Nothing here does I/O; the policy
//! consulted for views is `plenum-consent`'s default, evaluated at expansion time.

mod check;
mod generate;
mod parse;
#[cfg(test)]
mod tests;
mod views;

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned as _;
use syn::{Data, DeriveInput, Fields, LitStr};

use self::check::{check, check_erasure, check_retention};
use self::generate::generate;
use self::parse::{parse_container, parse_field};

/// The blind index normalisers, by their stable ids (a unit test keeps this list equal to
/// `plenum_crypto::Normaliser`'s).
pub(crate) const NORMALISERS: [(&str, &str); 3] = [
    ("email-v1", "Email"),
    ("phone-e164-v1", "PhoneE164"),
    ("text-nfkc-v1", "Text"),
];

/// The grounds on which a person's data sealed under the tenant key may outlive their erasure
/// (GDPR Art. 17(3)): `retain = "<key>"` and the `RetainGround` variant it names.
const RETAIN_GROUNDS: [(&str, &str); 2] = [
    ("legal_obligation", "LegalObligation"),
    ("legal_claims", "LegalClaims"),
];

/// Longest field name that still leaves room for the `_bidx` suffix in a 63-byte identifier.
const MAX_INDEXED_NAME: usize = 63 - "_bidx".len();

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Id,
    Tenant,
    Subject,
    Field,
}

#[derive(Debug)]
struct FieldDecl {
    ident: syn::Ident,
    ty: syn::Type,
    role: Role,
    pii: Option<LitStr>,
    category: Option<LitStr>,
    blind_index: Option<LitStr>,
    owner_tenant: bool,
    retain: Option<LitStr>,
    unique: bool,
    references: Option<LitStr>,
    /// `not_exported = "<reason>"`: withheld from every subject export, with the reason.
    not_exported: Option<LitStr>,
    span: Span,
}

struct Container {
    record_type: LitStr,
    /// What erasing a subject does to the rows (`erasure = "..."`, and `retain = "..."` with
    /// `"retain"`).
    erasure: Option<LitStr>,
    retain: Option<LitStr>,
    /// `retention = "financial_records", counted_from = "<field>"`: the retention class of the
    /// rows and the plain date or timestamp field its period counts from; or
    /// `retention = "marketing_data"`, whose period counts from an event (no field).
    retention: Option<(LitStr, Option<LitStr>)>,
    krate: syn::Path,
    /// Purposes to generate view types for, with the span of their key.
    views: Vec<(plenum_consent::Purpose, Span)>,
}

fn err(span: Span, message: impl core::fmt::Display) -> syn::Error {
    syn::Error::new(span, message)
}

/// Expands `#[derive(Record)]` on `input`.
pub(crate) fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    if !input.generics.params.is_empty() {
        return Err(err(
            input.generics.span(),
            "a record type cannot be generic: its table and keys are fixed at compile time",
        ));
    }
    let container = parse_container(input)?;
    let named = match &input.data {
        Data::Struct(s) => match &s.fields {
            Fields::Named(f) => &f.named,
            _ => {
                return Err(err(
                    input.ident.span(),
                    "`Record` needs a struct with named fields",
                ));
            }
        },
        _ => {
            return Err(err(
                input.ident.span(),
                "`Record` can only be derived for a struct",
            ));
        }
    };
    let mut decls = Vec::new();
    for f in named {
        decls.push(parse_field(f)?);
    }
    check(&input.ident, &decls)?;
    check_erasure(&input.ident, &container, &decls)?;
    check_retention(&container, &decls)?;
    Ok(generate(input, &container, &decls))
}
