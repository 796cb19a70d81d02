//! Forms: the crud form (ttl select, live 280-character counter), the reply and message forms, labelled fields, and
//! [`Submitter`], which traces each submission and makes its API call a child of it.
//!
//! Input is checked with the same `cruddur-api` rules the backend applies before anything is sent; what the backend
//! still refuses comes back as its error keys and is shown the same way.

use std::future::Future;

use cruddur_api::{
    Activity, CRUD_MAX_CHARS, CreateActivity, CreateMessage, CreateReply, CreatedMessage, CrudMessage,
    MESSAGE_MAX_CHARS, REPLY_MAX_CHARS, Ttl,
};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use uuid::Uuid;

use super::ErrorNotice;
use crate::api::{Api, ApiError, use_api};
use crate::telemetry::Telemetry;

/// Runs form submissions: each is a `submit {form}` span, its API calls its children.
#[derive(Clone)]
pub(crate) struct Submitter {
    telemetry: Telemetry,
    api: Api,
}

impl Submitter {
    /// Reads the tracer and API client from context (call it while building the component, not in a handler).
    pub(crate) fn new() -> Self {
        Self { telemetry: expect_context(), api: use_api() }
    }

    /// Submits `form`: `call` gets an API client traced under the submission; `done` gets the result.
    pub(crate) fn run<T, Call, Answer>(
        &self,
        form: &'static str,
        call: Call,
        done: impl FnOnce(Result<T, ApiError>) + 'static,
    ) where
        Call: FnOnce(Api) -> Answer + 'static,
        Answer: Future<Output = Result<T, ApiError>> + 'static,
        T: 'static,
    {
        let telemetry = self.telemetry.clone();
        let submission = telemetry.submission(form);
        let api = self.api.within(&submission);
        leptos::task::spawn_local(async move {
            let result = call(api).await;
            let failure = result.as_ref().err().map(ToString::to_string);
            telemetry.end(&submission, failure.as_deref());
            done(result);
        });
    }
}

/// Characters left under `limit`, live.
fn remaining(text: RwSignal<String>, limit: usize) -> impl Fn() -> i64 + Copy {
    move || limit as i64 - text.with(|text| text.trim().chars().count() as i64)
}

/// A new crud: the text with its counter, and how long it lives.
#[component]
pub(crate) fn CrudForm(#[prop(into)] on_posted: Callback<Activity>) -> impl IntoView {
    let submitter = Submitter::new();
    let message = RwSignal::new(String::new());
    let ttl = RwSignal::new(Ttl::SevenDays.as_str().to_owned());
    let error = RwSignal::new(None::<ApiError>);
    let pending = RwSignal::new(false);
    let left = remaining(message, CRUD_MAX_CHARS);
    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        let body = match (CrudMessage::crud(&message.get_untracked()), Ttl::parse(&ttl.get_untracked())) {
            (Ok(text), Ok(ttl)) => CreateActivity { message: text.as_str().to_owned(), ttl: ttl.as_str().to_owned() },
            (text, ttl) => {
                return error.set(Some(ApiError::Rejected([text.err(), ttl.err()].into_iter().flatten().collect())));
            }
        };
        pending.set(true);
        submitter.run(
            "crud",
            move |api| async move { api.post::<_, Activity>("/api/activities", &body).await },
            move |result| {
                pending.set(false);
                match result {
                    Ok(activity) => {
                        message.set(String::new());
                        error.set(None);
                        on_posted.run(activity);
                    }
                    Err(failure) => error.set(Some(failure)),
                }
            },
        );
    };
    view! {
        <form class="crud_form" on:submit=on_submit>
            <label class="visually_hidden" for="crud_message">"Your crud"</label>
            <textarea
                id="crud_message"
                name="message"
                placeholder="what would you like to say?"
                prop:value=move || message.get()
                on:input=move |event| message.set(event_target_value(&event))
            ></textarea>
            <div class="form_row">
                <span class="count" class:over=move || left() < 0 aria-live="polite">{left}</span>
                <label class="visually_hidden" for="crud_ttl">"Expires after"</label>
                <select id="crud_ttl" name="ttl" on:change=move |event| ttl.set(event_target_value(&event))>
                    {Ttl::ALL
                        .into_iter()
                        .map(|option| {
                            view! {
                                <option value=option.as_str() selected=option == Ttl::SevenDays>
                                    {option.label()}
                                </option>
                            }
                        })
                        .collect_view()}
                </select>
                <button type="submit" disabled=move || pending.get() || left() < 0>"Crud"</button>
            </div>
            <ErrorNotice error=error />
        </form>
    }
}

/// A reply to the crud `activity_uuid`.
#[component]
pub(crate) fn ReplyForm(activity_uuid: Uuid, #[prop(into)] on_replied: Callback<Activity>) -> impl IntoView {
    let submitter = Submitter::new();
    let message = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let pending = RwSignal::new(false);
    let left = remaining(message, REPLY_MAX_CHARS);
    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        let body = match CrudMessage::reply(&message.get_untracked()) {
            Ok(text) => CreateReply { message: text.as_str().to_owned() },
            Err(key) => return error.set(Some(ApiError::Rejected(vec![key]))),
        };
        pending.set(true);
        let path = format!("/api/activities/{activity_uuid}/reply");
        submitter.run(
            "reply",
            move |api| async move { api.post::<_, Activity>(&path, &body).await },
            move |result| {
                pending.set(false);
                match result {
                    Ok(reply) => {
                        message.set(String::new());
                        error.set(None);
                        on_replied.run(reply);
                    }
                    Err(failure) => error.set(Some(failure)),
                }
            },
        );
    };
    view! {
        <form class="reply_form" on:submit=on_submit>
            <label class="visually_hidden" for="reply_message">"Your reply"</label>
            <textarea
                id="reply_message"
                name="message"
                placeholder="reply…"
                prop:value=move || message.get()
                on:input=move |event| message.set(event_target_value(&event))
            ></textarea>
            <div class="form_row">
                <span class="count" class:over=move || left() < 0>{left}</span>
                <button type="submit" disabled=move || pending.get() || left() < 0>"Reply"</button>
            </div>
            <ErrorNotice error=error />
        </form>
    }
}

/// Who a direct message goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recipient {
    /// An existing conversation.
    Group(Uuid),
    /// A person, which starts a conversation unless there is one.
    Handle(String),
}

/// A direct message, to a conversation or a person.
#[component]
pub(crate) fn MessageForm(recipient: Recipient, #[prop(into)] on_sent: Callback<CreatedMessage>) -> impl IntoView {
    let submitter = Submitter::new();
    let message = RwSignal::new(String::new());
    let error = RwSignal::new(None::<ApiError>);
    let pending = RwSignal::new(false);
    let left = remaining(message, MESSAGE_MAX_CHARS);
    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        let text = match CrudMessage::direct(&message.get_untracked()) {
            Ok(text) => text.as_str().to_owned(),
            Err(key) => return error.set(Some(ApiError::Rejected(vec![key]))),
        };
        let body = match recipient.clone() {
            Recipient::Group(uuid) => CreateMessage { message: text, message_group_uuid: Some(uuid), handle: None },
            Recipient::Handle(handle) => {
                CreateMessage { message: text, message_group_uuid: None, handle: Some(handle) }
            }
        };
        pending.set(true);
        submitter.run(
            "message",
            move |api| async move { api.post::<_, CreatedMessage>("/api/messages", &body).await },
            move |result| {
                pending.set(false);
                match result {
                    Ok(sent) => {
                        message.set(String::new());
                        error.set(None);
                        on_sent.run(sent);
                    }
                    Err(failure) => error.set(Some(failure)),
                }
            },
        );
    };
    view! {
        <form class="message_form" on:submit=on_submit>
            <label class="visually_hidden" for="message_text">"Your message"</label>
            <textarea
                id="message_text"
                name="message"
                placeholder="send a direct message…"
                prop:value=move || message.get()
                on:input=move |event| message.set(event_target_value(&event))
            ></textarea>
            <div class="form_row">
                <span class="count" class:over=move || left() < 0>{left}</span>
                <button type="submit" disabled=move || pending.get() || left() < 0>"Send"</button>
            </div>
            <ErrorNotice error=error />
        </form>
    }
}

/// A labelled input bound to `value`.
#[component]
pub(crate) fn TextField(
    label: &'static str,
    name: &'static str,
    value: RwSignal<String>,
    #[prop(default = "text")] kind: &'static str,
    #[prop(default = "off")] autocomplete: &'static str,
) -> impl IntoView {
    view! {
        <label class="field">
            <span>{label}</span>
            <input
                type=kind
                name=name
                autocomplete=autocomplete
                prop:value=move || value.get()
                on:input=move |event| value.set(event_target_value(&event))
            />
        </label>
    }
}

/// The crud form in a real browser (`cargo test --target wasm32-unknown-unknown`, headless Chromium).
#[cfg(all(test, target_arch = "wasm32"))]
mod browser {
    use leptos::prelude::*;
    use wasm_bindgen::JsCast;
    use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

    use super::CrudForm;
    use crate::api::Api;
    use crate::auth::Session;
    use crate::telemetry::Telemetry;

    wasm_bindgen_test_configure!(run_in_browser);

    fn element<T: JsCast>(css: &str) -> T {
        let document = web_sys::window().unwrap().document().unwrap();
        document.query_selector(css).unwrap().unwrap_or_else(|| panic!("no {css}")).dyn_into().unwrap()
    }

    async fn type_into_crud(text: &str) {
        let field: web_sys::HtmlTextAreaElement = element("#crud_message");
        field.set_value(text);
        field.dispatch_event(&web_sys::Event::new("input").unwrap()).unwrap();
        leptos::task::tick().await;
    }

    #[wasm_bindgen_test]
    async fn the_counter_counts_down_and_blocks_a_crud_past_280_characters() {
        let container: web_sys::HtmlElement =
            web_sys::window().unwrap().document().unwrap().create_element("div").unwrap().dyn_into().unwrap();
        web_sys::window().unwrap().document().unwrap().body().unwrap().append_child(&container).unwrap();
        // No backend: nothing is submitted in this test, and spans to a closed port are only a console warning.
        let telemetry = Telemetry::start("http://127.0.0.1:9");
        let _mounted = leptos::mount::mount_to(container, move || {
            let session = Session::restore();
            provide_context(session);
            provide_context(Api::new("http://127.0.0.1:9", session, telemetry.clone()));
            provide_context(telemetry);
            view! { <CrudForm on_posted=|_| () /> }
        });
        let count = || element::<web_sys::HtmlElement>(".crud_form .count").text_content().unwrap();
        let button = || element::<web_sys::HtmlButtonElement>(".crud_form button[type=submit]");
        assert_eq!(count(), "280");

        type_into_crud("Hello, Cruddur!").await;
        assert_eq!(count(), "265");
        assert!(!button().disabled());

        type_into_crud(&"é".repeat(281)).await;
        assert_eq!(count(), "-1", "characters, not bytes");
        assert!(button().disabled());

        type_into_crud("   ").await;
        button().click();
        leptos::task::tick().await;
        let error = element::<web_sys::HtmlElement>(".crud_form .error").text_content().unwrap();
        assert_eq!(error, "Write something first.");
    }
}
