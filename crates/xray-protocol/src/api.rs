//! The sampling API on the wire: `GetSamplingRules` and `SamplingTargets`, as X-Ray (and the daemon's TCP port,
//! which forwards them) takes and answers them, in AWS's JSON member names.
//!
//! Every member X-Ray may leave out is optional or defaulted here, so a sparse answer (or a stand-in's) still reads.

use serde::{Deserialize, Serialize};

use crate::rule::SamplingRule;

/// `POST /GetSamplingRules`: one page of rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetSamplingRulesRequest {
    /// The page after the one that returned this token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// The `GetSamplingRules` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetSamplingRulesResponse {
    #[serde(default)]
    pub sampling_rule_records: Vec<SamplingRuleRecord>,
    /// Another page follows (an empty token means none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// A rule and when it was created and last changed (epoch seconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SamplingRuleRecord {
    pub sampling_rule: SamplingRule,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_at: Option<f64>,
}

/// `POST /SamplingTargets`: each rule's counts since the last report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SamplingTargetsRequest {
    #[serde(default)]
    pub sampling_statistics_documents: Vec<SamplingStatisticsDocument>,
}

/// One client's counts for one rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SamplingStatisticsDocument {
    pub rule_name: String,
    /// 24 hex digits naming the reporting process.
    #[serde(rename = "ClientID")]
    pub client_id: String,
    /// When the counts were taken (epoch seconds).
    pub timestamp: f64,
    pub request_count: u64,
    pub sampled_count: u64,
    /// Traces taken by borrowing (before the client had a quota).
    pub borrow_count: u64,
}

/// The `SamplingTargets` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SamplingTargetsResponse {
    #[serde(default)]
    pub sampling_target_documents: Vec<SamplingTargetDocument>,
    /// When any rule last changed (epoch seconds): a client holding older rules fetches them again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rule_modification: Option<f64>,
    #[serde(default)]
    pub unprocessed_statistics: Vec<UnprocessedStatistics>,
}

/// What one client may sample under one rule until it reports again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SamplingTargetDocument {
    pub rule_name: String,
    pub fixed_rate: f64,
    /// Traces per second this client takes first (its share of the rule's reservoir).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservoir_quota: Option<u32>,
    /// When the quota stops holding (epoch seconds).
    #[serde(rename = "ReservoirQuotaTTL", default, skip_serializing_if = "Option::is_none")]
    pub reservoir_quota_ttl: Option<f64>,
    /// Seconds until the next report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
}

/// A report X-Ray could not use (a rule it does not know, for one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UnprocessedStatistics {
    pub rule_name: String,
    pub error_code: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_targets_exchange_uses_awss_member_names() {
        let request = SamplingTargetsRequest {
            sampling_statistics_documents: vec![SamplingStatisticsDocument {
                rule_name: "Cruddur".into(),
                client_id: "aaaaaaaaaaaaaaaaaaaaaaaa".into(),
                timestamp: 1.5,
                request_count: 10,
                sampled_count: 6,
                borrow_count: 1,
            }],
        };
        let json = serde_json::to_value(&request).unwrap();
        let document = &json["SamplingStatisticsDocuments"][0];
        assert_eq!(
            (document["ClientID"].as_str(), document["BorrowCount"].as_u64()),
            (Some("aaaaaaaaaaaaaaaaaaaaaaaa"), Some(1))
        );

        let answer: SamplingTargetsResponse = serde_json::from_str(
            r#"{"SamplingTargetDocuments": [{"RuleName": "Cruddur", "FixedRate": 0.1, "ReservoirQuota": 3,
                "ReservoirQuotaTTL": 1700000010.0, "Interval": 10}], "LastRuleModification": 1700000000.0}"#,
        )
        .unwrap();
        let target = &answer.sampling_target_documents[0];
        assert_eq!(
            (target.reservoir_quota, target.reservoir_quota_ttl, target.interval),
            (Some(3), Some(1_700_000_010.0), Some(10))
        );
        assert!(answer.unprocessed_statistics.is_empty());
    }

    #[test]
    fn a_rules_page_reads_with_or_without_a_next_token() {
        let page: GetSamplingRulesResponse = serde_json::from_str(r#"{"SamplingRuleRecords": []}"#).unwrap();
        assert_eq!(page, GetSamplingRulesResponse::default());
        let request = serde_json::to_string(&GetSamplingRulesRequest::default()).unwrap();
        assert_eq!(request, "{}");
    }
}
