//! One module per page of the original.

mod account;
mod feeds;
mod messages;
mod profile;

pub(crate) use account::{ConfirmPage, ForgotPage, SigninPage, SignupPage};
pub(crate) use feeds::{HomePage, NotFoundPage, NotificationsPage};
pub(crate) use messages::{ConversationPage, MessagesPage, NewConversationPage, PersonConversationPage};
pub(crate) use profile::{ProfilePage, StatusPage};
