//! The building blocks the pages share: the page layout, activities, forms, and how loading and errors look.

mod activity;
mod feedback;
mod forms;
mod layout;
mod paging;

pub(crate) use activity::{ActivityFeed, ActivityItem, activity_entry, ago, now};
pub(crate) use feedback::{ErrorNotice, Loaded, RequireSignIn};
pub(crate) use forms::{CrudForm, MessageForm, Recipient, ReplyForm, Submitter, TextField};
pub(crate) use layout::Shell;
pub(crate) use paging::{MorePages, Order};
