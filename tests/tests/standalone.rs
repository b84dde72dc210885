//! The real `hatchery` binary in standalone mode against a real HTTP target on loopback.

use std::collections::HashMap;

use hatchery_e2e::short::check;
use hatchery_e2e::{hatchery, read_csv, Target, TempDir};

/// Columns of PREFIX_stats.csv by header name.
fn stats_rows(prefix: &std::path::Path) -> Vec<HashMap<String, String>> {
    let path = prefix.with_file_name(format!(
        "{}_stats.csv",
        prefix.file_name().unwrap().to_string_lossy()
    ));
    let rows = read_csv(&path);
    let header = rows[0].clone();
    rows[1..]
        .iter()
        .map(|r| header.iter().cloned().zip(r.iter().cloned()).collect())
        .collect()
}

fn count_of(rows: &[HashMap<String, String>], method: &str, name: &str) -> u64 {
    rows.iter()
        .find(|r| r["Type"] == method && r["Name"] == name)
        .unwrap_or_else(|| panic!("no row {method} {name} in {rows:?}"))["Request Count"]
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_counts_equal_what_the_target_received_and_classes_follow_weights() {
    let target = Target::start().await;
    let dir = TempDir::new("counts");
    let plan = dir.write(
        "plan.yaml",
        "users:
  - name: Reader
    weight: 3
    wait: {constant: 0s}
    on_start: [{get: /start/reader}]
    tasks:
      - {get: /a, name: read-a}
  - name: Writer
    weight: 1
    wait: {between: [0s, 10ms]}
    on_start: [{get: /start/writer}]
    tasks:
      - {post: /b, json: {x: 1}}
",
    );
    let prefix = dir.path().join("run");
    let out = hatchery(&[
        "-f",
        plan.to_str().unwrap(),
        "--headless",
        "-u",
        "40",
        "-r",
        "400",
        "-t",
        "2s",
        "--host",
        &target.url(),
        "--csv",
        prefix.to_str().unwrap(),
        "--only-summary",
        // Users finish the request in flight at the deadline, so the server saw nothing that
        // the stats did not count (with -s 0 those requests are abandoned, as in Locust).
        "--stop-timeout",
        "5s",
    ])
    .run()
    .await;
    out.expect_code(0);

    // Users per class, seen by the target: each user sends its on_start once.
    assert_eq!(target.count("GET", "/start/reader"), 30);
    assert_eq!(target.count("GET", "/start/writer"), 10);

    let rows = stats_rows(&prefix);
    let reads = count_of(&rows, "GET", "read-a");
    let writes = count_of(&rows, "POST", "/b");
    assert!(reads > 0 && writes > 0, "reads {reads}, writes {writes}");
    assert_eq!(reads, target.count("GET", "/a"));
    assert_eq!(writes, target.count("POST", "/b"));
    let total: u64 = target.counts().values().sum();
    let aggregated = rows.iter().find(|r| r["Name"] == "Aggregated").unwrap();
    assert_eq!(aggregated["Request Count"].parse::<u64>().unwrap(), total);
    assert_eq!(aggregated["Failure Count"], "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_requests_set_the_exit_code_and_appear_in_the_failures_csv() {
    let target = Target::start().await;
    let dir = TempDir::new("failures");
    let plan = dir.write(
        "plan.yaml",
        "users:
  - name: U
    wait: {constant: 50ms}
    tasks:
      - {get: /status/503, name: broken}
      - {get: /a}
",
    );
    let prefix = dir.path().join("run");
    let out = hatchery(&[
        "-f",
        plan.to_str().unwrap(),
        "--headless",
        "-u",
        "2",
        "-r",
        "10",
        "-t",
        "1s",
        "-H",
        &target.url(),
        "--csv",
        prefix.to_str().unwrap(),
        "--exit-code-on-error",
        "7",
        "-s",
        "5s",
    ])
    .run()
    .await;
    out.expect_code(7);
    let failures = read_csv(&dir.path().join("run_failures.csv"));
    assert_eq!(
        failures[0].join(","),
        "Method,Name,Error,Occurrences,First Seen,Last Seen"
    );
    let row = failures
        .iter()
        .find(|r| r.get(1).map(String::as_str) == Some("broken"))
        .expect("a failure row for broken");
    assert_eq!(row[0], "GET");
    assert!(row[2].contains("503"), "{row:?}");
    assert_eq!(
        row[3].parse::<u64>().unwrap(),
        target.count("GET", "/status/503")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_every_problem_with_its_line_and_exits_2() {
    let dir = TempDir::new("check");
    let plan = dir.write(
        "plan.yaml",
        "host: http://127.0.0.1:1
users:
  - name: A
    wieght: 3
    tasks:
      - {get: /a, name: x}
  - name: B
    weight: 0
    tasks:
      - {get: \"/p/{{ nope }}\"}
",
    );
    let out = check(&plan).await;
    out.expect_code(2);
    let err = out.stderr();
    assert!(err.contains("plan.yaml:4:"), "{err}");
    assert!(err.contains("weight"), "a did-you-mean for wieght: {err}");
    assert!(err.contains("plan.yaml:8:"), "{err}");
    assert!(err.contains("nope"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_prints_the_final_stats_on_stdout() {
    let target = Target::start().await;
    let dir = TempDir::new("json");
    let plan = dir.write(
        "plan.yaml",
        "users:
  - name: U
    wait: {constant: 10ms}
    tasks: [{get: /a}]
",
    );
    let out = hatchery(&[
        "-f",
        plan.to_str().unwrap(),
        "--headless",
        "-u",
        "1",
        "-t",
        "1s",
        "-H",
        &target.url(),
        "--json",
        // The request in flight at the deadline completes and is counted, as the target saw it.
        "-s",
        "5s",
    ])
    .run()
    .await;
    out.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout()).expect("stdout is JSON");
    let stats = doc["stats"].as_array().expect("stats array");
    let a = stats.iter().find(|e| e["name"] == "/a").expect("entry /a");
    assert_eq!(
        a["num_requests"].as_u64().unwrap(),
        target.count("GET", "/a")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_flag_value_is_a_config_error() {
    let dir = TempDir::new("flags");
    let plan = dir.write("plan.yaml", "users: [{name: U, tasks: [{get: /a}]}]\n");
    let out = hatchery(&["-f", plan.to_str().unwrap(), "--headless", "-t", "soon"])
        .run()
        .await;
    out.expect_code(2);
    assert!(out.stderr().contains("soon"), "{}", out.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_without_a_host_tells_how_to_give_one() {
    let dir = TempDir::new("nohost");
    let plan = dir.write("plan.yaml", "users: [{name: U, tasks: [{get: /a}]}]\n");
    let out = hatchery(&["-f", plan.to_str().unwrap(), "--headless", "-t", "1s"])
        .run()
        .await;
    out.expect_code(2);
    assert!(out.stderr().contains("--host"), "{}", out.stderr());
}
