//! The headless browser drives a real page and reports its console errors.

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use fantoccini::Locator;
use test_support::browser::Browser;

#[tokio::test]
async fn reads_the_page_and_its_console_errors() {
    let page = Html("<p id=greeting>hello</p><script>console.error('broken on purpose')</script>");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(
        async move { axum::serve(listener, Router::new().route("/", get(move || async move { page }))).await },
    );

    let browser = Browser::start().await;
    browser.client.goto(&format!("http://{address}/")).await.unwrap();
    let greeting = browser.client.find(Locator::Id("greeting")).await.unwrap().text().await.unwrap();
    assert_eq!(greeting, "hello");
    let errors = browser.console_errors().await;
    assert!(errors.iter().any(|error| error.contains("broken on purpose")), "{errors:?}");
    assert!(browser.console_errors().await.is_empty(), "the log is emptied by each read");
}
