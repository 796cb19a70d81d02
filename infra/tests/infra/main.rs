//! `cruddur-infra` against a local X-Ray control plane (`test_support::xray_control`: real HTTP on 127.0.0.1, the
//! REST-JSON protocol, state, AWS-style errors): the library's plan/apply/destroy/show, the binary and its command
//! line, and the service name kept in step with the backend's telemetry.

mod binary;
mod control_plane;
mod helpers;
mod library;
mod service_name;
