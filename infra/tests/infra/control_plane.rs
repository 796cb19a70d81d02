//! The local control plane speaks what `aws-sdk-xray` understands: its errors parse as the SDK's typed errors, and
//! it refuses what X-Ray refuses (unsigned requests, deleting the Default rule), so the library's tests mean what
//! they say.

use std::io::{Read, Write};

use aws_sdk_xray::error::ProvideErrorMetadata;
use test_support::xray_control::XRayControlPlane;

use crate::helpers::client;

#[tokio::test]
async fn duplicates_and_missing_resources_are_invalid_requests() {
    let control_plane = XRayControlPlane::start();
    let client = client(&control_plane);
    client.create_group().group_name("G").filter_expression("ok").send().await.unwrap();
    let duplicate = client.create_group().group_name("G").filter_expression("ok").send().await.unwrap_err();
    let duplicate = duplicate.into_service_error();
    assert!(duplicate.is_invalid_request_exception(), "{duplicate:?}");
    assert_eq!(duplicate.message(), Some("Group G already exists"));

    let missing = client.update_group().group_name("nope").filter_expression("ok").send().await.unwrap_err();
    assert!(missing.into_service_error().is_invalid_request_exception());
    let default = client.delete_sampling_rule().rule_name("Default").send().await.unwrap_err();
    assert_eq!(default.into_service_error().code(), Some("InvalidRequestException"));
    assert_eq!(control_plane.rule_names(), ["Default"]);
}

#[test]
fn an_unsigned_request_is_refused_as_x_ray_refuses_it() {
    let control_plane = XRayControlPlane::start();
    let address = control_plane.endpoint().trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    let request = format!(
        "POST /Groups HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 403"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("x-amzn-errortype: missingauthenticationtokenexception"),
        "{response}"
    );
    let call = control_plane.calls().pop().unwrap();
    assert_eq!((call.operation.as_str(), call.region, call.status), ("GetGroups", None, 403));
}
