//! The records of an HVAC business, declared once with `#[derive(Record)]`: what Plenum's tests,
//! examples and benches store. They double as a worked example of choosing categories, key
//! owners and blind indexes.
//!
//! | Record            | Subject       | Encrypted (category)                                   | Blind index |
//! |-------------------|---------------|--------------------------------------------------------|-------------|
//! | [`Customer`]      | the homeowner | name, email, phone, service address                    | email, phone (email unique) |
//! | [`Property`]      | the homeowner | address                                                | address     |
//! | [`Equipment`]     | the homeowner | serial number                                          | serial      |
//! | [`Appointment`]   | the homeowner | notes                                                  | -           |
//! | [`Invoice`]       | the homeowner | amount, **tenant key** (financial records outlive erasure) | -       |
//! | [`LocationPing`]  | the technician| latitude, longitude (`user.location.precise`)          | -           |
//! | [`MarketingProfile`] | the homeowner | products of interest (marketing data)             | -           |
//!
//! Customers have view types for marketing email and SMS and for dispatch
//! (`CustomerForMarketingEmail`, ...), location pings for technician location and marketing email
//! (the latter holds no coordinates at all).
//!
//! Invoice amounts are sealed under the tenant's key, not the subject's: the policy keeps
//! financial records for seven years, so erasing a homeowner must not destroy them (they are
//! erased by their own retention sweep instead). Marketing profiles are marketing data: the
//! retention sweep deletes them once the homeowner's consent to marketing has ended.

#![forbid(unsafe_code)]

use chrono::{DateTime, NaiveDate, Utc};
use plenum::Record;
use plenum::core::{RecordId, SubjectId, TenantId};
use plenum::store::{Encrypted, Record as _, TableSpec};

/// A homeowner or business the tenant serves.
#[derive(Debug, Clone, Record)]
#[plenum(
    record_type = "customers",
    erasure = "scrub",
    views("marketing.email", "marketing.sms", "service.dispatch")
)]
pub struct Customer {
    /// Id.
    #[plenum(id)]
    pub id: RecordId,
    /// Tenant.
    #[plenum(tenant)]
    pub tenant: TenantId,
    /// The customer as a data subject.
    #[plenum(subject)]
    pub subject: SubjectId,
    /// Full name.
    #[plenum(pii = "user.name")]
    pub name: Encrypted<String>,
    /// Email, unique per tenant, searchable.
    #[plenum(pii = "user.contact.email", blind_index = "email-v1", unique)]
    pub email: Encrypted<String>,
    /// Phone, searchable.
    #[plenum(pii = "user.contact.phone_number", blind_index = "phone-e164-v1")]
    pub phone: Encrypted<String>,
    /// Where the service happens.
    #[plenum(pii = "user.contact.address")]
    pub service_address: Encrypted<String>,
    /// When the customer was created.
    #[plenum(category = "system.operations")]
    pub created_at: DateTime<Utc>,
}

/// A property serviced for a customer.
#[derive(Debug, Clone, Record)]
#[plenum(record_type = "properties", erasure = "delete")]
pub struct Property {
    /// Id.
    #[plenum(id)]
    pub id: RecordId,
    /// Tenant.
    #[plenum(tenant)]
    pub tenant: TenantId,
    /// The owner as a data subject.
    #[plenum(subject)]
    pub subject: SubjectId,
    /// The customer.
    #[plenum(references = "customers", category = "system.operations")]
    pub customer_id: RecordId,
    /// Street address, searchable.
    #[plenum(pii = "user.contact.address", blind_index = "text-nfkc-v1")]
    pub address: Encrypted<String>,
    /// Heated floor area.
    #[plenum(category = "system.operations")]
    pub square_feet: Option<i64>,
}

/// A unit installed at a property.
#[derive(Debug, Clone, Record)]
#[plenum(record_type = "equipment", erasure = "delete")]
pub struct Equipment {
    /// Id.
    #[plenum(id)]
    pub id: RecordId,
    /// Tenant.
    #[plenum(tenant)]
    pub tenant: TenantId,
    /// The property owner as a data subject.
    #[plenum(subject)]
    pub subject: SubjectId,
    /// Where it is installed.
    #[plenum(references = "properties", category = "system.operations")]
    pub property_id: RecordId,
    /// Manufacturer model: not personal.
    #[plenum(category = "system.operations")]
    pub model: String,
    /// Serial number: identifies a device in someone's home, searchable.
    #[plenum(pii = "user.device.device_id", blind_index = "text-nfkc-v1")]
    pub serial: Encrypted<String>,
    /// Installation date.
    #[plenum(category = "system.operations")]
    pub installed_on: Option<NaiveDate>,
}

/// A visit.
#[derive(Debug, Clone, Record)]
#[plenum(record_type = "appointments", erasure = "delete")]
pub struct Appointment {
    /// Id.
    #[plenum(id)]
    pub id: RecordId,
    /// Tenant.
    #[plenum(tenant)]
    pub tenant: TenantId,
    /// The homeowner as a data subject.
    #[plenum(subject)]
    pub subject: SubjectId,
    /// Where.
    #[plenum(references = "properties", category = "system.operations")]
    pub property_id: RecordId,
    /// The technician (a data subject of their own).
    #[plenum(category = "user.unique_id")]
    pub technician: SubjectId,
    /// Window start.
    #[plenum(category = "system.operations")]
    pub starts_at: DateTime<Utc>,
    /// Window end.
    #[plenum(category = "system.operations")]
    pub ends_at: DateTime<Utc>,
    /// Free-text notes: may hold anything, so encrypted.
    #[plenum(pii = "user.content.private")]
    pub notes: Option<Encrypted<String>>,
}

/// A bill.
#[derive(Debug, Clone, Record)]
#[plenum(
    record_type = "invoices",
    erasure = "retain",
    retain = "legal_obligation",
    retention = "financial_records",
    counted_from = "due_on"
)]
pub struct Invoice {
    /// Id.
    #[plenum(id)]
    pub id: RecordId,
    /// Tenant.
    #[plenum(tenant)]
    pub tenant: TenantId,
    /// The billed homeowner as a data subject.
    #[plenum(subject)]
    pub subject: SubjectId,
    /// The customer.
    #[plenum(references = "customers", category = "system.operations")]
    pub customer_id: RecordId,
    /// Amount in cents, under the tenant key (kept for seven years, beyond erasure).
    #[plenum(pii = "user.financial", owner = "tenant", retain = "legal_obligation")]
    pub amount_cents: Encrypted<i64>,
    /// ISO 4217 currency.
    #[plenum(category = "system.operations")]
    pub currency: String,
    /// Due date.
    #[plenum(category = "system.operations")]
    pub due_on: NaiveDate,
    /// Paid yet.
    #[plenum(category = "system.operations")]
    pub paid: bool,
}

/// A technician's precise position, sampled while on duty (explicit consent in the consent
/// issue).
#[derive(Debug, Clone, Record)]
#[plenum(
    record_type = "technician_location_pings",
    erasure = "delete",
    views("service.technician_location", "marketing.email")
)]
pub struct LocationPing {
    /// Id.
    #[plenum(id)]
    pub id: RecordId,
    /// Tenant.
    #[plenum(tenant)]
    pub tenant: TenantId,
    /// The technician as a data subject.
    #[plenum(subject)]
    pub technician: SubjectId,
    /// When.
    #[plenum(category = "system.operations")]
    pub recorded_at: DateTime<Utc>,
    /// Latitude in micro-degrees.
    #[plenum(pii = "user.location.precise")]
    pub latitude_micro: Encrypted<i32>,
    /// Longitude in micro-degrees.
    #[plenum(pii = "user.location.precise")]
    pub longitude_micro: Encrypted<i32>,
}

/// What a homeowner told the business they would like to hear about: held only for marketing,
/// so deleted by the retention sweep once their consent to every marketing purpose has ended.
#[derive(Debug, Clone, Record)]
#[plenum(
    record_type = "marketing_profiles",
    erasure = "delete",
    retention = "marketing_data"
)]
pub struct MarketingProfile {
    /// Id.
    #[plenum(id)]
    pub id: RecordId,
    /// Tenant.
    #[plenum(tenant)]
    pub tenant: TenantId,
    /// The homeowner as a data subject.
    #[plenum(subject)]
    pub subject: SubjectId,
    /// The customer.
    #[plenum(references = "customers", category = "system.operations")]
    pub customer_id: RecordId,
    /// Products and services they asked to hear about, in their words.
    #[plenum(pii = "user.behavior.purchase_history")]
    pub interests: Encrypted<String>,
    /// When they told the business.
    #[plenum(category = "system.operations")]
    pub recorded_at: DateTime<Utc>,
}

/// The data map of these records under `policy`: every field with its category, each record
/// type with whose data it holds (homeowners', technicians' for location pings) and the
/// retention class it declares.
pub fn data_map(policy: plenum::consent::Policy) -> plenum::consent::DataMap {
    use plenum::consent::SubjectKind;
    let mut map = plenum::consent::DataMap::new(policy);
    let specs = [
        (Customer::spec(), SubjectKind::EndCustomer),
        (Property::spec(), SubjectKind::EndCustomer),
        (Equipment::spec(), SubjectKind::EndCustomer),
        (Appointment::spec(), SubjectKind::EndCustomer),
        (Invoice::spec(), SubjectKind::EndCustomer),
        (LocationPing::spec(), SubjectKind::Technician),
        (MarketingProfile::spec(), SubjectKind::EndCustomer),
    ];
    for (spec, subject) in specs {
        map.add_record(
            spec.record_type().clone(),
            Some(subject),
            spec.fields().iter().map(plenum::store::FieldSpec::mapped),
        )
        .retention = spec.retention().map(|(class, _)| class);
    }
    map
}

/// Every record type, in dependency order (referenced types first): what
/// `Records::with_record_types` takes, so that erasure reaches each. Customers are scrubbed
/// (invoices reference them), invoices retained for seven years under a legal obligation,
/// everything else about the homeowner deleted.
pub fn record_types() -> Vec<&'static plenum::store::RecordSpec> {
    vec![
        Customer::spec(),
        Property::spec(),
        Equipment::spec(),
        Appointment::spec(),
        Invoice::spec(),
        LocationPing::spec(),
        MarketingProfile::spec(),
    ]
}

/// Every table, in dependency order (referenced tables first).
pub fn tables() -> Vec<TableSpec> {
    vec![
        Customer::spec().table(),
        Property::spec().table(),
        Equipment::spec().table(),
        Appointment::spec().table(),
        Invoice::spec().table(),
        LocationPing::spec().table(),
        MarketingProfile::spec().table(),
    ]
}
