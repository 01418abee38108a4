//! The HVAC service of `cargo run --example hvac_service`, shared with its HTTP tests
//! (`tests/integration/http.rs` includes this file): customers, a marketing list of the
//! customers who consented, consent, a subject's export, and a route that fails after writing
//! (its write is rolled back). Identity is a server-side session token mapped to a tenant and
//! an actor, never a tenant id the caller sends.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use plenum::consent::{ConsentEvent, Evidence, Method, Policy, Purpose};
use plenum::core::{Actor, RecordId, SubjectId, TenantId};
use plenum::crypto::{Backend, Keyring, KeyringConfig, LocalKeyProvider, secrecy::SecretBox};
use plenum::store::{Auditor, Authorisation, DbKeyStore, Encrypted, Gate, Records, TenantPool};
use plenum_axum::{ApiError, Identity, IdentityProvider, Plenum, Scoped, purpose};
use plenum_hvac::Customer;

/// Server-side sessions: an opaque bearer token names a tenant and an actor.
#[derive(Debug, Default)]
pub(crate) struct Sessions(HashMap<String, Identity>);

impl Sessions {
    /// Opens a session for `actor` in `tenant` and returns its token.
    pub(crate) fn open(&mut self, tenant: TenantId, actor: Actor) -> String {
        let token = format!("{}{}", RecordId::generate(), RecordId::generate());
        self.0.insert(token.clone(), Identity { tenant, actor });
        token
    }
}

impl IdentityProvider for Sessions {
    fn identify(&self, parts: &axum::http::request::Parts) -> Option<Identity> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION)?;
        let token = header.to_str().ok()?.strip_prefix("Bearer ")?;
        self.0.get(token).cloned()
    }
}

/// The service's roles and the purposes each may ask for.
pub(crate) fn gate() -> Gate {
    Gate::new(
        Policy::plenum_default(),
        Authorisation::new()
            .allow(
                plenum::core::role!("office"),
                [Purpose::Scheduling, Purpose::Billing],
            )
            .allow(plenum::core::role!("marketer"), [Purpose::MarketingEmail])
            .allow(plenum::core::role!("privacy"), [Purpose::RightsFulfilment]),
    )
}

/// The app over `pool` (SQLite or PostgreSQL, with the HVAC tables) and `sessions`.
///
/// # Errors
///
/// The library's, building the keyring and the auditor.
pub(crate) fn router(
    pool: TenantPool,
    sessions: Sessions,
) -> Result<axum::Router, plenum::store::Error> {
    let keyring = Arc::new(Keyring::new(
        Arc::new(LocalKeyProvider::new(
            Backend::default(),
            1,
            &SecretBox::new(Box::new([0x5e; 32])),
        )?),
        Arc::new(DbKeyStore::new(pool.clone())),
        KeyringConfig::default(),
    ));
    let auditor = Auditor::new(keyring.clone(), &pool, "hvac-service")?;
    let records =
        Records::new(keyring, Arc::new(auditor)).with_record_types(plenum_hvac::record_types());
    let plenum = Arc::new(Plenum {
        pool,
        records,
        gate: gate(),
        identity: sessions,
    });
    Ok(axum::Router::new()
        .route("/customers", post(create_customer))
        .route("/customers/failing", post(create_then_fail))
        .route("/customers/{id}", get(customer))
        .route("/subjects/{subject}/consent/marketing-email", post(consent))
        .route("/customers/{id}/export", get(export))
        .route("/customers/{id}/properties", post(add_property))
        .route("/properties/{id}/appointments", post(book))
        .route("/customers/{id}/invoices", post(bill))
        .route("/invoices/{id}", get(invoice))
        .route("/marketing/customers", get(marketing_list))
        .layer(axum::middleware::from_fn_with_state(
            plenum,
            plenum_axum::scope::<Sessions>,
        )))
}

/// A new customer, as the office sends it.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct NewCustomer {
    name: String,
    email: String,
    phone: String,
    address: String,
}

fn opened(e: &Encrypted<String>) -> Option<String> {
    e.open().ok().map(|p| p.expose().clone())
}

async fn create_customer(
    scoped: Scoped<purpose::Scheduling>,
    Json(new): Json<NewCustomer>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let c = Customer {
        id: RecordId::generate(),
        tenant: scoped.tenant(),
        subject: SubjectId::generate(),
        name: Encrypted::new(new.name),
        email: Encrypted::new(new.email),
        phone: Encrypted::new(new.phone),
        service_address: Encrypted::new(new.address),
        created_at: chrono::Utc::now(),
    };
    scoped.insert(&c).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "id": c.id, "subject": c.subject })),
    ))
}

/// Writes a customer, then fails: the write is rolled back with the request.
async fn create_then_fail(
    scoped: Scoped<purpose::Scheduling>,
    body: Json<NewCustomer>,
) -> Result<StatusCode, ApiError> {
    let (_, Json(created)) = create_customer(scoped, body).await?;
    Err(ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!(
            "failed after writing {}",
            created["id"].as_str().unwrap_or_default()
        ),
    ))
}

/// A customer, in the handful of lines a handler needs to read one under a purpose, audited.
async fn customer(
    scoped: Scoped<purpose::Scheduling>,
    Path(id): Path<RecordId>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let c: Customer = scoped.get(id).await?;
    Ok(Json(serde_json::json!({
        "id": c.id, "name": opened(&c.name), "email": opened(&c.email),
        "phone": opened(&c.phone), "address": opened(&c.service_address),
    })))
}

/// The customer's consent to marketing email, as the sign-up form recorded it. By subject:
/// marketing may not read a customer who has not consented yet.
async fn consent(
    scoped: Scoped<purpose::MarketingEmail>,
    Path(subject): Path<SubjectId>,
) -> Result<StatusCode, ApiError> {
    let evidence = Evidence {
        notice_version: "privacy-2026-12".to_owned(),
        notice_sha256: [0; 32],
        method: Method::Api,
        actor: plenum::core::ActorId::generate(),
        at: chrono::Utc::now(),
    };
    scoped
        .record_consent(&ConsentEvent::given(
            subject,
            Purpose::MarketingEmail,
            evidence,
        ))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The customers marketing may email: the library returns only those who consented, and no
/// field marketing email may not see.
async fn marketing_list(
    scoped: Scoped<purpose::MarketingEmail>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let page = scoped.list::<Customer>(None, 100).await?;
    let emails: Vec<Option<String>> = page.items.iter().map(|c| opened(&c.email)).collect();
    Ok(Json(serde_json::json!({ "emails": emails })))
}

/// Everything about one customer (the subject export), for a privacy officer.
async fn export(
    scoped: Scoped<purpose::RightsFulfilment>,
    Path(id): Path<RecordId>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let document = scoped
        .run(async |records, tx, grant| {
            let c: Customer = records.repository::<Customer>().get(tx, grant, id).await?;
            let mut sink = plenum::store::JsonExport::new(Vec::new());
            records
                .export_subject(tx, grant, c.subject, &mut sink)
                .await?;
            Ok(sink.into_inner())
        })
        .await?;
    serde_json::from_slice(&document)
        .map(Json)
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "export"))
}

/// A property of a customer, as the office sends it.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct NewProperty {
    address: String,
    square_feet: Option<i64>,
}

async fn add_property(
    scoped: Scoped<purpose::Scheduling>,
    Path(customer): Path<RecordId>,
    Json(new): Json<NewProperty>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let c: Customer = scoped.get(customer).await?;
    let p = plenum_hvac::Property {
        id: RecordId::generate(),
        tenant: scoped.tenant(),
        subject: c.subject,
        customer_id: c.id,
        address: Encrypted::new(new.address),
        square_feet: new.square_feet,
    };
    scoped.insert(&p).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "id": p.id }))))
}

/// A visit, as the office books it.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct NewAppointment {
    starts_at: chrono::DateTime<chrono::Utc>,
    ends_at: chrono::DateTime<chrono::Utc>,
    notes: Option<String>,
}

async fn book(
    scoped: Scoped<purpose::Scheduling>,
    Path(property): Path<RecordId>,
    Json(new): Json<NewAppointment>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let p: plenum_hvac::Property = scoped.get(property).await?;
    let a = plenum_hvac::Appointment {
        id: RecordId::generate(),
        tenant: scoped.tenant(),
        subject: p.subject,
        property_id: p.id,
        technician: SubjectId::generate(),
        starts_at: new.starts_at,
        ends_at: new.ends_at,
        notes: new.notes.map(Encrypted::new),
    };
    scoped.insert(&a).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "id": a.id }))))
}

/// A bill, under billing (a purpose of its own: scheduling staff without it cannot bill).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct NewInvoice {
    amount_cents: i64,
    due_on: chrono::NaiveDate,
}

async fn bill(
    scoped: Scoped<purpose::Billing>,
    Path(customer): Path<RecordId>,
    Json(new): Json<NewInvoice>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let c: Customer = scoped.get(customer).await?;
    let i = plenum_hvac::Invoice {
        id: RecordId::generate(),
        tenant: scoped.tenant(),
        subject: c.subject,
        customer_id: c.id,
        amount_cents: Encrypted::new(new.amount_cents),
        currency: "USD".to_owned(),
        due_on: new.due_on,
        paid: false,
    };
    scoped.insert(&i).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "id": i.id }))))
}

async fn invoice(
    scoped: Scoped<purpose::Billing>,
    Path(id): Path<RecordId>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let i: plenum_hvac::Invoice = scoped.get(id).await?;
    let amount = i.amount_cents.open().ok().map(|a| *a.expose());
    Ok(Json(
        serde_json::json!({ "id": i.id, "amount_cents": amount, "due_on": i.due_on }),
    ))
}
