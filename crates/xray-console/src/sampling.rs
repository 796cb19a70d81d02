//! Centralized sampling offline: `GetSamplingRules` and `SamplingTargets` answered from the rule file
//! (`infra/aws/json/xray.json`, read by `infra`'s own parser) plus X-Ray's `Default` rule, with X-Ray's arithmetic.
//!
//! How X-Ray does it, and so how this does: each rule has a reservoir (`ReservoirSize` traces per second, for the
//! whole fleet) and a `FixedRate` for what goes beyond it. Every SDK reports its counts per rule every 10 s
//! (`SamplingTargets`, with its `ClientID`); X-Ray divides the rule's reservoir among the clients that reported in
//! the last interval and answers each with its `ReservoirQuota` (traces per second it may take), how long that quota
//! holds (`ReservoirQuotaTTL`), the `FixedRate` and when to report again (`Interval`). An SDK samples the first
//! `ReservoirQuota` requests of each second and then `FixedRate` of the rest; [`Sampler::decide`] is that
//! decision, for tests and for anyone who wants to see what the rule does.

use std::collections::BTreeMap;

use infra::SamplingRuleSpec;
use rand::Rng;
use serde_json::{Value, json};
use wildmatch::WildMatch;

/// How often SDKs are told to report, in seconds (X-Ray's value).
pub const INTERVAL_SECONDS: u64 = 10;

/// The committed rule file, used when no other is given.
pub const DEFAULT_RULE_FILE: &str = include_str!("../../../infra/aws/json/xray.json");

/// The rule X-Ray always has, applied when no other matches.
pub fn default_rule() -> SamplingRuleSpec {
    SamplingRuleSpec {
        rule_name: "Default".into(),
        resource_arn: "*".into(),
        priority: 10000,
        fixed_rate: 0.05,
        reservoir_size: 1,
        service_name: "*".into(),
        service_type: "*".into(),
        host: "*".into(),
        http_method: "*".into(),
        url_path: "*".into(),
        version: 1,
        attributes: BTreeMap::new(),
    }
}

/// One reporting client of one rule.
#[derive(Debug, Clone, Copy)]
struct Client {
    last_report: f64,
}

#[derive(Debug)]
struct RuleState {
    rule: SamplingRuleSpec,
    clients: BTreeMap<String, Client>,
    /// The second whose reservoir [`Sampler::decide`] is spending, and what it spent.
    second: u64,
    taken: u32,
    /// Totals reported by clients.
    requests: u64,
    sampled: u64,
    borrowed: u64,
}

/// A request as sampling sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub service_name: &'a str,
    pub service_type: &'a str,
    pub host: &'a str,
    pub http_method: &'a str,
    pub url_path: &'a str,
}

/// What [`Sampler::decide`] decided, and by which rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub rule_name: String,
    pub sampled: bool,
    /// Taken from the reservoir (as opposed to by the fixed rate).
    pub from_reservoir: bool,
}

/// The rules and what clients reported.
#[derive(Debug)]
pub struct Sampler {
    rules: Vec<RuleState>,
    /// When the rules were loaded (their `CreatedAt` and `ModifiedAt`, and `LastRuleModification`).
    loaded_at: f64,
}

impl Sampler {
    /// The given rules and X-Ray's `Default` rule (unless a given one is named so), in priority order.
    pub fn new(rules: Vec<SamplingRuleSpec>, now: f64) -> Self {
        let mut rules = rules;
        if !rules.iter().any(|rule| rule.rule_name == "Default") {
            rules.push(default_rule());
        }
        rules.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.rule_name.cmp(&b.rule_name)));
        let rules = rules
            .into_iter()
            .map(|rule| RuleState {
                rule,
                clients: BTreeMap::new(),
                second: 0,
                taken: 0,
                requests: 0,
                sampled: 0,
                borrowed: 0,
            })
            .collect();
        Self { rules, loaded_at: now }
    }

    /// The `GetSamplingRules` answer.
    pub fn rules_answer(&self) -> Value {
        let records: Vec<Value> = self
            .rules
            .iter()
            .map(|state| {
                let rule = &state.rule;
                json!({
                    "SamplingRule": {
                        "RuleName": rule.rule_name,
                        "RuleARN": format!("arn:aws:xray:local:000000000000:sampling-rule/{}", rule.rule_name),
                        "ResourceARN": rule.resource_arn,
                        "Priority": rule.priority,
                        "FixedRate": rule.fixed_rate,
                        "ReservoirSize": rule.reservoir_size,
                        "ServiceName": rule.service_name,
                        "ServiceType": rule.service_type,
                        "Host": rule.host,
                        "HTTPMethod": rule.http_method,
                        "URLPath": rule.url_path,
                        "Version": rule.version,
                        "Attributes": rule.attributes,
                    },
                    "CreatedAt": self.loaded_at,
                    "ModifiedAt": self.loaded_at,
                })
            })
            .collect();
        json!({ "SamplingRuleRecords": records })
    }

    /// The `SamplingTargets` answer to a request's `SamplingStatisticsDocuments`, at `now` (epoch seconds).
    pub fn targets_answer(&mut self, request: &Value, now: f64) -> Value {
        let documents =
            request.get("SamplingStatisticsDocuments").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut targets = Vec::new();
        let mut unprocessed = Vec::new();
        let mut reported = Vec::new();
        for document in &documents {
            let name = document.get("RuleName").and_then(Value::as_str).unwrap_or_default();
            let client = document.get("ClientID").and_then(Value::as_str).unwrap_or_default();
            let Some(state) = self.rules.iter_mut().find(|state| state.rule.rule_name == name) else {
                unprocessed
                    .push(json!({"RuleName": name, "ErrorCode": "400", "Message": "no sampling rule of that name"}));
                continue;
            };
            let count = |key: &str| document.get(key).and_then(Value::as_u64).unwrap_or(0);
            state.requests += count("RequestCount");
            state.sampled += count("SampledCount");
            state.borrowed += count("BorrowCount");
            state.clients.insert(client.to_owned(), Client { last_report: now });
            reported.push((name.to_owned(), client.to_owned()));
        }
        for (name, client) in reported {
            let state = self.rules.iter_mut().find(|state| state.rule.rule_name == name).expect("found above");
            // Clients that reported within the last two intervals share the reservoir.
            let horizon = now - 2.0 * INTERVAL_SECONDS as f64;
            state.clients.retain(|_, seen| seen.last_report >= horizon);
            let quota = quota(state.rule.reservoir_size, &state.clients, &client);
            targets.push(json!({
                "RuleName": name,
                "FixedRate": state.rule.fixed_rate,
                "ReservoirQuota": quota,
                "ReservoirQuotaTTL": now + INTERVAL_SECONDS as f64,
                "Interval": INTERVAL_SECONDS,
            }));
        }
        json!({
            "SamplingTargetDocuments": targets,
            "LastRuleModification": self.loaded_at,
            "UnprocessedStatistics": unprocessed,
        })
    }

    /// The rule a request falls under: the first by priority whose patterns all match.
    pub fn rule_for(&self, request: &Request<'_>) -> &SamplingRuleSpec {
        let matches = |pattern: &str, value: &str| WildMatch::new_case_insensitive(pattern).matches(value);
        self.rules
            .iter()
            .map(|state| &state.rule)
            .find(|rule| {
                matches(&rule.service_name, request.service_name)
                    && matches(&rule.service_type, request.service_type)
                    && matches(&rule.host, request.host)
                    && matches(&rule.http_method, request.http_method)
                    && matches(&rule.url_path, request.url_path)
            })
            .unwrap_or_else(|| &self.rules.last().expect("Default is always there").rule)
    }

    /// What one SDK holding the whole reservoir decides for a request at `now`: the first `ReservoirSize`
    /// requests of each second are sampled, then `FixedRate` of the others.
    pub fn decide(&mut self, request: &Request<'_>, now: f64, random: &mut impl Rng) -> Decision {
        let name = self.rule_for(request).rule_name.clone();
        let state = self.rules.iter_mut().find(|state| state.rule.rule_name == name).expect("found above");
        let second = now.max(0.0) as u64;
        if second != state.second {
            state.second = second;
            state.taken = 0;
        }
        let reservoir = u32::try_from(state.rule.reservoir_size).unwrap_or(0);
        if state.taken < reservoir {
            state.taken += 1;
            return Decision { rule_name: name, sampled: true, from_reservoir: true };
        }
        let sampled = random.gen_bool(state.rule.fixed_rate.clamp(0.0, 1.0));
        Decision { rule_name: name, sampled, from_reservoir: false }
    }
}

/// A client's share of `reservoir` traces per second: an equal part each, the remainder one each to the first
/// clients by id, so the shares add up to the reservoir exactly.
fn quota(reservoir: i32, clients: &BTreeMap<String, Client>, client: &str) -> i64 {
    let reservoir = i64::from(reservoir.max(0));
    let count = clients.len().max(1) as i64;
    let rank = clients.keys().position(|id| id == client).unwrap_or(0) as i64;
    reservoir / count + i64::from(rank < reservoir % count)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn sampler() -> Sampler {
        let rule = infra::rule_file::parse(DEFAULT_RULE_FILE, "xray.json").unwrap();
        Sampler::new(vec![rule], 1_700_000_000.0)
    }

    const BACKEND: Request<'static> = Request {
        service_name: "cruddur-backend",
        service_type: "",
        host: "localhost",
        http_method: "GET",
        url_path: "/api/activities/home",
    };

    #[test]
    fn the_rules_are_the_file_s_then_default() {
        let answer = sampler().rules_answer();
        let records = answer["SamplingRuleRecords"].as_array().unwrap();
        let names: Vec<&str> =
            records.iter().map(|record| record["SamplingRule"]["RuleName"].as_str().unwrap()).collect();
        assert_eq!(names, ["Cruddur", "Default"]);
        let cruddur = &records[0]["SamplingRule"];
        assert_eq!((cruddur["FixedRate"].as_f64(), cruddur["ReservoirSize"].as_i64()), (Some(0.1), Some(5)));
        assert_eq!(cruddur["ServiceName"], "cruddur-backend");
        assert_eq!(records[1]["SamplingRule"]["Priority"], 10000);
    }

    #[test]
    fn the_reservoir_is_shared_by_the_clients_that_report() {
        let mut sampler = sampler();
        let report = |client: &str| {
            json!({"SamplingStatisticsDocuments": [
                {"RuleName": "Cruddur", "ClientID": client, "Timestamp": 0, "RequestCount": 10, "SampledCount": 6, "BorrowCount": 0}
            ]})
        };
        let now = 1_700_000_100.0;
        let alone = sampler.targets_answer(&report("aaaaaaaaaaaaaaaaaaaaaaaa"), now);
        let target = &alone["SamplingTargetDocuments"][0];
        assert_eq!(target["ReservoirQuota"], 5);
        assert_eq!(target["FixedRate"], 0.1);
        assert_eq!(target["Interval"], 10);
        assert_eq!(target["ReservoirQuotaTTL"].as_f64(), Some(now + 10.0));
        // A second client in the same interval: 5 per second shared as 3 + 2.
        let second = sampler.targets_answer(&report("bbbbbbbbbbbbbbbbbbbbbbbb"), now + 1.0);
        let first = sampler.targets_answer(&report("aaaaaaaaaaaaaaaaaaaaaaaa"), now + 2.0);
        assert_eq!(second["SamplingTargetDocuments"][0]["ReservoirQuota"], 2);
        assert_eq!(first["SamplingTargetDocuments"][0]["ReservoirQuota"], 3);
        // The second client stops reporting: after two intervals the first has the whole reservoir again.
        let later = sampler.targets_answer(&report("aaaaaaaaaaaaaaaaaaaaaaaa"), now + 30.0);
        assert_eq!(later["SamplingTargetDocuments"][0]["ReservoirQuota"], 5);
        let unknown = sampler.targets_answer(
            &json!({"SamplingStatisticsDocuments": [{"RuleName": "Nope", "ClientID": "c", "Timestamp": 0, "RequestCount": 1, "SampledCount": 0, "BorrowCount": 0}]}),
            now,
        );
        assert_eq!(unknown["UnprocessedStatistics"][0]["RuleName"], "Nope");
        assert_eq!(unknown["SamplingTargetDocuments"].as_array().unwrap().len(), 0);
    }

    #[test]
    fn each_second_takes_the_reservoir_then_the_fixed_rate() {
        let mut sampler = sampler();
        let mut random = StdRng::seed_from_u64(7);
        let second = 1_700_000_000.0;
        let decisions: Vec<Decision> =
            (0..10_000).map(|i| sampler.decide(&BACKEND, second + f64::from(i) / 10_000.0, &mut random)).collect();
        assert!(decisions.iter().all(|decision| decision.rule_name == "Cruddur"));
        assert!(decisions[..5].iter().all(|decision| decision.sampled && decision.from_reservoir));
        let by_rate = decisions[5..].iter().filter(|decision| decision.sampled).count();
        assert!((850..=1150).contains(&by_rate), "about 10% of 9995 beyond the reservoir, got {by_rate}");
        // The next second has a fresh reservoir.
        assert!(sampler.decide(&BACKEND, second + 1.0, &mut random).from_reservoir);
        // Another service falls under Default: 1 per second, then 5%.
        let other = Request { service_name: "cruddur-frontend", ..BACKEND };
        let first = sampler.decide(&other, second, &mut random);
        assert_eq!((first.rule_name.as_str(), first.from_reservoir), ("Default", true));
        assert!(!sampler.decide(&other, second, &mut random).from_reservoir);
    }
}
