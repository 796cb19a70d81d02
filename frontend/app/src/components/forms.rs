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

/// One form's submissions: each is a `submit {form}` span whose API calls are its children, and the form shows
/// whether one is under way and why the last one failed.
#[derive(Clone)]
pub(crate) struct Submitter {
    form: &'static str,
    telemetry: Telemetry,
    api: Api,
    pending: RwSignal<bool>,
    error: RwSignal<Option<ApiError>>,
}

impl Submitter {
    /// For the form named `form`; reads the tracer and API client from context (call it while building the
    /// component, not in a handler).
    pub(crate) fn new(form: &'static str) -> Self {
        Self {
            form,
            telemetry: expect_context(),
            api: use_api(),
            pending: RwSignal::new(false),
            error: RwSignal::new(None),
        }
    }

    /// Shows why the input cannot be sent (checked in the browser, nothing sent).
    pub(crate) fn refuse(&self, error: ApiError) {
        self.error.set(Some(error));
    }

    /// The last failure, for an [`ErrorNotice`].
    pub(crate) fn error(&self) -> RwSignal<Option<ApiError>> {
        self.error
    }

    /// Whether a submission is under way (its button is disabled meanwhile).
    pub(crate) fn pending(&self) -> RwSignal<bool> {
        self.pending
    }

    /// Submits: `call` gets an API client traced under the submission; on success the error is cleared and
    /// `succeeded` gets the answer, otherwise the failure is shown.
    pub(crate) fn send<T, Call, Answer>(&self, call: Call, succeeded: impl FnOnce(T) + 'static)
    where
        Call: FnOnce(Api) -> Answer + 'static,
        Answer: Future<Output = Result<T, ApiError>> + 'static,
        T: 'static,
    {
        let Self { form, telemetry, api, pending, error } = self.clone();
        let submission = telemetry.submission(form);
        let api = api.within(&submission);
        pending.set(true);
        leptos::task::spawn_local(async move {
            let result = call(api).await;
            let failure = result.as_ref().err().map(ToString::to_string);
            telemetry.end(&submission, failure.as_deref());
            pending.set(false);
            match result {
                Ok(answer) => {
                    error.set(None);
                    succeeded(answer);
                }
                Err(failure) => error.set(Some(failure)),
            }
        });
    }
}

/// The text of a crud, reply or message with its live counter, what else the form needs (`children`), the submit
/// button (disabled past the limit and while sending) and the form's error.
#[component]
fn TextWithCounter(
    id: &'static str,
    label: &'static str,
    placeholder: &'static str,
    text: RwSignal<String>,
    limit: usize,
    action: &'static str,
    submitter: Submitter,
    #[prop(optional)] children: Option<Children>,
) -> impl IntoView {
    let left = move || limit as i64 - text.with(|text| text.trim().chars().count() as i64);
    let pending = submitter.pending();
    view! {
        <label class="visually_hidden" for=id>{label}</label>
        <textarea
            id=id
            name="message"
            placeholder=placeholder
            prop:value=move || text.get()
            on:input=move |event| text.set(event_target_value(&event))
        ></textarea>
        <div class="form_row">
            <span class="count" class:over=move || left() < 0 aria-live="polite">{left}</span>
            {children.map(|children| children())}
            <button type="submit" disabled=move || pending.get() || left() < 0>{action}</button>
        </div>
        <ErrorNotice error=submitter.error() />
    }
}

/// A new crud: the text with its counter, and how long it lives.
#[component]
pub(crate) fn CrudForm(#[prop(into)] on_posted: Callback<Activity>) -> impl IntoView {
    let submitter = Submitter::new("crud");
    let message = RwSignal::new(String::new());
    let ttl = RwSignal::new(Ttl::SevenDays.as_str().to_owned());
    let on_submit = {
        let submitter = submitter.clone();
        move |event: SubmitEvent| {
            event.prevent_default();
            let body = match (CrudMessage::crud(&message.get_untracked()), Ttl::parse(&ttl.get_untracked())) {
                (Ok(text), Ok(ttl)) => {
                    CreateActivity { message: text.as_str().to_owned(), ttl: ttl.as_str().to_owned() }
                }
                (text, ttl) => {
                    return submitter
                        .refuse(ApiError::Rejected([text.err(), ttl.err()].into_iter().flatten().collect()));
                }
            };
            submitter.send(
                move |api| async move { api.post::<_, Activity>("/api/activities", &body).await },
                move |activity| {
                    message.set(String::new());
                    on_posted.run(activity);
                },
            );
        }
    };
    view! {
        <form class="crud_form" on:submit=on_submit>
            <TextWithCounter
                id="crud_message"
                label="Your crud"
                placeholder="what would you like to say?"
                text=message
                limit=CRUD_MAX_CHARS
                action="Crud"
                submitter
            >
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
            </TextWithCounter>
        </form>
    }
}

/// A reply to the crud `activity_uuid`.
#[component]
pub(crate) fn ReplyForm(activity_uuid: Uuid, #[prop(into)] on_replied: Callback<Activity>) -> impl IntoView {
    let submitter = Submitter::new("reply");
    let message = RwSignal::new(String::new());
    let on_submit = {
        let submitter = submitter.clone();
        move |event: SubmitEvent| {
            event.prevent_default();
            let body = match CrudMessage::reply(&message.get_untracked()) {
                Ok(text) => CreateReply { message: text.as_str().to_owned() },
                Err(key) => return submitter.refuse(ApiError::Rejected(vec![key])),
            };
            let path = format!("/api/activities/{activity_uuid}/reply");
            submitter.send(
                move |api| async move { api.post::<_, Activity>(&path, &body).await },
                move |reply| {
                    message.set(String::new());
                    on_replied.run(reply);
                },
            );
        }
    };
    view! {
        <form class="reply_form" on:submit=on_submit>
            <TextWithCounter
                id="reply_message"
                label="Your reply"
                placeholder="reply…"
                text=message
                limit=REPLY_MAX_CHARS
                action="Reply"
                submitter
            />
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
    let submitter = Submitter::new("message");
    let message = RwSignal::new(String::new());
    let on_submit = {
        let submitter = submitter.clone();
        move |event: SubmitEvent| {
            event.prevent_default();
            let text = match CrudMessage::direct(&message.get_untracked()) {
                Ok(text) => text.as_str().to_owned(),
                Err(key) => return submitter.refuse(ApiError::Rejected(vec![key])),
            };
            let (message_group_uuid, handle) = match recipient.clone() {
                Recipient::Group(uuid) => (Some(uuid), None),
                Recipient::Handle(handle) => (None, Some(handle)),
            };
            let body = CreateMessage { message: text, message_group_uuid, handle };
            submitter.send(
                move |api| async move { api.post::<_, CreatedMessage>("/api/messages", &body).await },
                move |sent| {
                    message.set(String::new());
                    on_sent.run(sent);
                },
            );
        }
    };
    view! {
        <form class="message_form" on:submit=on_submit>
            <TextWithCounter
                id="message_text"
                label="Your message"
                placeholder="send a direct message…"
                text=message
                limit=MESSAGE_MAX_CHARS
                action="Send"
                submitter
            />
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
