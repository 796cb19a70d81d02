//! Accounts: `/signup` and `/signin` against the backend's local accounts, and `/confirm` and `/forgot`, which in
//! the original belonged to Cognito's email flows and here say what local accounts do instead.

use cruddur_api::{AuthResponse, SigninRequest, SignupRequest};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_router::NavigateOptions;
use leptos_router::components::A;
use leptos_router::hooks::use_navigate;

use crate::auth::use_session;
use crate::components::{ErrorNotice, Submitter, TextField};

/// The frame of the account pages: the logo, a title, the form.
#[component]
fn AccountCard(title: &'static str, children: Children) -> impl IntoView {
    view! {
        <div class="account">
            <article class="account_card">
                <A href="/" attr:class="logo">"Cruddur"</A>
                <h1>{title}</h1>
                {children()}
            </article>
        </div>
    }
}

/// The form of sign-up and sign-in: its fields (`children`), the problems the backend answers, and a button labelled
/// `action` that posts `request()` to `path` in a `submit {name}` span; a success keeps the session and opens the home
/// feed.
#[component]
fn AccountForm<MakeRequest, Request>(
    name: &'static str,
    path: &'static str,
    action: &'static str,
    request: MakeRequest,
    children: Children,
) -> impl IntoView
where
    MakeRequest: Fn() -> Request + 'static,
    Request: serde::Serialize + 'static,
{
    let submitter = Submitter::new(name);
    // Read here, with the page: event handlers do not see the context.
    let session = use_session();
    let navigate = use_navigate();
    let pending = submitter.pending();
    let error = submitter.error();
    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        let request = request();
        let navigate = navigate.clone();
        submitter.send(
            move |api| async move { api.post::<_, AuthResponse>(path, &request).await },
            move |auth| {
                session.sign_in(auth);
                navigate("/", NavigateOptions::default());
            },
        );
    };
    view! {
        <form class="account_form" on:submit=on_submit>
            {children()}
            <ErrorNotice error=error />
            <button type="submit" disabled=move || pending.get()>{action}</button>
        </form>
    }
}

/// `/signup`.
#[component]
pub(crate) fn SignupPage() -> impl IntoView {
    let display_name = RwSignal::new(String::new());
    let handle = RwSignal::new(String::new());
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    // The backend checks every field and answers all the problems at once.
    let request = move || SignupRequest {
        display_name: display_name.get_untracked(),
        handle: handle.get_untracked().trim().trim_start_matches('@').to_owned(),
        email: email.get_untracked().trim().to_owned(),
        password: password.get_untracked(),
    };
    view! {
        <AccountCard title="Sign up to create a Cruddur account">
            <AccountForm name="signup" path="/api/auth/signup" action="Sign up" request=request>
                <TextField label="Name" name="display_name" value=display_name autocomplete="name" />
                <TextField label="Handle" name="handle" value=handle autocomplete="username" />
                <TextField label="Email" name="email" value=email kind="email" autocomplete="email" />
                <TextField label="Password" name="password" value=password kind="password" autocomplete="new-password" />
            </AccountForm>
            <p class="alternative">"Have an account? " <A href="/signin">"Sign in!"</A></p>
        </AccountCard>
    }
}

/// `/signin`.
#[component]
pub(crate) fn SigninPage() -> impl IntoView {
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let request =
        move || SigninRequest { email: email.get_untracked().trim().to_owned(), password: password.get_untracked() };
    view! {
        <AccountCard title="Sign into your Cruddur account">
            <AccountForm name="signin" path="/api/auth/signin" action="Sign in" request=request>
                <TextField label="Email" name="email" value=email kind="email" autocomplete="email" />
                <TextField
                    label="Password"
                    name="password"
                    value=password
                    kind="password"
                    autocomplete="current-password"
                />
            </AccountForm>
            <p class="alternative"><A href="/forgot">"Forgot password?"</A></p>
            <p class="alternative">"Don't have an account? " <A href="/signup">"Sign up!"</A></p>
        </AccountCard>
    }
}

/// `/confirm`: the original's email-code step.
#[component]
pub(crate) fn ConfirmPage() -> impl IntoView {
    view! {
        <AccountCard title="Confirm your email">
            <p>
                "This Cruddur uses local accounts: there is no code to enter. Your account works as soon as you sign up."
            </p>
            <p class="alternative"><A href="/signin">"Sign in"</A>" · "<A href="/signup">"Sign up"</A></p>
        </AccountCard>
    }
}

/// `/forgot`: the original's password-reset-by-email flow.
#[component]
pub(crate) fn ForgotPage() -> impl IntoView {
    view! {
        <AccountCard title="Recover your password">
            <p>
                "Local accounts have no email recovery: nothing is sent anywhere. Ask whoever runs this Cruddur to reset "
                "your account, or sign up again with another email. (On a fresh local stack every seeded user's "
                "password is " <code>"cruddur-password"</code> ".)"
            </p>
            <p class="alternative"><A href="/signin">"Back to sign in"</A></p>
        </AccountCard>
    }
}
