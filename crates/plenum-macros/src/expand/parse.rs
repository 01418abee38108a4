//! Reading the `#[plenum(...)]` attributes of the struct and of each field into declarations.
//! Syntax errors only; what a declaration may mean is `check.rs`'s job.

use proc_macro2::Span;
use syn::spanned::Spanned as _;
use syn::{DeriveInput, LitStr};

use super::{Container, FieldDecl, Role, err};

pub(super) fn parse_container(input: &DeriveInput) -> syn::Result<Container> {
    let mut record_type = None;
    let mut krate: Option<syn::Path> = None;
    let (mut erasure, mut retain): (Option<LitStr>, Option<LitStr>) = (None, None);
    let (mut retention, mut counted_from): (Option<LitStr>, Option<LitStr>) = (None, None);
    let mut views = Vec::new();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("plenum")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("record_type") {
                let lit: LitStr = meta.value()?.parse()?;
                if !plenum_core::__is_valid_record_type(&lit.value()) {
                    return Err(err(
                        lit.span(),
                        "a record type is a table name: [a-z][a-z0-9_]*, at most 63 bytes, not starting with `plenum`, `pg_` or `sqlite_` (the library's and the databases' own tables)",
                    ));
                }
                record_type = Some(lit);
                Ok(())
            } else if meta.path.is_ident("erasure") {
                erasure = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident("retain") {
                retain = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident("retention") {
                retention = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident("counted_from") {
                counted_from = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident("crate") {
                let lit: LitStr = meta.value()?.parse()?;
                krate = Some(lit.parse()?);
                Ok(())
            } else if meta.path.is_ident("views") {
                let content;
                syn::parenthesized!(content in meta.input);
                let keys =
                    content.parse_terminated(|i| i.parse::<LitStr>(), syn::Token![,])?;
                for key in keys {
                    match plenum_consent::Purpose::from_key(&key.value()) {
                        Ok(p) => views.push((p, key.span())),
                        Err(_) => {
                            let known: Vec<&str> =
                                plenum_consent::Purpose::ALL.iter().map(|p| p.key()).collect();
                            return Err(err(
                                key.span(),
                                format!(
                                    "unknown purpose `{}`; Plenum's purposes are: {}",
                                    key.value(),
                                    known.join(", ")
                                ),
                            ));
                        }
                    }
                }
                Ok(())
            } else {
                Err(meta.error("unknown record attribute; expected `record_type = \"...\"`, `erasure = \"delete\" | \"scrub\" | \"retain\"`, `retain = \"...\"`, `retention = \"financial_records\", counted_from = \"<field>\"`, `retention = \"marketing_data\"`, `crate = \"...\"` or `views(\"<purpose key>\", ...)`"))
            }
        })?;
    }
    let record_type = record_type.ok_or_else(|| {
        err(
            input.ident.span(),
            "a record needs `#[plenum(record_type = \"...\")]`: the logical record type and table name",
        )
    })?;
    // Whether a class counts from a row's own date or from an event is `check_retention`'s
    // to judge; here only the pairing is checked.
    let retention = match (retention, counted_from) {
        (Some(class), field) => Some((class, field)),
        (None, None) => None,
        (None, Some(field)) => {
            return Err(err(
                field.span(),
                "`counted_from` goes with `retention = \"...\"`",
            ));
        }
    };
    Ok(Container {
        record_type,
        erasure,
        retain,
        retention,
        krate: krate.unwrap_or_else(|| syn::parse_quote!(::plenum)),
        views,
    })
}

pub(super) fn parse_field(f: &syn::Field) -> syn::Result<FieldDecl> {
    let ident = f
        .ident
        .clone()
        .ok_or_else(|| err(f.span(), "`Record` needs named fields"))?;
    let mut decl = FieldDecl {
        ident,
        ty: f.ty.clone(),
        role: Role::Field,
        pii: None,
        category: None,
        blind_index: None,
        owner_tenant: false,
        retain: None,
        unique: false,
        references: None,
        not_exported: None,
        span: f.span(),
    };
    let set_role = |decl: &mut FieldDecl, role: Role, span: Span| {
        if decl.role != Role::Field {
            return Err(err(
                span,
                "a field has at most one of `id`, `tenant`, `subject`",
            ));
        }
        decl.role = role;
        Ok(())
    };
    for attr in f.attrs.iter().filter(|a| a.path().is_ident("plenum")) {
        attr.parse_nested_meta(|meta| {
            let span = meta.path.span();
            if meta.path.is_ident("id") {
                set_role(&mut decl, Role::Id, span)
            } else if meta.path.is_ident("tenant") {
                set_role(&mut decl, Role::Tenant, span)
            } else if meta.path.is_ident("subject") {
                set_role(&mut decl, Role::Subject, span)
            } else if meta.path.is_ident("pii") {
                decl.pii = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident("category") {
                decl.category = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident("blind_index") {
                decl.blind_index = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident("owner") {
                let lit: LitStr = meta.value()?.parse()?;
                match lit.value().as_str() {
                    "tenant" => decl.owner_tenant = true,
                    "subject" => decl.owner_tenant = false,
                    _ => {
                        return Err(err(
                            lit.span(),
                            "`owner` is `\"subject\"` (the default) or `\"tenant\"`",
                        ));
                    }
                }
                Ok(())
            } else if meta.path.is_ident("retain") {
                decl.retain = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident("unique") {
                decl.unique = true;
                Ok(())
            } else if meta.path.is_ident("references") {
                decl.references = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident("not_exported") {
                let reason: LitStr = meta.value()?.parse()?;
                if reason.value().trim().is_empty() {
                    return Err(err(
                        reason.span(),
                        "`not_exported` gives the reason the field is withheld from exports",
                    ));
                }
                decl.not_exported = Some(reason);
                Ok(())
            } else {
                Err(meta.error(
                    "unknown field attribute; expected one of `id`, `tenant`, `subject`, \
                     `pii = \"<category>\"`, `category = \"<category>\"`, \
                     `blind_index = \"<normaliser>\"`, `owner = \"tenant\"`, \
                     `retain = \"legal_obligation\"`, `unique`, \
                     `references = \"<record type>\"`, `not_exported = \"<reason>\"`",
                ))
            }
        })?;
    }
    Ok(decl)
}

pub(super) fn category_ok(lit: &LitStr) -> syn::Result<()> {
    if plenum_core::__is_valid_category(&lit.value()) {
        Ok(())
    } else {
        Err(err(
            lit.span(),
            "a data category is a dotted fideslang-style key such as `user.contact.email`",
        ))
    }
}
