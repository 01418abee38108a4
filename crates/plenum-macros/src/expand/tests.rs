//! Unit tests of the derive: expansions, and every mistake an error that says what to do.

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
        #[plenum(record_type = "customers", erasure = "delete")]
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
        #[plenum(record_type = "pings", erasure = "delete", views("marketing.email", "service.technician_location"))]
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
                #[plenum(record_type = "t", erasure = "delete")]
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
            "a record type is a table name",
        ),
        (
            // The SQLite consent ledger: a record declared with its name would write forged
            // consent through `Repository::insert`.
            syn::parse_quote! {
                #[plenum(record_type = "plenum_consent_events")]
                struct T { #[plenum(id)] id: RecordId, #[plenum(tenant)] t: TenantId }
            },
            "not starting with `plenum`",
        ),
        (
            syn::parse_quote! {
                struct T { #[plenum(id)] id: RecordId, #[plenum(tenant)] t: TenantId }
            },
            "needs `#[plenum(record_type",
        ),
        (
            syn::parse_quote! {
                #[plenum(record_type = "t", erasure = "delete")]
                struct T { #[plenum(id)] id: RecordId, #[plenum(tenant)] t: TenantId, #[plenum(subject)] s: SubjectId,
                           #[plenum(pii = "user..email")] e: Encrypted<String> }
            },
            "dotted fideslang-style key",
        ),
        (
            syn::parse_quote! {
                #[plenum(record_type = "t", erasure = "delete")]
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
        (
            syn::parse_quote! {
                #[plenum(record_type = "t")]
                struct T { #[plenum(id)] id: RecordId, #[plenum(tenant)] t: TenantId, #[plenum(subject)] s: SubjectId }
            },
            "declares what erasing the subject does",
        ),
        (
            syn::parse_quote! {
                #[plenum(record_type = "t", erasure = "retain")]
                struct T { #[plenum(id)] id: RecordId, #[plenum(tenant)] t: TenantId, #[plenum(subject)] s: SubjectId }
            },
            "needs its ground",
        ),
        (
            syn::parse_quote! {
                #[plenum(record_type = "t", erasure = "delete")]
                struct T { #[plenum(id)] id: RecordId, #[plenum(tenant)] t: TenantId }
            },
            "`erasure` applies to records with a",
        ),
        (
            syn::parse_quote! {
                #[plenum(record_type = "t")]
                struct T { #[plenum(id)] id: RecordId, #[plenum(tenant)] t: TenantId, nickname: String }
            },
            "every field declares its data category",
        ),
        (
            syn::parse_quote! {
                #[plenum(record_type = "t", erasure = "delete")]
                struct T { #[plenum(id)] id: RecordId, #[plenum(tenant)] t: TenantId, #[plenum(subject)] s: SubjectId,
                           #[plenum(pii = "user.name", owner = "tenant")] n: Encrypted<String> }
            },
            "outlives their erasure: say why with `retain",
        ),
        (
            syn::parse_quote! {
                #[plenum(record_type = "t", erasure = "delete")]
                struct T { #[plenum(id)] id: RecordId, #[plenum(tenant)] t: TenantId, #[plenum(subject)] s: SubjectId,
                           #[plenum(pii = "user.name", owner = "tenant", retain = "forever")] n: Encrypted<String> }
            },
            "`retain` is `\"legal_obligation\"`",
        ),
        (
            syn::parse_quote! {
                #[plenum(record_type = "t", erasure = "delete")]
                struct T { #[plenum(id)] id: RecordId, #[plenum(tenant)] t: TenantId, #[plenum(subject)] s: SubjectId,
                           #[plenum(pii = "user.name", retain = "legal_obligation")] n: Encrypted<String> }
            },
            "`retain` applies to a person's data kept under the tenant key",
        ),
    ];
    for (input, expected) in cases {
        let got = expand_err(input);
        assert!(got.contains(expected), "expected {expected:?}, got {got:?}");
    }
}
