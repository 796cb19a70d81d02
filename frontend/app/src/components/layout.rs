//! The page layout of the original: left navigation, the page, and the right sidebar (search, trending, suggested
//! users, and the join box when signed out). On a phone the columns stack.

use cruddur_api::Activity;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_router::components::A;

use super::{ActivityFeed, ErrorNotice};
use crate::api::{ApiError, use_api};
use crate::auth::use_session;

/// A page: navigation, `children`, sidebar.
#[component]
pub(crate) fn Shell(children: Children) -> impl IntoView {
    view! {
        <div class="shell">
            <Navigation />
            <main class="content">{children()}</main>
            <Sidebar />
        </div>
    }
}

#[component]
fn Navigation() -> impl IntoView {
    let session = use_session();
    let profile = move || session.user().map(|user| format!("/@{}", user.handle));
    view! {
        <nav class="navigation">
            <A href="/" attr:class="logo">"Cruddur"</A>
            <A href="/">"Home"</A>
            <A href="/notifications">"Notifications"</A>
            <A href="/messages">"Messages"</A>
            {move || profile().map(|profile| view! { <A href=profile>"Profile"</A> })}
            {move || match session.user() {
                Some(user) => view! {
                    <div class="signed_in">
                        <span class="who">{user.display_name}<small>"@"{user.handle}</small></span>
                        <button class="sign_out" on:click=move |_| session.sign_out()>"Sign out"</button>
                    </div>
                }.into_any(),
                None => view! { <A href="/signin" attr:class="sign_in">"Sign in"</A> }.into_any(),
            }}
        </nav>
    }
}

/// The seed's people, suggested to newcomers (the original's were fixed too).
const SUGGESTED: [(&str, &str); 3] =
    [("Andrew Brown", "andrewbrown"), ("Andrew Bayko", "bayko"), ("Londo Mollari", "londo")];
/// The original's trending list was made up as well; these are this project's topics.
const TRENDING: [(&str, &str); 3] =
    [("#DistributedTracing", "1.2K cruds"), ("#OpenTelemetry", "846 cruds"), ("#RustLang", "512 cruds")];

#[component]
fn Sidebar() -> impl IntoView {
    let session = use_session();
    view! {
        <aside class="sidebar">
            <Search />
            <section class="box trending">
                <h2>"Trending"</h2>
                <ul>
                    {TRENDING
                        .map(|(topic, count)| view! { <li><strong>{topic}</strong><small>{count}</small></li> })
                        .collect_view()}
                </ul>
            </section>
            <section class="box suggested_users">
                <h2>"Suggested users"</h2>
                <ul>
                    {SUGGESTED
                        .map(|(name, handle)| {
                            view! {
                                <li>
                                    <A href=format!("/@{handle}")>{name}<small>"@"{handle}</small></A>
                                </li>
                            }
                        })
                        .collect_view()}
                </ul>
            </section>
            {move || {
                (!session.is_signed_in())
                    .then(|| {
                        view! {
                            <section class="box join">
                                <h2>"Join the party!"</h2>
                                <p>"Have something to say?"</p>
                                <A href="/signup" attr:class="button">"Join now"</A>
                                <A href="/signin" attr:class="button secondary">"Sign in"</A>
                            </section>
                        }
                    })
            }}
        </aside>
    }
}

/// Searches cruds (`/api/activities/search`) and lists the matches under the box.
#[component]
fn Search() -> impl IntoView {
    let api = use_api();
    let term = RwSignal::new(String::new());
    let results = RwSignal::new(None::<Result<Vec<Activity>, ApiError>>);
    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        let query = term.get_untracked();
        if query.trim().is_empty() {
            return results.set(None);
        }
        let api = api.clone();
        leptos::task::spawn_local(async move {
            let path = format!("/api/activities/search?term={}", js_sys::encode_uri_component(query.trim()));
            results.set(Some(api.get(&path).await));
        });
    };
    view! {
        <section class="box search">
            <form on:submit=on_submit role="search">
                <input
                    type="search"
                    name="term"
                    placeholder="Search Cruddur"
                    aria-label="Search Cruddur"
                    prop:value=move || term.get()
                    on:input=move |event| term.set(event_target_value(&event))
                />
            </form>
            {move || {
                results
                    .get()
                    .map(|found| match found {
                        Ok(activities) => view! { <ActivityFeed activities empty="No cruds match." /> }.into_any(),
                        Err(error) => view! { <ErrorNotice error=Some(error) /> }.into_any(),
                    })
            }}
        </section>
    }
}
