//! The library against the control plane: apply on empty creates both, again changes nothing, a changed field
//! updates only that field, drift made in the console is planned and undone, destroy removes both and may run
//! twice, show lists everything across pages, and X-Ray's errors reach the user with the operation named.

use infra::{Change, FieldChange, InfraError, Job, apply, group_filter, plan};
use serde_json::{Value, json};
use test_support::xray_control::{PAGE_SIZE, RULE_LIMIT, XRayControlPlane};

use crate::helpers::{ACCESS_KEY, RULE_FILE, client, desired, job, rule_file_with};

const CREATE_BOTH: &str = "\
+ create group Cruddur
    FilterExpression: service(\"cruddur-backend\") {fault OR error}
+ create sampling rule Cruddur
    ResourceARN: *
    Priority: 9000
    FixedRate: 0.1
    ReservoirSize: 5
    ServiceName: cruddur-backend
    ServiceType: *
    Host: *
    HTTPMethod: *
    URLPath: *
    Attributes: {}
";

const UP_TO_DATE: &str = "= group Cruddur is up to date\n= sampling rule Cruddur is up to date\n";

/// The prepared job for the committed rule file (as the binary would prepare it from the workspace).
fn committed(command: &str) -> Job {
    let rule_file = concat!(env!("CARGO_MANIFEST_DIR"), "/aws/json/xray.json");
    job(&[command, "--rule-file", rule_file]).unwrap()
}

#[tokio::test]
async fn apply_on_empty_creates_both_then_a_second_apply_changes_nothing_and_says_so() {
    let control_plane = XRayControlPlane::start();
    let client = client(&control_plane);

    let first = committed("apply").execute(&client).await.unwrap();
    assert_eq!(first, format!("{CREATE_BOTH}applied\n"));
    assert_eq!(control_plane.writes(), ["CreateGroup", "CreateSamplingRule"]);
    assert_eq!(control_plane.groups()["Cruddur"], "service(\"cruddur-backend\") {fault OR error}");
    let rule = control_plane.rule("Cruddur").expect("the rule exists");
    for (field, value) in serde_json::from_str::<Value>(RULE_FILE).unwrap()["SamplingRule"].as_object().unwrap() {
        assert_eq!(&rule[field], value, "{field} as in the file");
    }
    let calls = control_plane.calls();
    assert!(calls.iter().all(|call| call.region.as_deref() == Some("us-east-1")), "{calls:?}");
    assert!(calls.iter().all(|call| call.access_key.as_deref() == Some(ACCESS_KEY)), "{calls:?}");

    let writes_before = control_plane.writes().len();
    let second = committed("apply").execute(&client).await.unwrap();
    assert_eq!(second, format!("{UP_TO_DATE}nothing to change\n"));
    assert_eq!(control_plane.writes().len(), writes_before, "a second apply wrote {:?}", control_plane.writes());
}

#[tokio::test]
async fn plan_prints_create_update_and_nothing_and_changes_nothing() {
    let control_plane = XRayControlPlane::start();
    let client = client(&control_plane);

    assert_eq!(committed("plan").execute(&client).await.unwrap(), CREATE_BOTH);
    assert!(control_plane.writes().is_empty(), "plan wrote {:?}", control_plane.writes());

    committed("apply").execute(&client).await.unwrap();
    assert_eq!(committed("plan").execute(&client).await.unwrap(), format!("{UP_TO_DATE}nothing to change\n"));

    let directory = tempfile::tempdir().unwrap();
    let changed = desired(directory.path(), &rule_file_with("FixedRate", json!(0.25)), &["--service-name", "other"]);
    let planned = plan(&client, &changed).await.unwrap();
    assert_eq!(
        planned.to_string(),
        "\
~ update group Cruddur
    FilterExpression: service(\"cruddur-backend\") {fault OR error} -> service(\"other\") {fault OR error}
~ update sampling rule Cruddur
    FixedRate: 0.1 -> 0.25
    ServiceName: cruddur-backend -> other
"
    );
    assert_eq!(control_plane.rule("Cruddur").unwrap()["FixedRate"], json!(0.1), "plan changed the rule");
    assert_eq!(control_plane.groups()["Cruddur"], group_filter("cruddur-backend"), "plan changed the group");
}

#[tokio::test]
async fn a_changed_fixed_rate_updates_only_that() {
    let control_plane = XRayControlPlane::start();
    let client = client(&control_plane);
    committed("apply").execute(&client).await.unwrap();
    let before = control_plane.rule("Cruddur").unwrap();
    let writes_before = control_plane.writes().len();

    let directory = tempfile::tempdir().unwrap();
    let changed = desired(directory.path(), &rule_file_with("FixedRate", json!(0.25)), &[]);
    let done = apply(&client, &changed).await.unwrap();
    assert_eq!(done.group, Change::Unchanged);
    assert_eq!(
        done.rule,
        Change::Update(vec![FieldChange { field: "FixedRate", from: "0.1".into(), to: "0.25".into() }])
    );

    assert_eq!(control_plane.writes()[writes_before..], ["UpdateSamplingRule"]);
    let mut expected = before;
    expected["FixedRate"] = json!(0.25);
    assert_eq!(control_plane.rule("Cruddur").unwrap(), expected, "only FixedRate changed");
    assert!(apply(&client, &changed).await.unwrap().is_empty(), "the update holds");
}

#[tokio::test]
async fn drift_made_in_the_console_is_planned_and_undone() {
    let control_plane = XRayControlPlane::start();
    let client = client(&control_plane);
    committed("apply").execute(&client).await.unwrap();
    let mut drifted = control_plane.rule("Cruddur").unwrap();
    drifted["ReservoirSize"] = json!(50);
    drifted["URLPath"] = json!("/api/*");
    drifted["Attributes"] = json!({"tier": "gold"});
    control_plane.put_rule(drifted);
    control_plane.put_group("Cruddur", "service(\"backend-flask\") {fault OR error}");

    let planned = committed("plan").execute(&client).await.unwrap();
    assert_eq!(
        planned,
        "\
~ update group Cruddur
    FilterExpression: service(\"backend-flask\") {fault OR error} -> service(\"cruddur-backend\") {fault OR error}
~ update sampling rule Cruddur
    ReservoirSize: 50 -> 5
    URLPath: /api/* -> *
    Attributes: {\"tier\":\"gold\"} -> {}
"
    );
    let applied = committed("apply").execute(&client).await.unwrap();
    assert_eq!(applied, format!("{planned}applied\n"));
    assert_eq!(control_plane.writes()[2..], ["UpdateGroup", "UpdateSamplingRule"]);
    assert_eq!(committed("plan").execute(&client).await.unwrap(), format!("{UP_TO_DATE}nothing to change\n"));
}

#[tokio::test]
async fn destroy_removes_both_keeps_the_rest_and_absent_is_fine() {
    let control_plane = XRayControlPlane::start();
    let client = client(&control_plane);
    control_plane.put_group("Other", "service(\"other\")");
    committed("apply").execute(&client).await.unwrap();

    let destroyed = committed("destroy").execute(&client).await.unwrap();
    assert_eq!(destroyed, "- deleted group Cruddur\n- deleted sampling rule Cruddur\n");
    assert_eq!(control_plane.groups().keys().collect::<Vec<_>>(), ["Other"]);
    assert_eq!(control_plane.rule_names(), ["Default"]);

    let writes_before = control_plane.writes().len();
    let again = committed("destroy").execute(&client).await.unwrap();
    assert_eq!(again, "= group Cruddur was already absent\n= sampling rule Cruddur was already absent\n");
    assert_eq!(control_plane.writes().len(), writes_before, "nothing to delete, nothing deleted");
}

#[tokio::test]
async fn everything_is_found_across_pages() {
    let control_plane = XRayControlPlane::start();
    let client = client(&control_plane);
    // Sorted after the others, so the group and the rule are on the last pages.
    for name in ["A", "B", "C"] {
        control_plane.put_group(name, "ok");
        let mut rule = control_plane.rule("Default").unwrap();
        rule["RuleName"] = json!(name);
        rule["Priority"] = json!(100);
        control_plane.put_rule(rule);
    }
    committed("apply").execute(&client).await.unwrap();
    assert_eq!(committed("apply").execute(&client).await.unwrap(), format!("{UP_TO_DATE}nothing to change\n"));
    let group_pages = control_plane.operations().iter().filter(|operation| *operation == "GetGroups").count();
    assert!(group_pages >= 2 * 4_usize.div_ceil(PAGE_SIZE), "each apply read every page ({group_pages} calls)");

    let listing = Job::Show.execute(&client).await.unwrap();
    let expected = "\
groups:
  A: ok
  B: ok
  C: ok
  Cruddur: service(\"cruddur-backend\") {fault OR error}
sampling rules:
  A (priority 100, fixed rate 0.05, reservoir 1/s): service *, type *, method *, host *, path *
  B (priority 100, fixed rate 0.05, reservoir 1/s): service *, type *, method *, host *, path *
  C (priority 100, fixed rate 0.05, reservoir 1/s): service *, type *, method *, host *, path *
  Cruddur (priority 9000, fixed rate 0.1, reservoir 5/s): service cruddur-backend, type *, method *, host *, path *
  Default (priority 10000, fixed rate 0.05, reservoir 1/s): service *, type *, method *, host *, path *
";
    assert_eq!(listing, expected);
}

#[tokio::test]
async fn show_on_an_empty_account() {
    let control_plane = XRayControlPlane::start();
    let listing = Job::Show.execute(&client(&control_plane)).await.unwrap();
    assert_eq!(
        listing,
        "groups:\n  (none)\nsampling rules:\n  Default (priority 10000, fixed rate 0.05, reservoir 1/s): service *, type *, method *, host *, path *\n"
    );
}

#[tokio::test]
async fn an_x_ray_error_names_the_operation_and_says_what_x_ray_said() {
    let control_plane = XRayControlPlane::start();
    let client = client(&control_plane);
    for number in 0..RULE_LIMIT {
        let mut rule = control_plane.rule("Default").unwrap();
        rule["RuleName"] = json!(format!("rule-{number}"));
        control_plane.put_rule(rule);
    }
    let error = committed("apply").execute(&client).await.unwrap_err();
    let InfraError::Aws { operation, message } = &error else { panic!("expected an AWS error, got {error:?}") };
    assert_eq!(*operation, "CreateSamplingRule");
    assert!(message.contains("RuleLimitExceededException"), "{message}");
    assert!(message.contains("sampling rules besides Default"), "{message}");
    assert!(control_plane.rule("Cruddur").is_none());
}
