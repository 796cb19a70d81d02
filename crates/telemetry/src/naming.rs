//! How segments are named, as the X-Ray SDKs name them: `AWS_XRAY_TRACING_NAME` (or the service name), or the
//! request's host when it matches the `AWS_XRAY_URL` pattern (dynamic naming). Sampling rules match their
//! `ServiceName` against the same name.

use wildmatch::WildMatch;

#[derive(Debug)]
pub(crate) struct SegmentNaming {
    fixed: String,
    dynamic: Option<WildMatch>,
}

impl SegmentNaming {
    /// `fixed` unless the host matches `dynamic` (`*` and `?` wildcards, case-insensitive).
    pub(crate) fn new(fixed: &str, dynamic: Option<&str>) -> Self {
        Self { fixed: fixed.to_owned(), dynamic: dynamic.map(WildMatch::new_case_insensitive) }
    }

    /// The segment name for a request to `host`.
    pub(crate) fn segment_name<'a>(&'a self, host: Option<&'a str>) -> &'a str {
        match (host, &self.dynamic) {
            (Some(host), Some(pattern)) if pattern.matches(host) => host,
            _ => &self.fixed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_named_like_the_sdks_do() {
        assert_eq!(SegmentNaming::new("backend-flask", None).segment_name(Some("localhost")), "backend-flask");
        let dynamic = SegmentNaming::new("backend-flask", Some("*4567-*.gitpod.io"));
        assert_eq!(dynamic.segment_name(Some("4567-abc.ws.GITPOD.io")), "4567-abc.ws.GITPOD.io");
        assert_eq!(dynamic.segment_name(Some("localhost")), "backend-flask");
        assert_eq!(dynamic.segment_name(None), "backend-flask");
    }
}
