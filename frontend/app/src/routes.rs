//! The `@handle` path segment of the original's routes (`/@:handle`, `/@:handle/status/:uuid`): the router's own
//! segments capture whole segments only, so `/@andrewbrown` would otherwise need a catch-all `:handle` that also
//! swallows every misspelt page.

use std::borrow::Cow;

use leptos_router::{PartialPathMatch, PathSegment, PossibleRouteMatch};

/// Matches `/@{handle}` and captures the handle (without the `@`) as the `handle` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HandleSegment;

impl PossibleRouteMatch for HandleSegment {
    fn optional(&self) -> bool {
        false
    }

    fn test<'a>(&self, path: &'a str) -> Option<PartialPathMatch<'a>> {
        let rest = path.strip_prefix("/@")?;
        let handle_len = rest.find('/').unwrap_or(rest.len());
        if handle_len == 0 {
            return None;
        }
        let (matched, remaining) = path.split_at(2 + handle_len);
        Some(PartialPathMatch::new(remaining, vec![(Cow::Borrowed("handle"), rest[..handle_len].to_owned())], matched))
    }

    fn generate_path(&self, path: &mut Vec<PathSegment>) {
        path.push(PathSegment::Static("@".into()));
        path.push(PathSegment::Param("handle".into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_the_handle_after_the_at_sign() {
        let matched = HandleSegment.test("/@andrewbrown/status/1").unwrap();
        assert_eq!(matched.matched(), "/@andrewbrown");
        assert_eq!(matched.remaining(), "/status/1");
        assert_eq!(matched.params(), [(Cow::Borrowed("handle"), "andrewbrown".to_owned())]);
    }

    #[test]
    fn leaves_other_paths_alone() {
        assert!(HandleSegment.test("/andrewbrown").is_none());
        assert!(HandleSegment.test("/@").is_none());
        assert!(HandleSegment.test("/@/status").is_none());
        assert!(HandleSegment.test("/messages").is_none());
    }
}
