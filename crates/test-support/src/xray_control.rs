//! A local X-Ray control plane: the group and sampling-rule operations of the X-Ray API over its REST-JSON protocol,
//! with state, on a 127.0.0.1 port chosen by the OS.
//!
//! | operation | request |
//! |---|---|
//! | `CreateGroup`, `UpdateGroup`, `DeleteGroup` | `POST /CreateGroup`, `POST /UpdateGroup`, `POST /DeleteGroup` |
//! | `GetGroups` | `POST /Groups` |
//! | `CreateSamplingRule`, `UpdateSamplingRule`, `DeleteSamplingRule` | `POST /CreateSamplingRule`, ... |
//! | `GetSamplingRules` | `POST /GetSamplingRules` |
//!
//! It answers as X-Ray does: JSON bodies, errors as `x-amzn-ErrorType` plus `{"message": ...}` (a duplicate or
//! missing group or rule is `InvalidRequestException`, a 26th rule `RuleLimitExceededException`, an unsigned request
//! `403 MissingAuthenticationTokenException`), lists in pages of [`PAGE_SIZE`] with a `NextToken` (small on purpose,
//! so that clients' paging is exercised), and the implicit `Default` rule that cannot be deleted.
//!
//! Every request is recorded as a [`Call`] with the region and access key of its SigV4 signature, so tests can tell
//! what was called, where, by whom, and that nothing was. [`XRayControlPlane::put_group`] and
//! [`XRayControlPlane::put_rule`] change the state behind the client's back, as someone using the console would.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use xray_protocol::SamplingRule;
use xray_protocol::rule::DEFAULT_RULE_NAME;

/// How many groups or rule records one `GetGroups` or `GetSamplingRules` page holds.
pub const PAGE_SIZE: usize = 2;

/// How many sampling rules an account may have besides `Default`.
pub const RULE_LIMIT: usize = 25;

const ACCOUNT_ARN: &str = "arn:aws:xray:us-east-1:000000000000";

/// One request as the control plane saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The X-Ray operation (`GetGroups` for `POST /Groups`), or the path when it is none.
    pub operation: String,
    /// The region of the SigV4 credential scope; `None` when the request was not signed.
    pub region: Option<String>,
    /// The access key id that signed it.
    pub access_key: Option<String>,
    /// The HTTP status it was answered with.
    pub status: u16,
}

/// An error as X-Ray sends it.
#[derive(Clone)]
struct AwsError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl AwsError {
    fn invalid(message: String) -> Self {
        Self { status: StatusCode::BAD_REQUEST, kind: "InvalidRequestException", message }
    }
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        let body = axum::Json(json!({ "message": self.message }));
        (self.status, [("x-amzn-ErrorType", self.kind)], body).into_response()
    }
}

/// A sampling rule with X-Ray's bookkeeping.
#[derive(Clone)]
struct StoredRule {
    rule: Value,
    created_at: f64,
    modified_at: f64,
}

impl StoredRule {
    fn new(rule: Value) -> Self {
        let now = now();
        Self { rule, created_at: now, modified_at: now }
    }

    fn record(&self) -> Value {
        json!({"SamplingRule": self.rule, "CreatedAt": self.created_at, "ModifiedAt": self.modified_at})
    }
}

#[derive(Default)]
struct Account {
    /// Group name -> filter expression.
    groups: BTreeMap<String, String>,
    rules: BTreeMap<String, StoredRule>,
    calls: Vec<Call>,
}

type Shared = Arc<Mutex<Account>>;

/// The running control plane; stops when dropped.
pub struct XRayControlPlane {
    address: SocketAddr,
    account: Shared,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl XRayControlPlane {
    /// Starts on its own thread (with its own runtime, so sync tests and tests blocking on a child process can use
    /// it), holding only the `Default` rule.
    pub fn start() -> Self {
        let account = Shared::default();
        account.lock().unwrap().rules.insert(DEFAULT_RULE_NAME.into(), StoredRule::new(default_rule()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the X-Ray control plane");
        let address = listener.local_addr().expect("its address");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let router = Router::new().fallback(answer).with_state(account.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                let _ = axum::serve(listener, router)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        Self { address, account, stop: Some(stop), thread: Some(thread) }
    }

    /// The endpoint URL to give an X-Ray client.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Every request so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.account().calls.clone()
    }

    /// The operations called so far, in order.
    pub fn operations(&self) -> Vec<String> {
        self.account().calls.iter().map(|call| call.operation.clone()).collect()
    }

    /// The operations called so far that may change state (all but `Get*`), in order.
    pub fn writes(&self) -> Vec<String> {
        self.operations().into_iter().filter(|operation| !operation.starts_with("Get")).collect()
    }

    /// Groups as name -> filter expression.
    pub fn groups(&self) -> BTreeMap<String, String> {
        self.account().groups.clone()
    }

    /// A sampling rule as X-Ray returns it.
    pub fn rule(&self, name: &str) -> Option<Value> {
        self.account().rules.get(name).map(|stored| stored.rule.clone())
    }

    /// The names of the sampling rules, `Default` included.
    pub fn rule_names(&self) -> Vec<String> {
        self.account().rules.keys().cloned().collect()
    }

    /// Creates or replaces a group without a call being recorded.
    pub fn put_group(&self, name: &str, filter_expression: &str) {
        self.account().groups.insert(name.to_owned(), filter_expression.to_owned());
    }

    /// Creates or replaces a sampling rule (X-Ray's JSON shape, `RuleName` required) without a call being recorded.
    pub fn put_rule(&self, mut rule: Value) {
        let name = rule["RuleName"].as_str().expect("a RuleName").to_owned();
        rule["RuleARN"] = json!(rule_arn(&name));
        self.account().rules.insert(name, StoredRule::new(rule));
    }

    fn account(&self) -> MutexGuard<'_, Account> {
        self.account.lock().unwrap()
    }
}

impl Drop for XRayControlPlane {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// X-Ray's implicit rule, present in every account.
fn default_rule() -> Value {
    json!(SamplingRule { rule_arn: Some(rule_arn(DEFAULT_RULE_NAME)), ..SamplingRule::default_rule() })
}

fn rule_arn(name: &str) -> String {
    format!("{ACCOUNT_ARN}:sampling-rule/{name}")
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// The access key and region of a SigV4 `Authorization` header, if it signs for X-Ray.
fn signer(headers: &HeaderMap) -> Result<(String, String), AwsError> {
    let forbidden = |kind, message: &str| AwsError { status: StatusCode::FORBIDDEN, kind, message: message.into() };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| forbidden("MissingAuthenticationTokenException", "Missing Authentication Token"))?;
    let scope = authorization
        .strip_prefix("AWS4-HMAC-SHA256 Credential=")
        .and_then(|rest| rest.split(',').next())
        .ok_or_else(|| forbidden("IncompleteSignatureException", "not a SigV4 Authorization header"))?;
    match scope.split('/').collect::<Vec<_>>()[..] {
        [access_key, _date, region, "xray", "aws4_request"] => Ok((access_key.to_owned(), region.to_owned())),
        _ => Err(forbidden("InvalidSignatureException", "the credential scope is not for the xray service")),
    }
}

async fn answer(State(account): State<Shared>, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    let operation = match uri.path() {
        "/Groups" => "GetGroups",
        path => path.trim_start_matches('/'),
    };
    let signed = signer(&headers);
    let mut account = account.lock().unwrap();
    let result = match &signed {
        Err(error) => Err(error.clone()),
        Ok(_) => serde_json::from_slice::<Value>(&body)
            .map_err(|error| AwsError {
                status: StatusCode::BAD_REQUEST,
                kind: "SerializationException",
                message: error.to_string(),
            })
            .and_then(|request| perform(&mut account, operation, &request)),
    };
    let response = match result {
        Ok(body) => axum::Json(body).into_response(),
        Err(error) => error.into_response(),
    };
    let (access_key, region) = signed.ok().unzip();
    account.calls.push(Call {
        operation: operation.to_owned(),
        region,
        access_key,
        status: response.status().as_u16(),
    });
    response
}

fn perform(account: &mut Account, operation: &str, request: &Value) -> Result<Value, AwsError> {
    match operation {
        "CreateGroup" => create_group(account, request),
        "GetGroups" => Ok(get_groups(account, request)),
        "UpdateGroup" => update_group(account, request),
        "DeleteGroup" => delete_group(account, request),
        "CreateSamplingRule" => create_rule(account, request),
        "GetSamplingRules" => Ok(get_rules(account, request)),
        "UpdateSamplingRule" => update_rule(account, request),
        "DeleteSamplingRule" => delete_rule(account, request),
        _ => Err(AwsError {
            status: StatusCode::NOT_FOUND,
            kind: "UnknownOperationException",
            message: format!("{operation} is not an operation of this control plane"),
        }),
    }
}

/// A string member of a request, or the name at the end of its ARN member (`.../group/<name>`).
fn name_or_arn<'a>(request: &'a Value, name: &str, arn: &str) -> Result<&'a str, AwsError> {
    request[name]
        .as_str()
        .or_else(|| request[arn].as_str().and_then(|arn| arn.rsplit('/').next()))
        .ok_or_else(|| AwsError::invalid(format!("{name} or {arn} is required")))
}

/// One page of `items`, from the `NextToken` of the request (the index of the first item).
fn page(items: Vec<Value>, request: &Value, member: &str) -> Value {
    let start: usize = request["NextToken"].as_str().and_then(|token| token.parse().ok()).unwrap_or(0);
    let end = (start + PAGE_SIZE).min(items.len());
    let mut page = json!({ member: items.get(start..end).unwrap_or_default() });
    if end < items.len() {
        page["NextToken"] = json!(end.to_string());
    }
    page
}

fn group(name: &str, filter_expression: &str) -> Value {
    json!({
        "GroupName": name, "GroupARN": format!("{ACCOUNT_ARN}:group/{name}"), "FilterExpression": filter_expression,
        "InsightsConfiguration": {"InsightsEnabled": false, "NotificationsEnabled": false}
    })
}

fn create_group(account: &mut Account, request: &Value) -> Result<Value, AwsError> {
    let name = name_or_arn(request, "GroupName", "GroupARN")?;
    let filter = request["FilterExpression"].as_str().unwrap_or_default();
    if account.groups.contains_key(name) {
        return Err(AwsError::invalid(format!("Group {name} already exists")));
    }
    account.groups.insert(name.to_owned(), filter.to_owned());
    Ok(json!({ "Group": group(name, filter) }))
}

fn get_groups(account: &Account, request: &Value) -> Value {
    page(account.groups.iter().map(|(name, filter)| group(name, filter)).collect(), request, "Groups")
}

fn update_group(account: &mut Account, request: &Value) -> Result<Value, AwsError> {
    let name = name_or_arn(request, "GroupName", "GroupARN")?;
    let filter = account.groups.get_mut(name).ok_or_else(|| AwsError::invalid(format!("Group {name} not found")))?;
    if let Some(new_filter) = request["FilterExpression"].as_str() {
        *filter = new_filter.to_owned();
    }
    Ok(json!({ "Group": group(name, filter) }))
}

fn delete_group(account: &mut Account, request: &Value) -> Result<Value, AwsError> {
    let name = name_or_arn(request, "GroupName", "GroupARN")?;
    account.groups.remove(name).ok_or_else(|| AwsError::invalid(format!("Group {name} not found")))?;
    Ok(json!({}))
}

fn create_rule(account: &mut Account, request: &Value) -> Result<Value, AwsError> {
    let mut rule = request["SamplingRule"].clone();
    let name = name_or_arn(&rule, "RuleName", "RuleARN")?.to_owned();
    if account.rules.contains_key(&name) {
        return Err(AwsError::invalid(format!("Sampling rule {name} already exists")));
    }
    if account.rules.keys().filter(|existing| *existing != DEFAULT_RULE_NAME).count() >= RULE_LIMIT {
        return Err(AwsError {
            status: StatusCode::BAD_REQUEST,
            kind: "RuleLimitExceededException",
            message: format!("an account may have {RULE_LIMIT} sampling rules besides Default"),
        });
    }
    rule["RuleName"] = json!(name);
    rule["RuleARN"] = json!(rule_arn(&name));
    let stored = StoredRule::new(rule);
    let record = stored.record();
    account.rules.insert(name, stored);
    Ok(json!({ "SamplingRuleRecord": record }))
}

fn get_rules(account: &Account, request: &Value) -> Value {
    page(account.rules.values().map(StoredRule::record).collect(), request, "SamplingRuleRecords")
}

fn update_rule(account: &mut Account, request: &Value) -> Result<Value, AwsError> {
    let update = &request["SamplingRuleUpdate"];
    let name = name_or_arn(update, "RuleName", "RuleARN")?;
    let stored =
        account.rules.get_mut(name).ok_or_else(|| AwsError::invalid(format!("Sampling rule {name} not found")))?;
    for (field, value) in update.as_object().into_iter().flatten() {
        if field != "RuleName" && field != "RuleARN" {
            stored.rule[field] = value.clone();
        }
    }
    stored.modified_at = now();
    Ok(json!({ "SamplingRuleRecord": stored.record() }))
}

fn delete_rule(account: &mut Account, request: &Value) -> Result<Value, AwsError> {
    let name = name_or_arn(request, "RuleName", "RuleARN")?;
    if name == DEFAULT_RULE_NAME {
        return Err(AwsError::invalid("The Default sampling rule cannot be deleted".into()));
    }
    let stored =
        account.rules.remove(name).ok_or_else(|| AwsError::invalid(format!("Sampling rule {name} not found")))?;
    Ok(json!({ "SamplingRuleRecord": stored.record() }))
}
