//! Checking a SigV4 signature as AWS does: the request's method, path, signed headers and body, signed again with
//! the secret of the access key it names at its `X-Amz-Date`, must give the same `Authorization`.
//!
//! The stand-ins know one account: [`ACCESS_KEY`] / [`SECRET_KEY`] in [`REGION`], what tests give their clients.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

pub const REGION: &str = "us-east-1";
pub const ACCESS_KEY: &str = "AKIDEXAMPLE";
pub const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// The test account's static credentials.
pub fn test_credentials() -> Credentials {
    Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "tests")
}

/// One request as received, to verify.
pub struct Signed<'a> {
    pub method: &'a str,
    /// Path and query, as sent.
    pub path: &'a str,
    /// Looks a header up by its lower-case name.
    pub header: &'a dyn Fn(&str) -> Option<&'a str>,
    pub body: &'a [u8],
}

/// Whether `request` is signed by the test account for `service` in [`REGION`]; the error says what is wrong, as
/// AWS's `InvalidSignatureException` would.
pub fn verify(request: &Signed<'_>, service: &str) -> Result<(), String> {
    let authorization = (request.header)("authorization").ok_or("Missing Authentication Token")?;
    let parts: Vec<&str> = authorization.split(&[' ', ','][..]).collect();
    let field = |name: &str| parts.iter().find_map(|part| part.strip_prefix(name));
    let scope = field("Credential=").ok_or("no Credential in the Authorization header")?;
    let date = (request.header)("x-amz-date").ok_or("no X-Amz-Date header")?;
    let expected_scope = format!("{ACCESS_KEY}/{}/{REGION}/{service}/aws4_request", date.get(..8).unwrap_or(date));
    if scope != expected_scope {
        return Err(format!("the credential scope {scope} is not {expected_scope}"));
    }
    let signed_headers: Vec<&str> = field("SignedHeaders=").ok_or("no SignedHeaders")?.split(';').collect();
    if !signed_headers.contains(&"host") || !signed_headers.contains(&"x-amz-date") {
        return Err(format!("host and x-amz-date must be signed: {authorization}"));
    }
    let time = chrono::NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ")
        .map_err(|error| format!("X-Amz-Date {date}: {error}"))?
        .and_utc();
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(time.timestamp()).unwrap_or(0));
    let identity = test_credentials().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|error| error.to_string())?
        .into();
    let headers = signed_headers
        .iter()
        .map(|name| Ok((*name, (request.header)(name).ok_or(format!("signed header {name} was not received"))?)))
        .collect::<Result<Vec<_>, String>>()?;
    let host = (request.header)("host").ok_or("no Host header")?;
    let signable = SignableRequest::new(
        request.method,
        format!("http://{host}{}", request.path),
        headers.into_iter(),
        SignableBody::Bytes(request.body),
    )
    .map_err(|error| error.to_string())?;
    let (instructions, _) = sign(signable, &params).map_err(|error| error.to_string())?.into_parts();
    let expected = instructions
        .headers()
        .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        .map(|(_, value)| value.to_owned())
        .ok_or("the signer gave no Authorization")?;
    if authorization == expected {
        Ok(())
    } else {
        Err("The request signature we calculated does not match the signature you provided".into())
    }
}
