//! The signed-in user: the backend's token and who it belongs to, kept in `localStorage` so a reload stays signed
//! in, and shared with every component as one signal.

use cruddur_api::{AuthResponse, UserShort};
use leptos::prelude::*;

/// Where the session is kept in the browser.
const STORAGE_KEY: &str = "cruddur.session";

/// The session signal: `None` when signed out.
#[derive(Clone, Copy)]
pub(crate) struct Session(RwSignal<Option<AuthResponse>>);

impl Session {
    /// The session saved by an earlier visit, if any.
    pub(crate) fn restore() -> Self {
        let saved = storage()
            .and_then(|storage| storage.get_item(STORAGE_KEY).ok().flatten())
            .and_then(|json| serde_json::from_str(&json).ok());
        Self(RwSignal::new(saved))
    }

    pub(crate) fn sign_in(&self, auth: AuthResponse) {
        if let (Some(storage), Ok(json)) = (storage(), serde_json::to_string(&auth)) {
            let _ = storage.set_item(STORAGE_KEY, &json);
        }
        self.0.set(Some(auth));
    }

    pub(crate) fn sign_out(&self) {
        if let Some(storage) = storage() {
            let _ = storage.remove_item(STORAGE_KEY);
        }
        self.0.set(None);
    }

    /// The signed-in user (tracked: views update on sign-in and sign-out).
    pub(crate) fn user(&self) -> Option<UserShort> {
        self.0.with(|session| session.as_ref().map(|auth| auth.user.clone()))
    }

    pub(crate) fn is_signed_in(&self) -> bool {
        self.0.with(Option::is_some)
    }

    /// The bearer token, read without tracking (for requests).
    pub(crate) fn token(&self) -> Option<String> {
        self.0.with_untracked(|session| session.as_ref().map(|auth| auth.token.clone()))
    }
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// The session from context.
pub(crate) fn use_session() -> Session {
    expect_context()
}
