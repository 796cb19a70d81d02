//! The app: its state in context (session, API client, tracer), the twelve routes of the original, and a route span
//! for every navigation.

use leptos::prelude::*;
use leptos_router::components::{Route, Router, Routes};
use leptos_router::hooks::use_location;
use leptos_router::{ParamSegment, StaticSegment, path};

use crate::api::Api;
use crate::auth::Session;
use crate::config::RuntimeConfig;
use crate::pages::{
    ConfirmPage, ConversationPage, ForgotPage, HomePage, MessagesPage, NewConversationPage, NotFoundPage,
    NotificationsPage, PersonConversationPage, ProfilePage, SigninPage, SignupPage, StatusPage,
};
use crate::routes::HandleSegment;
use crate::telemetry::Telemetry;

#[component]
pub(crate) fn App(config: RuntimeConfig, telemetry: Telemetry) -> impl IntoView {
    let session = Session::restore();
    provide_context(session);
    provide_context(Api::new(&config.backend_url, session, telemetry.clone()));
    provide_context(telemetry);
    view! {
        <Router>
            <RouteSpans />
            <Routes fallback=NotFoundPage>
                <Route path=path!("/") view=HomePage />
                <Route path=path!("/notifications") view=NotificationsPage />
                <Route path=path!("/messages") view=MessagesPage />
                <Route path=path!("/messages/new/:handle") view=NewConversationPage />
                // Before the conversation by uuid, whose parameter would match `@handle` too.
                <Route path=(StaticSegment("messages"), HandleSegment) view=PersonConversationPage />
                <Route path=path!("/messages/:message_group_uuid") view=ConversationPage />
                <Route path=path!("/signup") view=SignupPage />
                <Route path=path!("/signin") view=SigninPage />
                <Route path=path!("/confirm") view=ConfirmPage />
                <Route path=path!("/forgot") view=ForgotPage />
                <Route path=(HandleSegment,) view=ProfilePage />
                <Route
                    path=(HandleSegment, StaticSegment("status"), ParamSegment("activity_uuid"))
                    view=StatusPage
                />
            </Routes>
        </Router>
    }
}

/// Opens a route span on every navigation, synchronously as the path changes (before the new page's requests go
/// out, so they become its children), and ends it on the next frame, once the page is rendered.
#[component]
fn RouteSpans() -> impl IntoView {
    let telemetry = expect_context::<Telemetry>();
    let location = use_location();
    ImmediateEffect::new_scoped(move || {
        let path = location.pathname.get();
        let route = telemetry.route_changed(&path);
        let telemetry = telemetry.clone();
        request_animation_frame(move || telemetry.end(&route, None));
    });
}
