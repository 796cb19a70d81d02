//! The span-to-segment conventions of the X-Ray SDKs, which both ways of making segments follow (the telemetry
//! crate's exporter and the OTLP conversion in [`crate::otlp`]):
//!
//! - a trace id is `1-{8 hex digits of epoch seconds}-{24 hex digits}`, the same 32 digits as OpenTelemetry's;
//! - a database call is a subsegment named `database@host`;
//! - an HTTP status classifies the segment: 4xx is an `error` (429 also a `throttle`), 5xx a `fault`, and a failed
//!   span without a status a `fault`.

/// `1-5759e988-bd862e3fe1be46a994272793` from the 32 hex digits of an OpenTelemetry trace id (other text is kept
/// as it is).
pub fn xray_trace_id(hex: &str) -> String {
    if hex.len() == 32 { format!("1-{}-{}", &hex[..8], &hex[8..]) } else { hex.to_owned() }
}

/// The name of a database call's subsegment.
pub fn sql_subsegment_name(database: &str, host: &str) -> String {
    format!("{database}@{host}")
}

/// How X-Ray classifies the outcome of a segment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// A client error (4xx).
    pub error: bool,
    /// Too many requests (429).
    pub throttle: bool,
    /// A server error (5xx), or a failure without a status.
    pub fault: bool,
}

impl Outcome {
    /// From the response's HTTP status (if any) and whether the span failed.
    pub fn of(status: Option<i64>, failed: bool) -> Self {
        match status {
            Some(429) => Self { error: true, throttle: true, fault: false },
            Some(400..=499) => Self { error: true, ..Self::default() },
            Some(500..=599) => Self { fault: true, ..Self::default() },
            _ => Self { fault: failed, ..Self::default() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_are_opentelemetrys_digits_with_the_epoch_apart() {
        assert_eq!(xray_trace_id("5759e988bd862e3fe1be46a994272793"), "1-5759e988-bd862e3fe1be46a994272793");
        assert_eq!(xray_trace_id("short"), "short");
    }

    #[test]
    fn statuses_classify_as_the_sdks_do() {
        let cases = [
            (Some(200), false, Outcome::default()),
            (Some(404), false, Outcome { error: true, ..Outcome::default() }),
            (Some(429), false, Outcome { error: true, throttle: true, fault: false }),
            (Some(503), false, Outcome { fault: true, ..Outcome::default() }),
            (Some(404), true, Outcome { error: true, ..Outcome::default() }),
            (None, true, Outcome { fault: true, ..Outcome::default() }),
            (None, false, Outcome::default()),
        ];
        for (status, failed, expected) in cases {
            assert_eq!(Outcome::of(status, failed), expected, "{status:?}, failed: {failed}");
        }
        assert_eq!(sql_subsegment_name("cruddur", "db"), "cruddur@db");
    }
}
