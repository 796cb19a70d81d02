//! Cruds and replies: the feeds (home, notifications, search, a user's), one activity, one crud with its replies,
//! posting and replying.

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use chrono::Utc;
use cruddur_api::{
    Activity, ActivityWithReplies, CreateActivity, CreateReply, CrudMessage, ErrorKey, Handle, PageQuery, SearchQuery,
    Ttl, UserActivities,
};
use sqlx::PgPool;
use tracing::Instrument;
use tracing::field::Empty;
use uuid::Uuid;

use crate::auth::{CurrentUser, MaybeUser};
use crate::error::all_valid;
use crate::extract::{Json, Path, Query};
use crate::feeds;
use crate::{ApiError, AppState, SearchDb};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/activities", post(create))
        .route("/api/activities/home", get(home))
        .route("/api/activities/notifications", get(notifications))
        .route("/api/activities/search", get(search))
        .route("/api/activities/@{handle}", get(user_activities))
        .route("/api/activities/@{handle}/status/{activity_uuid}", get(status))
        .route("/api/activities/{activity_uuid}", get(one))
        .route("/api/activities/{activity_uuid}/reply", post(reply))
}

/// Everyone's cruds and replies that have not expired, newest first, a page at a time, signed in or not.
///
/// Traced by hand as the original's home service was: a `home-activities` span with `app.now` and
/// `app.result_length`, the query span beneath it.
async fn home(
    State(db): State<PgPool>,
    _caller: MaybeUser,
    Query(page): Query<PageQuery>,
) -> Result<Json<Vec<Activity>>, ApiError> {
    let span = tracing::info_span!("home-activities", app.now = %Utc::now().to_rfc3339(), app.result_length = Empty);
    let activities = feeds::home(page.before).fetch_all(&db).instrument(span.clone()).await?;
    span.record("app.result_length", activities.len() as i64);
    Ok(Json(activities))
}

/// Replies to the caller's cruds by others, newest first; nothing when signed out.
async fn notifications(
    State(db): State<PgPool>,
    caller: MaybeUser,
    Query(page): Query<PageQuery>,
) -> Result<Json<Vec<Activity>>, ApiError> {
    let Some(user) = caller.0 else {
        return Ok(Json(Vec::new()));
    };
    Ok(Json(feeds::notifications(user.uuid, page.before).fetch_all(&db).await?))
}

/// Activities whose message contains the term (case-insensitive), newest first; a blank term is refused, as the
/// original refused it.
async fn search(
    State(SearchDb(db)): State<SearchDb>,
    Query(query): Query<SearchQuery>,
) -> Result<Json<Vec<Activity>>, ApiError> {
    let term = query.term.trim();
    if term.is_empty() {
        return Err(ApiError::invalid(ErrorKey::SearchTermBlank));
    }
    Ok(Json(feeds::search(&db, term, query.before).await?))
}

/// The profile and a page of the user's activities, newest first.
async fn user_activities(
    State(db): State<PgPool>,
    Path(handle): Path<String>,
    Query(page): Query<PageQuery>,
) -> Result<Json<UserActivities>, ApiError> {
    let handle = Handle::parse(&handle).map_err(|_| ApiError::NotFound)?;
    // The original's X-Ray subsegment of this service, with its metadata block {now, results-size}.
    let span = tracing::info_span!("user-activities", "metadata.now" = %Utc::now().to_rfc3339(), "metadata.results-size" = Empty);
    async {
        let profile = feeds::profile_by_handle(handle.as_str()).fetch_optional(&db).await?.ok_or(ApiError::NotFound)?;
        let activities = feeds::by_user(profile.uuid, page.before).fetch_all(&db).await?;
        tracing::Span::current().record("metadata.results-size", activities.len() as i64);
        Ok(Json(UserActivities { profile, activities }))
    }
    .instrument(span)
    .await
}

/// One crud (under its author's handle) and a page of its replies: the newest, or those before `before`, listed
/// oldest first.
async fn status(
    State(db): State<PgPool>,
    Path((handle, activity_uuid)): Path<(String, Uuid)>,
    Query(page): Query<PageQuery>,
) -> Result<Json<ActivityWithReplies>, ApiError> {
    let handle = Handle::parse(&handle).map_err(|_| ApiError::NotFound)?;
    let activity = feeds::activity(activity_uuid)
        .fetch_optional(&db)
        .await?
        .filter(|activity| activity.handle == handle.as_str())
        .ok_or(ApiError::NotFound)?;
    let replies = feeds::chronologically(feeds::replies(activity_uuid, page.before).fetch_all(&db).await?);
    Ok(Json(ActivityWithReplies { activity, replies }))
}

/// One crud or reply that has not expired.
async fn one(State(db): State<PgPool>, Path(activity_uuid): Path<Uuid>) -> Result<Json<Activity>, ApiError> {
    feeds::activity(activity_uuid).fetch_optional(&db).await?.map(Json).ok_or(ApiError::NotFound)
}

async fn create(
    State(db): State<PgPool>,
    user: CurrentUser,
    Json(body): Json<CreateActivity>,
) -> Result<Json<Activity>, ApiError> {
    let message = CrudMessage::crud(&body.message);
    let ttl = Ttl::parse(&body.ttl);
    all_valid!(message, ttl);
    let expires_at = Utc::now() + ttl.duration();
    let uuid = sqlx::query_scalar!(
        "INSERT INTO activities (user_uuid, message, expires_at) VALUES ($1, $2, $3) RETURNING uuid",
        user.uuid,
        message.as_str(),
        expires_at
    )
    .fetch_one(&db)
    .await
    .map_err(unknown_author)?;
    feeds::activity(uuid).fetch_optional(&db).await?.map(Json).ok_or(ApiError::NotFound)
}

/// Replies to any activity that has not expired; the reply shares its expiry and notifies the parent's author (unless
/// that is the replier), and the parent's `replies_count` moves in the same statement, so it stays right under
/// concurrent replies.
async fn reply(
    State(db): State<PgPool>,
    user: CurrentUser,
    Path(activity_uuid): Path<Uuid>,
    Json(body): Json<CreateReply>,
) -> Result<Json<Activity>, ApiError> {
    let message = CrudMessage::reply(&body.message);
    all_valid!(message);
    let uuid = sqlx::query_scalar!(
        r#"
        WITH parent AS (
            UPDATE activities SET replies_count = replies_count + 1
            WHERE uuid = $3 AND (expires_at IS NULL OR expires_at > now())
            RETURNING uuid, user_uuid, expires_at
        )
        INSERT INTO activities (user_uuid, message, reply_to_activity_uuid, expires_at, notified_user_uuid)
        SELECT $1, $2, parent.uuid, parent.expires_at, NULLIF(parent.user_uuid, $1) FROM parent
        RETURNING uuid
        "#,
        user.uuid,
        message.as_str(),
        activity_uuid
    )
    .fetch_optional(&db)
    .await
    .map_err(unknown_author)?
    .ok_or(ApiError::NotFound)?;
    feeds::activity(uuid).fetch_optional(&db).await?.map(Json).ok_or(ApiError::NotFound)
}

/// A valid token whose account has since been deleted cannot write.
fn unknown_author(error: sqlx::Error) -> ApiError {
    match &error {
        sqlx::Error::Database(db_error) if db_error.is_foreign_key_violation() => {
            ApiError::Unauthorized(ErrorKey::Unauthorized)
        }
        _ => ApiError::from(error),
    }
}
