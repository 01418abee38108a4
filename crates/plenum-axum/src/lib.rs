//! Plenum for axum services. Per request, [`scope`] (a middleware) takes the tenant and actor
//! from the service's own verified identity ([`IdentityProvider`]: JWT claims, mTLS, a
//! session; never a tenant id the caller puts in a header or path), gives the request a
//! `RequestId`, and, if a handler touched records, commits the request's tenant transaction on
//! a success response and rolls it back otherwise. Handlers reach records only through
//! [`Scoped<P>`], an extractor that names its purpose as a type: a handler without one cannot
//! read or write a record, and one whose actor may not ask for `P` is refused before it runs.
//!
//! ```ignore
//! async fn customer(
//!     scoped: Scoped<purpose::Scheduling>,
//!     Path(id): Path<RecordId>,
//! ) -> Result<Json<CustomerView>, ApiError> {
//!     let customer: Customer = scoped.get(id).await?;
//!     Ok(Json(CustomerView::from(&customer)))
//! }
//! ```
//!
//! Every read is audited by the library like any other (the request's id is on each event),
//! and a read whose transaction rolls back is still on record.

#![forbid(unsafe_code)]

mod error;
mod identity;
pub mod purpose;
mod scope;

pub use crate::error::ApiError;
pub use crate::identity::{Identity, IdentityProvider};
pub use crate::scope::{Plenum, REQUEST_ID_HEADER, Scoped, scope};
