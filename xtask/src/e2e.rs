//! `cargo xtask e2e`: Cruddur in headless Chromium against the whole stack as real processes (Postgres, the X-Ray
//! daemon, the backend, the frontend server with the release bundle), its traces received by a local OTLP receiver
//! standing in for Honeycomb:
//!
//! - a user signs up (a bad password first, which shows its error), signs out and in, posts a crud and sees it at
//!   the top of the home feed, is stopped by the counter past 280 characters, replies, edits the profile, and
//!   sends a direct message that shows in the conversation;
//! - every page renders with no console error;
//! - the browser's client span for the crud's POST and the backend's server span are one trace at the receiver,
//!   the server span a child of the browser's, and the trace reaches X-Ray through the daemon, the browser's span
//!   included (OTLP relayed by the backend to the daemon, delivered to X-Ray as a segment);
//! - the OTLP key the backend uses appears in nothing the browser loaded, stored or sent.

use std::time::Duration;

use anyhow::{Context, bail, ensure};
use fantoccini::elements::Element;
use fantoccini::{Client, Locator};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use serde_json::Value;
use test_support::browser::Browser;
use test_support::otlp::{OtlpReceiver, ReceivedSpan};

use crate::frontend;
use crate::install;
use crate::stack::{Otlp, Stack, segments_of_trace};

/// The key the backend sends to "Honeycomb"; it must never reach the browser.
const SECRET_KEY: &str = "e2e-honeycomb-key-7c1d2f";
/// How long an element or text may take to appear.
const PATIENCE: Duration = Duration::from_secs(20);

/// Runs the check; `build_bundle` false uses the bundle already in `frontend/dist` (`cargo xtask test` builds it first).
pub(crate) fn run(build_bundle: bool) -> anyhow::Result<()> {
    if build_bundle {
        frontend::build(&frontend::Args::default())?;
    }
    install::debian_packages(&["chromium", "chromium-driver"], "the browser tests")?;
    let receiver = OtlpReceiver::start();
    let headers = format!("x-honeycomb-team={SECRET_KEY}");
    let stack = Stack::start(&frontend::dist(), Some(Otlp { endpoint: &receiver.endpoint(), headers: &headers }))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let trace = runtime.block_on(async {
        let browser = Browser::start().await;
        let journey = Journey { client: &browser.client, browser: &browser, origin: stack.frontend_origin() };
        let outcome = journey.run(&receiver).await;
        if outcome.is_err() {
            eprintln!("e2e: the browser's console errors: {:#?}", browser.console_errors().await);
            let path = crate::process::workspace_root().join("target/e2e-failure.png");
            if let Ok(png) = browser.client.screenshot().await {
                let _ = std::fs::write(&path, png);
                eprintln!("e2e: the page at the failure is in {}", path.display());
            }
        }
        outcome
    })?;
    let xray_api = stack.stop();
    let root = format!("1-{}-{}", &trace[..8], &trace[8..]);
    let at_xray = segments_of_trace(&xray_api, &root);
    ensure!(!at_xray.is_empty(), "the crud's trace {root} did not reach X-Ray through the daemon");
    ensure!(
        at_xray.iter().any(|segment| segment["name"] == "cruddur-frontend"),
        "the browser's span of trace {root} did not reach X-Ray (segments: {:?})",
        at_xray.iter().map(|segment| &segment["name"]).collect::<Vec<_>>()
    );
    eprintln!("e2e: passed; the crud's trace {root} is in the OTLP receiver and in X-Ray, browser span included");
    Ok(())
}

/// A user's visit in the browser, at `origin`; `cargo xtask compose` walks part of it against the compose stack.
pub(crate) struct Journey<'a> {
    pub(crate) client: &'a Client,
    pub(crate) browser: &'a Browser,
    pub(crate) origin: String,
}

impl Journey<'_> {
    /// The whole visit; returns the trace id of the crud's POST.
    async fn run(&self, receiver: &OtlpReceiver) -> anyhow::Result<String> {
        self.first_render().await?;
        self.sign_up().await?;
        self.sign_out_and_in().await?;
        let crud = format!("Traced from the browser to the database at {}", std::process::id());
        self.post_crud(&crud).await?;
        self.counter_stops_long_cruds().await?;
        self.reply_and_profile(&crud).await?;
        self.direct_message().await?;
        self.earlier_messages().await?;
        self.every_page_renders().await?;
        let trace = self.crud_is_one_trace(receiver).await?;
        self.no_key_anywhere(receiver).await?;
        Ok(trace)
    }

    async fn first_render(&self) -> anyhow::Result<()> {
        self.open("/").await?;
        self.wait_for_text(".activity_item .message", "This was imported as seed data!").await?;
        let timing = self
            .client
            .execute(
                "const paint = performance.getEntriesByName('first-contentful-paint')[0];
                 return { feed: performance.now(), paint: paint ? paint.startTime : null };",
                vec![],
            )
            .await?;
        eprintln!(
            "e2e: first contentful paint at {} ms, the seeded feed on screen by {:.0} ms after navigation start",
            timing["paint"],
            timing["feed"].as_f64().unwrap_or_default()
        );
        self.no_console_errors("/").await?;
        // For a person to look at: the home feed on a desktop and on a phone.
        for (name, width, height) in [("desktop", 1280, 900), ("phone", 390, 844)] {
            self.client.set_window_size(width, height).await?;
            let png = self.client.screenshot().await?;
            std::fs::write(crate::process::workspace_root().join(format!("target/e2e-home-{name}.png")), png)?;
        }
        self.client.set_window_size(1280, 900).await?;
        Ok(())
    }

    pub(crate) async fn sign_up(&self) -> anyhow::Result<()> {
        self.open("/signup").await?;
        self.fill("input[name=display_name]", "E2E Tester").await?;
        self.fill("input[name=handle]", "e2etester").await?;
        self.fill("input[name=email]", "e2e@example.com").await?;
        self.fill("input[name=password]", "short").await?;
        self.click("form.account_form button[type=submit]").await?;
        self.wait_for_text(".error", "at least 8 characters").await?;
        self.only_refused_requests(&[
            "/api/auth/signup - Failed to load resource: the server responded with a status of 422",
        ])
        .await?;
        self.fill("input[name=password]", "a long enough password").await?;
        self.click("form.account_form button[type=submit]").await?;
        // Signed in: the home page with the crud form.
        self.wait_for(".crud_form").await?;
        self.wait_for_text(".navigation .who", "E2E Tester").await?;
        Ok(())
    }

    async fn sign_out_and_in(&self) -> anyhow::Result<()> {
        self.click("button.sign_out").await?;
        self.wait_for("a.sign_in").await?;
        self.open("/messages").await?;
        // Signed out, a protected page sends the user to sign in.
        self.wait_for("form.account_form input[name=email]").await?;
        ensure!(self.client.current_url().await?.path() == "/signin", "/messages while signed out goes to /signin");
        self.fill("input[name=email]", "e2e@example.com").await?;
        self.fill("input[name=password]", "not the password").await?;
        self.click("form.account_form button[type=submit]").await?;
        self.wait_for_text(".error", "Wrong email or password").await?;
        self.only_refused_requests(&[
            "/api/auth/signin - Failed to load resource: the server responded with a status of 401",
        ])
        .await?;
        self.fill("input[name=password]", "a long enough password").await?;
        self.click("form.account_form button[type=submit]").await?;
        self.wait_for(".crud_form").await?;
        Ok(())
    }

    pub(crate) async fn post_crud(&self, crud: &str) -> anyhow::Result<()> {
        // A blank crud is refused with its reason.
        self.click(".crud_form button[type=submit]").await?;
        self.wait_for_text(".crud_form .error", "Write something first").await?;
        self.fill("#crud_message", crud).await?;
        let left = self.text(".crud_form .count").await?;
        ensure!(left == (280 - crud.chars().count()).to_string(), "the counter shows {left} for {crud:?}");
        self.client.find(Locator::Css("#crud_ttl option[value='1-day']")).await?.click().await?;
        self.click(".crud_form button[type=submit]").await?;
        // At the top of the home feed.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            // The feed re-renders under us: an element gone stale is read again on the next round.
            let first = match self.client.find(Locator::Css(".activity_feed .activity_item .message")).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if first == crud {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the new crud is not at the top of the feed; the top is {first:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ensure!(self.text(".crud_form .count").await? == "280", "the form is cleared after posting");
        Ok(())
    }

    async fn counter_stops_long_cruds(&self) -> anyhow::Result<()> {
        self.fill("#crud_message", &"x".repeat(281)).await?;
        ensure!(self.text(".crud_form .count").await? == "-1", "281 characters leave -1");
        let button = self.client.find(Locator::Css(".crud_form button[type=submit]")).await?;
        ensure!(button.attr("disabled").await?.is_some(), "the Crud button is disabled past 280 characters");
        self.fill("#crud_message", "").await
    }

    async fn reply_and_profile(&self, crud: &str) -> anyhow::Result<()> {
        let link = self.find_with_text(".activity_item a.message", crud).await?;
        link.click().await?;
        self.wait_for(".reply_form").await?;
        ensure!(self.client.current_url().await?.path().starts_with("/@e2etester/status/"), "the crud's own page");
        self.fill("#reply_message", "And a reply, traced too.").await?;
        self.click(".reply_form button[type=submit]").await?;
        self.wait_for_text(".activity_feed .message", "And a reply, traced too.").await?;

        self.open("/@e2etester").await?;
        self.wait_for_text(".profile_heading h1", "E2E Tester").await?;
        self.wait_for_text(".activity_item .message", crud).await?;
        self.click("button.edit_profile").await?;
        self.fill(".profile_form textarea[name=bio]", "I follow requests for a living.").await?;
        self.click(".profile_form button[type=submit]").await?;
        self.wait_for_text(".profile_heading .bio", "I follow requests for a living.").await?;
        Ok(())
    }

    async fn direct_message(&self) -> anyhow::Result<()> {
        self.open("/@bayko").await?;
        self.wait_for_text(".profile_heading h1", "Andrew Bayko").await?;
        self.click(".profile_heading a.button").await?;
        self.wait_for_text("h1", "New conversation with Andrew Bayko").await?;
        self.fill("#message_text", "Hello Bayko, from the e2e test.").await?;
        self.click(".message_form button[type=submit]").await?;
        self.wait_for_text(".messages .message p", "Hello Bayko, from the e2e test.").await?;
        ensure!(self.client.current_url().await?.path().starts_with("/messages/"), "the conversation's page");
        self.open("/messages").await?;
        self.wait_for_text(".message_groups .last_message", "Hello Bayko, from the e2e test.").await?;
        self.open("/messages/@bayko").await?;
        self.wait_for_text("h1", "Messages with Andrew Bayko").await?;
        self.wait_for_text(".messages .message p", "Hello Bayko, from the e2e test.").await?;
        Ok(())
    }

    /// A page of new messages pushes the first one out of the conversation's first page; "Show earlier" brings it
    /// back above them.
    async fn earlier_messages(&self) -> anyhow::Result<()> {
        let sent = self
            .client
            .execute_async(
                "const [count, done] = arguments;
                 (async () => {
                     const { backend_url } = await (await fetch('/config.json')).json();
                     const { token } = JSON.parse(localStorage.getItem('cruddur.session'));
                     for (let n = 1; n <= count; n++) {
                         const answer = await fetch(backend_url + '/api/messages', {
                             method: 'POST',
                             headers: { 'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json' },
                             body: JSON.stringify({ handle: 'bayko', message: 'Paging message ' + n }),
                         });
                         if (!answer.ok) throw new Error('message ' + n + ' answered ' + answer.status);
                     }
                 })().then(() => done(null), error => done(String(error)));",
                vec![serde_json::json!(cruddur_api::PAGE_SIZE)],
            )
            .await?;
        ensure!(sent.is_null(), "sending a page of messages: {sent}");
        self.open("/messages/@bayko").await?;
        self.wait_for_text(".messages .message p", &format!("Paging message {}", cruddur_api::PAGE_SIZE)).await?;
        let mut first_page = Vec::new();
        for message in self.client.find_all(Locator::Css(".messages .message p")).await? {
            first_page.push(message.text().await?);
        }
        ensure!(
            first_page.len() == cruddur_api::PAGE_SIZE && !first_page.iter().any(|text| text.contains("Hello Bayko")),
            "the first page holds the newest messages only: {first_page:?}"
        );
        self.click("button.show_more").await?;
        self.wait_for_text(".messages .message p", "Hello Bayko, from the e2e test.").await?;
        Ok(())
    }

    /// Each of the eleven routes, signed in and (for the account pages) signed out, shows its heading and logs no
    /// console error.
    async fn every_page_renders(&self) -> anyhow::Result<()> {
        self.open("/").await?;
        let seed = self.find_with_text(".activity_item", "This was imported as seed data!").await?;
        let uuid = seed.attr("data-uuid").await?.context("an activity names its uuid")?;
        self.open("/messages").await?;
        let conversation = self.wait_for("a.message_group").await?.attr("href").await?;
        let conversation = conversation.context("a conversation link")?;
        let status = format!("/@andrewbrown/status/{uuid}");
        let signed_in = ["/", "/notifications", "/@andrewbrown", &status, "/messages", "/messages/new/londo"];
        for path in signed_in.into_iter().chain([conversation.as_str(), "/no/such/page"]) {
            self.open(path).await?;
            self.wait_for("main h1").await?;
            self.wait_until_loaded().await?;
            self.no_console_errors(path).await?;
        }
        self.open("/@nosuchuser").await?;
        self.wait_for_text(".error", "That does not exist").await?;
        self.only_refused_requests(&[
            "/api/activities/@nosuchuser - Failed to load resource: the server responded with a status of 404",
        ])
        .await?;
        self.click("button.sign_out").await?;
        for path in ["/signup", "/signin", "/confirm", "/forgot"] {
            self.open(path).await?;
            self.wait_for(".account_card h1").await?;
            self.no_console_errors(path).await?;
        }
        Ok(())
    }

    /// The crud's POST: the browser's client span and the backend's server span, one trace, parent and child.
    async fn crud_is_one_trace(&self, receiver: &OtlpReceiver) -> anyhow::Result<String> {
        let browser_post = receiver
            .wait_for_span("from the browser for POST /api/activities", |span| {
                is_browser(span) && span.kind() == SpanKind::Client && span.name() == "POST /api/activities"
            })
            .await;
        let server = receiver
            .wait_for_span("from the backend for POST /api/activities", |span| {
                span.kind() == SpanKind::Server
                    && span.string_attribute("http.route") == Some("/api/activities")
                    && span.string_attribute("http.request.method") == Some("POST")
            })
            .await;
        ensure!(server.trace_id() == browser_post.trace_id(), "one trace for the browser and the backend");
        ensure!(server.parent_span_id() == browser_post.span_id(), "the server span is the browser span's child");
        ensure!(
            browser_post.int_attribute("http.response.status_code") == Some(200),
            "the browser span records the status"
        );
        let submission = receiver.spans().into_iter().find(|span| span.span_id() == browser_post.parent_span_id());
        ensure!(
            submission.is_some_and(|span| span.name() == "submit crud"),
            "the API call is a child of the form submission's span"
        );
        receiver.wait_for_span("documentLoad", |span| is_browser(span) && span.name() == "documentLoad").await;
        Ok(server.trace_id())
    }

    /// The key is in nothing the page loaded (documents, scripts, wasm, styles, config), stored, or sent as spans.
    async fn no_key_anywhere(&self, receiver: &OtlpReceiver) -> anyhow::Result<()> {
        let loaded = self
            .client
            .execute(
                "return [location.href, ...performance.getEntriesByType('resource').map(entry => entry.name)];",
                vec![],
            )
            .await?;
        let http = reqwest::Client::new();
        let mut urls: Vec<String> =
            loaded.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect();
        urls.extend(
            ["/config.json", "/cruddur.js", "/cruddur_bg.wasm", "/style.css"]
                .map(|path| format!("{}{path}", self.origin)),
        );
        for url in urls.iter().filter(|url| url.starts_with(&self.origin)) {
            let body = http.get(url).send().await?.bytes().await?;
            ensure!(!contains(&body, SECRET_KEY.as_bytes()), "{url} carries the OTLP key");
        }
        let stored = self.client.execute("return JSON.stringify(localStorage) + document.cookie;", vec![]).await?;
        ensure!(!stored.to_string().contains(SECRET_KEY), "the browser stores the OTLP key");
        for span in receiver.spans().iter().filter(|span| is_browser(span)) {
            ensure!(!format!("{:?}", span.span).contains(SECRET_KEY), "a browser span carries the OTLP key");
            // Relayed with the server side's headers: the key was added by the daemon's fan-out, not sent by the page.
            ensure!(
                span.headers.get("x-honeycomb-team").and_then(|key| key.to_str().ok()) == Some(SECRET_KEY),
                "relayed with the key"
            );
        }
        Ok(())
    }

    pub(crate) async fn open(&self, path: &str) -> anyhow::Result<()> {
        self.client.goto(&format!("{}{path}", self.origin)).await.with_context(|| format!("opening {path}"))
    }

    async fn wait_for(&self, css: &str) -> anyhow::Result<Element> {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .with_context(|| format!("waiting for {css}"))
    }

    /// Waits until an element matching `css` contains `text`.
    async fn wait_for_text(&self, css: &str, text: &str) -> anyhow::Result<()> {
        self.find_with_text(css, text).await.map(drop)
    }

    async fn find_with_text(&self, css: &str, text: &str) -> anyhow::Result<Element> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            for element in self.client.find_all(Locator::Css(css)).await? {
                if element.text().await.is_ok_and(|shown| shown.contains(text)) {
                    return Ok(element);
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("no {css} shows {text:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until no "Loading…" line is left.
    async fn wait_until_loaded(&self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !self.client.find_all(Locator::Css(".loading")).await?.is_empty() {
            if tokio::time::Instant::now() > deadline {
                bail!("the page is still loading");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        self.retrying_stale(css, || async {
            let field = self.wait_for(css).await?;
            field.clear().await?;
            // clear() fires no input event; a keystroke and its deletion do.
            let keys = if text.is_empty() { " \u{e003}" } else { text };
            field.send_keys(keys).await?;
            Ok(())
        })
        .await
    }

    async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.retrying_stale(css, || async { Ok(self.wait_for(css).await?.click().await?) }).await
    }

    async fn text(&self, css: &str) -> anyhow::Result<String> {
        self.retrying_stale(css, || async { Ok(self.wait_for(css).await?.text().await?) }).await
    }

    /// Runs `action` again while it fails on an element the page re-rendered under it.
    async fn retrying_stale<T, Action, Done>(&self, css: &str, action: Action) -> anyhow::Result<T>
    where
        Action: Fn() -> Done,
        Done: std::future::Future<Output = anyhow::Result<T>>,
    {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match action().await {
                Err(error)
                    if format!("{error:#}").contains("stale element") && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                outcome => return outcome.with_context(|| format!("on {css}")),
            }
        }
    }

    /// The console holds exactly the browser's own lines for the requests the backend refused on purpose.
    async fn only_refused_requests(&self, expected: &[&str]) -> anyhow::Result<()> {
        let errors = self.browser.console_errors().await;
        let unexpected: Vec<&String> =
            errors.iter().filter(|error| !expected.iter().any(|line| error.contains(line))).collect();
        ensure!(unexpected.is_empty() && errors.len() == expected.len(), "console errors: {errors:#?}");
        Ok(())
    }

    async fn no_console_errors(&self, path: &str) -> anyhow::Result<()> {
        let errors = self.browser.console_errors().await;
        ensure!(errors.is_empty(), "{path} logged console errors: {errors:#?}");
        Ok(())
    }
}

fn is_browser(span: &ReceivedSpan) -> bool {
    span.resource_string_attribute("service.name") == Some("cruddur-frontend")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}
