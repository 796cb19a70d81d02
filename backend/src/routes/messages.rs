//! Direct messages between two users (DynamoDB in the original, Postgres here): the caller's conversations, one
//! conversation's messages, and sending.

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use cruddur_api::{CreateMessage, CreatedMessage, CrudMessage, ErrorKey, Handle, Message, MessageGroup};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::error::all_valid;
use crate::extract::{Json, Path};
use crate::{ApiError, AppState};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/message_groups", get(message_groups))
        .route("/api/messages/{message_group_uuid}", get(messages))
        .route("/api/messages", post(send))
}

/// The caller's conversations, most recently active first, each with the other person and the last message.
async fn message_groups(State(db): State<PgPool>, user: CurrentUser) -> Result<Json<Vec<MessageGroup>>, ApiError> {
    let groups = sqlx::query_as!(
        MessageGroup,
        r#"
        SELECT me.message_group_uuid AS uuid, other.display_name, other.handle,
               last.message AS "message!", last.created_at AS "created_at!"
        FROM message_group_members me
        JOIN message_group_members them
          ON them.message_group_uuid = me.message_group_uuid AND them.user_uuid <> me.user_uuid
        JOIN users other ON other.uuid = them.user_uuid
        JOIN LATERAL (
            SELECT m.message, m.created_at FROM messages m
            WHERE m.message_group_uuid = me.message_group_uuid
            ORDER BY m.created_at DESC LIMIT 1
        ) last ON true
        WHERE me.user_uuid = $1
        ORDER BY last.created_at DESC
        "#,
        user.uuid
    )
    .fetch_all(&db)
    .await?;
    Ok(Json(groups))
}

/// One conversation, oldest message first. Someone else's conversation is a 404, as if it did not exist.
async fn messages(
    State(db): State<PgPool>,
    user: CurrentUser,
    Path(group): Path<Uuid>,
) -> Result<Json<Vec<Message>>, ApiError> {
    let mut tx = db.begin().await?;
    ensure_member(&mut tx, group, user.uuid).await?;
    let messages = sqlx::query_as!(
        Message,
        "SELECT m.uuid, u.display_name, u.handle, m.message, m.created_at
         FROM messages m JOIN users u ON u.uuid = m.user_uuid
         WHERE m.message_group_uuid = $1
         ORDER BY m.created_at, m.uuid",
        group
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(messages))
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
            ensure_member(&mut tx, group, user.uuid).await?;
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

async fn ensure_member(tx: &mut Transaction<'_, Postgres>, group: Uuid, user: Uuid) -> Result<(), ApiError> {
    let member = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM message_group_members WHERE message_group_uuid = $1 AND user_uuid = $2) AS "member!""#,
        group,
        user
    )
    .fetch_one(&mut **tx)
    .await?;
    if member { Ok(()) } else { Err(ApiError::NotFound) }
}

/// The conversation between the caller and `handle`, created on first use. The pair's `direct_key` is unique, so
/// two people writing to each other at once still share one conversation.
async fn conversation_with(tx: &mut Transaction<'_, Postgres>, caller: Uuid, handle: &str) -> Result<Uuid, ApiError> {
    let handle = Handle::parse(handle).map_err(|_| ApiError::NotFound)?;
    let other = sqlx::query_scalar!("SELECT uuid FROM users WHERE handle = $1", handle.as_str())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(ApiError::NotFound)?;
    if other == caller {
        return Err(ApiError::invalid(ErrorKey::CannotMessageSelf));
    }
    let (low, high) = if caller < other { (caller, other) } else { (other, caller) };
    let group = sqlx::query_scalar!(
        "INSERT INTO message_groups (direct_key) VALUES ($1)
         ON CONFLICT (direct_key) DO UPDATE SET direct_key = EXCLUDED.direct_key
         RETURNING uuid",
        format!("{low}:{high}")
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
