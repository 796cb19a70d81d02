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

/// What a successful sign-up or sign-in does: keep the session and open the home feed. (Built with the page: the
/// router and session are read from context, which event handlers do not see.)
fn signed_in() -> Callback<AuthResponse> {
    let session = use_session();
    let navigate = use_navigate();
    Callback::new(move |auth: AuthResponse| {
        session.sign_in(auth);
        navigate("/", NavigateOptions::default());
    })
}

/// Sends `request` to `path` (`/api/auth/signup` or `/api/auth/signin`); the answer goes to `done`.
fn authenticate<Request>(submitter: &Submitter, path: &'static str, request: Request, done: Callback<AuthResponse>)
where
    Request: serde::Serialize + 'static,
{
    submitter
        .send(move |api| async move { api.post::<_, AuthResponse>(path, &request).await }, move |auth| done.run(auth));
}

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

/// `/signup`.
#[component]
pub(crate) fn SignupPage() -> impl IntoView {
    let submitter = Submitter::new("signup");
    let done = signed_in();
    let display_name = RwSignal::new(String::new());
    let handle = RwSignal::new(String::new());
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let pending = submitter.pending();
    let error = submitter.error();
    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        // The backend checks every field and answers all the problems at once.
        let request = SignupRequest {
            display_name: display_name.get_untracked(),
            handle: handle.get_untracked().trim().trim_start_matches('@').to_owned(),
            email: email.get_untracked().trim().to_owned(),
            password: password.get_untracked(),
        };
        authenticate(&submitter, "/api/auth/signup", request, done);
    };
    view! {
        <AccountCard title="Sign up to create a Cruddur account">
            <form class="account_form" on:submit=on_submit>
                <TextField label="Name" name="display_name" value=display_name autocomplete="name" />
                <TextField label="Handle" name="handle" value=handle autocomplete="username" />
                <TextField label="Email" name="email" value=email kind="email" autocomplete="email" />
                <TextField label="Password" name="password" value=password kind="password" autocomplete="new-password" />
                <ErrorNotice error=error />
                <button type="submit" disabled=move || pending.get()>"Sign up"</button>
            </form>
            <p class="alternative">"Have an account? " <A href="/signin">"Sign in!"</A></p>
        </AccountCard>
    }
}

/// `/signin`.
#[component]
pub(crate) fn SigninPage() -> impl IntoView {
    let submitter = Submitter::new("signin");
    let done = signed_in();
    let email = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let pending = submitter.pending();
    let error = submitter.error();
    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        let request =
            SigninRequest { email: email.get_untracked().trim().to_owned(), password: password.get_untracked() };
        authenticate(&submitter, "/api/auth/signin", request, done);
    };
    view! {
        <AccountCard title="Sign into your Cruddur account">
            <form class="account_form" on:submit=on_submit>
                <TextField label="Email" name="email" value=email kind="email" autocomplete="email" />
                <TextField
                    label="Password"
                    name="password"
                    value=password
                    kind="password"
                    autocomplete="current-password"
                />
                <ErrorNotice error=error />
                <button type="submit" disabled=move || pending.get()>"Sign in"</button>
            </form>
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
