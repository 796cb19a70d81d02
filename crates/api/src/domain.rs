//! Domain newtypes: each `parse` constructor is the single place a rule of the API is enforced, so a value of one of
//! these types is valid by construction ("parse, don't validate"). Lengths count Unicode scalar values, as the
//! original Python backend's `len()` did.

use std::fmt;

use chrono::TimeDelta;

use crate::ErrorKey;

/// Longest crud (top-level post), in characters.
pub const CRUD_MAX_CHARS: usize = 280;
/// Longest reply, in characters.
pub const REPLY_MAX_CHARS: usize = 1024;
/// Longest direct message, in characters.
pub const MESSAGE_MAX_CHARS: usize = 1024;
pub const HANDLE_MIN_CHARS: usize = 3;
pub const HANDLE_MAX_CHARS: usize = 32;
pub const DISPLAY_NAME_MAX_CHARS: usize = 64;
pub const BIO_MAX_CHARS: usize = 280;
pub const PASSWORD_MIN_CHARS: usize = 8;
/// Upper bound on passwords, so hashing cost stays bounded.
const PASSWORD_MAX_CHARS: usize = 1024;
const EMAIL_MAX_CHARS: usize = 254;

/// How long a crud lives before it disappears from every feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ttl {
    ThirtyDays,
    SevenDays,
    ThreeDays,
    OneDay,
    TwelveHours,
    ThreeHours,
    OneHour,
}

impl Ttl {
    /// Every choice, longest first: the order of the original crud form's select.
    pub const ALL: [Ttl; 7] =
        [Ttl::ThirtyDays, Ttl::SevenDays, Ttl::ThreeDays, Ttl::OneDay, Ttl::TwelveHours, Ttl::ThreeHours, Ttl::OneHour];

    /// Reads the wire form (`"7-days"`); blank and unknown values get their own error keys.
    pub fn parse(raw: &str) -> Result<Self, ErrorKey> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(ErrorKey::TtlBlank);
        }
        Self::ALL.into_iter().find(|ttl| ttl.as_str() == raw).ok_or(ErrorKey::TtlInvalid)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Ttl::ThirtyDays => "30-days",
            Ttl::SevenDays => "7-days",
            Ttl::ThreeDays => "3-days",
            Ttl::OneDay => "1-day",
            Ttl::TwelveHours => "12-hours",
            Ttl::ThreeHours => "3-hours",
            Ttl::OneHour => "1-hour",
        }
    }

    /// A label for people ("30 days").
    pub fn label(self) -> &'static str {
        match self {
            Ttl::ThirtyDays => "30 days",
            Ttl::SevenDays => "7 days",
            Ttl::ThreeDays => "3 days",
            Ttl::OneDay => "1 day",
            Ttl::TwelveHours => "12 hours",
            Ttl::ThreeHours => "3 hours",
            Ttl::OneHour => "1 hour",
        }
    }

    pub fn duration(self) -> TimeDelta {
        match self {
            Ttl::ThirtyDays => TimeDelta::days(30),
            Ttl::SevenDays => TimeDelta::days(7),
            Ttl::ThreeDays => TimeDelta::days(3),
            Ttl::OneDay => TimeDelta::days(1),
            Ttl::TwelveHours => TimeDelta::hours(12),
            Ttl::ThreeHours => TimeDelta::hours(3),
            Ttl::OneHour => TimeDelta::hours(1),
        }
    }
}

impl fmt::Display for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text of a crud, reply or direct message: not blank, trimmed, within the limit of its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrudMessage(String);

impl CrudMessage {
    /// A top-level crud: at most [`CRUD_MAX_CHARS`].
    pub fn crud(raw: &str) -> Result<Self, ErrorKey> {
        Self::parse(raw, CRUD_MAX_CHARS)
    }

    /// A reply to a crud: at most [`REPLY_MAX_CHARS`].
    pub fn reply(raw: &str) -> Result<Self, ErrorKey> {
        Self::parse(raw, REPLY_MAX_CHARS)
    }

    /// A direct message: at most [`MESSAGE_MAX_CHARS`].
    pub fn direct(raw: &str) -> Result<Self, ErrorKey> {
        Self::parse(raw, MESSAGE_MAX_CHARS)
    }

    fn parse(raw: &str, max_chars: usize) -> Result<Self, ErrorKey> {
        let text = raw.trim();
        if text.is_empty() {
            Err(ErrorKey::MessageBlank)
        } else if text.chars().count() > max_chars {
            Err(ErrorKey::MessageExceedMaxChars)
        } else {
            Ok(Self(text.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user's handle, as in `@andrewbrown`: 3 to 32 ASCII letters, digits or underscores, stored lower-case so that
/// `@AndrewBrown` and `@andrewbrown` are one account. A leading `@` is accepted and dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Handle(String);

impl Handle {
    pub fn parse(raw: &str) -> Result<Self, ErrorKey> {
        let raw = raw.trim();
        let raw = raw.strip_prefix('@').unwrap_or(raw);
        if raw.is_empty() {
            return Err(ErrorKey::HandleBlank);
        }
        let valid_chars = raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_chars || !(HANDLE_MIN_CHARS..=HANDLE_MAX_CHARS).contains(&raw.len()) {
            return Err(ErrorKey::HandleInvalid);
        }
        Ok(Self(raw.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address, lower-cased; checked only for shape (one `@`, a dotted domain), as delivery is not ours to prove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, ErrorKey> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(ErrorKey::EmailBlank);
        }
        let well_formed = match raw.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
        if !well_formed || raw.len() > EMAIL_MAX_CHARS || raw.chars().any(char::is_whitespace) {
            return Err(ErrorKey::EmailInvalid);
        }
        Ok(Self(raw.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as typed, long enough to be worth hashing and short enough that hashing stays cheap.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, ErrorKey> {
        match raw.chars().count() {
            chars if chars < PASSWORD_MIN_CHARS => Err(ErrorKey::PasswordTooShort),
            chars if chars > PASSWORD_MAX_CHARS => Err(ErrorKey::PasswordTooLong),
            _ => Ok(Self(raw.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Never print a password, not even in a debug log.
impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// The name shown beside a handle: trimmed, not blank, at most [`DISPLAY_NAME_MAX_CHARS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, ErrorKey> {
        let name = raw.trim();
        if name.is_empty() {
            Err(ErrorKey::DisplayNameBlank)
        } else if name.chars().count() > DISPLAY_NAME_MAX_CHARS {
            Err(ErrorKey::DisplayNameExceedMaxChars)
        } else {
            Ok(Self(name.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_ttl_of_the_original_round_trips() {
        for raw in ["30-days", "7-days", "3-days", "1-day", "12-hours", "3-hours", "1-hour"] {
            assert_eq!(Ttl::parse(raw).unwrap().as_str(), raw);
        }
        assert_eq!(Ttl::parse("7-days").unwrap().duration(), TimeDelta::days(7));
        assert_eq!(Ttl::parse("3-hours").unwrap().duration(), TimeDelta::hours(3));
    }

    #[test]
    fn blank_and_unknown_ttls_have_their_own_keys() {
        assert_eq!(Ttl::parse(""), Err(ErrorKey::TtlBlank));
        assert_eq!(Ttl::parse("  "), Err(ErrorKey::TtlBlank));
        assert_eq!(Ttl::parse("2-days"), Err(ErrorKey::TtlInvalid));
        assert_eq!(Ttl::parse("7-DAYS"), Err(ErrorKey::TtlInvalid));
    }

    #[test]
    fn crud_limit_is_280_characters_not_bytes() {
        assert!(CrudMessage::crud(&"é".repeat(280)).is_ok());
        assert_eq!(CrudMessage::crud(&"a".repeat(281)), Err(ErrorKey::MessageExceedMaxChars));
        assert_eq!(CrudMessage::crud("   \n"), Err(ErrorKey::MessageBlank));
        assert_eq!(CrudMessage::crud("  hi  ").unwrap().as_str(), "hi");
    }

    #[test]
    fn replies_and_messages_may_be_1024_characters() {
        assert!(CrudMessage::reply(&"a".repeat(1024)).is_ok());
        assert_eq!(CrudMessage::reply(&"a".repeat(1025)), Err(ErrorKey::MessageExceedMaxChars));
        assert!(CrudMessage::direct(&"a".repeat(1024)).is_ok());
        assert_eq!(CrudMessage::direct(&"a".repeat(1025)), Err(ErrorKey::MessageExceedMaxChars));
    }

    #[test]
    fn handles_are_lower_cased_and_lose_their_at_sign() {
        assert_eq!(Handle::parse("@AndrewBrown").unwrap().as_str(), "andrewbrown");
        assert_eq!(Handle::parse(""), Err(ErrorKey::HandleBlank));
        assert_eq!(Handle::parse("ab"), Err(ErrorKey::HandleInvalid));
        assert_eq!(Handle::parse("andrew brown"), Err(ErrorKey::HandleInvalid));
        assert_eq!(Handle::parse("robert'); DROP TABLE users;--"), Err(ErrorKey::HandleInvalid));
        assert_eq!(Handle::parse(&"a".repeat(33)), Err(ErrorKey::HandleInvalid));
    }

    #[test]
    fn emails_are_checked_for_shape_only() {
        assert_eq!(Email::parse("Andrew@Example.com").unwrap().as_str(), "andrew@example.com");
        assert_eq!(Email::parse(""), Err(ErrorKey::EmailBlank));
        for bad in ["andrew", "@example.com", "a@b", "a@@b.com", "a b@c.com", "a@.com", "a@com."] {
            assert_eq!(Email::parse(bad), Err(ErrorKey::EmailInvalid), "{bad}");
        }
    }

    #[test]
    fn passwords_need_eight_characters_and_never_print() {
        assert_eq!(Password::parse("short"), Err(ErrorKey::PasswordTooShort));
        assert_eq!(Password::parse(&"p".repeat(1025)), Err(ErrorKey::PasswordTooLong));
        let password = Password::parse("correct horse").unwrap();
        assert_eq!(format!("{password:?}"), "Password(..)");
    }

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  Andrew Brown ").unwrap().as_str(), "Andrew Brown");
        assert_eq!(DisplayName::parse(" "), Err(ErrorKey::DisplayNameBlank));
        assert_eq!(DisplayName::parse(&"x".repeat(65)), Err(ErrorKey::DisplayNameExceedMaxChars));
    }

    proptest! {
        #[test]
        fn a_parsed_crud_is_never_blank_nor_over_the_limit(raw in any::<String>()) {
            if let Ok(message) = CrudMessage::crud(&raw) {
                prop_assert!(!message.as_str().trim().is_empty());
                prop_assert!(message.as_str().chars().count() <= CRUD_MAX_CHARS);
            }
        }

        #[test]
        fn a_parsed_handle_is_always_safe_to_put_in_a_url(raw in any::<String>()) {
            if let Ok(handle) = Handle::parse(&raw) {
                prop_assert!(handle.as_str().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
            }
        }
    }
}
