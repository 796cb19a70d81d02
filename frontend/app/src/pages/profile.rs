//! `/@:handle` (the profile heading with its edit form, and the user's cruds) and `/@:handle/status/:uuid` (one
//! crud, its replies, and the reply form).

use cruddur_api::{ActivityWithReplies, BIO_MAX_CHARS, DisplayName, Profile, UpdateProfile, UserActivities};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use crate::api::{ApiError, load};
use crate::auth::use_session;
use crate::components::{
    ActivityFeed, ActivityItem, ErrorNotice, Loaded, MorePages, Order, ReplyForm, Shell, Submitter, TextField,
    activity_entry,
};

fn handle_param() -> Memo<String> {
    let params = use_params_map();
    Memo::new(move |_| params.with(|params| params.get("handle").unwrap_or_default()))
}

/// `/@:handle`.
#[component]
pub(crate) fn ProfilePage() -> impl IntoView {
    let handle = handle_param();
    let path = move || format!("/api/activities/@{}", handle.get());
    let page = load::<UserActivities>(path);
    view! {
        <Shell>
            <Loaded
                resource=page
                view=move |UserActivities { profile, activities }| {
                    view! {
                        <ProfileHeading profile />
                        <ActivityFeed activities=activities.clone() empty="No cruds yet." />
                        <MorePages
                            path=path()
                            order=Order::NewestFirst
                            first_page=activities
                            items={|page: UserActivities| page.activities}
                            item=activity_entry
                            class="activity_feed"
                        />
                    }
                }
            />
        </Shell>
    }
}

/// The name, handle, bio and count of cruds; the owner can edit name and bio, others can write a message.
#[component]
fn ProfileHeading(profile: Profile) -> impl IntoView {
    let session = use_session();
    let shown = RwSignal::new(profile);
    let editing = RwSignal::new(false);
    let is_me = move || session.user().is_some_and(|user| shown.with(|profile| profile.uuid == user.uuid));
    let handle = shown.with_untracked(|profile| profile.handle.clone());
    view! {
        <header class="profile_heading">
            <h1>{move || shown.with(|profile| profile.display_name.clone())}</h1>
            <p class="handle">"@"{handle.clone()}</p>
            <p class="bio">{move || shown.with(|profile| profile.bio.clone().unwrap_or_default())}</p>
            <p class="cruds_count">{move || shown.with(|profile| profile.cruds_count)}" cruds"</p>
            {move || {
                if is_me() {
                    view! {
                        <button class="edit_profile" on:click=move |_| editing.update(|open| *open = !*open)>
                            "Edit profile"
                        </button>
                    }
                        .into_any()
                } else if session.is_signed_in() {
                    view! { <A href=format!("/messages/new/{handle}") attr:class="button">"Message"</A> }.into_any()
                } else {
                    ().into_any()
                }
            }}
            {move || {
                (editing.get() && is_me())
                    .then(|| {
                        view! {
                            <ProfileForm
                                profile=shown.get_untracked()
                                on_saved=move |saved: Profile| {
                                    shown.set(saved);
                                    editing.set(false);
                                }
                            />
                        }
                    })
            }}
        </header>
    }
}

#[component]
fn ProfileForm(profile: Profile, #[prop(into)] on_saved: Callback<Profile>) -> impl IntoView {
    let submitter = Submitter::new("profile");
    let display_name = RwSignal::new(profile.display_name);
    let bio = RwSignal::new(profile.bio.unwrap_or_default());
    let error = submitter.error();
    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        let name = match DisplayName::parse(&display_name.get_untracked()) {
            Ok(name) => name.as_str().to_owned(),
            Err(key) => return submitter.refuse(ApiError::Rejected(vec![key])),
        };
        let text = bio.get_untracked().trim().to_owned();
        let body = UpdateProfile { display_name: name, bio: (!text.is_empty()).then_some(text) };
        submitter.send(
            move |api| async move { api.post::<_, Profile>("/api/profile/update", &body).await },
            move |saved| on_saved.run(saved),
        );
    };
    view! {
        <form class="profile_form" on:submit=on_submit>
            <TextField label="Display name" name="display_name" value=display_name />
            <label class="field">
                <span>"Bio"</span>
                <textarea
                    name="bio"
                    maxlength=BIO_MAX_CHARS
                    prop:value=move || bio.get()
                    on:input=move |event| bio.set(event_target_value(&event))
                ></textarea>
            </label>
            <button type="submit">"Save"</button>
            <ErrorNotice error=error />
        </form>
    }
}

/// `/@:handle/status/:activity_uuid`.
#[component]
pub(crate) fn StatusPage() -> impl IntoView {
    let session = use_session();
    let handle = handle_param();
    let params = use_params_map();
    let activity_uuid = Memo::new(move |_| params.with(|params| params.get("activity_uuid").unwrap_or_default()));
    let page = load::<ActivityWithReplies>(move || {
        format!("/api/activities/@{}/status/{}", handle.get(), activity_uuid.get())
    });
    let replies_view = move |ActivityWithReplies { activity, replies }: ActivityWithReplies| {
        let uuid = activity.uuid;
        let path = format!("/api/activities/@{}/status/{uuid}", activity.handle);
        view! {
            <ActivityItem activity />
            {move || {
                if session.is_signed_in() {
                    view! { <ReplyForm activity_uuid=uuid on_replied=move |_| page.refetch() /> }.into_any()
                } else {
                    view! { <p class="hint"><A href="/signin">"Sign in"</A>" to reply."</p> }.into_any()
                }
            }}
            <h2 class="replies_title">"Replies"</h2>
            <MorePages
                path
                order=Order::OldestFirst
                first_page=replies.clone()
                items={|page: ActivityWithReplies| page.replies}
                item=activity_entry
                class="activity_feed"
            />
            <ActivityFeed activities=replies empty="No replies yet." />
        }
    };
    view! {
        <Shell>
            <h1>"Crud"</h1>
            <Loaded resource=page view=replies_view />
        </Shell>
    }
}
