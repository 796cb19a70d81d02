//! The X-Ray protocol as every Cruddur crate speaks it, written once: `infra` writes rules with it, the console
//! answers the sampling API with it, the telemetry client asks and applies with it, the daemon converts OTLP spans
//! with it, and the test stand-ins answer with it.
//!
//! - [`rule`]: the sampling rule model (`SamplingRule`, as `GetSamplingRules` sends it and `create-sampling-rule`
//!   takes it), X-Ray's `Default` rule, and rule matching;
//! - [`rule_file`]: the rule file (`create-sampling-rule`'s input), checked field by field;
//! - [`api`]: the `GetSamplingRules` and `SamplingTargets` requests and answers;
//! - [`reservoir`]: the reservoir arithmetic (a rule's traces per second, borrowing, its rate, the counts reported,
//!   and how X-Ray shares a reservoir among the clients that report it);
//! - [`segment`]: the span-to-segment conventions (trace ids, `database@host`, 4xx error / 429 throttle / 5xx fault);
//! - [`otlp`]: OTLP spans as segment documents, by those conventions;
//! - [`segment_spans`]: the other way, segment documents as OTLP spans with the same ids.
//!
//! Serde only, no I/O: it builds for wasm, and each user brings its own transport.

pub mod api;
pub mod otlp;
pub mod reservoir;
pub mod rule;
pub mod rule_file;
pub mod segment;
pub mod segment_spans;

pub use api::{
    GetSamplingRulesRequest, GetSamplingRulesResponse, SamplingRuleRecord, SamplingStatisticsDocument,
    SamplingTargetDocument, SamplingTargetsRequest, SamplingTargetsResponse, UnprocessedStatistics,
};
pub use reservoir::{Decision, Reservoir, Statistics};
pub use rule::{Patterns, Request, RuleMatcher, SamplingRule};
