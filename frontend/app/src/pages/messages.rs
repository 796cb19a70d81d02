//! Direct messages (signed in only): `/messages` (the conversations), `/messages/new/:handle` (the first message to
//! someone), `/messages/@:handle` (the conversation with someone, started by the first message sent there) and
//! `/messages/:message_group_uuid` (one conversation); a conversation shows its newest messages, oldest first, with
//! the message form.

use cruddur_api::{CreatedMessage, Message, MessageGroup, UserShort};
use leptos::prelude::*;
use leptos_router::NavigateOptions;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_params_map};
use uuid::Uuid;

use crate::api::load;
use crate::components::{Loaded, MessageForm, Recipient, RequireSignIn, Shell, ago, now};

/// `/messages`.
#[component]
pub(crate) fn MessagesPage() -> impl IntoView {
    view! {
        <Shell>
            <h1>"Messages"</h1>
            <RequireSignIn>
                <MessageGroups />
            </RequireSignIn>
        </Shell>
    }
}

/// The caller's conversations, newest first.
#[component]
fn MessageGroups() -> impl IntoView {
    let groups = load::<Vec<MessageGroup>>(|| "/api/message_groups".to_owned());
    view! {
        <Loaded
            resource=groups
            view={|groups: Vec<MessageGroup>| {
                if groups.is_empty() {
                    return view! {
                        <p class="empty">"No conversations yet. Open someone's profile and press Message."</p>
                    }
                        .into_any();
                }
                let now = now();
                view! {
                    <ul class="message_groups">
                        {groups
                            .into_iter()
                            .map(|group| {
                                view! {
                                    <li>
                                        <A href=format!("/messages/{}", group.uuid) attr:class="message_group">
                                            <strong>{group.display_name}</strong>
                                            <small>"@"{group.handle}" · "{ago(group.created_at, now)}</small>
                                            <span class="last_message">{group.message}</span>
                                        </A>
                                    </li>
                                }
                            })
                            .collect_view()}
                    </ul>
                }
                    .into_any()
            }}
        />
    }
}

/// `/messages/new/:handle`.
#[component]
pub(crate) fn NewConversationPage() -> impl IntoView {
    view! {
        <Shell>
            <RequireSignIn>
                <NewConversation />
            </RequireSignIn>
        </Shell>
    }
}

#[component]
fn NewConversation() -> impl IntoView {
    let params = use_params_map();
    let navigate = use_navigate();
    let handle = Memo::new(move |_| params.with(|params| params.get("handle").unwrap_or_default()));
    let person = load::<UserShort>(move || format!("/api/users/@{}/short", handle.get()));
    let open_conversation = Callback::new(move |sent: CreatedMessage| {
        navigate(&format!("/messages/{}", sent.message_group_uuid), NavigateOptions::default())
    });
    view! {
        <Loaded
            resource=person
            view={move |person: UserShort| {
                view! {
                    <h1>"New conversation with "{person.display_name}</h1>
                    <p class="handle">"@"{person.handle.clone()}</p>
                    <MessageForm recipient=Recipient::Handle(person.handle) on_sent=open_conversation />
                }
            }}
        />
    }
}

/// `/messages/:message_group_uuid`.
#[component]
pub(crate) fn ConversationPage() -> impl IntoView {
    view! {
        <Shell>
            <RequireSignIn>
                <Conversation />
            </RequireSignIn>
        </Shell>
    }
}

#[component]
fn Conversation() -> impl IntoView {
    let params = use_params_map();
    let group = Memo::new(move |_| params.with(|params| params.get("message_group_uuid").unwrap_or_default()));
    let messages = load::<Vec<Message>>(move || format!("/api/messages/{}", group.get()));
    view! {
        <h1>"Conversation"</h1>
        <Loaded resource=messages view=message_list />
        {move || {
            group
                .get()
                .parse::<Uuid>()
                .ok()
                .map(|uuid| {
                    view! { <MessageForm recipient=Recipient::Group(uuid) on_sent=move |_| messages.refetch() /> }
                })
        }}
    }
}

/// `/messages/@:handle`.
#[component]
pub(crate) fn PersonConversationPage() -> impl IntoView {
    view! {
        <Shell>
            <RequireSignIn>
                <PersonConversation />
            </RequireSignIn>
        </Shell>
    }
}

/// The conversation with the person of the `handle` parameter: empty until one of the two writes; a message sent
/// here starts it.
#[component]
fn PersonConversation() -> impl IntoView {
    let params = use_params_map();
    let handle = Memo::new(move |_| params.with(|params| params.get("handle").unwrap_or_default()));
    let person = load::<UserShort>(move || format!("/api/users/@{}/short", handle.get()));
    let messages = load::<Vec<Message>>(move || format!("/api/messages/@{}", handle.get()));
    view! {
        <Loaded
            resource=person
            view=move |person: UserShort| {
                view! {
                    <h1>"Messages with "{person.display_name}</h1>
                    <p class="handle">"@"{person.handle.clone()}</p>
                    <Loaded resource=messages view=message_list />
                    <MessageForm recipient=Recipient::Handle(person.handle) on_sent=move |_| messages.refetch() />
                }
            }
        />
    }
}

/// A conversation's messages, oldest first.
fn message_list(messages: Vec<Message>) -> impl IntoView {
    if messages.is_empty() {
        return view! { <p class="empty">"No messages yet. Say hello."</p> }.into_any();
    }
    let now = now();
    view! {
        <ol class="messages">
            {messages
                .into_iter()
                .map(|message| {
                    view! {
                        <li class="message">
                            <strong>{message.display_name}</strong>
                            <small>"@"{message.handle}" · "{ago(message.created_at, now)}</small>
                            <p>{message.message}</p>
                        </li>
                    }
                })
                .collect_view()}
        </ol>
    }
    .into_any()
}
