//! Cruddur in the browser: a Leptos app rendered on the client (wasm32) with every page of the original React app,
//! talking to the backend only through the request and response types of `cruddur-api`.
//!
//! Start-up ([`start`]): read `/config.json` from the frontend server (the backend URL is a run-time setting, not
//! compiled in), start browser tracing, mount [`app::App`].
//!
//! # Browser tracing
//! Spans are made with the OpenTelemetry Rust API and SDK tracer (X-Ray-compatible ids from `opentelemetry-aws`, the
//! W3C and X-Ray propagators), exactly as the backend makes them, and exported by a span processor of ours
//! ([`telemetry::export`]) because the SDK's own processors and exporters cannot run in a browser (the batch
//! processor spawns a thread; the OTLP HTTP clients are not wasm). We chose this over the JavaScript OpenTelemetry
//! web SDK because it keeps one language, one id generator and one set of propagators on both sides of the wire,
//! and needs no npm bundler in the build: the exporter is ~150 lines over `opentelemetry-proto`'s own OTLP/JSON
//! types. Spans go to the backend's relay (`POST {BACKEND_URL}/v1/traces`), which forwards them with the server's
//! OTLP headers: no key ever reaches the browser.

// `#[component]` turns each component into `pub` items (props builder included), whatever the function's visibility.
#![allow(unreachable_pub)]

mod api;
mod app;
mod auth;
mod components;
mod config;
mod pages;
mod routes;
pub mod telemetry;

use leptos::prelude::*;

use crate::app::App;

/// The wasm entry point: loads the run-time config, starts tracing and mounts the app on `<body>`.
pub fn start() {
    console_error_panic_hook::set_once();
    // Not Leptos' spawner: it is set up by mounting, which happens inside.
    wasm_bindgen_futures::spawn_local(async {
        let config = config::RuntimeConfig::load().await;
        let telemetry = telemetry::Telemetry::start(&config.backend_url);
        telemetry.document_load();
        leptos::mount::mount_to_body(move || view! { <App config telemetry /> });
    });
}
