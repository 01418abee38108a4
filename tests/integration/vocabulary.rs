//! The core vocabulary as reached through the facade.

use plenum::prelude::*;

#[test]
fn facade_ids_round_trip_through_json_payloads() {
    // A job payload carries ids as strings; reading it back yields the same typed ids.
    let tenant = TenantId::generate();
    let subject = SubjectId::generate();
    let payload = serde_json::json!({ "tenant": tenant, "subject": subject });
    let tenant_back: TenantId = serde_json::from_value(payload["tenant"].clone()).unwrap();
    let subject_back: SubjectId = serde_json::from_value(payload["subject"].clone()).unwrap();
    assert_eq!(tenant_back, tenant);
    assert_eq!(subject_back, subject);
}
