//! Loading, errors and the signed-in gate: what a page shows while it waits, when a call fails, and when it needs a
//! user.

use leptos::prelude::*;
use leptos_router::components::Redirect;

use crate::api::ApiError;
use crate::auth::use_session;

/// An error, as a sentence in the page (never a blank page).
#[component]
pub(crate) fn ErrorNotice(#[prop(into)] error: Signal<Option<ApiError>>) -> impl IntoView {
    move || error.get().map(|error| view! { <p class="error" role="alert">{error.to_string()}</p> })
}

/// Renders what `resource` loaded with `view`, "Loading…" until then, and its error if the call failed.
#[component]
pub(crate) fn Loaded<T, V, F>(resource: LocalResource<Result<T, ApiError>>, view: F) -> impl IntoView
where
    T: Clone + 'static,
    V: IntoView + 'static,
    F: Fn(T) -> V + Send + Sync + 'static,
{
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || {
                resource
                    .get()
                    .map(|loaded| match loaded {
                        Ok(value) => view(value).into_any(),
                        Err(error) => view! { <ErrorNotice error=Some(error) /> }.into_any(),
                    })
            }}
        </Suspense>
    }
}

/// Shows `children` to a signed-in user and sends anyone else to the sign-in page.
#[component]
pub(crate) fn RequireSignIn(children: ChildrenFn) -> impl IntoView {
    let session = use_session();
    move || {
        if session.is_signed_in() { children().into_any() } else { view! { <Redirect path="/signin" /> }.into_any() }
    }
}
