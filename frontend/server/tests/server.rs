//! The frontend server on 127.0.0.1:0 over a bundle folder: assets, SPA fallback, run-time config, compression.

mod support;

use std::sync::Arc;

use clap::Parser;
use cruddur_frontend_server::Config;
use support::{Served, telemetry};

async fn serve(backend_url: &str) -> Served {
    support::serve(backend_url, Arc::new(telemetry(&[]))).await
}

#[tokio::test]
async fn every_app_route_gets_the_index_and_assets_are_served() {
    let served = serve("http://localhost:4567").await;
    for path in ["/", "/notifications", "/@andrewbrown/status/2b4f", "/messages/new/bayko", "/signin"] {
        let response = reqwest::get(format!("{}{path}", served.base)).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(response.text().await.unwrap().contains("<title>Cruddur</title>"), "{path}");
    }
    let css = reqwest::get(format!("{}/app.css", served.base)).await.unwrap();
    assert_eq!(css.headers()["content-type"], "text/css");
}

#[tokio::test]
async fn the_backend_url_is_read_at_run_time() {
    let served = serve("https://4567-abc.gitpod.io/").await;
    let config: serde_json::Value =
        reqwest::get(format!("{}/config.json", served.base)).await.unwrap().json().await.unwrap();
    assert_eq!(config, serde_json::json!({"backend_url": "https://4567-abc.gitpod.io"}));
}

#[tokio::test]
async fn assets_are_compressed_for_browsers_that_ask() {
    let served = serve("http://localhost:4567").await;
    let response = reqwest::Client::new()
        .get(format!("{}/app.css", served.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-encoding"], "gzip");
}

#[test]
fn defaults_follow_the_shared_contract() {
    let config = Config::try_parse_from(["cruddur-frontend"]).unwrap();
    assert_eq!(config.port, 3000);
    assert_eq!(config.backend_url, "http://localhost:4567");
}
