//! Extractors whose rejections are [`ApiError`]s, so a malformed body, a bad uuid in a path or a bad query string
//! is answered in the API's error shape (never axum's plain-text rejections, never a 500).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};
use axum::response::{IntoResponse, Response};
use cruddur_api::ErrorKey;
use http::StatusCode;

use crate::ApiError;

/// `axum::Json`, answering bad bodies with `{"errors": [...]}`.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(crate) struct Json<T>(pub(crate) T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let (status, key) = match &rejection {
            JsonRejection::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, ErrorKey::MalformedJson),
            JsonRejection::JsonDataError(_) => (StatusCode::UNPROCESSABLE_ENTITY, ErrorKey::InvalidBody),
            JsonRejection::MissingJsonContentType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, ErrorKey::UnsupportedMediaType)
            }
            _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                (StatusCode::PAYLOAD_TOO_LARGE, ErrorKey::PayloadTooLarge)
            }
            _ => (StatusCode::BAD_REQUEST, ErrorKey::InvalidBody),
        };
        ApiError::Rejected { status, key }
    }
}

/// `axum::extract::Path`: a path that does not parse (a malformed uuid) names nothing, so it is a 404.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct Path<T>(pub(crate) T);

impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        ApiError::NotFound
    }
}

/// `axum::extract::Query`, answering bad query strings with `invalid_query`.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct Query<T>(pub(crate) T);

impl From<QueryRejection> for ApiError {
    fn from(_: QueryRejection) -> Self {
        ApiError::Rejected { status: StatusCode::UNPROCESSABLE_ENTITY, key: ErrorKey::InvalidQuery }
    }
}
