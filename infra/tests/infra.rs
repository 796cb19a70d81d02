//! The infra library against a local X-Ray control plane (real HTTP, the REST-JSON protocol, with state): apply
//! creates, a second apply changes nothing, a changed field updates only that field, destroy removes both and may
//! run twice, and a bad rule file fails before any call.

use aws_credential_types::Credentials;
use aws_sdk_xray::Client;
use aws_sdk_xray::config::{BehaviorVersion, Region};
use infra::{Change, Desired, Destroyed, FieldChange, apply, destroy, group_filter, plan, rule_file, show};
use test_support::xray_control::XRayControlPlane;

const RULE_FILE: &str = include_str!("../aws/json/xray.json");

fn client(control_plane: &XRayControlPlane) -> Client {
    let config = aws_sdk_xray::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDEXAMPLE", "secret", None, None, "test"))
        .endpoint_url(control_plane.endpoint())
        .build();
    Client::from_conf(config)
}

fn desired(rule_file_text: &str) -> Desired {
    Desired {
        group_name: "Cruddur".into(),
        filter_expression: group_filter("cruddur-backend"),
        rule: rule_file::parse(rule_file_text, "xray.json").expect("a valid rule file"),
    }
}

#[tokio::test]
async fn apply_creates_both_then_changes_nothing() {
    let control_plane = XRayControlPlane::start().await;
    let client = client(&control_plane);
    let wanted = desired(RULE_FILE);

    let first = apply(&client, &wanted).await.unwrap();
    assert_eq!((first.group.clone(), first.rule.clone()), (Change::Create, Change::Create));
    assert_eq!(control_plane.groups()["Cruddur"], "service(\"cruddur-backend\") {fault OR error}");
    let rule = control_plane.rule("Cruddur").expect("the rule exists");
    assert_eq!((rule["FixedRate"].as_f64(), rule["Priority"].as_i64()), (Some(0.1), Some(9000)));
    assert_eq!(rule["ServiceName"], "cruddur-backend");

    let calls_before = control_plane.calls().len();
    let second = apply(&client, &wanted).await.unwrap();
    assert!(second.is_empty(), "{second}");
    assert!(second.to_string().contains("= group Cruddur is up to date"));
    let writes = control_plane.calls()[calls_before..]
        .iter()
        .filter(|call| !call.starts_with("Get"))
        .cloned()
        .collect::<Vec<_>>();
    assert!(writes.is_empty(), "a second apply wrote {writes:?}");
}

#[tokio::test]
async fn a_changed_fixed_rate_updates_only_the_rule_s_fixed_rate() {
    let control_plane = XRayControlPlane::start().await;
    let client = client(&control_plane);
    apply(&client, &desired(RULE_FILE)).await.unwrap();

    let changed = desired(&RULE_FILE.replace("\"FixedRate\": 0.1", "\"FixedRate\": 0.25"));
    let planned = plan(&client, &changed).await.unwrap();
    assert_eq!(planned.group, Change::Unchanged);
    assert_eq!(
        planned.rule,
        Change::Update(vec![FieldChange { field: "FixedRate", from: "0.1".into(), to: "0.25".into() }])
    );
    assert!(planned.to_string().contains("~ update sampling rule Cruddur\n    FixedRate: 0.1 -> 0.25"), "{planned}");
    assert_eq!(control_plane.rule("Cruddur").unwrap()["FixedRate"].as_f64(), Some(0.1), "plan changes nothing");

    let before = control_plane.calls().len();
    apply(&client, &changed).await.unwrap();
    let writes: Vec<String> =
        control_plane.calls()[before..].iter().filter(|call| !call.starts_with("Get")).cloned().collect();
    assert_eq!(writes, ["UpdateSamplingRule"]);
    let rule = control_plane.rule("Cruddur").unwrap();
    assert_eq!((rule["FixedRate"].as_f64(), rule["ReservoirSize"].as_i64()), (Some(0.25), Some(5)));
}

#[tokio::test]
async fn a_changed_service_name_updates_the_group_s_filter() {
    let control_plane = XRayControlPlane::start().await;
    let client = client(&control_plane);
    apply(&client, &desired(RULE_FILE)).await.unwrap();
    let renamed = Desired { filter_expression: group_filter("backend-flask"), ..desired(RULE_FILE) };
    let done = apply(&client, &renamed).await.unwrap();
    assert!(matches!(done.group, Change::Update(_)));
    assert_eq!(done.rule, Change::Unchanged);
    assert_eq!(control_plane.groups()["Cruddur"], "service(\"backend-flask\") {fault OR error}");
}

#[tokio::test]
async fn destroy_removes_both_and_absent_is_fine() {
    let control_plane = XRayControlPlane::start().await;
    let client = client(&control_plane);
    apply(&client, &desired(RULE_FILE)).await.unwrap();
    assert_eq!(destroy(&client, "Cruddur", "Cruddur").await.unwrap(), Destroyed { group: true, rule: true });
    assert!(control_plane.groups().is_empty());
    assert!(control_plane.rule("Cruddur").is_none());
    assert!(control_plane.rule("Default").is_some(), "other rules stay");
    assert_eq!(destroy(&client, "Cruddur", "Cruddur").await.unwrap(), Destroyed { group: false, rule: false });
}

#[tokio::test]
async fn show_lists_what_x_ray_holds() {
    let control_plane = XRayControlPlane::start().await;
    let client = client(&control_plane);
    apply(&client, &desired(RULE_FILE)).await.unwrap();
    let listing = show(&client).await.unwrap();
    assert_eq!(listing.groups, [("Cruddur".to_owned(), group_filter("cruddur-backend"))]);
    let names: Vec<&str> = listing.rules.iter().filter_map(|rule| rule.rule_name()).collect();
    assert_eq!(names, ["Cruddur", "Default"]);
    assert!(listing.to_string().contains("Cruddur (priority 9000, fixed rate 0.1, reservoir 5/s)"));
}

#[test]
fn the_cli_fails_on_a_bad_rule_file_before_any_call() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let control_plane = runtime.block_on(XRayControlPlane::start());
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), RULE_FILE.replace("\"Priority\": 9000", "\"Priority\": 0")).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cruddur-infra"))
        .args(["apply", "--region", "us-east-1", "--endpoint-url", &control_plane.endpoint(), "--rule-file"])
        .arg(bad.path())
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "secret")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Priority must be between 1 and 9999, not 0"), "{stderr}");
    assert!(control_plane.calls().is_empty(), "no call was made: {:?}", control_plane.calls());
}

#[test]
fn the_cli_applies_and_says_so() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let control_plane = runtime.block_on(XRayControlPlane::start());
    let run = |command: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_cruddur-infra"))
            .args([command, "--region", "us-east-1", "--endpoint-url", &control_plane.endpoint()])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "secret")
            .env_remove("OTEL_SERVICE_NAME")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(run("plan"), "+ create group Cruddur\n+ create sampling rule Cruddur\n");
    assert!(run("apply").ends_with("applied\n"));
    assert!(run("apply").ends_with("nothing to change\n"));
    assert!(run("show").contains("Cruddur: service(\"cruddur-backend\") {fault OR error}"));
    assert_eq!(run("destroy"), "- deleted group Cruddur\n- deleted sampling rule Cruddur\n");
    assert_eq!(run("destroy"), "= already absent: group Cruddur\n= already absent: sampling rule Cruddur\n");
    let help = run("--help");
    for command in ["plan", "apply", "destroy", "show", "--rule-file", "--endpoint-url", "--group-name"] {
        assert!(help.contains(command), "{command} in --help");
    }
}
