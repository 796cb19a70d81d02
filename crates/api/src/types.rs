//! Request and response bodies, one type per JSON shape of the API.
//!
//! Request bodies take plain strings with `#[serde(default)]`, so that a missing field reaches validation and is
//! answered with its error key (`ttl_blank`) rather than a generic decoding error.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `GET /api/health-check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub success: bool,
    pub ver: u32,
}

/// A crud or a reply, as every feed lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    pub uuid: Uuid,
    pub display_name: String,
    pub handle: String,
    pub message: String,
    pub replies_count: i32,
    pub reposts_count: i32,
    pub likes_count: i32,
    /// When the crud disappears from feeds; a reply shares its crud's expiry.
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Set on replies only: the crud this replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to_activity_uuid: Option<Uuid>,
}

/// `POST /api/activities`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateActivity {
    #[serde(default)]
    pub message: String,
    /// One of the [`crate::Ttl`] wire values, e.g. `"7-days"`.
    #[serde(default)]
    pub ttl: String,
}

/// `POST /api/activities/{activity_uuid}/reply`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateReply {
    #[serde(default)]
    pub message: String,
}

/// Most items a feed answers at once; a full page means there may be more, fetched with [`PageQuery::before`].
pub const PAGE_SIZE: usize = 40;

/// The query string of every feed: `?before=<uuid>` asks for the page after the one that ended with that item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageQuery {
    /// The uuid of the last item the client has (for feeds read oldest first, a thread's replies and a
    /// conversation's messages: the first); absent for the newest page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Uuid>,
}

/// `GET /api/activities/search?term=&before=`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    pub term: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Uuid>,
}

/// A user's public profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub uuid: Uuid,
    pub handle: String,
    pub display_name: String,
    pub bio: Option<String>,
    pub cruds_count: i64,
}

/// `GET /api/activities/@{handle}`: the profile, and a page of the user's activities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserActivities {
    pub profile: Profile,
    pub activities: Vec<Activity>,
}

/// `GET /api/activities/@{handle}/status/{activity_uuid}`: one crud and the newest page of its replies, listed oldest
/// first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityWithReplies {
    pub activity: Activity,
    pub replies: Vec<Activity>,
}

/// `GET /api/users/@{handle}/short`, and the `user` of an [`AuthResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserShort {
    pub uuid: Uuid,
    pub handle: String,
    pub display_name: String,
}

/// `POST /api/profile/update`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateProfile {
    #[serde(default)]
    pub bio: Option<String>,
    #[serde(default)]
    pub display_name: String,
}

/// `POST /api/auth/signup`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignupRequest {
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub handle: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub password: String,
}

/// `POST /api/auth/signin`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigninRequest {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub password: String,
}

/// Requests that carry a password print without it.
macro_rules! debug_without_password {
    ($type:ident { $($field:ident),* }) => {
        impl std::fmt::Debug for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($type))$(.field(stringify!($field), &self.$field))*.finish_non_exhaustive()
            }
        }
    };
}
debug_without_password!(SignupRequest { display_name, handle, email });
debug_without_password!(SigninRequest { email });

/// The answer to sign-up and sign-in: a bearer token and who it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthResponse {
    pub token: String,
    pub user: UserShort,
}

/// A conversation in the caller's inbox: the other person and the last message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageGroup {
    pub uuid: Uuid,
    pub display_name: String,
    pub handle: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
}

/// One direct message, with its sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub uuid: Uuid,
    pub display_name: String,
    pub handle: String,
    pub message: String,
    pub created_at: DateTime<Utc>,
}

/// `POST /api/messages`: to an existing conversation (`message_group_uuid`) or to a person (`handle`), which starts
/// a conversation unless one with them exists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateMessage {
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_group_uuid: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
}

/// The answer to `POST /api/messages`: the message and the conversation it landed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedMessage {
    #[serde(flatten)]
    pub message: Message,
    pub message_group_uuid: Uuid,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn activity_has_the_original_fields_and_replies_name_their_crud() {
        let crud = Activity {
            uuid: Uuid::nil(),
            display_name: "Andrew Brown".into(),
            handle: "andrewbrown".into(),
            message: "Cloud is fun!".into(),
            replies_count: 1,
            reposts_count: 0,
            likes_count: 0,
            expires_at: None,
            created_at: DateTime::UNIX_EPOCH,
            reply_to_activity_uuid: None,
        };
        let value = serde_json::to_value(&crud).unwrap();
        let keys: Vec<_> = value.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "created_at",
                "display_name",
                "expires_at",
                "handle",
                "likes_count",
                "message",
                "replies_count",
                "reposts_count",
                "uuid"
            ]
        );
        assert_eq!(value["created_at"], "1970-01-01T00:00:00Z");
        let reply = Activity { reply_to_activity_uuid: Some(Uuid::nil()), ..crud };
        assert!(serde_json::to_value(reply).unwrap().get("reply_to_activity_uuid").is_some());
    }

    #[test]
    fn missing_request_fields_decode_as_blank() {
        let body: CreateActivity = serde_json::from_value(json!({"message": "hi"})).unwrap();
        assert_eq!(body.ttl, "");
    }

    #[test]
    fn created_message_is_a_message_plus_its_group() {
        let created = CreatedMessage {
            message: Message {
                uuid: Uuid::nil(),
                display_name: "Bayko".into(),
                handle: "bayko".into(),
                message: "hello".into(),
                created_at: DateTime::UNIX_EPOCH,
            },
            message_group_uuid: Uuid::nil(),
        };
        let value = serde_json::to_value(created).unwrap();
        assert_eq!(value["handle"], "bayko");
        assert_eq!(value["message_group_uuid"], Uuid::nil().to_string());
    }

    #[test]
    fn passwords_never_appear_in_debug_output() {
        let request = SigninRequest { email: "a@b.co".into(), password: "hunter22hunter22".into() };
        assert!(!format!("{request:?}").contains("hunter22"));
    }
}
