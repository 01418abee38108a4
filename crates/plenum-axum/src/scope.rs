//! One request's Plenum scope: the middleware that identifies it and settles its transaction,
//! and the purpose-bound extractor handlers use to reach records.

use core::fmt;
use core::marker::PhantomData;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use plenum_consent::ConsentEvent;
use plenum_core::RecordId;
use plenum_store::{Gate, Page, PurposeGrant, Record, Records, TenantPool, TenantTx};
use tokio::sync::Mutex;
use tracing::Instrument as _;

use crate::error::ApiError;
use crate::identity::IdentityProvider;
use crate::purpose::PurposeMarker;

/// The response header naming the request's id (`RequestId`), which every audit event of the
/// request carries.
pub const REQUEST_ID_HEADER: &str = "x-plenum-request";

/// What the service hands the middleware once: its pool, records, gate and authentication.
pub struct Plenum<I> {
    /// The tenant pool.
    pub pool: TenantPool,
    /// The registered record types, keyring and audit hook.
    pub records: Records,
    /// Who may ask for which purpose.
    pub gate: Gate,
    /// The service's authentication.
    pub identity: I,
}

impl<I> fmt::Debug for Plenum<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plenum").finish_non_exhaustive()
    }
}

/// One request's scope, in the request's extensions.
struct RequestScope {
    pool: TenantPool,
    records: Records,
    gate: Gate,
    request: plenum_store::Request,
    /// Begun on first use; settled by the middleware after the handler.
    tx: Mutex<Option<TenantTx>>,
}

/// The middleware: `Router::layer(axum::middleware::from_fn_with_state(plenum, scope))`.
/// Refuses a request its [`IdentityProvider`] does not identify (401); otherwise runs the
/// handler inside a `plenum.request` span (tenant, request id, status) and then commits the
/// request's transaction if the response is a success (2xx, 3xx) or rolls it back (reads
/// stay on record either way). A commit that fails replaces the response with a 500.
pub async fn scope<I: IdentityProvider>(
    State(plenum): State<Arc<Plenum<I>>>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let Some(identity) = plenum.identity.identify(&parts) else {
        return ApiError::new(StatusCode::UNAUTHORIZED, "not authenticated").into_response();
    };
    let request = plenum_store::Request::new(identity.tenant, identity.actor);
    let span = tracing::info_span!(
        "plenum.request",
        tenant = %request.tenant(),
        request = %request.id(),
        status = tracing::field::Empty,
    );
    let scope = Arc::new(RequestScope {
        pool: plenum.pool.clone(),
        records: plenum.records.clone(),
        gate: plenum.gate.clone(),
        request,
        tx: Mutex::new(None),
    });
    parts.extensions.insert(scope.clone());
    let mut response = next
        .run(Request::from_parts(parts, body))
        .instrument(span.clone())
        .await;
    let status = response.status();
    span.record("status", status.as_u16());
    // The id every audit event of this request carries, for the caller's support ticket.
    if let Ok(value) = axum::http::HeaderValue::from_str(&scope.request.id().to_string()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    if let Some(tx) = scope.tx.lock().await.take() {
        if status.is_success() || status.is_redirection() {
            if let Err(e) = tx.commit().await {
                tracing::error!(parent: &span, kind = e.kind().as_str(), "commit failed");
                response = ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "commit failed")
                    .into_response();
            }
        } else if let Err(e) = tx.rollback().await {
            tracing::warn!(parent: &span, kind = e.kind().as_str(), "rollback failed");
        }
    }
    response
}

/// A handler's access to records under purpose `P`: extracted only if the request's actor may
/// ask for `P` (403 otherwise, before the handler runs). Every call runs in the request's
/// transaction (begun on first use) under a grant for `P`, audited by the library.
pub struct Scoped<P> {
    scope: Arc<RequestScope>,
    purpose: PhantomData<P>,
}

impl<P> fmt::Debug for Scoped<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scoped")
            .field("tenant", &self.scope.request.tenant())
            .field("request", &self.scope.request.id())
            .finish_non_exhaustive()
    }
}

impl<S: Send + Sync, P: PurposeMarker> FromRequestParts<S> for Scoped<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let scope = parts
            .extensions
            .get::<Arc<RequestScope>>()
            .cloned()
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "plenum_axum::scope is not layered over this route",
                )
            })?;
        // Refused before the handler runs, and on record like any refusal.
        scope.gate.grant(&scope.request, P::PURPOSE)?;
        Ok(Self {
            scope,
            purpose: PhantomData,
        })
    }
}

impl<P: PurposeMarker> Scoped<P> {
    /// The request's id (on every audit event of this request).
    pub fn request_id(&self) -> plenum_core::RequestId {
        self.scope.request.id()
    }

    /// The tenant the request acts in.
    pub fn tenant(&self) -> plenum_core::TenantId {
        self.scope.request.tenant()
    }

    /// Runs `f` with the request's transaction (begun now if this is the first use), a grant
    /// for `P` and the records: for what the shortcuts below do not cover.
    ///
    /// # Errors
    ///
    /// `f`'s, and the library's beginning the transaction or granting `P`.
    pub async fn run<T>(
        &self,
        f: impl AsyncFnOnce(
            &Records,
            &mut TenantTx,
            &PurposeGrant<'_>,
        ) -> Result<T, plenum_store::Error>,
    ) -> Result<T, ApiError> {
        let s = &*self.scope;
        let mut slot = s.tx.lock().await;
        if slot.is_none() {
            *slot = Some(s.pool.begin(s.request.tenant()).await?);
        }
        let Some(tx) = slot.as_mut() else {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no transaction",
            ));
        };
        let grant = s.gate.grant(&s.request, P::PURPOSE)?;
        Ok(f(&s.records, tx, &grant).await?)
    }

    /// The record `id` of type `R`, fields this purpose may see opened.
    ///
    /// # Errors
    ///
    /// As [`plenum_store::Repository::get`] (404 for a record this tenant does not have).
    pub async fn get<R: Record>(&self, id: RecordId) -> Result<R, ApiError> {
        self.run(async |records, tx, grant| records.repository::<R>().get(tx, grant, id).await)
            .await
    }

    /// A page of `R` after `after`.
    ///
    /// # Errors
    ///
    /// As [`plenum_store::Repository::list`].
    pub async fn list<R: Record>(
        &self,
        after: Option<RecordId>,
        limit: u32,
    ) -> Result<Page<R>, ApiError> {
        self.run(async |records, tx, grant| {
            records
                .repository::<R>()
                .list(tx, grant, after, limit)
                .await
        })
        .await
    }

    /// Writes `record`.
    ///
    /// # Errors
    ///
    /// As [`plenum_store::Repository::insert`].
    pub async fn insert<R: Record>(&self, record: &R) -> Result<(), ApiError> {
        self.run(async |records, tx, grant| {
            records.repository::<R>().insert(tx, grant, record).await
        })
        .await
    }

    /// Records a consent ledger event.
    ///
    /// # Errors
    ///
    /// As [`Records::record_consent`].
    pub async fn record_consent(&self, event: &ConsentEvent) -> Result<RecordId, ApiError> {
        self.run(async |records, tx, grant| records.record_consent(tx, grant, event).await)
            .await
    }
}
