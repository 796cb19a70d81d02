//! Centralized sampling, as the X-Ray SDKs do it: the rules come from X-Ray (`GetSamplingRules`, through the
//! daemon's TCP port, which signs and forwards the call, or answers it from its rule file offline), and every few
//! seconds the counts of each rule go back (`SamplingTargets`), answered with the rule's share of its reservoir
//! (`ReservoirQuota` traces per second, until `ReservoirQuotaTTL`), its rate and when to report again.
//!
//! Until the first rules arrive, and whenever they cannot be fetched for an hour, X-Ray's default rule applies (1
//! trace per second, then 5%). A rule without a quota yet borrows one trace a second. Rules for another service
//! type or a specific resource ARN, or with attributes, are left out, as the SDKs leave them out.
//!
//! One thread does the polling; it stops when [`Poller`] is dropped. The daemon being unreachable changes nothing
//! for requests: it is logged at `warn` once, and again once it answers.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use serde::{Deserialize, Serialize};
use xray_protocol::{
    GetSamplingRulesRequest, GetSamplingRulesResponse, Reservoir, SamplingRule, SamplingStatisticsDocument,
    SamplingTargetsRequest, SamplingTargetsResponse,
};

use super::local::xrays_default;
use super::rules::{AppliedRule, RuleSet, XraySampler};

/// How often the rules are fetched (X-Ray SDKs: 5 minutes).
const RULES_INTERVAL: Duration = Duration::from_secs(300);
/// How often counts are reported until X-Ray says otherwise (its `Interval`).
const DEFAULT_REPORT_INTERVAL: Duration = Duration::from_secs(10);
/// How soon a failed first fetch is tried again (a daemon starting after this service).
const FIRST_FETCH_RETRY: Duration = Duration::from_secs(10);
/// Fetched rules older than this give way to the default rule.
const RULES_EXPIRE: Duration = Duration::from_secs(3600);
/// One call to the daemon may take this long.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The polling thread; dropping this stops it.
#[derive(Debug)]
pub(crate) struct Poller {
    _stop: mpsc::Sender<()>,
}

impl Poller {
    /// Starts polling `http://{daemon_tcp_address}` for `sampler`'s rules.
    pub(crate) fn start(daemon_tcp_address: &str, sampler: Arc<XraySampler>) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel();
        let api = SamplingApi { base: format!("http://{daemon_tcp_address}"), client_id: client_id() };
        std::thread::Builder::new().name("xray-sampling".into()).spawn(move || api.poll(&sampler, &stopped))?;
        Ok(Self { _stop: stop })
    }
}

/// 24 hex digits naming this process to X-Ray, as each SDK instance names itself.
fn client_id() -> String {
    let id = RandomIdGenerator::default().new_trace_id().to_string();
    id[..24].to_owned()
}

struct SamplingApi {
    base: String,
    client_id: String,
}

/// What went wrong with one call (logged, never returned to a request).
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
}

impl SamplingApi {
    fn poll(&self, sampler: &XraySampler, stopped: &mpsc::Receiver<()>) {
        // The blocking client runs a runtime of its own: made here, on this thread, never on a request's.
        let client = match reqwest::blocking::Client::builder().timeout(CALL_TIMEOUT).build() {
            Ok(client) => client,
            Err(error) => return tracing::warn!(%error, "X-Ray sampling stays on the default rule"),
        };
        let mut state = PollState {
            next_rules: Instant::now(),
            next_report: Instant::now() + DEFAULT_REPORT_INTERVAL,
            fetched: None,
            failing: false,
        };
        loop {
            let now = Instant::now();
            if state.next_rules <= now {
                state.next_rules = now + RULES_INTERVAL;
                self.refresh_rules(&client, sampler, &mut state);
            }
            if state.next_report <= now {
                state.next_report = now + self.report(&client, sampler, &mut state).unwrap_or(DEFAULT_REPORT_INTERVAL);
            }
            let wait = state.next_rules.min(state.next_report).saturating_duration_since(Instant::now());
            match stopped.recv_timeout(wait) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn refresh_rules(&self, client: &reqwest::blocking::Client, sampler: &XraySampler, state: &mut PollState) {
        match self.fetch_rules(client) {
            Ok(rules) => {
                if state.failing {
                    tracing::info!("X-Ray sampling rules fetched from the daemon again");
                }
                state.failing = false;
                state.fetched = Some((Instant::now(), epoch_seconds()));
                tracing::debug!(rules = rules.len(), "X-Ray sampling rules fetched");
                let (rules, previous) = (centralized_rules(rules), sampler.rules());
                // A rule that stays keeps the quota X-Ray gave it, rather than borrowing until the next report.
                for rule in &rules.rules {
                    if let Some(previous) = previous.named(&rule.name) {
                        rule.reservoir.keep_quota_of(&previous.reservoir);
                    }
                }
                sampler.replace_rules(rules);
            }
            Err(error) => {
                if !state.failing {
                    tracing::warn!(
                        daemon = %self.base,
                        %error,
                        "X-Ray sampling rules unavailable: the rules in force stay (X-Ray's default rule if none \
                         were fetched in the last hour); requests are not affected"
                    );
                }
                state.failing = true;
                if state.fetched.is_some_and(|(at, _)| at.elapsed() > RULES_EXPIRE) {
                    state.fetched = None;
                    sampler.replace_rules(xrays_default());
                }
                // A daemon that starts after this service is found within seconds, not at the next interval.
                if state.fetched.is_none() {
                    state.next_rules = Instant::now() + FIRST_FETCH_RETRY;
                }
            }
        }
    }

    /// Every page of `GetSamplingRules`.
    fn fetch_rules(&self, client: &reqwest::blocking::Client) -> Result<Vec<SamplingRule>, CallError> {
        let mut rules = Vec::new();
        let mut next_token = None;
        loop {
            let page: GetSamplingRulesResponse =
                self.call(client, "GetSamplingRules", &GetSamplingRulesRequest { next_token })?;
            rules.extend(page.sampling_rule_records.into_iter().map(|record| record.sampling_rule));
            next_token = page.next_token.filter(|token| !token.is_empty());
            if next_token.is_none() {
                return Ok(rules);
            }
        }
    }

    /// Reports each rule's counts and applies the targets; the next report's delay, when X-Ray gave one.
    fn report(
        &self,
        client: &reqwest::blocking::Client,
        sampler: &XraySampler,
        state: &mut PollState,
    ) -> Option<Duration> {
        // Nothing to report before X-Ray's rules are in force.
        state.fetched?;
        let rules = sampler.rules();
        let timestamp = epoch_seconds();
        // Only rules that saw requests, as the SDKs report: X-Ray shares a rule's reservoir among the clients that
        // report it, so an idle client must not take a share.
        let documents: Vec<SamplingStatisticsDocument> = rules
            .rules
            .iter()
            .filter_map(|rule| {
                let counts = rule.statistics.take();
                (counts.requests > 0).then(|| SamplingStatisticsDocument {
                    rule_name: rule.name.clone(),
                    client_id: self.client_id.clone(),
                    timestamp,
                    request_count: counts.requests,
                    sampled_count: counts.sampled,
                    borrow_count: counts.borrowed,
                })
            })
            .collect();
        if documents.is_empty() {
            return None;
        }
        let request = SamplingTargetsRequest { sampling_statistics_documents: documents };
        let answer: SamplingTargetsResponse = match self.call(client, "SamplingTargets", &request) {
            Ok(answer) => answer,
            Err(error) => {
                tracing::debug!(%error, "reporting X-Ray sampling statistics");
                return None;
            }
        };
        for target in &answer.sampling_target_documents {
            if let Some(rule) = rules.rules.iter().find(|rule| rule.name == target.rule_name) {
                let quota =
                    target.reservoir_quota.zip(target.reservoir_quota_ttl).map(|(quota, ttl)| (quota, ttl as u64));
                rule.reservoir.assign(quota, target.fixed_rate);
            }
        }
        // Rules changed since they were fetched: fetch them now.
        if let (Some(modified), Some((_, fetched))) = (answer.last_rule_modification, state.fetched)
            && modified > fetched
        {
            state.next_rules = Instant::now();
        }
        answer.sampling_target_documents.iter().filter_map(|target| target.interval).min().map(Duration::from_secs)
    }

    fn call<T: for<'de> Deserialize<'de>>(
        &self,
        client: &reqwest::blocking::Client,
        operation: &str,
        body: &impl Serialize,
    ) -> Result<T, CallError> {
        let response = client.post(format!("{}/{operation}", self.base)).json(body).send()?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().unwrap_or_default().chars().take(200).collect();
            return Err(CallError::Status { status: status.as_u16(), body });
        }
        Ok(response.json()?)
    }
}

struct PollState {
    next_rules: Instant,
    next_report: Instant,
    /// When the rules in force were fetched (monotonic, and epoch seconds to compare with X-Ray's times).
    fetched: Option<(Instant, f64)>,
    /// The last fetch failed (so the next success is worth a line).
    failing: bool,
}

fn epoch_seconds() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

/// The rules this process applies, by priority then name, each borrowing until X-Ray assigns it a quota; the
/// default rule last if X-Ray did not send one.
fn centralized_rules(mut rules: Vec<SamplingRule>) -> RuleSet {
    rules.retain(SamplingRule::applies_to_http_services);
    rules.sort_by(SamplingRule::evaluation_order);
    let mut applied: Vec<AppliedRule> = rules
        .iter()
        .map(|rule| AppliedRule::new(rule.rule_name.clone(), rule.patterns(), Reservoir::borrowing(rule.fixed_rate)))
        .collect();
    if !rules.last().is_some_and(SamplingRule::matches_everything) {
        applied.extend(xrays_default().rules);
    }
    RuleSet { rules: applied }
}

#[cfg(test)]
mod tests {
    use opentelemetry::KeyValue;
    use opentelemetry_semantic_conventions::attribute::{SERVER_ADDRESS, URL_PATH};

    use super::*;
    use crate::naming::SegmentNaming;

    fn rule(json: serde_json::Value) -> SamplingRule {
        let mut rule = serde_json::json!({
            "RuleName": "r", "ResourceARN": "*", "Priority": 100, "FixedRate": 0.0, "ReservoirSize": 1,
            "ServiceName": "*", "ServiceType": "*", "Host": "*", "HTTPMethod": "*", "URLPath": "*", "Version": 1
        });
        rule.as_object_mut().unwrap().extend(json.as_object().unwrap().clone());
        serde_json::from_value(rule).unwrap()
    }

    #[test]
    fn rules_apply_by_priority_and_only_those_this_process_can_match() {
        let rules = centralized_rules(vec![
            rule(serde_json::json!({"RuleName": "Default", "Priority": 10000})),
            rule(serde_json::json!({"RuleName": "health", "Priority": 1, "URLPath": "/api/health*"})),
            rule(serde_json::json!({"RuleName": "backend", "Priority": 5, "ServiceName": "cruddur-backend"})),
            rule(serde_json::json!({"RuleName": "ec2", "Priority": 2, "ServiceType": "AWS::EC2::Instance"})),
            rule(serde_json::json!({"RuleName": "one-function", "Priority": 2, "ResourceARN": "arn:aws:lambda:f"})),
            rule(serde_json::json!({"RuleName": "tagged", "Priority": 2, "Attributes": {"team": "a"}})),
        ]);
        let names: Vec<&str> = rules.rules.iter().map(|rule| rule.name.as_str()).collect();
        assert_eq!(names, ["health", "backend", "Default"]);

        let sampler = XraySampler::new(SegmentNaming::new("cruddur-backend", Some("*.gitpod.io")), rules);
        let rule_for = |host: &str, path: &str| {
            sampler
                .rule_for(&[KeyValue::new(SERVER_ADDRESS, host.to_owned()), KeyValue::new(URL_PATH, path.to_owned())])
        };
        assert_eq!(rule_for("localhost", "/api/health"), "health");
        assert_eq!(rule_for("localhost", "/api/activities/home"), "backend");
        // Dynamic naming: the segment (and so the rule's ServiceName) is the host.
        assert_eq!(rule_for("4567-x.gitpod.io", "/api/activities/home"), "Default");
    }

    #[test]
    fn without_a_catch_all_rule_the_default_one_closes_the_list() {
        let rules = centralized_rules(vec![rule(serde_json::json!({"RuleName": "home", "URLPath": "/api/home"}))]);
        let names: Vec<&str> = rules.rules.iter().map(|rule| rule.name.as_str()).collect();
        assert_eq!(names, ["home", "default"]);
    }
}
