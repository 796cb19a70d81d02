//! What the tests share: an X-Ray client for the local control plane, the committed rule file and variants of it,
//! and a way to run the binary with a clean AWS environment.

use std::path::Path;
use std::process::Output;

use aws_credential_types::Credentials;
use aws_sdk_xray::Client;
use aws_sdk_xray::config::{BehaviorVersion, Region};
use clap::Parser;
use infra::{Cli, Desired, InfraError, Job};
use serde_json::Value;
use test_support::xray_control::XRayControlPlane;

/// The committed rule file.
pub(crate) const RULE_FILE: &str = include_str!("../../aws/json/xray.json");

/// The access key the tests sign with.
pub(crate) const ACCESS_KEY: &str = "AKIDINFRATEST";

/// A client of `control_plane`, signing for us-east-1 with fixed credentials.
pub(crate) fn client(control_plane: &XRayControlPlane) -> Client {
    let config = aws_sdk_xray::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(ACCESS_KEY, "secret", None, None, "test"))
        .endpoint_url(control_plane.endpoint())
        .build();
    Client::from_conf(config)
}

/// The committed rule file with `field` set to `value` (`Value::Null` removes it).
pub(crate) fn rule_file_with(field: &str, value: Value) -> String {
    let mut document: Value = serde_json::from_str(RULE_FILE).unwrap();
    let rule = document["SamplingRule"].as_object_mut().unwrap();
    match value {
        Value::Null => rule.remove(field),
        value => rule.insert(field.to_owned(), value),
    };
    serde_json::to_string_pretty(&document).unwrap()
}

/// The command line `args` (after the binary's name), parsed.
pub(crate) fn cli(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("cruddur-infra").chain(args.iter().copied())).expect("a valid command line")
}

/// The job of `args`, prepared with no naming variables set.
pub(crate) fn job(args: &[&str]) -> Result<Job, InfraError> {
    Job::prepare(&cli(args), |_| None)
}

/// What `args` want, with the rule file written from `rule_file` into `directory`.
pub(crate) fn desired(directory: &Path, rule_file: &str, args: &[&str]) -> Desired {
    let path = directory.join("xray.json");
    std::fs::write(&path, rule_file).unwrap();
    let mut all = vec!["plan", "--rule-file", path.to_str().unwrap()];
    all.extend_from_slice(args);
    match job(&all).expect("a valid job") {
        Job::Plan(desired) => desired,
        other => panic!("plan prepared {other:?}"),
    }
}

/// Runs the binary in `directory` with `args` and only the variables in `env` (plus PATH and HOME pointed at an
/// empty directory), so nothing of this machine's AWS setup leaks in and instance metadata is never asked.
pub(crate) fn run_binary(directory: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let home = tempfile::tempdir().unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_cruddur-infra"))
        .args(args)
        .current_dir(directory)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .output()
        .expect("running cruddur-infra")
}

/// The credentials the binary signs with in the tests.
pub(crate) const CREDENTIALS: [(&str, &str); 2] =
    [("AWS_ACCESS_KEY_ID", ACCESS_KEY), ("AWS_SECRET_ACCESS_KEY", "secret")];

pub(crate) fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

pub(crate) fn stderr(output: &Output) -> String {
    assert!(!output.status.success(), "succeeded: {}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8(output.stderr.clone()).unwrap()
}
