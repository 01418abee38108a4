//! How a library error becomes an HTTP response: refusals are 403, absent records 404, bad
//! input 400, everything else 500. The body is the error's own message, which never holds a
//! value (the library's errors name kinds, record types and fields only).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use plenum_store::ErrorKind;

/// A handler's error: a library error, or a status of the service's own.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An error with `status` and `message` (no personal data in it).
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<plenum_store::Error> for ApiError {
    fn from(e: plenum_store::Error) -> Self {
        let status = match e.kind() {
            ErrorKind::Denied => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}
