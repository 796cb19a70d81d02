//! The settings the frontend server hands the app at run time (`GET /config.json`), so one bundle serves every
//! deployment.

use serde::Deserialize;

/// `/config.json` as the frontend server writes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct RuntimeConfig {
    /// Where the API is, without a trailing slash (`http://localhost:4567`).
    pub(crate) backend_url: String,
}

impl RuntimeConfig {
    /// Fetches `/config.json`; when it cannot be read (the bundle served by another server), the API is assumed on
    /// port 4567 of the page's host, as in the default stack, and the reason is logged to the console.
    pub(crate) async fn load() -> Self {
        match Self::fetch().await {
            Ok(config) => config,
            Err(error) => {
                let fallback = Self::same_host_default();
                leptos::logging::warn!("/config.json: {error}; using {}", fallback.backend_url);
                fallback
            }
        }
    }

    async fn fetch() -> Result<Self, gloo_net::Error> {
        let config: Self = gloo_net::http::Request::get("/config.json").send().await?.json().await?;
        Ok(Self { backend_url: config.backend_url.trim_end_matches('/').to_owned() })
    }

    fn same_host_default() -> Self {
        let host = web_sys::window()
            .and_then(|window| window.location().hostname().ok())
            .filter(|host| !host.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        Self { backend_url: format!("http://{host}:4567") }
    }
}
