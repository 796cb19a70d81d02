//! The error body every failed request answers with, and the closed set of keys it may carry.

use serde::{Deserialize, Serialize};

/// `{"errors": [...]}`: the body of every non-2xx answer of the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub errors: Vec<ErrorKey>,
}

impl ErrorBody {
    pub fn new(errors: Vec<ErrorKey>) -> Self {
        Self { errors }
    }
}

/// A machine-readable reason for a failed request. Serialized in snake case (`message_exceed_max_chars`); the first
/// three are the original backend's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKey {
    TtlBlank,
    MessageBlank,
    MessageExceedMaxChars,
    TtlInvalid,
    HandleBlank,
    HandleInvalid,
    HandleTaken,
    EmailBlank,
    EmailInvalid,
    EmailTaken,
    PasswordTooShort,
    PasswordTooLong,
    DisplayNameBlank,
    DisplayNameExceedMaxChars,
    BioExceedMaxChars,
    /// `POST /api/messages` needs either `message_group_uuid` or `handle`.
    MessageRecipientMissing,
    CannotMessageSelf,
    InvalidCredentials,
    Unauthorized,
    NotFound,
    MalformedJson,
    InvalidBody,
    UnsupportedMediaType,
    PayloadTooLarge,
    InvalidQuery,
    /// `GET /api/activities/search` without a term (or only spaces), as the original answered.
    SearchTermBlank,
    TooManyRequests,
    /// The database did not answer within the backend's statement timeout (503): busy, try again.
    Timeout,
    Internal,
    /// A key this build does not know (a newer backend); keeps old frontends decoding new answers.
    #[serde(other)]
    Unknown,
}

impl ErrorKey {
    /// A sentence a person can read, for showing an error key in the UI.
    pub fn describe(self) -> &'static str {
        match self {
            Self::TtlBlank => "Choose how long the crud should live.",
            Self::TtlInvalid => "That expiry is not one of the choices.",
            Self::MessageBlank => "Write something first.",
            Self::MessageExceedMaxChars => "That is too long.",
            Self::HandleBlank => "Choose a handle.",
            Self::HandleInvalid => "A handle is 3 to 32 letters, digits or underscores.",
            Self::HandleTaken => "That handle is taken.",
            Self::EmailBlank => "Enter your email.",
            Self::EmailInvalid => "That email does not look right.",
            Self::EmailTaken => "An account with that email already exists.",
            Self::PasswordTooShort => "The password needs at least 8 characters.",
            Self::PasswordTooLong => "The password is too long (1024 characters at most).",
            Self::DisplayNameBlank => "Enter a name.",
            Self::DisplayNameExceedMaxChars => "That name is too long.",
            Self::BioExceedMaxChars => "That bio is too long.",
            Self::MessageRecipientMissing => "Choose who to message.",
            Self::CannotMessageSelf => "You cannot message yourself.",
            Self::InvalidCredentials => "Wrong email or password.",
            Self::Unauthorized => "Please sign in.",
            Self::NotFound => "Not found.",
            Self::MalformedJson | Self::InvalidBody | Self::UnsupportedMediaType | Self::InvalidQuery => {
                "The request was not understood."
            }
            Self::PayloadTooLarge => "That is too large to send.",
            Self::SearchTermBlank => "Type something to search for.",
            Self::TooManyRequests => "Too many requests; try again in a moment.",
            Self::Timeout => "Cruddur is busy right now; try again in a moment.",
            Self::Internal | Self::Unknown => "Something went wrong on our side.",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_serialize_as_the_original_backend_spelled_them() {
        let body = ErrorBody::new(vec![ErrorKey::TtlBlank, ErrorKey::MessageExceedMaxChars]);
        assert_eq!(serde_json::to_string(&body).unwrap(), r#"{"errors":["ttl_blank","message_exceed_max_chars"]}"#);
    }

    #[test]
    fn unknown_keys_decode_instead_of_failing() {
        let body: ErrorBody = serde_json::from_str(r#"{"errors":["from_the_future"]}"#).unwrap();
        assert_eq!(body.errors, vec![ErrorKey::Unknown]);
    }
}
