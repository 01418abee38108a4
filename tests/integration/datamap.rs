//! The data map of the HVAC records, as the `data_map` example prints it, checked field by field.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers: a missing entry is a failed test"
)]

use plenum::consent::Policy;
use serde_json::Value;

fn declaration<'a>(json: &'a Value, purpose: &str) -> &'a Value {
    json["system"][0]["privacy_declarations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["plenum"]["purpose"] == purpose)
        .unwrap_or_else(|| panic!("no declaration for {purpose}"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[test]
fn the_fides_manifest_lists_every_field_and_what_each_purpose_uses() {
    let json = plenum_hvac::data_map(Policy::plenum_default()).to_fides_json();
    let collections = json["dataset"][0]["collections"].as_array().unwrap();
    let names: Vec<&str> = collections
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "customers",
            "properties",
            "equipment",
            "appointments",
            "invoices",
            "technician_location_pings",
            "marketing_profiles"
        ]
    );
    let customers = &collections[0]["fields"];
    let email = customers
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "email")
        .unwrap();
    assert_eq!(strings(&email["data_categories"]), ["user.contact.email"]);

    let marketing = declaration(&json, "marketing.email");
    assert_eq!(marketing["data_use"], "marketing.communications.email");
    assert_eq!(marketing["legal_basis_for_processing"], "Consent");
    assert_eq!(marketing["plenum"]["consent"], "consent");
    let cats = strings(&marketing["data_categories"]);
    assert!(
        cats.contains(&"user.contact.email") && cats.contains(&"user.name"),
        "{cats:?}"
    );
    for hidden in [
        "user.contact.phone_number",
        "user.contact.address",
        "user.location.precise",
        "user.financial",
        "user.content.private",
    ] {
        assert!(
            !cats.contains(&hidden),
            "marketing.email must not use {hidden}"
        );
    }

    let location = declaration(&json, "service.technician_location");
    assert_eq!(location["plenum"]["consent"], "explicit");
    assert!(strings(&location["data_categories"]).contains(&"user.location.precise"));
    assert!(strings(&location["data_subjects"]).contains(&"employee"));

    let improve = declaration(&json, "improve.aggregated");
    assert!(
        strings(&improve["data_categories"])
            .iter()
            .all(|c| c.starts_with("system")),
        "improvement sees no personal data"
    );
    let billing = declaration(&json, "service.billing");
    assert!(strings(&billing["data_categories"]).contains(&"user.financial"));
    assert_eq!(
        json["system"][0]["plenum_policy_version"],
        "plenum-default-1"
    );
}

#[test]
fn the_record_of_processing_names_bases_rights_and_ccpa_categories() {
    let text = plenum_hvac::data_map(Policy::plenum_default()).to_record_of_processing();
    assert!(text.contains("## Marketing by email (`marketing.email` v1)"));
    assert!(text.contains("- Legal basis: consent (Art. 6(1)(a))"));
    // Financial records are kept under a legal obligation: no erasure, no portability.
    let financial = text
        .split("\n## ")
        .find(|s| s.starts_with("Keeping financial records"))
        .unwrap();
    assert!(
        financial.contains("Rights in force: Art. 15, Art. 16, Art. 18\n"),
        "{financial}"
    );
    assert!(financial.contains("invoices.amount_cents (user.financial)"));
    // Precise location is CCPA geolocation and sensitive personal information.
    assert!(text.contains(
        "| technician_location_pings | latitude_micro | `user.location.precise` | GL | no |"
    ));
    assert!(text.contains("| customers | email | `user.contact.email` | AB | no |"));
}

/// A person's data kept under the tenant key says why it outlives their erasure, in both
/// renderings of the map (the declaration would not compile without it).
#[test]
fn data_kept_after_erasure_shows_its_ground() {
    let map = plenum_hvac::data_map(Policy::plenum_default());
    let text = map.to_record_of_processing();
    assert!(
        text.contains(
            "| invoices | amount_cents | `user.financial` | BD | legal_obligation (Art. 17(3)(b)) |"
        ),
        "{text}"
    );
    let json = map.to_fides_json();
    let invoices = json["dataset"][0]["collections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "invoices")
        .unwrap();
    let amount = invoices["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "amount_cents")
        .unwrap();
    assert_eq!(amount["plenum_retain"], "legal_obligation");
    let others_kept = json["dataset"][0]["collections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["fields"].as_array().unwrap())
        .filter(|f| f.get("plenum_retain").is_some())
        .count();
    assert_eq!(others_kept, 1, "only the invoice amount outlives erasure");
}

/// The data map carries each record type's retention: the class it declares (or the tenant's
/// business data), what the period counts from, how long and what then, under the map's
/// schedule, in the fideslang manifest and the record of processing (Art. 30(1)(f)).
#[test]
fn the_data_map_says_how_long_each_record_type_is_kept() {
    use plenum::consent::{Offset, RetentionClass, RetentionNarrowing, RetentionSchedule};
    let map = plenum_hvac::data_map(Policy::plenum_default());
    let json = map.to_fides_json();
    let collections = json["dataset"][0]["collections"].as_array().unwrap();
    let kept = |name: &str| {
        collections.iter().find(|c| c["name"] == name).unwrap()["plenum_retention"].clone()
    };
    assert_eq!(
        kept("invoices"),
        serde_json::json!({"class": "financial_records", "counted_from": "transaction_date", "kept_for": "7 years", "then": "delete"})
    );
    assert_eq!(kept("marketing_profiles")["class"], "marketing_data");
    assert_eq!(
        kept("marketing_profiles")["counted_from"],
        "consent_withdrawn"
    );
    assert_eq!(
        kept("customers"),
        serde_json::json!({"class": "tenant_business_data", "counted_from": "contract_terminated", "kept_for": "30 days", "then": "crypto_shred"})
    );
    let text = map.to_record_of_processing();
    assert!(
        text.contains(
            "| invoices | `financial_records` | `transaction_date` | 7 years | `delete` |"
        ),
        "{text}"
    );
    // A tenant's narrowed schedule is what its map says.
    let narrowed = RetentionSchedule::plenum_default()
        .narrowed(
            "short",
            &RetentionNarrowing::new().shorten(RetentionClass::TenantBusinessData, Offset::Days(7)),
        )
        .unwrap();
    let text = plenum_hvac::data_map(Policy::plenum_default())
        .with_schedule(narrowed)
        .to_record_of_processing();
    assert!(
        text.contains("| customers | `tenant_business_data` | `contract_terminated` | 7 days | `crypto_shred` |"),
        "{text}"
    );
}
