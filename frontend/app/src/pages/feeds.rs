//! The home feed (with the crud form when signed in), notifications, and the page for paths that lead nowhere.

use cruddur_api::Activity;
use leptos::prelude::*;
use leptos_router::components::A;

use crate::api::load;
use crate::auth::use_session;
use crate::components::{ActivityFeed, CrudForm, Loaded, Shell};

/// `/`: the newest cruds; a signed-in user's new crud appears at the top as soon as it is posted.
#[component]
pub(crate) fn HomePage() -> impl IntoView {
    let session = use_session();
    let feed = load::<Vec<Activity>>(|| "/api/activities/home".to_owned());
    view! {
        <Shell>
            <h1>"Home"</h1>
            {move || session.is_signed_in().then(|| view! { <CrudForm on_posted=move |_| feed.refetch() /> })}
            <Loaded resource=feed view=|activities| view! { <ActivityFeed activities /> } />
        </Shell>
    }
}

/// `/notifications`.
#[component]
pub(crate) fn NotificationsPage() -> impl IntoView {
    let feed = load::<Vec<Activity>>(|| "/api/activities/notifications".to_owned());
    view! {
        <Shell>
            <h1>"Notifications"</h1>
            <Loaded
                resource=feed
                view=|activities| view! { <ActivityFeed activities empty="No notifications." /> }
            />
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
