//! A local X-Ray control plane: the group and sampling-rule operations of the X-Ray API (`CreateGroup`,
//! `GetGroups`, `UpdateGroup`, `DeleteGroup`, `CreateSamplingRule`, `GetSamplingRules`, `UpdateSamplingRule`,
//! `DeleteSamplingRule`) over its REST-JSON protocol, with state and AWS-style errors, on a 127.0.0.1 port chosen by
//! the OS. It logs every call, so tests can tell what was called, and that nothing was.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::oneshot;

const ACCOUNT_ARN: &str = "arn:aws:xray:us-east-1:000000000000";

/// X-Ray's implicit rule, present in every account.
fn default_rule() -> Value {
    json!({
        "RuleName": "Default", "RuleARN": format!("{ACCOUNT_ARN}:sampling-rule/Default"), "ResourceARN": "*",
        "Priority": 10000, "FixedRate": 0.05, "ReservoirSize": 1, "ServiceName": "*", "ServiceType": "*",
        "Host": "*", "HTTPMethod": "*", "URLPath": "*", "Version": 1, "Attributes": {}
    })
}

#[derive(Default)]
struct Accounts {
    /// Group name -> filter expression.
    groups: BTreeMap<String, String>,
    /// Rule name -> the rule as X-Ray returns it.
    rules: BTreeMap<String, Value>,
    /// Operation names, in call order.
    calls: Vec<String>,
}

type Shared = Arc<Mutex<Accounts>>;

/// The running control plane; stops when dropped.
pub struct XRayControlPlane {
    address: SocketAddr,
    state: Shared,
    _stop: oneshot::Sender<()>,
}

impl XRayControlPlane {
    /// Starts on the current Tokio runtime.
    pub async fn start() -> Self {
        let state = Shared::default();
        state.lock().unwrap().rules.insert("Default".into(), default_rule());
        let router = Router::new()
            .route("/CreateGroup", post(create_group))
            .route("/Groups", post(get_groups))
            .route("/UpdateGroup", post(update_group))
            .route("/DeleteGroup", post(delete_group))
            .route("/CreateSamplingRule", post(create_rule))
            .route("/GetSamplingRules", post(get_rules))
            .route("/UpdateSamplingRule", post(update_rule))
            .route("/DeleteSamplingRule", post(delete_rule))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding the X-Ray control plane");
        let address = listener.local_addr().expect("its address");
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self { address, state, _stop: stop }
    }

    /// The endpoint URL to give an X-Ray client.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Operation names called so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Groups as name -> filter expression.
    pub fn groups(&self) -> BTreeMap<String, String> {
        self.state.lock().unwrap().groups.clone()
    }

    /// A sampling rule as X-Ray would return it.
    pub fn rule(&self, name: &str) -> Option<Value> {
        self.state.lock().unwrap().rules.get(name).cloned()
    }
}

/// An AWS REST-JSON error: the type in `x-amzn-ErrorType`, the message in the body.
fn error(kind: &str, message: &str) -> Response {
    (StatusCode::BAD_REQUEST, [("x-amzn-ErrorType", kind)], Json(json!({ "message": message }))).into_response()
}

fn record(state: &Shared, operation: &str) {
    state.lock().unwrap().calls.push(operation.to_owned());
}

fn group(name: &str, filter: &str) -> Value {
    json!({"GroupName": name, "GroupARN": format!("{ACCOUNT_ARN}:group/{name}"), "FilterExpression": filter})
}

fn rule_record(rule: &Value) -> Value {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    json!({"SamplingRule": rule, "CreatedAt": now, "ModifiedAt": now})
}

fn text<'a>(body: &'a Value, field: &str) -> &'a str {
    body[field].as_str().unwrap_or_default()
}

async fn create_group(State(state): State<Shared>, Json(body): Json<Value>) -> Response {
    record(&state, "CreateGroup");
    let (name, filter) = (text(&body, "GroupName"), text(&body, "FilterExpression"));
    let mut accounts = state.lock().unwrap();
    if accounts.groups.contains_key(name) {
        return error("InvalidRequestException", &format!("Group {name} already exists"));
    }
    accounts.groups.insert(name.to_owned(), filter.to_owned());
    Json(json!({ "Group": group(name, filter) })).into_response()
}

async fn get_groups(State(state): State<Shared>) -> Response {
    record(&state, "GetGroups");
    let accounts = state.lock().unwrap();
    let groups: Vec<Value> = accounts.groups.iter().map(|(name, filter)| group(name, filter)).collect();
    Json(json!({ "Groups": groups })).into_response()
}

async fn update_group(State(state): State<Shared>, Json(body): Json<Value>) -> Response {
    record(&state, "UpdateGroup");
    let (name, filter) = (text(&body, "GroupName"), text(&body, "FilterExpression"));
    let mut accounts = state.lock().unwrap();
    match accounts.groups.get_mut(name) {
        None => error("InvalidRequestException", &format!("Group {name} not found")),
        Some(current) => {
            *current = filter.to_owned();
            Json(json!({ "Group": group(name, filter) })).into_response()
        }
    }
}

async fn delete_group(State(state): State<Shared>, Json(body): Json<Value>) -> Response {
    record(&state, "DeleteGroup");
    let name = text(&body, "GroupName");
    match state.lock().unwrap().groups.remove(name) {
        None => error("InvalidRequestException", &format!("Group {name} not found")),
        Some(_) => Json(json!({})).into_response(),
    }
}

async fn create_rule(State(state): State<Shared>, Json(body): Json<Value>) -> Response {
    record(&state, "CreateSamplingRule");
    let mut rule = body["SamplingRule"].clone();
    let name = text(&rule, "RuleName").to_owned();
    let mut accounts = state.lock().unwrap();
    if accounts.rules.contains_key(&name) {
        return error("InvalidRequestException", &format!("Sampling rule {name} already exists"));
    }
    rule["RuleARN"] = json!(format!("{ACCOUNT_ARN}:sampling-rule/{name}"));
    accounts.rules.insert(name, rule.clone());
    Json(json!({ "SamplingRuleRecord": rule_record(&rule) })).into_response()
}

async fn get_rules(State(state): State<Shared>) -> Response {
    record(&state, "GetSamplingRules");
    let records: Vec<Value> = state.lock().unwrap().rules.values().map(rule_record).collect();
    Json(json!({ "SamplingRuleRecords": records })).into_response()
}

async fn update_rule(State(state): State<Shared>, Json(body): Json<Value>) -> Response {
    record(&state, "UpdateSamplingRule");
    let update = &body["SamplingRuleUpdate"];
    let name = text(update, "RuleName");
    let mut accounts = state.lock().unwrap();
    let Some(rule) = accounts.rules.get_mut(name) else {
        return error("InvalidRequestException", &format!("Sampling rule {name} not found"));
    };
    for (field, value) in update.as_object().into_iter().flatten() {
        rule[field] = value.clone();
    }
    Json(json!({ "SamplingRuleRecord": rule_record(rule) })).into_response()
}

async fn delete_rule(State(state): State<Shared>, Json(body): Json<Value>) -> Response {
    record(&state, "DeleteSamplingRule");
    let name = text(&body, "RuleName");
    match state.lock().unwrap().rules.remove(name) {
        None => error("InvalidRequestException", &format!("Sampling rule {name} not found")),
        Some(rule) => Json(json!({ "SamplingRuleRecord": rule_record(&rule) })).into_response(),
    }
}
