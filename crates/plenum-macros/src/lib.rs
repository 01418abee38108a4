//! `#[derive(Record)]`: declare a record type once. Use it through the `plenum` crate
//! (`plenum::Record`), whose documentation describes the attributes.
//!
//! This crate is only the shim; the parsing, checks and code generation live in `expand.rs`
//! as plain functions over `proc_macro2` tokens, so they are unit-tested without a compiler in
//! the loop (and by trybuild in the workspace's `tests/` crate, with the messages users see).

#![forbid(unsafe_code)]

mod expand;

/// Derives `plenum::store::Record`. See the `plenum` crate for the attributes.
#[proc_macro_derive(Record, attributes(plenum))]
pub fn derive_record(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand::expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
