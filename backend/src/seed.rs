//! The seed: the original's users (andrewbrown, altbrown, bayko, londo) and cruds, plus a conversation, loaded into
//! an empty database by the run command (`--seed-if-empty`) and by tests as a fixture.
//!
//! Seed accounts sign in with [`SEED_PASSWORD`]; it is a development convenience, documented in the README.

use chrono::{TimeDelta, Utc};
use cruddur_api::Password;
use sqlx::PgPool;

use crate::ApiError;
use crate::auth::hash_password;

/// The password of every seed account.
pub const SEED_PASSWORD: &str = "cruddur-password";

/// (display name, handle, email, bio)
const USERS: [(&str, &str, &str, &str); 4] = [
    ("Andrew Brown", "andrewbrown", "andrew@exampro.co", "Cloud instructor and Cruddur's first user."),
    ("Andrew Brown Alt", "altbrown", "altbrown@exampro.co", ""),
    ("Andrew Bayko", "bayko", "bayko@exampro.co", ""),
    ("Londo Mollari", "londo", "lmollari@centari.com", "Ambassador of the Centauri Republic."),
];

/// (handle, message, lifetime): the first is the original seed crud.
const CRUDS: [(&str, &str, TimeDelta); 3] = [
    ("andrewbrown", "This was imported as seed data!", TimeDelta::days(10)),
    ("bayko", "Distributed tracing: follow one request from the browser to the database.", TimeDelta::days(7)),
    ("londo", "Cruds expire. Say what matters while it lasts.", TimeDelta::days(30)),
];

/// Loads the seed unless the database already has users; returns whether it did.
pub async fn load_if_empty(db: &PgPool) -> Result<bool, ApiError> {
    let has_users: bool =
        sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM users) AS "exists!""#).fetch_one(db).await?;
    if has_users {
        return Ok(false);
    }
    load(db).await?;
    Ok(true)
}

/// Loads the seed into a database without these users.
pub async fn load(db: &PgPool) -> Result<(), ApiError> {
    let password = Password::parse(SEED_PASSWORD).expect("the seed password is valid");
    let password_hash = hash_password(password).await?;
    let mut tx = db.begin().await?;
    for (display_name, handle, email, bio) in USERS {
        sqlx::query!(
            "INSERT INTO users (display_name, handle, email, password_hash, bio) VALUES ($1, $2, $3, $4, NULLIF($5, ''))",
            display_name,
            handle,
            email,
            password_hash,
            bio
        )
        .execute(&mut *tx)
        .await?;
    }
    // The original seed crud is the oldest, so it ends up at the bottom of the feed.
    let now = Utc::now();
    for (index, (handle, message, lifetime)) in CRUDS.into_iter().enumerate() {
        let minutes_ago = 10 * (CRUDS.len() - index) as i64;
        let created_at = now - TimeDelta::minutes(minutes_ago);
        sqlx::query!(
            "INSERT INTO activities (user_uuid, message, created_at, expires_at)
             SELECT uuid, $2, $3, $4 FROM users WHERE handle = $1",
            handle,
            message,
            created_at,
            created_at + lifetime
        )
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query!(
        "WITH pair AS (SELECT (SELECT uuid FROM users WHERE handle = 'andrewbrown') AS a,
                              (SELECT uuid FROM users WHERE handle = 'bayko') AS b),
              grp AS (INSERT INTO message_groups (direct_key)
                      SELECT direct_key(a, b) FROM pair RETURNING uuid),
              members AS (INSERT INTO message_group_members (message_group_uuid, user_uuid)
                          SELECT grp.uuid, u FROM grp, pair, unnest(ARRAY[pair.a, pair.b]) u)
         INSERT INTO messages (message_group_uuid, user_uuid, message, created_at)
         SELECT grp.uuid, pair.b, 'Hey Andrew, is the tracing week done?', now() - interval '5 minutes' FROM grp, pair"
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
