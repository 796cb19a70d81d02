//! Centralized sampling offline: `GetSamplingRules` and `SamplingTargets` answered from the configured rules plus
//! X-Ray's `Default` rule, with X-Ray's arithmetic (the wire types, matching and reservoir are `xray-protocol`'s).
//!
//! How X-Ray does it, and so how this does: each rule has a reservoir (`ReservoirSize` traces per second, for the
//! whole fleet) and a `FixedRate` for what goes beyond it. Every SDK reports its counts per rule every 10 s
//! (`SamplingTargets`, with its `ClientID`); X-Ray divides the rule's reservoir among the clients that reported in
//! the last interval and answers each with its `ReservoirQuota` (traces per second it may take), how long that quota
//! holds (`ReservoirQuotaTTL`), the `FixedRate` and when to report again (`Interval`). An SDK samples the first
//! `ReservoirQuota` requests of each second and then `FixedRate` of the rest; [`Sampler::decide`] is that
//! decision, for tests and for anyone who wants to see what the rule does.

use std::collections::BTreeMap;

use rand::Rng;
use xray_protocol::reservoir::{Reservoir, fleet_quota};
use xray_protocol::rule::DEFAULT_RULE_NAME;
use xray_protocol::{
    GetSamplingRulesResponse, Request, RuleMatcher, SamplingRule, SamplingRuleRecord, SamplingTargetDocument,
    SamplingTargetsRequest, SamplingTargetsResponse, UnprocessedStatistics,
};

/// How often SDKs are told to report, in seconds (X-Ray's value).
pub const INTERVAL_SECONDS: u64 = 10;

/// One reporting client of one rule.
#[derive(Debug, Clone, Copy)]
struct Client {
    last_report: f64,
}

#[derive(Debug)]
struct RuleState {
    rule: SamplingRule,
    matcher: RuleMatcher,
    clients: BTreeMap<String, Client>,
    /// What [`Sampler::decide`] spends: the whole reservoir, as one SDK holding it would.
    reservoir: Reservoir,
    /// Totals reported by clients.
    requests: u64,
    sampled: u64,
    borrowed: u64,
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
    pub fn new(rules: Vec<SamplingRule>, now: f64) -> Self {
        let mut rules = rules;
        if !rules.iter().any(|rule| rule.rule_name == DEFAULT_RULE_NAME) {
            rules.push(SamplingRule::default_rule());
        }
        rules.sort_by(SamplingRule::evaluation_order);
        let rules = rules
            .into_iter()
            .map(|rule| RuleState {
                matcher: RuleMatcher::new(rule.patterns()),
                clients: BTreeMap::new(),
                reservoir: Reservoir::fixed(u32::try_from(rule.reservoir_size).unwrap_or(0), rule.fixed_rate),
                requests: 0,
                sampled: 0,
                borrowed: 0,
                rule,
            })
            .collect();
        Self { rules, loaded_at: now }
    }

    /// The `GetSamplingRules` answer.
    pub fn rules_answer(&self) -> GetSamplingRulesResponse {
        let records = self
            .rules
            .iter()
            .map(|state| SamplingRuleRecord {
                sampling_rule: SamplingRule {
                    rule_arn: Some(format!("arn:aws:xray:local:000000000000:sampling-rule/{}", state.rule.rule_name)),
                    ..state.rule.clone()
                },
                created_at: Some(self.loaded_at),
                modified_at: Some(self.loaded_at),
            })
            .collect();
        GetSamplingRulesResponse { sampling_rule_records: records, next_token: None }
    }

    /// The `SamplingTargets` answer to `request`, at `now` (epoch seconds).
    pub fn targets_answer(&mut self, request: &SamplingTargetsRequest, now: f64) -> SamplingTargetsResponse {
        let mut unprocessed = Vec::new();
        let mut reported = Vec::new();
        for document in &request.sampling_statistics_documents {
            let name = &document.rule_name;
            let Some(state) = self.rules.iter_mut().find(|state| &state.rule.rule_name == name) else {
                unprocessed.push(UnprocessedStatistics {
                    rule_name: name.clone(),
                    error_code: "400".into(),
                    message: "no sampling rule of that name".into(),
                });
                continue;
            };
            state.requests += document.request_count;
            state.sampled += document.sampled_count;
            state.borrowed += document.borrow_count;
            state.clients.insert(document.client_id.clone(), Client { last_report: now });
            reported.push((name, &document.client_id));
        }
        let targets = reported
            .into_iter()
            .map(|(name, client)| {
                let state = self.rules.iter_mut().find(|state| &state.rule.rule_name == name).expect("found above");
                // Clients that reported within the last two intervals share the reservoir.
                let horizon = now - 2.0 * INTERVAL_SECONDS as f64;
                state.clients.retain(|_, seen| seen.last_report >= horizon);
                let reservoir = u32::try_from(state.rule.reservoir_size).unwrap_or(0);
                let clients = state.clients.keys().map(String::as_str);
                SamplingTargetDocument {
                    rule_name: name.clone(),
                    fixed_rate: state.rule.fixed_rate,
                    reservoir_quota: Some(fleet_quota(reservoir, clients, client)),
                    reservoir_quota_ttl: Some(now + INTERVAL_SECONDS as f64),
                    interval: Some(INTERVAL_SECONDS),
                }
            })
            .collect();
        SamplingTargetsResponse {
            sampling_target_documents: targets,
            last_rule_modification: Some(self.loaded_at),
            unprocessed_statistics: unprocessed,
        }
    }

    /// The rule a request falls under: the first by priority whose patterns all match.
    pub fn rule_for(&self, request: &Request<'_>) -> &SamplingRule {
        let state = self.state_for(request);
        &state.rule
    }

    fn state_for(&self, request: &Request<'_>) -> &RuleState {
        self.rules
            .iter()
            .find(|state| state.matcher.matches(request))
            .unwrap_or_else(|| self.rules.last().expect("Default is always there"))
    }

    /// What one SDK holding the whole reservoir decides for a request at `now`: the first `ReservoirSize`
    /// requests of each second are sampled, then `FixedRate` of the others.
    pub fn decide(&self, request: &Request<'_>, now: f64, random: &mut impl Rng) -> Decision {
        let state = self.state_for(request);
        let second = now.max(0.0) as u64;
        let decision = state.reservoir.decide(second, |rate| random.gen_bool(rate.clamp(0.0, 1.0)));
        Decision {
            rule_name: state.rule.rule_name.clone(),
            sampled: decision.sampled(),
            from_reservoir: decision == xray_protocol::Decision::Reserved,
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use serde_json::{Value, json};

    use super::*;

    /// The rule of `infra/aws/json/xray.json`.
    fn cruddur_rule() -> SamplingRule {
        SamplingRule {
            rule_name: "Cruddur".into(),
            priority: 9000,
            fixed_rate: 0.1,
            reservoir_size: 5,
            service_name: "cruddur-backend".into(),
            ..SamplingRule::default_rule()
        }
    }

    fn sampler() -> Sampler {
        Sampler::new(vec![cruddur_rule()], 1_700_000_000.0)
    }

    fn rules_answer(sampler: &Sampler) -> Value {
        serde_json::to_value(sampler.rules_answer()).unwrap()
    }

    fn targets_answer(sampler: &mut Sampler, request: &Value, now: f64) -> Value {
        let request: SamplingTargetsRequest = serde_json::from_value(request.clone()).unwrap();
        serde_json::to_value(sampler.targets_answer(&request, now)).unwrap()
    }

    const BACKEND: Request<'static> = Request {
        service_name: "cruddur-backend",
        service_type: "",
        host: "localhost",
        http_method: "GET",
        url_path: "/api/activities/home",
    };

    #[test]
    fn the_rules_are_the_given_ones_then_default() {
        let answer = rules_answer(&sampler());
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
        let alone = targets_answer(&mut sampler, &report("aaaaaaaaaaaaaaaaaaaaaaaa"), now);
        let target = &alone["SamplingTargetDocuments"][0];
        assert_eq!(target["ReservoirQuota"], 5);
        assert_eq!(target["FixedRate"], 0.1);
        assert_eq!(target["Interval"], 10);
        assert_eq!(target["ReservoirQuotaTTL"].as_f64(), Some(now + 10.0));
        // A second client in the same interval: 5 per second shared as 3 + 2.
        let second = targets_answer(&mut sampler, &report("bbbbbbbbbbbbbbbbbbbbbbbb"), now + 1.0);
        let first = targets_answer(&mut sampler, &report("aaaaaaaaaaaaaaaaaaaaaaaa"), now + 2.0);
        assert_eq!(second["SamplingTargetDocuments"][0]["ReservoirQuota"], 2);
        assert_eq!(first["SamplingTargetDocuments"][0]["ReservoirQuota"], 3);
        // The second client stops reporting: after two intervals the first has the whole reservoir again.
        let later = targets_answer(&mut sampler, &report("aaaaaaaaaaaaaaaaaaaaaaaa"), now + 30.0);
        assert_eq!(later["SamplingTargetDocuments"][0]["ReservoirQuota"], 5);
        let unknown = targets_answer(
            &mut sampler,
            &json!({"SamplingStatisticsDocuments": [{"RuleName": "Nope", "ClientID": "c", "Timestamp": 0, "RequestCount": 1, "SampledCount": 0, "BorrowCount": 0}]}),
            now,
        );
        assert_eq!(unknown["UnprocessedStatistics"][0]["RuleName"], "Nope");
        assert_eq!(unknown["SamplingTargetDocuments"].as_array().unwrap().len(), 0);
    }

    #[test]
    fn each_second_takes_the_reservoir_then_the_fixed_rate() {
        let sampler = sampler();
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
