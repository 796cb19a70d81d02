//! The Cruddur HTTP API as types: every request body and response body the backend speaks, plus the domain newtypes
//! that validate user input (`Ttl`, `CrudMessage`, `Handle`, ...).
//!
//! This crate is serde only and does no I/O, so the wasm frontend validates with exactly the rules the backend
//! enforces (a crud's 280-character counter, the ttl select) and decodes exactly the shapes the backend encodes.
//!
//! Wire conventions, matching the original Flask backend:
//! - times are RFC 3339 / ISO-8601 strings in UTC;
//! - every error answer is `{"errors": ["<key>", ...]}` ([`ErrorBody`]), the keys being [`ErrorKey`]s.

mod domain;
mod error;
mod types;

pub use domain::{
    BIO_MAX_CHARS, CRUD_MAX_CHARS, CrudMessage, DISPLAY_NAME_MAX_CHARS, DisplayName, Email, HANDLE_MAX_CHARS,
    HANDLE_MIN_CHARS, Handle, MESSAGE_MAX_CHARS, PASSWORD_MIN_CHARS, Password, REPLY_MAX_CHARS, Ttl,
};
pub use error::{ErrorBody, ErrorKey};
pub use types::*;
