//! The per-purpose view types: for each purpose named in `views(...)`, a struct holding only
//! the fields Plenum's default policy lets that purpose see, so a forbidden field does not
//! exist in the view.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{DeriveInput, LitStr};

use super::{Container, FieldDecl, Role};

/// One struct per requested purpose, holding the id, tenant and subject and only the fields the
/// default policy lets that purpose see: a forbidden field does not exist in the view.
pub(super) fn generate_views(
    input: &DeriveInput,
    c: &Container,
    decls: &[FieldDecl],
) -> TokenStream {
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
                        .map_or_else(String::new, LitStr::value);
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
