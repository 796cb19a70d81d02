//! The command line: parsing (flags before or after the command, defaults, `--help`), the binary end to end with
//! flags and with the variables it reads, and every kind of bad rule file failing with the file and the field named
//! before any call is made.

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use infra::{Cli, Command, Job};
use serde_json::{Value, json};
use test_support::xray_control::XRayControlPlane;

use crate::helpers::{ACCESS_KEY, CREDENTIALS, RULE_FILE, cli, job, rule_file_with, run_binary, stderr, stdout};

const WORKSPACE_INFRA: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn flags_go_before_or_after_the_command_and_have_defaults() {
    let before = cli(&["--region", "eu-west-1", "--group-name", "G", "apply"]);
    let after = cli(&["apply", "--region", "eu-west-1", "--group-name", "G"]);
    for parsed in [before, after] {
        assert_eq!(parsed.command, Command::Apply);
        assert_eq!(parsed.aws.region.as_deref(), Some("eu-west-1"));
        assert_eq!(parsed.target.group_name, "G");
    }
    let defaults = cli(&["plan"]);
    assert_eq!(defaults.target.group_name, "Cruddur");
    assert_eq!(defaults.target.rule_file, None);
    assert_eq!(defaults.target.service_name, None);
    let all = cli(&[
        "show",
        "--profile",
        "p",
        "--endpoint-url",
        "http://127.0.0.1:1",
        "--rule-file",
        "r.json",
        "--service-name",
        "s",
        "--xray-url",
        "*x*",
        "--backend-url",
        "https://x",
    ]);
    assert_eq!((all.aws.profile.as_deref(), all.aws.endpoint_url.as_deref()), (Some("p"), Some("http://127.0.0.1:1")));
    assert_eq!(all.target.rule_file.as_deref(), Some(std::path::Path::new("r.json")));
    assert_eq!((all.target.service_name.as_deref(), all.target.xray_url.as_deref()), (Some("s"), Some("*x*")));
    assert_eq!(all.target.backend_url.as_deref(), Some("https://x"));
}

#[test]
fn a_command_is_required_and_help_lists_commands_and_flags() {
    let parse = |args: &[&str]| Cli::try_parse_from(std::iter::once("cruddur-infra").chain(args.iter().copied()));
    assert_eq!(parse(&[]).unwrap_err().kind(), ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand);
    assert_eq!(parse(&["deploy"]).unwrap_err().kind(), ErrorKind::InvalidSubcommand);
    let help = parse(&["--help"]).unwrap_err();
    assert_eq!(help.kind(), ErrorKind::DisplayHelp);
    let help = help.to_string();
    for expected in [
        "plan",
        "apply",
        "destroy",
        "show",
        "--region",
        "--profile",
        "--endpoint-url",
        "AWS_ENDPOINT_URL_XRAY",
        "--rule-file",
        "--group-name",
        "--service-name",
        "--xray-url",
        "AWS_XRAY_URL",
    ] {
        assert!(help.contains(expected), "{expected} missing from --help:\n{help}");
    }
}

#[test]
fn the_binary_plans_applies_shows_and_destroys() {
    let control_plane = XRayControlPlane::start();
    let endpoint = control_plane.endpoint();
    let run = |command: &str| {
        let args = [command, "--region", "us-east-1", "--endpoint-url", &endpoint];
        stdout(&run_binary(std::path::Path::new(WORKSPACE_INFRA), &args, &CREDENTIALS))
    };
    assert!(run("plan").starts_with("+ create group Cruddur\n    FilterExpression: service(\"cruddur-backend\")"));
    assert!(control_plane.writes().is_empty());
    assert!(run("apply").ends_with("applied\n"));
    assert!(run("apply").ends_with("is up to date\nnothing to change\n"));
    assert!(run("show").contains("  Cruddur: service(\"cruddur-backend\") {fault OR error}\n"));
    assert_eq!(run("destroy"), "- deleted group Cruddur\n- deleted sampling rule Cruddur\n");
    assert_eq!(run("destroy"), "= group Cruddur was already absent\n= sampling rule Cruddur was already absent\n");
    assert_eq!(control_plane.writes(), ["CreateGroup", "CreateSamplingRule", "DeleteGroup", "DeleteSamplingRule"]);
}

#[test]
fn the_binary_reads_the_aws_variables() {
    let control_plane = XRayControlPlane::start();
    let endpoint = control_plane.endpoint();
    let environment = [&CREDENTIALS[..], &[("AWS_REGION", "eu-west-1"), ("AWS_ENDPOINT_URL_XRAY", &endpoint)]].concat();
    stdout(&run_binary(std::path::Path::new(WORKSPACE_INFRA), &["show"], &environment));
    let call = control_plane.calls().pop().expect("a call");
    assert_eq!((call.region.as_deref(), call.access_key.as_deref()), (Some("eu-west-1"), Some(ACCESS_KEY)));

    // The generic endpoint variable, read by the AWS configuration itself.
    let generic = [&CREDENTIALS[..], &[("AWS_REGION", "eu-west-1"), ("AWS_ENDPOINT_URL", &endpoint)]].concat();
    let calls_before = control_plane.calls().len();
    stdout(&run_binary(std::path::Path::new(WORKSPACE_INFRA), &["show"], &generic));
    assert!(control_plane.calls().len() > calls_before, "AWS_ENDPOINT_URL was not used");

    // Blank variables, as a .env copied from .env.sample sets them, count as unset.
    let blank = [("AWS_PROFILE", ""), ("AWS_ENDPOINT_URL_XRAY", ""), ("AWS_XRAY_URL", ""), ("BACKEND_URL", "")];
    let from_sample = [&generic[..], &blank].concat();
    let calls_before = control_plane.calls().len();
    let planned = stdout(&run_binary(std::path::Path::new(WORKSPACE_INFRA), &["plan"], &from_sample));
    assert!(planned.contains("service(\"cruddur-backend\")"), "{planned}");
    assert!(control_plane.calls().len() > calls_before, "the blank variables hid AWS_ENDPOINT_URL");

    // Flags win over variables.
    let flags = ["show", "--region", "ap-south-1", "--endpoint-url", &endpoint];
    let elsewhere =
        [&CREDENTIALS[..], &[("AWS_REGION", "eu-west-1"), ("AWS_ENDPOINT_URL_XRAY", "http://127.0.0.1:9")]].concat();
    stdout(&run_binary(std::path::Path::new(WORKSPACE_INFRA), &flags, &elsewhere));
    assert_eq!(control_plane.calls().pop().unwrap().region.as_deref(), Some("ap-south-1"));
}

#[test]
fn the_binary_takes_credentials_and_region_from_a_profile() {
    let control_plane = XRayControlPlane::start();
    let aws = tempfile::tempdir().unwrap();
    let config = aws.path().join("config");
    std::fs::write(
        &config,
        "[profile cruddur]\nregion = sa-east-1\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = s\n",
    )
    .unwrap();
    let no_credentials_file = aws.path().join("credentials");
    let environment = [
        ("AWS_CONFIG_FILE", config.to_str().unwrap()),
        ("AWS_SHARED_CREDENTIALS_FILE", no_credentials_file.to_str().unwrap()),
    ];
    let args = ["show", "--profile", "cruddur", "--endpoint-url", &control_plane.endpoint()];
    stdout(&run_binary(std::path::Path::new(WORKSPACE_INFRA), &args, &environment));
    let call = control_plane.calls().pop().expect("a call");
    assert_eq!((call.region.as_deref(), call.access_key.as_deref()), (Some("sa-east-1"), Some("AKIDPROFILE")));
}

#[test]
fn the_binary_names_the_group_s_service_as_the_backend_does() {
    let control_plane = XRayControlPlane::start();
    let endpoint = control_plane.endpoint();
    let run = |environment: &[(&str, &str)]| {
        let args = ["plan", "--region", "us-east-1", "--endpoint-url", &endpoint];
        stdout(&run_binary(std::path::Path::new(WORKSPACE_INFRA), &args, &[&CREDENTIALS[..], environment].concat()))
    };
    let gitpod = [
        ("AWS_XRAY_URL", "*abc123.ws-eu.gitpod.io*"),
        ("BACKEND_URL", "https://4567-abc123.ws-eu.gitpod.io"),
        ("OTEL_SERVICE_NAME", "not-this"),
    ];
    assert!(run(&gitpod).contains("FilterExpression: service(\"4567-abc123.ws-eu.gitpod.io\") {fault OR error}\n"));
    let renamed = [("OTEL_SERVICE_NAME", "cruddur-api"), ("AWS_XRAY_URL", "*gitpod.io*")];
    assert!(run(&renamed).contains("FilterExpression: service(\"cruddur-api\") {fault OR error}\n"));
}

#[test]
fn the_binary_says_when_there_is_no_region() {
    let output = run_binary(std::path::Path::new(WORKSPACE_INFRA), &["show"], &CREDENTIALS);
    assert_eq!(
        stderr(&output),
        "cruddur-infra: no AWS region: pass --region, set AWS_REGION, or give your AWS profile a region\n"
    );
}

#[test]
fn the_rule_file_is_found_from_anywhere_in_the_workspace_or_must_be_given() {
    let workspace = std::path::Path::new(WORKSPACE_INFRA).parent().unwrap();
    let control_plane = XRayControlPlane::start();
    let args = ["plan", "--region", "us-east-1", "--endpoint-url", &control_plane.endpoint()];
    for directory in [workspace.to_path_buf(), workspace.join("backend"), workspace.join("infra/aws")] {
        let output = stdout(&run_binary(&directory, &args, &CREDENTIALS));
        assert!(output.contains("+ create sampling rule Cruddur\n"), "from {}: {output}", directory.display());
    }
    let elsewhere = tempfile::tempdir().unwrap();
    let failure = stderr(&run_binary(elsewhere.path(), &args, &CREDENTIALS));
    assert!(failure.starts_with("cruddur-infra: no rule file: pass --rule-file"), "{failure}");
    let each_plan = ["GetGroups", "GetSamplingRules"];
    assert_eq!(control_plane.operations(), [each_plan, each_plan, each_plan].concat(), "only the three plans called");
}

/// Each bad rule file, and the start of what the binary says about it (after the file's path).
fn bad_rule_files() -> Vec<(&'static str, String, &'static str)> {
    let mut tagged: Value = serde_json::from_str(RULE_FILE).unwrap();
    tagged["Tags"] = json!([]);
    vec![
        ("bad JSON", RULE_FILE.replace("9000,", "9000"), "not JSON: "),
        ("no SamplingRule", "{}".into(), "SamplingRule is missing"),
        ("missing field", rule_file_with("ServiceName", Value::Null), "ServiceName is missing"),
        ("FixedRate above 1", rule_file_with("FixedRate", json!(1.5)), "FixedRate must be between 0 and 1, not 1.5"),
        ("FixedRate below 0", rule_file_with("FixedRate", json!(-0.1)), "FixedRate must be between 0 and 1, not -0.1"),
        ("Priority 0", rule_file_with("Priority", json!(0)), "Priority must be between 1 and 9999, not 0"),
        ("Priority 10000", rule_file_with("Priority", json!(10000)), "Priority must be between 1 and 9999, not 10000"),
        (
            "RuleName of 33",
            rule_file_with("RuleName", json!("R".repeat(33))),
            "RuleName must be at most 32 characters, not 33",
        ),
        ("negative ReservoirSize", rule_file_with("ReservoirSize", json!(-1)), "ReservoirSize must be between 0 and"),
        ("Version 2", rule_file_with("Version", json!(2)), "Version must be between 1 and 1, not 2"),
        ("unknown field", rule_file_with("FixedRat", json!(0.1)), "FixedRat is not a field of a sampling rule"),
        ("RuleARN", rule_file_with("RuleARN", json!("arn")), "RuleARN is assigned by X-Ray"),
        ("Tags", tagged.to_string(), "Tags are not set by a rule file"),
        ("attribute", rule_file_with("Attributes", json!({"a": 1})), "Attributes a must be a string"),
    ]
}

#[test]
fn every_bad_rule_file_fails_naming_file_and_field_before_any_call() {
    let control_plane = XRayControlPlane::start();
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("xray.json");
    for (case, text, expected) in bad_rule_files() {
        std::fs::write(&file, text).unwrap();
        for command in ["plan", "apply", "destroy"] {
            let args = [command, "--region", "us-east-1", "--endpoint-url", &control_plane.endpoint(), "--rule-file"];
            let mut args: Vec<&str> = args.to_vec();
            args.push(file.to_str().unwrap());
            let failure = stderr(&run_binary(directory.path(), &args, &CREDENTIALS));
            let prefix = format!("cruddur-infra: {}: {expected}", file.display());
            assert!(failure.starts_with(&prefix), "{case}, {command}: {failure}");
        }
        // The library says the same, with no client at all.
        let error = job(&["apply", "--rule-file", file.to_str().unwrap()]).unwrap_err().to_string();
        assert!(error.starts_with(&format!("{}: {expected}", file.display())), "{case}: {error}");
    }
    assert_eq!(control_plane.calls(), [], "no call was made");
}

#[test]
fn show_needs_no_rule_file() {
    let job = job(&["show", "--rule-file", "/nonexistent/xray.json"]).unwrap();
    assert!(matches!(job, Job::Show));
}

#[test]
fn env_sample_lists_every_variable_infra_reads() {
    let sample = std::fs::read_to_string(std::path::Path::new(WORKSPACE_INFRA).join("../.env.sample")).unwrap();
    let listed: Vec<&str> = sample
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('=').map(|(name, _)| name.trim()))
        .collect();
    let flags = Cli::command();
    let from_flags = flags.get_arguments().filter_map(|argument| argument.get_env()?.to_str());
    let backend_naming = ["AWS_XRAY_TRACING_NAME", "OTEL_SERVICE_NAME", "HONEYCOMB_SERVICE_NAME", "AWS_ENDPOINT_URL"];
    let read: Vec<&str> = from_flags.chain(backend_naming).collect();
    assert!(read.contains(&"AWS_XRAY_URL") && read.contains(&"AWS_ENDPOINT_URL_XRAY"), "{read:?}");
    for name in read {
        assert!(listed.contains(&name), ".env.sample lacks {name}");
    }
}
