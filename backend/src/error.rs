//! The one error type of the API: each variant knows its status code, and every answer is an
//! [`ErrorBody`](cruddur_api::ErrorBody) of keys, never an internal message.

use axum::Json;
use axum::response::{IntoResponse, Response};
use cruddur_api::{ErrorBody, ErrorKey};
use cruddur_telemetry::exceptions::Exception;
use http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is understood but its fields break the rules (422), all keys at once.
    #[error("invalid input: {0:?}")]
    Invalid(Vec<ErrorKey>),
    /// The request itself is unusable: malformed JSON, wrong content type, too large...
    #[error("rejected request ({status}): {key:?}")]
    Rejected { status: StatusCode, key: ErrorKey },
    /// No valid session token, or wrong credentials (401).
    #[error("unauthorized: {0:?}")]
    Unauthorized(ErrorKey),
    /// The resource does not exist, or the caller may not know it exists (404).
    #[error("not found")]
    NotFound,
    /// A unique value is already taken (409).
    #[error("conflict: {0:?}")]
    Conflict(ErrorKey),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(key: ErrorKey) -> Self {
        Self::Invalid(vec![key])
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Rejected { status, .. } => *status,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn keys(&self) -> Vec<ErrorKey> {
        match self {
            Self::Invalid(keys) => keys.clone(),
            Self::Rejected { key, .. } | Self::Unauthorized(key) | Self::Conflict(key) => {
                vec![*key]
            }
            Self::NotFound => vec![ErrorKey::NotFound],
            Self::Database(_) | Self::Internal(_) => vec![ErrorKey::Internal],
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let mut response = (status, Json(ErrorBody::new(self.keys()))).into_response();
        // The details go to the trace, the log and Rollbar (the telemetry's signals layer), never to the client.
        match &self {
            Self::Database(error) => response.extensions_mut().insert(Exception::from_error(error)),
            Self::Internal(message) => response.extensions_mut().insert(Exception::new("internal", message.clone())),
            _ => None,
        };
        response
    }
}

/// Binds each of several already-parsed `Result<_, ErrorKey>` variables to its value, or returns
/// `ApiError::Invalid` with the keys of all that failed, so one answer lists every problem of a form.
macro_rules! all_valid {
    ($($result:ident),+ $(,)?) => {
        let errors: Vec<cruddur_api::ErrorKey> = [$($result.as_ref().err().copied()),+].into_iter().flatten().collect();
        if !errors.is_empty() {
            return Err($crate::ApiError::Invalid(errors));
        }
        $(let $result = $result.expect("checked above");)+
    };
}
pub(crate) use all_valid;
