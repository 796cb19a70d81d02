//! Users: `GET /api/users/@{handle}/short` and `POST /api/profile/update`.

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use cruddur_api::{BIO_MAX_CHARS, DisplayName, ErrorKey, Handle, Profile, UpdateProfile, UserShort};
use sqlx::PgPool;

use crate::auth::CurrentUser;
use crate::error::all_valid;
use crate::extract::{Json, Path};
use crate::{ApiError, AppState, feeds};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/api/users/@{handle}/short", get(short)).route("/api/profile/update", post(update_profile))
}

async fn short(State(db): State<PgPool>, Path(handle): Path<String>) -> Result<Json<UserShort>, ApiError> {
    let handle = Handle::parse(&handle).map_err(|_| ApiError::NotFound)?;
    sqlx::query_as!(UserShort, "SELECT uuid, handle, display_name FROM users WHERE handle = $1", handle.as_str())
        .fetch_optional(&db)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

async fn update_profile(
    State(db): State<PgPool>,
    user: CurrentUser,
    Json(body): Json<UpdateProfile>,
) -> Result<Json<Profile>, ApiError> {
    let display_name = DisplayName::parse(&body.display_name);
    let bio = parse_bio(body.bio.as_deref());
    all_valid!(display_name, bio);
    let updated = sqlx::query!(
        "UPDATE users SET display_name = $2, bio = $3 WHERE uuid = $1",
        user.uuid,
        display_name.as_str(),
        bio
    )
    .execute(&db)
    .await?;
    if updated.rows_affected() == 0 {
        // A valid token for an account that no longer exists.
        return Err(ApiError::Unauthorized(ErrorKey::Unauthorized));
    }
    feeds::profile_by_uuid(user.uuid).fetch_optional(&db).await?.map(Json).ok_or(ApiError::NotFound)
}

/// A bio is optional: blank means none.
fn parse_bio(raw: Option<&str>) -> Result<Option<String>, ErrorKey> {
    match raw.map(str::trim).filter(|bio| !bio.is_empty()) {
        Some(bio) if bio.chars().count() > BIO_MAX_CHARS => Err(ErrorKey::BioExceedMaxChars),
        bio => Ok(bio.map(str::to_owned)),
    }
}
