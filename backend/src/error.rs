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
    /// The database did not answer within the statement timeout, or no pooled connection freed up as long (503).
    #[error("the database did not answer in time (DATABASE_STATEMENT_TIMEOUT_MS): {0}")]
    Timeout(#[source] sqlx::Error),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
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
            Self::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
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
            Self::Timeout(_) => vec![ErrorKey::Timeout],
            Self::Database(_) | Self::Internal(_) => vec![ErrorKey::Internal],
        }
    }
}

/// Postgres's SQLSTATE for a statement it cancelled: here, always the statement timeout (the backend cancels nothing).
const QUERY_CANCELED: &str = "57014";

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        let timed_out = match &error {
            sqlx::Error::PoolTimedOut => true,
            sqlx::Error::Database(db_error) => db_error.code().as_deref() == Some(QUERY_CANCELED),
            _ => false,
        };
        if timed_out { Self::Timeout(error) } else { Self::Database(error) }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let mut response = (status, Json(ErrorBody::new(self.keys()))).into_response();
        // The details go to the trace, the log and Rollbar (the telemetry's signals layer), never to the client.
        match &self {
            Self::Database(error) => response.extensions_mut().insert(Exception::from_error(error)),
            Self::Timeout(_) => response.extensions_mut().insert(Exception::new("timeout", self.to_string())),
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
