//! The database: connecting, migrating, and the queries shared by several routes.

use cruddur_api::{Activity, Profile};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

/// The schema, from `backend/migrations`, applied at start-up.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// Longest feed answered at once.
pub const FEED_LIMIT: i64 = 100;

pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new().max_connections(max_connections).connect(url).await
}

/// Which activities to list. Every field narrows the list; expired activities are never listed.
#[derive(Debug, Default)]
pub(crate) struct ActivityFilter<'a> {
    pub(crate) uuid: Option<Uuid>,
    pub(crate) author: Option<Uuid>,
    pub(crate) reply_to: Option<Uuid>,
    /// Replies to this user's cruds, by others: the notifications feed.
    pub(crate) replies_to_user: Option<Uuid>,
    /// A substring of the message, matched case-insensitively and literally (`%` and `_` are not wildcards).
    pub(crate) term: Option<&'a str>,
    pub(crate) oldest_first: bool,
}

/// The one query behind every feed, so all of them agree on shape, expiry and order.
pub(crate) async fn list_activities(db: &PgPool, filter: ActivityFilter<'_>) -> Result<Vec<Activity>, sqlx::Error> {
    let pattern = filter.term.map(|term| format!("%{}%", escape_like(term)));
    sqlx::query_as!(
        Activity,
        r#"
        SELECT a.uuid, u.display_name, u.handle, a.message, a.replies_count, a.reposts_count, a.likes_count,
               a.expires_at, a.created_at, a.reply_to_activity_uuid
        FROM activities a
        JOIN users u ON u.uuid = a.user_uuid
        WHERE (a.expires_at IS NULL OR a.expires_at > now())
          AND ($1::uuid IS NULL OR a.uuid = $1)
          AND ($2::uuid IS NULL OR a.user_uuid = $2)
          AND ($3::uuid IS NULL OR a.reply_to_activity_uuid = $3)
          AND ($4::uuid IS NULL OR (a.user_uuid <> $4 AND EXISTS (
                SELECT 1 FROM activities parent WHERE parent.uuid = a.reply_to_activity_uuid AND parent.user_uuid = $4)))
          AND ($5::text IS NULL OR a.message ILIKE $5)
        ORDER BY CASE WHEN $6 THEN a.created_at END ASC, a.created_at DESC
        LIMIT $7
        "#,
        filter.uuid,
        filter.author,
        filter.reply_to,
        filter.replies_to_user,
        pattern,
        filter.oldest_first,
        FEED_LIMIT,
    )
    .fetch_all(db)
    .await
}

/// One activity that has not expired.
pub(crate) async fn find_activity(db: &PgPool, uuid: Uuid) -> Result<Option<Activity>, sqlx::Error> {
    let filter = ActivityFilter { uuid: Some(uuid), ..ActivityFilter::default() };
    Ok(list_activities(db, filter).await?.pop())
}

/// How a profile is looked up.
pub(crate) enum ProfileKey<'a> {
    Uuid(Uuid),
    Handle(&'a str),
}

/// A user's public profile; `cruds_count` counts what the profile lists (their activities that have not expired).
pub(crate) async fn find_profile(db: &PgPool, key: ProfileKey<'_>) -> Result<Option<Profile>, sqlx::Error> {
    let (uuid, handle) = match key {
        ProfileKey::Uuid(uuid) => (Some(uuid), None),
        ProfileKey::Handle(handle) => (None, Some(handle)),
    };
    sqlx::query_as!(
        Profile,
        r#"
        SELECT u.uuid, u.handle, u.display_name, u.bio,
               (SELECT count(*) FROM activities a
                WHERE a.user_uuid = u.uuid AND (a.expires_at IS NULL OR a.expires_at > now())) AS "cruds_count!"
        FROM users u
        WHERE ($1::uuid IS NULL OR u.uuid = $1) AND ($2::text IS NULL OR u.handle = $2)
        "#,
        uuid,
        handle,
    )
    .fetch_optional(db)
    .await
}

/// `ILIKE` treats `%`, `_` and `\` specially; a search term means them literally.
fn escape_like(term: &str) -> String {
    let mut escaped = String::with_capacity(term.len());
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::escape_like;

    #[test]
    fn like_wildcards_are_escaped() {
        assert_eq!(escape_like(r"100%_a\b"), r"100\%\_a\\b");
    }
}
