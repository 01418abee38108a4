//! Parsing, checking and generating `Record` implementations.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::spanned::Spanned as _;
use syn::{Data, DeriveInput, Fields, LitStr};

/// The blind index normalisers, by their stable ids (a unit test keeps this list equal to
/// `plenum_crypto::Normaliser`'s).
const NORMALISERS: [(&str, &str); 3] = [
    ("email-v1", "Email"),
    ("phone-e164-v1", "PhoneE164"),
    ("text-nfkc-v1", "Text"),
];

/// The category of a plain field that declares none.
const DEFAULT_CATEGORY: &str = "system.operations";

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
    unique: bool,
    references: Option<LitStr>,
    span: Span,
}

struct Container {
    record_type: LitStr,
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
    Ok(generate(input, &container, &decls))
}

fn parse_container(input: &DeriveInput) -> syn::Result<Container> {
    let mut record_type = None;
    let mut krate: Option<syn::Path> = None;
    let mut views = Vec::new();
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("plenum")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("record_type") {
                let lit: LitStr = meta.value()?.parse()?;
                if !plenum_core::__is_valid_name(&lit.value()) {
                    return Err(err(
                        lit.span(),
                        "a record type is a lower-case identifier: [a-z][a-z0-9_]*, at most 63 bytes",
                    ));
                }
                record_type = Some(lit);
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
                Err(meta.error("unknown record attribute; expected `record_type = \"...\"`, `crate = \"...\"` or `views(\"<purpose key>\", ...)`"))
            }
        })?;
    }
    let record_type = record_type.ok_or_else(|| {
        err(
            input.ident.span(),
            "a record needs `#[plenum(record_type = \"...\")]`: the logical record type and table name",
        )
    })?;
    Ok(Container {
        record_type,
        krate: krate.unwrap_or_else(|| syn::parse_quote!(::plenum)),
        views,
    })
}

fn parse_field(f: &syn::Field) -> syn::Result<FieldDecl> {
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
        unique: false,
        references: None,
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
            } else if meta.path.is_ident("unique") {
                decl.unique = true;
                Ok(())
            } else if meta.path.is_ident("references") {
                decl.references = Some(meta.value()?.parse()?);
                Ok(())
            } else {
                Err(meta.error(
                    "unknown field attribute; expected one of `id`, `tenant`, `subject`, \
                     `pii = \"<category>\"`, `category = \"<category>\"`, \
                     `blind_index = \"<normaliser>\"`, `owner = \"tenant\"`, `unique`, \
                     `references = \"<record type>\"`",
                ))
            }
        })?;
    }
    Ok(decl)
}

fn category_ok(lit: &LitStr) -> syn::Result<()> {
    if plenum_core::__is_valid_category(&lit.value()) {
        Ok(())
    } else {
        Err(err(
            lit.span(),
            "a data category is a dotted fideslang-style key such as `user.contact.email`",
        ))
    }
}

fn check(ident: &syn::Ident, decls: &[FieldDecl]) -> syn::Result<()> {
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
    let has_subject = seen[2].is_some();
    for d in decls.iter().filter(|d| d.role == Role::Field) {
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
            Some(category) => {
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
            }
            None => {
                if let Some(b) = &d.blind_index {
                    return Err(err(
                        b.span(),
                        "`blind_index` needs an encrypted field: declare it `pii = \"<category>\"` and type it `Encrypted<String>`; a plain column is searchable as it is",
                    ));
                }
                if d.owner_tenant {
                    return Err(err(d.span, "`owner` applies to `pii` fields only"));
                }
                if let Some(c) = &d.category {
                    category_ok(c)?;
                }
                if let Some(r) = &d.references
                    && !plenum_core::__is_valid_name(&r.value())
                {
                    return Err(err(r.span(), "`references` names a record type"));
                }
            }
        }
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
    }
    Ok(())
}

fn generate(input: &DeriveInput, c: &Container, decls: &[FieldDecl]) -> TokenStream {
    let k = &c.krate;
    let ident = &input.ident;
    let record_type = &c.record_type;
    let find = |role: Role| decls.iter().find(|d| d.role == role).map(|d| &d.ident);
    let (id, tenant) = (find(Role::Id), find(Role::Tenant));
    let subject = find(Role::Subject);
    let has_subject = subject.is_some();
    let subject_fn = match subject {
        Some(s) => quote!(::core::option::Option::Some(self.#s)),
        None => quote!(::core::option::Option::None),
    };

    let mut specs = Vec::new();
    let mut writes = Vec::new();
    let mut reads = Vec::new();
    let mut consts = Vec::new();
    let mut position = 0usize;
    for d in decls {
        let f = &d.ident;
        match d.role {
            Role::Id => reads.push(quote!(#f: row.id())),
            Role::Tenant => reads.push(quote!(#f: row.tenant())),
            Role::Subject => reads.push(quote!(#f: row.subject()?)),
            Role::Field => {
                let ty = &d.ty;
                let name = LitStr::new(&f.to_string(), f.span());
                let mut spec = match &d.pii {
                    Some(category) => {
                        let owner = if d.owner_tenant {
                            quote!(#k::__private::KeyOwner::Tenant)
                        } else {
                            quote!(#k::__private::KeyOwner::Subject)
                        };
                        quote! {
                            #k::__private::FieldSpec::encrypted(
                                #k::__private::field_name!(#name),
                                #k::__private::data_category!(#category),
                                #owner,
                                <#ty as #k::__private::EncryptedColumn>::NULLABLE,
                            )
                        }
                    }
                    None => {
                        let category = d
                            .category
                            .clone()
                            .unwrap_or_else(|| LitStr::new(DEFAULT_CATEGORY, f.span()));
                        quote! {
                            #k::__private::FieldSpec::plain(
                                #k::__private::field_name!(#name),
                                #k::__private::data_category!(#category),
                                <#ty as #k::__private::ColumnType>::SQL_TYPE,
                                <#ty as #k::__private::ColumnType>::NULLABLE,
                            )
                        }
                    }
                };
                if let Some(b) = &d.blind_index {
                    let variant = NORMALISERS
                        .iter()
                        .find(|(id, _)| *id == b.value())
                        .map_or("Text", |(_, v)| *v);
                    let variant = format_ident!("{}", variant);
                    let column = LitStr::new(&format!("{f}_bidx"), f.span());
                    spec = quote!(#spec.blind_index(#k::__private::Normaliser::#variant, #k::__private::field_name!(#column)));
                    let konst = format_ident!("{}_INDEX", f.to_string().to_uppercase());
                    let doc = format!("The blind index of `{f}`, for `Repository::find`.");
                    consts.push(quote! {
                        #[doc = #doc]
                        pub const #konst: #k::__private::BlindIndexField<Self> =
                            #k::__private::BlindIndexField::__new(#position);
                    });
                    writes.push(quote!(row.encrypted_indexed(#position, &self.#f)?;));
                    reads.push(quote!(#f: row.encrypted(#position)?));
                } else if d.pii.is_some() {
                    writes.push(quote!(row.encrypted(#position, &self.#f)?;));
                    reads.push(quote!(#f: row.encrypted(#position)?));
                } else {
                    writes.push(quote!(row.plain(#position, &self.#f)?;));
                    reads.push(quote!(#f: row.plain(#position)?));
                }
                if d.unique {
                    spec = quote!(#spec.unique());
                }
                if let Some(r) = &d.references {
                    spec = quote!(#spec.references(#k::__private::record_type!(#r)));
                }
                specs.push(spec);
                position += 1;
            }
        }
    }
    let consts = if consts.is_empty() {
        quote!()
    } else {
        quote! {
            impl #ident {
                #(#consts)*
            }
        }
    };
    let views = generate_views(input, c, decls);
    quote! {
        #views

        impl #k::__private::Record for #ident {
            fn spec() -> &'static #k::__private::RecordSpec {
                static SPEC: ::std::sync::LazyLock<#k::__private::RecordSpec> =
                    ::std::sync::LazyLock::new(|| {
                        #k::__private::RecordSpec::__derived(
                            #k::__private::record_type!(#record_type),
                            #has_subject,
                            ::std::vec![#(#specs),*],
                        )
                    });
                &SPEC
            }

            fn id(&self) -> #k::__private::RecordId {
                self.#id
            }

            fn tenant(&self) -> #k::__private::TenantId {
                self.#tenant
            }

            fn subject(&self) -> ::core::option::Option<#k::__private::SubjectId> {
                #subject_fn
            }

            fn write(
                &self,
                row: &mut #k::__private::RowWriter<'_>,
            ) -> ::core::result::Result<(), #k::__private::Error> {
                #(#writes)*
                ::core::result::Result::Ok(())
            }

            fn read(
                row: &mut #k::__private::RowReader,
            ) -> ::core::result::Result<Self, #k::__private::Error> {
                ::core::result::Result::Ok(Self {
                    #(#reads),*
                })
            }
        }

        #consts
    }
}

/// One struct per requested purpose, holding the id, tenant and subject and only the fields the
/// default policy lets that purpose see: a forbidden field does not exist in the view.
fn generate_views(input: &DeriveInput, c: &Container, decls: &[FieldDecl]) -> TokenStream {
    let k = &c.krate;
    let ident = &input.ident;
    let vis = &input.vis;
    let policy = plenum_consent::Policy::plenum_default();
    let mut out = TokenStream::new();
    for (purpose, span) in &c.views {
        let variant = format_ident!("{}", format!("{purpose:?}"), span = *span);
        let name = format_ident!("{}For{}", ident, variant, span = *span);
        let mut fields = Vec::new();
        let mut moves = Vec::new();
        let mut kept_names = Vec::new();
        for d in decls {
            let visible = match d.role {
                Role::Id | Role::Tenant | Role::Subject => true,
                Role::Field => {
                    let category = d
                        .pii
                        .as_ref()
                        .or(d.category.as_ref())
                        .map_or_else(|| DEFAULT_CATEGORY.to_owned(), LitStr::value);
                    plenum_core::DataCategory::new(category)
                        .is_ok_and(|cat| policy.allows_category(*purpose, &cat))
                }
            };
            if visible {
                let (f, ty) = (&d.ident, &d.ty);
                let field_doc = format!("The record's `{f}`.");
                fields.push(quote!(#[doc = #field_doc] pub #f: #ty));
                moves.push(quote!(#f: record.#f));
                if d.role == Role::Field {
                    kept_names.push(f.to_string());
                }
            }
        }
        let doc = format!(
            "`{ident}` as the purpose `{}` may see it under Plenum's default policy: {}. \
             Every other field does not exist here. Read it with `Repository::get_view` or \
             `list_views` and a grant for that purpose.",
            purpose.key(),
            kept_names.join(", ")
        );
        out.extend(quote! {
            #[doc = #doc]
            #[derive(Debug)]
            #vis struct #name {
                #(#fields,)*
            }

            impl #k::__private::View for #name {
                type Record = #ident;
                const PURPOSE: #k::__private::Purpose = #k::__private::Purpose::#variant;
                const FIELDS: &'static [&'static str] = &[#(#kept_names),*];

                fn from_record(record: #ident) -> Self {
                    Self { #(#moves,)* }
                }
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_err(input: DeriveInput) -> String {
        match expand(&input) {
            Ok(_) => String::from("<expanded>"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn normaliser_ids_match_the_crypto_crate() {
        for (id, _) in NORMALISERS {
            let n = plenum_crypto::Normaliser::from_id(id);
            assert_eq!(n.map(|n| n.id()), Some(id));
        }
    }

    #[test]
    fn a_full_declaration_expands_with_an_index_constant() {
        let input: DeriveInput = syn::parse_quote! {
            #[plenum(record_type = "customers")]
            struct Customer {
                #[plenum(id)] id: RecordId,
                #[plenum(tenant)] tenant: TenantId,
                #[plenum(subject)] subject: SubjectId,
                #[plenum(pii = "user.contact.email", blind_index = "email-v1", unique)]
                email: Encrypted<String>,
                #[plenum(category = "system.operations")]
                created_at: DateTime<Utc>,
            }
        };
        let out = expand(&input).map(|t| t.to_string());
        let out = out.unwrap_or_default();
        assert!(out.contains("EMAIL_INDEX"), "{out}");
        assert!(out.contains("email_bidx"));
        assert!(out.contains("encrypted_indexed (0usize"));
        assert!(out.contains("plain (1usize"));
        assert!(out.contains(":: plenum :: __private :: Record for Customer"));
    }

    #[test]
    fn views_leave_out_what_the_purpose_may_not_see() {
        let input: DeriveInput = syn::parse_quote! {
            #[plenum(record_type = "pings", views("marketing.email", "service.technician_location"))]
            pub struct Ping {
                #[plenum(id)] id: RecordId,
                #[plenum(tenant)] tenant: TenantId,
                #[plenum(subject)] technician: SubjectId,
                #[plenum(pii = "user.location.precise")] lat: Encrypted<i32>,
                #[plenum(pii = "user.contact.email")] email: Encrypted<String>,
            }
        };
        let out = expand(&input).map(|t| t.to_string()).unwrap_or_default();
        let marketing = out
            .split("pub struct PingForMarketingEmail")
            .nth(1)
            .and_then(|rest| rest.split('}').next())
            .unwrap_or_default();
        assert!(
            marketing.contains("email") && !marketing.contains("lat"),
            "{marketing}"
        );
        let location = out
            .split("pub struct PingForTechnicianLocation")
            .nth(1)
            .and_then(|rest| rest.split('}').next())
            .unwrap_or_default();
        assert!(
            location.contains("lat") && !location.contains("email"),
            "{location}"
        );
    }

    #[test]
    fn attribute_mistakes_are_errors_that_say_what_to_do() {
        let cases: Vec<(DeriveInput, &str)> = vec![
            (
                syn::parse_quote! {
                    #[plenum(record_type = "t")]
                    struct T { #[plenum(id)] id: RecordId }
                },
                "needs one `#[plenum(tenant)]`",
            ),
            (
                syn::parse_quote! {
                    #[plenum(record_type = "t")]
                    struct T { #[plenum(id)] id: RecordId, #[plenum(id)] other: RecordId, #[plenum(tenant)] t: TenantId }
                },
                "a second `#[plenum(id)]` field",
            ),
            (
                syn::parse_quote! {
                    #[plenum(record_type = "t")]
                    struct T { #[plenum(id)] id: RecordId, #[plenum(tenant)] t: TenantId, #[plenum(blind_index = "email-v1")] email: String }
                },
                "`blind_index` needs an encrypted field",
            ),
            (
                syn::parse_quote! {
                    #[plenum(record_type = "t")]
                    struct T { #[plenum(id)] id: RecordId, #[plenum(tenant)] t: TenantId, #[plenum(subject)] s: SubjectId,
                               #[plenum(pii = "user.contact.email", blind_index = "soundex")] email: Encrypted<String> }
                },
                "unknown normaliser `soundex`",
            ),
            (
                syn::parse_quote! {
                    #[plenum(record_type = "t")]
                    struct T { #[plenum(id)] id: RecordId, #[plenum(tenant)] t: TenantId,
                               #[plenum(pii = "user.name")] name: Encrypted<String> }
                },
                "no `#[plenum(subject)]` field",
            ),
            (
                syn::parse_quote! {
                    #[plenum(record_type = "Bad-Name")]
                    struct T { #[plenum(id)] id: RecordId, #[plenum(tenant)] t: TenantId }
                },
                "lower-case identifier",
            ),
            (
                syn::parse_quote! {
                    struct T { #[plenum(id)] id: RecordId, #[plenum(tenant)] t: TenantId }
                },
                "needs `#[plenum(record_type",
            ),
            (
                syn::parse_quote! {
                    #[plenum(record_type = "t")]
                    struct T { #[plenum(id)] id: RecordId, #[plenum(tenant)] t: TenantId, #[plenum(subject)] s: SubjectId,
                               #[plenum(pii = "user..email")] e: Encrypted<String> }
                },
                "dotted fideslang-style key",
            ),
            (
                syn::parse_quote! {
                    #[plenum(record_type = "t")]
                    struct T { #[plenum(id)] id: RecordId, #[plenum(tenant)] t: TenantId, #[plenum(subject)] s: SubjectId,
                               #[plenum(pii = "user.name", unique)] e: Encrypted<String> }
                },
                "only be unique through a blind index",
            ),
            (
                syn::parse_quote! {
                    #[plenum(record_type = "t")]
                    struct T { #[plenum(id)] id: RecordId, #[plenum(tenant)] t: TenantId, #[plenum(colour)] c: String }
                },
                "unknown field attribute",
            ),
        ];
        for (input, expected) in cases {
            let got = expand_err(input);
            assert!(got.contains(expected), "expected {expected:?}, got {got:?}");
        }
    }
}
