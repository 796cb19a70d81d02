//! The home feed (with the crud form when signed in), notifications, and the page for paths that lead nowhere.

use cruddur_api::Activity;
use leptos::prelude::*;
use leptos_router::components::A;

use crate::api::load;
use crate::auth::use_session;
use crate::components::{ActivityFeed, CrudForm, Loaded, MorePages, Order, Shell, activity_entry};

/// A feed of activities a page at a time: the first page, then "Show more" at its end.
fn paged_feed(path: &'static str, activities: Vec<Activity>, empty: &'static str) -> impl IntoView {
    view! {
        <ActivityFeed activities=activities.clone() empty />
        <MorePages
            path=path.to_owned()
            order=Order::NewestFirst
            first_page=activities
            items={|page: Vec<Activity>| page}
            item=activity_entry
            class="activity_feed"
        />
    }
}

/// `/`: the newest cruds, a page at a time; a signed-in user's new crud appears at the top as soon as it is posted.
#[component]
pub(crate) fn HomePage() -> impl IntoView {
    const PATH: &str = "/api/activities/home";
    let session = use_session();
    let feed = load::<Vec<Activity>>(|| PATH.to_owned());
    view! {
        <Shell>
            <h1>"Home"</h1>
            {move || session.is_signed_in().then(|| view! { <CrudForm on_posted=move |_| feed.refetch() /> })}
            <Loaded resource=feed view=|activities| paged_feed(PATH, activities, "Nothing here yet.") />
        </Shell>
    }
}

/// `/notifications`.
#[component]
pub(crate) fn NotificationsPage() -> impl IntoView {
    const PATH: &str = "/api/activities/notifications";
    let feed = load::<Vec<Activity>>(|| PATH.to_owned());
    view! {
        <Shell>
            <h1>"Notifications"</h1>
            <Loaded resource=feed view=|activities| paged_feed(PATH, activities, "No notifications.") />
        </Shell>
    }
}

/// Any other path.
#[component]
pub(crate) fn NotFoundPage() -> impl IntoView {
    view! {
        <Shell>
            <h1>"Not found"</h1>
            <p class="empty">"There is no page here. " <A href="/">"Back to the home feed"</A></p>
        </Shell>
    }
}
