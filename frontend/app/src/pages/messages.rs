//! Direct messages (signed in only): `/messages` (the conversations), `/messages/new/:handle` (the first message to
//! someone), `/messages/@:handle` (the conversation with someone, started by the first message sent there) and
//! `/messages/:message_group_uuid` (one conversation); a conversation shows its newest messages, oldest first, with
//! the earlier ones a page at a time above them and the message form below.

use cruddur_api::{CreatedMessage, Message, MessageGroup, UserShort};
use leptos::prelude::*;
use leptos_router::NavigateOptions;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_params_map};
use uuid::Uuid;

use crate::api::load;
use crate::components::{Loaded, MessageForm, MorePages, Order, Recipient, RequireSignIn, Shell, ago, now};

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

/// The caller's conversations, most recently active first, a page at a time.
#[component]
fn MessageGroups() -> impl IntoView {
    const PATH: &str = "/api/message_groups";
    let groups = load::<Vec<MessageGroup>>(|| PATH.to_owned());
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
                view! {
                    <ol class="message_groups">{groups.clone().into_iter().map(message_group_entry).collect_view()}</ol>
                    <MorePages
                        path=PATH.to_owned()
                        order=Order::NewestFirst
                        first_page=groups
                        items={|page: Vec<MessageGroup>| page}
                        item=message_group_entry
                        class="message_groups"
                    />
                }
                    .into_any()
            }}
        />
    }
}

/// One conversation of the list: the other person, when it was last active, its last message.
fn message_group_entry(group: MessageGroup) -> impl IntoView {
    view! {
        <li>
            <A href=format!("/messages/{}", group.uuid) attr:class="message_group">
                <strong>{group.display_name}</strong>
                <small>"@"{group.handle}" · "{ago(group.created_at, now())}</small>
                <span class="last_message">{group.message}</span>
            </A>
        </li>
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
    let path = move || format!("/api/messages/{}", group.get());
    let messages = load::<Vec<Message>>(path);
    view! {
        <h1>"Conversation"</h1>
        <Loaded resource=messages view=move |messages| message_list(path(), messages) />
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
    let path = move || format!("/api/messages/@{}", handle.get());
    let messages = load::<Vec<Message>>(path);
    view! {
        <Loaded
            resource=person
            view=move |person: UserShort| {
                view! {
                    <h1>"Messages with "{person.display_name}</h1>
                    <p class="handle">"@"{person.handle.clone()}</p>
                    <Loaded resource=messages view=move |messages| message_list(path(), messages) />
                    <MessageForm recipient=Recipient::Handle(person.handle) on_sent=move |_| messages.refetch() />
                }
            }
        />
    }
}

/// A page of a conversation (`path` with `before` leads to the earlier ones), oldest first, with "Show earlier"
/// above it while there are more.
fn message_list(path: String, messages: Vec<Message>) -> impl IntoView {
    if messages.is_empty() {
        return view! { <p class="empty">"No messages yet. Say hello."</p> }.into_any();
    }
    view! {
        <MorePages
            path
            order=Order::OldestFirst
            first_page=messages.clone()
            items={|page: Vec<Message>| page}
            item=message_entry
            class="messages"
        />
        <ol class="messages">{messages.into_iter().map(message_entry).collect_view()}</ol>
    }
    .into_any()
}

/// One message: who, when, what.
fn message_entry(message: Message) -> impl IntoView {
    view! {
        <li class="message">
            <strong>{message.display_name}</strong>
            <small>"@"{message.handle}" · "{ago(message.created_at, now())}</small>
            <p>{message.message}</p>
        </li>
    }
}
