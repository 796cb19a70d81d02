//! Direct messages between two users (DynamoDB in the original, Postgres here): the caller's conversations, one
//! conversation's messages (by its uuid, or by the other person's handle), and sending.

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use cruddur_api::{CreateMessage, CreatedMessage, CrudMessage, ErrorKey, Handle, Message, MessageGroup, PageQuery};
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::error::all_valid;
use crate::extract::{Json, Path, Query};
use crate::{ApiError, AppState, feeds};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/message_groups", get(message_groups))
        .route("/api/messages/@{handle}", get(conversation_with_handle))
        .route("/api/messages/{message_group_uuid}", get(messages))
        .route("/api/messages", post(send))
}

/// A page of the caller's conversations, most recently active first, each with the other person and the last
/// message.
async fn message_groups(
    State(db): State<PgPool>,
    user: CurrentUser,
    Query(page): Query<PageQuery>,
) -> Result<Json<Vec<MessageGroup>>, ApiError> {
    Ok(Json(feeds::conversations(user.uuid, page.before).fetch_all(&db).await?))
}

/// A page of one conversation (the newest messages, or those before `before`), oldest message first. Someone
/// else's conversation is a 404, as if it did not exist.
async fn messages(
    State(db): State<PgPool>,
    user: CurrentUser,
    Path(group): Path<Uuid>,
    Query(page): Query<PageQuery>,
) -> Result<Json<Vec<Message>>, ApiError> {
    let messages = feeds::messages(group, user.uuid, page.before).fetch_all(&db).await?;
    if messages.is_empty() {
        // No messages, or not the caller's conversation: only the second is a 404.
        ensure_member(&db, group, user.uuid).await?;
    }
    Ok(Json(feeds::chronologically(messages)))
}

/// The caller's conversation with `handle`, as [`messages`] pages it; empty until either of them writes (the first
/// message, sent by handle, starts it). An unknown handle is a 404.
async fn conversation_with_handle(
    State(db): State<PgPool>,
    user: CurrentUser,
    Path(handle): Path<String>,
    Query(page): Query<PageQuery>,
) -> Result<Json<Vec<Message>>, ApiError> {
    let handle = Handle::parse(&handle).map_err(|_| ApiError::NotFound)?;
    let messages = feeds::messages_with(handle.as_str(), user.uuid, page.before).fetch_all(&db).await?;
    if messages.is_empty() {
        // No conversation yet, or no such user: only the second is a 404.
        user_uuid(&db, &handle).await?;
    }
    Ok(Json(feeds::chronologically(messages)))
}

/// Sends to a conversation of the caller's, or to a person by handle (reusing the pair's conversation if any).
async fn send(
    State(db): State<PgPool>,
    user: CurrentUser,
    Json(body): Json<CreateMessage>,
) -> Result<Json<CreatedMessage>, ApiError> {
    let message = CrudMessage::direct(&body.message);
    let recipient = match (body.message_group_uuid, body.handle) {
        (Some(group), _) => Ok(Recipient::Conversation(group)),
        (None, Some(handle)) if !handle.trim().is_empty() => Ok(Recipient::Person(handle)),
        _ => Err(ErrorKey::MessageRecipientMissing),
    };
    all_valid!(message, recipient);

    let mut tx = db.begin().await?;
    let group = match recipient {
        Recipient::Conversation(group) => {
            ensure_member(&mut *tx, group, user.uuid).await?;
            group
        }
        Recipient::Person(handle) => conversation_with(&mut tx, user.uuid, &handle).await?,
    };
    let sent = sqlx::query_as!(
        Message,
        r#"
        WITH sent AS (
            INSERT INTO messages (message_group_uuid, user_uuid, message) VALUES ($1, $2, $3)
            RETURNING uuid, user_uuid, message, created_at
        )
        SELECT sent.uuid AS "uuid!", u.display_name, u.handle, sent.message AS "message!",
               sent.created_at AS "created_at!"
        FROM sent JOIN users u ON u.uuid = sent.user_uuid
        "#,
        group,
        user.uuid,
        message.as_str()
    )
    .fetch_optional(&mut *tx)
    .await?
    // The sender's account is gone though the token is valid.
    .ok_or(ApiError::Unauthorized(ErrorKey::Unauthorized))?;
    tx.commit().await?;
    Ok(Json(CreatedMessage { message: sent, message_group_uuid: group }))
}

/// Where a message goes: an existing conversation, or a person by handle.
enum Recipient {
    Conversation(Uuid),
    Person(String),
}

/// Answers 404 unless `user` takes part in the conversation `group`.
async fn ensure_member<'e>(db: impl PgExecutor<'e>, group: Uuid, user: Uuid) -> Result<(), ApiError> {
    let member = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM message_group_members WHERE message_group_uuid = $1 AND user_uuid = $2) AS "member!""#,
        group,
        user
    )
    .fetch_one(db)
    .await?;
    if member { Ok(()) } else { Err(ApiError::NotFound) }
}

/// The uuid of the user `handle`; 404 when there is none.
async fn user_uuid<'e>(db: impl PgExecutor<'e>, handle: &Handle) -> Result<Uuid, ApiError> {
    sqlx::query_scalar!("SELECT uuid FROM users WHERE handle = $1", handle.as_str())
        .fetch_optional(db)
        .await?
        .ok_or(ApiError::NotFound)
}

/// The conversation between the caller and `handle`, created on first use. The pair's `direct_key` is unique, so
/// two people writing to each other at once still share one conversation.
async fn conversation_with(tx: &mut Transaction<'_, Postgres>, caller: Uuid, handle: &str) -> Result<Uuid, ApiError> {
    let handle = Handle::parse(handle).map_err(|_| ApiError::NotFound)?;
    let other = user_uuid(&mut **tx, &handle).await?;
    if other == caller {
        return Err(ApiError::invalid(ErrorKey::CannotMessageSelf));
    }
    let group = sqlx::query_scalar!(
        r#"INSERT INTO message_groups (direct_key) VALUES (direct_key($1, $2))
           ON CONFLICT (direct_key) DO UPDATE SET direct_key = EXCLUDED.direct_key
           RETURNING uuid"#,
        caller,
        other
    )
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query!(
        "INSERT INTO message_group_members (message_group_uuid, user_uuid) VALUES ($1, $2), ($1, $3)
         ON CONFLICT DO NOTHING",
        group,
        caller,
        other
    )
    .execute(&mut **tx)
    .await?;
    Ok(group)
}
