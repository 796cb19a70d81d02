//! Cruds in a feed: who, when, how long they live, the text, and the actions (reply, repost, like, share).
//!
//! The API has no like or repost endpoints (the original's were never wired either): their buttons show the counts
//! and say so instead of pretending.

use chrono::{DateTime, Utc};
use cruddur_api::Activity;
use leptos::prelude::*;
use leptos_router::components::A;

/// A titled list of activities, or a friendly line when there are none.
#[component]
pub(crate) fn ActivityFeed(activities: Vec<Activity>, #[prop(optional)] empty: Option<&'static str>) -> impl IntoView {
    if activities.is_empty() {
        return view! { <p class="empty">{empty.unwrap_or("Nothing here yet.")}</p> }.into_any();
    }
    view! {
        <ol class="activity_feed">
            {activities.into_iter().map(activity_entry).collect_view()}
        </ol>
    }
    .into_any()
}

/// One activity as an item of a list (`<li>`), for the pages after a feed's first.
pub(crate) fn activity_entry(activity: Activity) -> impl IntoView {
    view! { <li><ActivityItem activity /></li> }
}

/// One crud or reply.
#[component]
pub(crate) fn ActivityItem(activity: Activity) -> impl IntoView {
    let profile = format!("/@{}", activity.handle);
    // A reply is shown under its crud already; a crud links to its own page with the replies.
    let status =
        activity.reply_to_activity_uuid.is_none().then(|| format!("/@{}/status/{}", activity.handle, activity.uuid));
    let now = now();
    let created = ago(activity.created_at, now);
    let expires = activity.expires_at.map(|expires_at| until(expires_at, now));
    let message = activity.message.clone();
    let uuid = activity.uuid.to_string();
    let display_name = activity.display_name.clone();
    let handle = activity.handle.clone();
    view! {
        <article class="activity_item" data-uuid=uuid>
            <header>
                <A href=profile.clone() attr:class="display_name">{display_name}</A>
                <A href=profile attr:class="handle">"@"{handle}</A>
                <time datetime=activity.created_at.to_rfc3339() title=activity.created_at.to_rfc2822()>{created}</time>
                {expires.map(|expires| view! { <span class="expires" title="This crud disappears then">{expires}</span> })}
            </header>
            {match status.clone() {
                Some(status) => view! { <A href=status attr:class="message">{message}</A> }.into_any(),
                None => view! { <p class="message">{message}</p> }.into_any(),
            }}
            <ActivityActions activity status />
        </article>
    }
}

#[component]
fn ActivityActions(activity: Activity, status: Option<String>) -> impl IntoView {
    let copied = RwSignal::new(false);
    let share_url = status.clone().map(|status| format!("{}{status}", origin()));
    let share = move |_| {
        if let (Some(url), Some(window)) = (share_url.clone(), web_sys::window()) {
            let _ = window.navigator().clipboard().write_text(&url);
            copied.set(true);
        }
    };
    view! {
        <footer class="activity_actions">
            {match status {
                Some(status) => view! {
                    <A href=status attr:class="action reply" attr:title="Reply">
                        "↩ "{activity.replies_count}
                    </A>
                }.into_any(),
                None => view! { <span class="action reply">"↩ "{activity.replies_count}</span> }.into_any(),
            }}
            <button class="action repost" disabled title="Reposting is not part of the Cruddur API yet">
                "⟳ "{activity.reposts_count}
            </button>
            <button class="action like" disabled title="Liking is not part of the Cruddur API yet">
                "♥ "{activity.likes_count}
            </button>
            <button class="action share" title="Copy a link to this crud" on:click=share>
                {move || if copied.get() { "Link copied" } else { "Share" }}
            </button>
        </footer>
    }
}

/// Now, from the browser's clock (`chrono`'s clock is not available in wasm without JavaScript bindings).
pub(crate) fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(js_sys::Date::now() as i64).unwrap_or_default()
}

fn origin() -> String {
    web_sys::window().and_then(|window| window.location().origin().ok()).unwrap_or_default()
}

/// "now", "5m", "3h", "2d": how long ago, as feeds show it.
pub(crate) fn ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let elapsed = now.signed_duration_since(then);
    match (elapsed.num_minutes(), elapsed.num_hours(), elapsed.num_days()) {
        (minutes, _, _) if minutes < 1 => "now".to_owned(),
        (minutes, 0, _) => format!("{minutes}m"),
        (_, hours, 0) => format!("{hours}h"),
        (_, _, days) if days < 30 => format!("{days}d"),
        _ => then.format("%b %-d, %Y").to_string(),
    }
}

/// "expires in 6d": how long a crud has left.
fn until(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let left = expires_at.signed_duration_since(now);
    match (left.num_minutes(), left.num_hours(), left.num_days()) {
        (minutes, _, _) if minutes < 1 => "expiring".to_owned(),
        (minutes, 0, _) => format!("expires in {minutes}m"),
        (_, hours, 0) => format!("expires in {hours}h"),
        (_, _, days) => format!("expires in {days}d"),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    #[test]
    fn times_read_like_a_feed() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(ago(now - TimeDelta::seconds(20), now), "now");
        assert_eq!(ago(now - TimeDelta::minutes(5), now), "5m");
        assert_eq!(ago(now - TimeDelta::hours(3), now), "3h");
        assert_eq!(ago(now - TimeDelta::days(2), now), "2d");
        assert_eq!(until(now + TimeDelta::days(7) - TimeDelta::minutes(1), now), "expires in 6d");
        assert_eq!(until(now + TimeDelta::minutes(30), now), "expires in 30m");
    }
}
