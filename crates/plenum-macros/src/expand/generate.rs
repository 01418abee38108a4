//! Writing the `Record` impl: the spec (fields, categories, key owners, blind indexes), the row
//! reads and writes in declaration order, one `<FIELD>_INDEX` constant per blind index, and the
//! view types (`views.rs`). Generated code names only `<facade>::__private::...` paths and
//! calls only constructors whose checks ran at expansion.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{DeriveInput, LitStr};

use super::views::generate_views;
use super::{Container, FieldDecl, NORMALISERS, RETAIN_GROUNDS, Role};

/// What one data field contributes to the impl.
struct FieldCode {
    spec: TokenStream,
    write: TokenStream,
    read: TokenStream,
    index_const: Option<TokenStream>,
}

/// The `FieldSpec` expression, row write, row read and index constant of data field `d` at
/// `position`.
fn field_code(k: &syn::Path, d: &FieldDecl, position: usize) -> FieldCode {
    let (f, ty) = (&d.ident, &d.ty);
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
                .with_plaintext(<#ty as #k::__private::EncryptedColumn>::PLAINTEXT)
            }
        }
        None => {
            // `check` refused a plain field without a category.
            let category = d
                .category
                .clone()
                .unwrap_or_else(|| LitStr::new("", f.span()));
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
    if let Some(ground) = d
        .retain
        .as_ref()
        .and_then(|r| RETAIN_GROUNDS.iter().find(|(k, _)| *k == r.value()))
    {
        let variant = format_ident!("{}", ground.1);
        spec = quote!(#spec.retained(#k::__private::RetainGround::#variant));
    }
    let mut index_const = None;
    let (write, read) = if let Some(b) = &d.blind_index {
        let variant = NORMALISERS
            .iter()
            .find(|(id, _)| *id == b.value())
            .map_or("Text", |(_, v)| *v);
        let variant = format_ident!("{}", variant);
        let column = LitStr::new(&format!("{f}_bidx"), f.span());
        spec = quote!(#spec.blind_index(#k::__private::Normaliser::#variant, #k::__private::field_name!(#column)));
        let konst = format_ident!("{}_INDEX", f.to_string().to_uppercase());
        let doc = format!("The blind index of `{f}`, for `Repository::find`.");
        index_const = Some(quote! {
            #[doc = #doc]
            pub const #konst: #k::__private::BlindIndexField<Self> =
                #k::__private::BlindIndexField::__new(#position);
        });
        (
            quote!(row.encrypted_indexed(#position, &self.#f)?;),
            quote!(#f: row.encrypted(#position)?),
        )
    } else if d.pii.is_some() {
        (
            quote!(row.encrypted(#position, &self.#f)?;),
            quote!(#f: row.encrypted(#position)?),
        )
    } else {
        (
            quote!(row.plain(#position, &self.#f)?;),
            quote!(#f: row.plain(#position)?),
        )
    };
    if d.unique {
        spec = quote!(#spec.unique());
    }
    if let Some(r) = &d.references {
        spec = quote!(#spec.references(#k::__private::record_type!(#r)));
    }
    if let Some(reason) = &d.not_exported {
        spec = quote!(#spec.not_exported(#reason));
    }
    FieldCode {
        spec,
        write,
        read,
        index_const,
    }
}

/// The `Record` impl, the index constants and the view types of a checked declaration.
pub(super) fn generate(input: &DeriveInput, c: &Container, decls: &[FieldDecl]) -> TokenStream {
    let k = &c.krate;
    let ident = &input.ident;
    let record_type = &c.record_type;
    let find = |role: Role| decls.iter().find(|d| d.role == role).map(|d| &d.ident);
    let (id, tenant) = (find(Role::Id), find(Role::Tenant));
    let subject = find(Role::Subject);
    let has_subject = subject.is_some();
    // `check_erasure` accepted the combination.
    let ground = c
        .retain
        .as_ref()
        .and_then(|r| RETAIN_GROUNDS.iter().find(|(k, _)| *k == r.value()))
        .map(|(_, v)| format_ident!("{}", v));
    let erasure = match (c.erasure.as_ref().map(LitStr::value).as_deref(), ground) {
        (Some("delete"), _) => quote!(::core::option::Option::Some(#k::__private::Erasure::Delete)),
        (Some("scrub"), _) => quote!(::core::option::Option::Some(#k::__private::Erasure::Scrub)),
        (Some("retain"), Some(g)) => quote!(::core::option::Option::Some(
            #k::__private::Erasure::Retain(#k::__private::RetainGround::#g)
        )),
        _ => quote!(::core::option::Option::None),
    };
    // `check_retention` accepted the class and the field.
    let retention = c
        .retention
        .as_ref()
        .and_then(|(class, field)| {
            super::check::retention_variant(&class.value()).map(|v| (format_ident!("{}", v), field))
        })
        .map(|(variant, field)| {
            let field = match field {
                Some(f) => quote!(::core::option::Option::Some(#k::__private::field_name!(#f))),
                None => quote!(::core::option::Option::None),
            };
            quote!(.with_retention(#k::__private::RetentionClass::#variant, #field))
        });
    let subject_fn = match subject {
        Some(s) => quote!(::core::option::Option::Some(self.#s)),
        None => quote!(::core::option::Option::None),
    };
    let (mut specs, mut writes, mut reads, mut consts) = (vec![], vec![], vec![], vec![]);
    for d in decls {
        let f = &d.ident;
        match d.role {
            Role::Id => reads.push(quote!(#f: row.id())),
            Role::Tenant => reads.push(quote!(#f: row.tenant())),
            Role::Subject => reads.push(quote!(#f: row.subject()?)),
            Role::Field => {
                let code = field_code(k, d, specs.len());
                specs.push(code.spec);
                writes.push(code.write);
                reads.push(code.read);
                consts.extend(code.index_const);
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
                            #erasure,
                        )
                        #retention
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
