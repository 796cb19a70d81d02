//! Shared by the test binaries: a small traced axum app shaped like Cruddur's home feed, run in test-support's
//! traced-app harness with telemetry from the seed's variables, and a stand-in for the daemon's sampling API.

#![allow(dead_code, unreachable_pub)] // each test binary uses its own part

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use cruddur_telemetry::sampling::EVERY_TRACE;
use cruddur_telemetry::server::ServerLayer;
use cruddur_telemetry::{DatabaseTarget, Telemetry, TelemetryConfig};
use sqlx::PgPool;
use test_support::otlp::OtlpReceiver;
use test_support::traced::{Pipeline, TracedApp, TracedOptions, Variables};
use test_support::udp_sink::UdpSink;
use tokio::sync::oneshot;
use tracing::Instrument;
use tracing::field::Empty;
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::SubscriberExt;
use xray_protocol::{
    GetSamplingRulesResponse, SamplingRule, SamplingRuleRecord, SamplingTargetDocument, SamplingTargetsRequest,
    SamplingTargetsResponse,
};

/// The route template the server span must report.
pub const ACTIVITIES_ROUTE: &str = "/api/activities/{handle}";

/// The statement the handler runs; the handle is a bound parameter that must never reach a span.
pub const ACTIVITIES_QUERY: &str =
    "SELECT message FROM (VALUES ($1::text), ('second message')) AS activities(message) WHERE message IS NOT NULL";

/// How the harness installs and flushes this crate's pipeline.
pub const TELEMETRY: Pipeline<Telemetry> = Pipeline { install, flush: Telemetry::force_flush };

fn install(telemetry: &Telemetry) -> DefaultGuard {
    tracing::subscriber::set_default(tracing_subscriber::registry().with(telemetry.layer()))
}

/// The seed's variables for the test service, every trace to X-Ray, and `extra` on top.
pub fn options(extra: &[(&str, &str)]) -> TracedOptions {
    // These tests follow each request into X-Ray; the sampling tests set rules of their own.
    TracedOptions::new("backend-rust", EVERY_TRACE).variables(extra)
}

/// The configuration the seed's variables and `extra` give, pointing at `receiver` and `sink` (for the tests that
/// assemble a pipeline of their own).
pub fn seed_config(receiver: &OtlpReceiver, sink: &UdpSink, extra: &[(&str, &str)]) -> TelemetryConfig {
    let variables = options(extra).resolve(receiver, sink);
    TelemetryConfig::from_lookup("cruddur-test", |name| variables.get(name)).expect("a valid configuration")
}

/// A fresh database (on test-support's Postgres), declared to `telemetry`.
pub async fn database(telemetry: &Telemetry) -> (PgPool, String) {
    let url = test_support::postgres::fresh_database().await;
    (connect(telemetry, &url).await, url.rsplit('/').next().expect("a database name").to_owned())
}

async fn connect(telemetry: &Telemetry, url: &str) -> PgPool {
    telemetry.set_database(DatabaseTarget::from_url(url).expect("a postgres URL"));
    PgPool::connect(url).await.expect("connecting to the test database")
}

/// The app with a fresh database, traced as the seed's variables and `extra` configure it.
pub async fn harness(extra: &[(&str, &str)]) -> TracedApp<Telemetry> {
    traced(options(extra).with_database(), |_| {}).await
}

/// Telemetry as `variables` configure it, with `adjust` applied to the configuration (what no variable sets).
pub fn telemetry(variables: &Variables, adjust: impl FnOnce(&mut TelemetryConfig)) -> Telemetry {
    let mut config =
        TelemetryConfig::from_lookup("cruddur-test", |name| variables.get(name)).expect("a valid configuration");
    adjust(&mut config);
    Telemetry::new(&config).expect("telemetry")
}

/// The app traced as `options` configure it, with `adjust` applied to the configuration (what no variable sets).
pub async fn traced(options: TracedOptions, adjust: impl FnOnce(&mut TelemetryConfig)) -> TracedApp<Telemetry> {
    let telemetry = |variables: &Variables| telemetry(variables, adjust);
    TracedApp::start(options, TELEMETRY, telemetry, async |telemetry: &Telemetry, database_url: Option<&str>| {
        let pool = match database_url {
            Some(url) => connect(telemetry, url).await,
            // Routes that never query.
            None => PgPool::connect_lazy("postgres://unused/unused").expect("a lazy pool"),
        };
        app(pool)
    })
    .await
}

/// The app: a home-feed route with a hand-made span, a query and a child span with X-Ray metadata, plus routes
/// answering the statuses X-Ray classifies.
pub fn app(pool: PgPool) -> Router {
    Router::new()
        .route(ACTIVITIES_ROUTE, get(activities))
        .route("/api/status/{code}", get(status))
        .with_state(pool)
        .layer(ServerLayer::new())
}

async fn activities(State(pool): State<PgPool>, Path(handle): Path<String>) -> axum::Json<Vec<String>> {
    let now = "2024-03-01T12:00:00+00:00";
    let span = tracing::info_span!("home-activities", app.now = now, app.result_length = Empty);
    async {
        tracing::info!("loading activities");
        // A span OpenTelemetry does not trace (debug), that logs show when RUST_LOG asks: what happens in it still
        // belongs to home-activities' trace.
        let messages: Vec<String> = async {
            let messages =
                sqlx::query_scalar(ACTIVITIES_QUERY).bind(&handle).fetch_all(&pool).await.expect("the query");
            tracing::info!(rows = messages.len(), "activities fetched");
            messages
        }
        .instrument(tracing::debug_span!("fetching"))
        .await;
        tracing::Span::current().record("app.result_length", messages.len() as i64);
        tracing::info_span!("user-activities", "metadata.now" = now, "metadata.results-size" = messages.len() as i64)
            .in_scope(|| tracing::info!("mock data ready"));
        axum::Json(messages)
    }
    .instrument(span)
    .await
}

async fn status(Path(code): Path<u16>) -> StatusCode {
    StatusCode::from_u16(code).expect("a status code")
}

/// A server on 127.0.0.1:0 running until the returned sender is dropped.
pub async fn serve(app: Router) -> (SocketAddr, oneshot::Sender<()>) {
    serve_on(tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding the app"), app)
}

/// Serves `app` on `listener` until the sender is dropped.
fn serve_on(listener: tokio::net::TcpListener, app: Router) -> (SocketAddr, oneshot::Sender<()>) {
    let address = listener.local_addr().expect("the app's address");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .expect("serving the app");
    });
    (address, stop)
}

/// A stand-in for the daemon's sampling API (`POST /GetSamplingRules`, `POST /SamplingTargets`): answers the given
/// rules, and keeps each `SamplingTargets` request (answering each rule with its own rate and no quota).
pub struct SamplingApi {
    pub address: SocketAddr,
    reports: std::sync::Arc<std::sync::Mutex<Vec<SamplingTargetsRequest>>>,
    _stop: oneshot::Sender<()>,
}

impl SamplingApi {
    pub async fn start(rules: Vec<SamplingRule>) -> Self {
        Self::start_on(tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding"), rules).await
    }

    /// [`SamplingApi::start`] on a listener of the caller's (a port chosen before the API is there).
    pub async fn start_on(listener: tokio::net::TcpListener, rules: Vec<SamplingRule>) -> Self {
        use axum::Json;
        use axum::routing::post;

        let reports = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let records: Vec<SamplingRuleRecord> = rules
            .iter()
            .map(|rule| SamplingRuleRecord { sampling_rule: rule.clone(), created_at: None, modified_at: None })
            .collect();
        let rules_page = GetSamplingRulesResponse { sampling_rule_records: records, next_token: None };
        let kept = reports.clone();
        let app = Router::new().route("/GetSamplingRules", post(move || async move { Json(rules_page) })).route(
            "/SamplingTargets",
            post(move |Json(request): Json<SamplingTargetsRequest>| async move {
                let targets = request
                    .sampling_statistics_documents
                    .iter()
                    .map(|document| SamplingTargetDocument {
                        rule_name: document.rule_name.clone(),
                        fixed_rate: rules
                            .iter()
                            .find(|rule| rule.rule_name == document.rule_name)
                            .map_or(0.0, |rule| rule.fixed_rate),
                        reservoir_quota: None,
                        reservoir_quota_ttl: None,
                        interval: Some(10),
                    })
                    .collect();
                kept.lock().unwrap().push(request);
                Json(SamplingTargetsResponse {
                    sampling_target_documents: targets,
                    last_rule_modification: Some(0.0),
                    unprocessed_statistics: Vec::new(),
                })
            }),
        );
        let (address, stop) = serve_on(listener, app);
        Self { address, reports, _stop: stop }
    }

    /// Every `SamplingTargets` request so far.
    pub fn reports(&self) -> Vec<SamplingTargetsRequest> {
        self.reports.lock().unwrap().clone()
    }
}

/// A rule as X-Ray sends it, for every service, host and method.
pub fn sampling_rule(name: &str, priority: i32, url_path: &str, fixed_rate: f64, reservoir_size: i32) -> SamplingRule {
    SamplingRule {
        rule_name: name.into(),
        rule_arn: Some(format!("arn:aws:xray:us-east-1:000000000000:sampling-rule/{name}")),
        priority,
        fixed_rate,
        reservoir_size,
        url_path: url_path.into(),
        ..SamplingRule::default_rule()
    }
}
