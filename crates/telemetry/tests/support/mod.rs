//! Shared by the test binaries: a small traced axum app shaped like Cruddur's home feed, served on 127.0.0.1:0, and
//! the configuration that points telemetry at the local receivers through the seed's variables.

#![allow(dead_code, unreachable_pub)] // each test binary uses its own part

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use cruddur_telemetry::server::ServerLayer;
use cruddur_telemetry::{Telemetry, TelemetryConfig};
use sqlx::PgPool;
use test_support::otlp::OtlpReceiver;
use test_support::udp_sink::UdpSink;
use tokio::sync::oneshot;
use tracing::Instrument;
use tracing::field::Empty;
use xray_protocol::{
    GetSamplingRulesResponse, SamplingRule, SamplingRuleRecord, SamplingTargetDocument, SamplingTargetsRequest,
    SamplingTargetsResponse,
};

/// The route template the server span must report.
pub const ACTIVITIES_ROUTE: &str = "/api/activities/{handle}";

/// The statement the handler runs; the handle is a bound parameter that must never reach a span.
pub const ACTIVITIES_QUERY: &str =
    "SELECT message FROM (VALUES ($1::text), ('second message')) AS activities(message) WHERE message IS NOT NULL";

/// The seed's variables (plus X-Ray's), pointing at the local receivers.
pub fn seed_config(receiver: &OtlpReceiver, sink: &UdpSink, extra: &[(&str, &str)]) -> TelemetryConfig {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), receiver.endpoint()),
        ("OTEL_EXPORTER_OTLP_HEADERS".into(), "x-honeycomb-team=test-honeycomb-key".into()),
        ("OTEL_SERVICE_NAME".into(), "backend-rust".into()),
        ("AWS_XRAY_DAEMON_ADDRESS".into(), sink.address().to_string()),
        // These tests follow each request into X-Ray; sampling has tests of its own.
        ("AWS_XRAY_SAMPLING_RULES".into(), cruddur_telemetry::sampling::EVERY_TRACE.into()),
    ]);
    vars.extend(extra.iter().map(|(name, value)| (name.to_string(), value.to_string())));
    TelemetryConfig::from_lookup("cruddur-test", |name| vars.get(name).cloned()).expect("a valid configuration")
}

/// A fresh database (on test-support's Postgres), declared to `telemetry`.
pub async fn database(telemetry: &Telemetry) -> (PgPool, String) {
    let url = test_support::postgres::fresh_database().await;
    telemetry.set_database(cruddur_telemetry::DatabaseTarget::from_url(&url).expect("a postgres URL"));
    let pool = PgPool::connect(&url).await.expect("connecting to the test database");
    let name = url.rsplit('/').next().expect("a database name").to_owned();
    (pool, name)
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
pub fn serve_on(listener: tokio::net::TcpListener, app: Router) -> (SocketAddr, oneshot::Sender<()>) {
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

/// The X-Ray trace id form of an OTLP trace id.
pub fn xray_id(otlp_trace_id: &str) -> String {
    format!("1-{}-{}", &otlp_trace_id[..8], &otlp_trace_id[8..])
}

pub fn is_hex(text: &str, length: usize) -> bool {
    text.len() == length && text.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
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
