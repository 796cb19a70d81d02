//! Local accounts: `POST /api/auth/signup` and `POST /api/auth/signin`, both answering a session token.

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use cruddur_api::{
    AuthResponse, DisplayName, Email, ErrorKey, Handle, Password, SigninRequest, SignupRequest, UserShort,
};
use sqlx::PgPool;

use crate::auth::{Tokens, hash_password, verify_password};
use crate::error::all_valid;
use crate::extract::Json;
use crate::{ApiError, AppState};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/api/auth/signup", post(signup)).route("/api/auth/signin", post(signin))
}

async fn signup(
    State(db): State<PgPool>,
    State(tokens): State<Tokens>,
    Json(body): Json<SignupRequest>,
) -> Result<Json<AuthResponse>, ApiError> {
    let display_name = DisplayName::parse(&body.display_name);
    let handle = Handle::parse(&body.handle);
    let email = Email::parse(&body.email);
    let password = Password::parse(&body.password);
    all_valid!(display_name, handle, email, password);

    let password_hash = hash_password(password).await?;
    let user = sqlx::query_as!(
        UserShort,
        "INSERT INTO users (display_name, handle, email, password_hash) VALUES ($1, $2, $3, $4)
         RETURNING uuid, handle, display_name",
        display_name.as_str(),
        handle.as_str(),
        email.as_str(),
        password_hash,
    )
    .fetch_one(&db)
    .await
    .map_err(|error| match &error {
        sqlx::Error::Database(db_error) => match db_error.constraint() {
            Some("users_handle_key") => ApiError::Conflict(ErrorKey::HandleTaken),
            Some("users_email_key") => ApiError::Conflict(ErrorKey::EmailTaken),
            _ => ApiError::from(error),
        },
        _ => ApiError::from(error),
    })?;
    tracing::info!(user = %user.uuid, handle = %user.handle, "account created");
    Ok(Json(AuthResponse { token: tokens.issue(user.uuid)?, user }))
}

async fn signin(
    State(db): State<PgPool>,
    State(tokens): State<Tokens>,
    Json(body): Json<SigninRequest>,
) -> Result<Json<AuthResponse>, ApiError> {
    let email = Email::parse(&body.email).map_err(|_| ApiError::Unauthorized(ErrorKey::InvalidCredentials))?;
    let account =
        sqlx::query!("SELECT uuid, handle, display_name, password_hash FROM users WHERE email = $1", email.as_str())
            .fetch_optional(&db)
            .await?;
    let stored_hash = account.as_ref().and_then(|account| account.password_hash.clone());
    if !verify_password(body.password, stored_hash).await? {
        return Err(ApiError::Unauthorized(ErrorKey::InvalidCredentials));
    }
    let account = account.ok_or(ApiError::Unauthorized(ErrorKey::InvalidCredentials))?;
    let user = UserShort { uuid: account.uuid, handle: account.handle, display_name: account.display_name };
    Ok(Json(AuthResponse { token: tokens.issue(user.uuid)?, user }))
}
