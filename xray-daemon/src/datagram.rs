//! The daemon's UDP protocol: a header line `{"format":"json","version":1}`, a newline, then one segment document.

use serde::Deserialize;

/// Largest segment document accepted, as the official daemon.
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// Why a datagram was rejected (each is counted; none stops the daemon).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No newline: no header line, or no document.
    MissingHeader,
    /// The header line is not `{"format":"json","version":1}`.
    BadHeader,
    EmptyDocument,
    TooLarge,
    NotUtf8,
}

#[derive(Deserialize)]
struct Header {
    format: String,
    version: u32,
}

/// The segment document of a datagram.
pub fn parse(datagram: &[u8]) -> Result<&str, Rejection> {
    let newline = datagram.iter().position(|&byte| byte == b'\n').ok_or(Rejection::MissingHeader)?;
    let (header, document) = (&datagram[..newline], &datagram[newline + 1..]);
    let header: Header = serde_json::from_slice(header).map_err(|_| Rejection::BadHeader)?;
    // The official daemon compares the format without regard to case.
    if !header.format.eq_ignore_ascii_case("json") || header.version != 1 {
        return Err(Rejection::BadHeader);
    }
    let document = std::str::from_utf8(document).map_err(|_| Rejection::NotUtf8)?.trim();
    if document.is_empty() {
        Err(Rejection::EmptyDocument)
    } else if document.len() > MAX_DOCUMENT_BYTES {
        Err(Rejection::TooLarge)
    } else {
        Ok(document)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEADER: &str = "{\"format\": \"json\", \"version\": 1}\n";

    #[test]
    fn a_well_formed_datagram_yields_its_document() {
        let datagram = format!("{HEADER}{{\"name\":\"backend\",\"id\":\"70de5b6f19ff9a0a\"}}");
        assert_eq!(parse(datagram.as_bytes()), Ok(r#"{"name":"backend","id":"70de5b6f19ff9a0a"}"#));
        assert_eq!(parse(b"{\"format\":\"json\",\"version\":1}\n{}\n"), Ok("{}"));
        assert_eq!(parse(b"{\"format\":\"JSON\",\"version\":1}\n{}"), Ok("{}"));
    }

    #[test]
    fn broken_datagrams_say_why() {
        assert_eq!(parse(b"{\"name\":\"x\"}"), Err(Rejection::MissingHeader));
        assert_eq!(parse(b"{\"format\":\"xml\",\"version\":1}\n{}"), Err(Rejection::BadHeader));
        assert_eq!(parse(b"{\"format\":\"json\",\"version\":2}\n{}"), Err(Rejection::BadHeader));
        assert_eq!(parse(b"not json\n{}"), Err(Rejection::BadHeader));
        assert_eq!(parse(format!("{HEADER}   ").as_bytes()), Err(Rejection::EmptyDocument));
        assert_eq!(
            parse(format!("{HEADER}{}", "x".repeat(MAX_DOCUMENT_BYTES + 1)).as_bytes()),
            Err(Rejection::TooLarge)
        );
        let mut invalid = HEADER.as_bytes().to_vec();
        invalid.extend_from_slice(&[0xff, 0xfe]);
        assert_eq!(parse(&invalid), Err(Rejection::NotUtf8));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// Any bytes at all: the parser answers, never panics, and what it accepts is a bounded, non-empty document
        /// that followed a valid header.
        #[test]
        fn any_bytes_are_answered(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(document) = parse(&bytes) {
                prop_assert!(!document.is_empty() && document.len() <= MAX_DOCUMENT_BYTES);
                let newline = bytes.iter().position(|&b| b == b'\n').unwrap();
                prop_assert!(serde_json::from_slice::<serde_json::Value>(&bytes[..newline]).is_ok());
            }
        }

        #[test]
        fn any_document_after_a_valid_header_is_accepted(document in "[^\\s][ -~]{0,300}") {
            let datagram = format!("{HEADER}{document}");
            prop_assert_eq!(parse(datagram.as_bytes()), Ok(document.trim()));
        }
    }
}
