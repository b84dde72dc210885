//! Plan features end to end: captures, templates, feeders, tags, thresholds, config files.

use hatchery_e2e::{hatchery, read_csv, Target, TempDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_token_feeds_later_requests_and_excluded_tags_never_run() {
    let target = Target::start().await;
    let dir = TempDir::new("capture");
    dir.write("accounts.csv", "user,password\nann,a1\nbob,b2\n");
    let plan = dir.write(
        "plan.yaml",
        r#"data: {accounts: {csv: accounts.csv}}
users:
  - name: U
    wait: {constant: 5ms}
    on_start:
      - post: /json/login
        json: {user: "{{ row.accounts.user }}"}
        capture: {token: {json: $.token}}
    tasks:
      - get: "/items/{{ rand.int(1, 3) }}"
        name: /items/[id]
        headers: {authorization: "Bearer {{ token }}"}
        check: {status: 200, body_contains: ok}
      - {get: /never, tags: [slow]}
"#,
    );
    let prefix = dir.path().join("run");
    hatchery(&[
        "-f",
        plan.to_str().unwrap(),
        "--headless",
        "-u",
        "4",
        "-r",
        "100",
        "-t",
        "1s",
        "-s",
        "5s",
        "-E",
        "slow",
        "-H",
        &target.url(),
        "--csv",
        prefix.to_str().unwrap(),
    ])
    .run()
    .await
    .expect_code(0);
    assert_eq!(target.count("POST", "/json/login"), 4);
    assert_eq!(target.count("GET", "/never"), 0);
    let items: u64 = (1..=3)
        .map(|i| target.count("GET", &format!("/items/{i}")))
        .sum();
    assert!(items > 0);
    // Every item request carried the token captured at login.
    assert_eq!(target.count("authorization", "Bearer t-1"), items);
    let rows = read_csv(&dir.path().join("run_stats.csv"));
    let row = rows
        .iter()
        .find(|r| r[1] == "/items/[id]")
        .expect("one entry for every id");
    assert_eq!(row[2].parse::<u64>().unwrap(), items);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_threshold_exits_1_even_when_every_request_succeeded() {
    let target = Target::start().await;
    let dir = TempDir::new("threshold");
    let plan = dir.write(
        "plan.yaml",
        "users:
  - name: U
    wait: {constant: 10ms}
    tasks: [{get: /a}]
thresholds:
  - {metric: fail_ratio, max: 0}
  - {metric: p95, name: /a, max: 0.001}
",
    );
    let out = hatchery(&[
        "-f",
        plan.to_str().unwrap(),
        "--headless",
        "-t",
        "1s",
        "-H",
        &target.url(),
    ])
    .run()
    .await;
    out.expect_code(1);
    let text = out.stdout();
    assert!(text.contains("fail ratio"), "{text}");
    assert!(text.contains("p95 of /a"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_file_sets_flags_and_the_environment_overrides_it() {
    let target = Target::start().await;
    let dir = TempDir::new("config");
    dir.write(
        "plan.yaml",
        "users: [{name: U, wait: {constant: 50ms}, on_start: [{get: /hello}], tasks: [{get: /a}]}]\n",
    );
    dir.write(
        "hatchery.conf",
        &format!(
            "# as in Locust\nplan = plan.yaml\nheadless = true\nusers = 3\nspawn-rate = 100\nrun_time = 1s\nhost = {}\n",
            target.url()
        ),
    );
    hatchery(&[])
        .current_dir(dir.path())
        .env("HATCHERY_USERS", "2")
        .run()
        .await
        .expect_code(0);
    assert_eq!(target.count("GET", "/hello"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_runs_on_stop_for_every_user() {
    let target = Target::start().await;
    let dir = TempDir::new("onstop");
    let plan = dir.write(
        "plan.yaml",
        "users:
  - name: U
    wait: {constant: 100ms}
    tasks: [{get: /a}]
    on_stop: [{get: /bye}]
",
    );
    hatchery(&[
        "-f",
        plan.to_str().unwrap(),
        "--headless",
        "-u",
        "3",
        "-r",
        "100",
        "-t",
        "1s",
        "--stop-timeout",
        "5s",
        "-H",
        &target.url(),
    ])
    .run()
    .await
    .expect_code(0);
    assert_eq!(target.count("GET", "/bye"), 3);
}

/// Coordinated omission: a user paced at 20 tasks a second against a target that answers in
/// 200 ms falls further behind its schedule with every request. Its raw response times stay
/// near 200 ms; those from the intended send times grow by 150 ms a request. A user with a
/// constant wait has no intended send times, so its row carries no corrected numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_class_behind_a_slow_target_reports_latency_from_its_intended_send_times() {
    let target = Target::start().await;
    let dir = TempDir::new("paced");
    let plan = dir.write(
        "plan.yaml",
        r#"users:
  - name: Paced
    fixed_count: 1
    wait: {throughput: 20}
    tasks: [{get: /sleep/200, name: paced}]
  - name: Unpaced
    fixed_count: 1
    wait: {constant: 0s}
    tasks: [{get: /sleep/200, name: unpaced}]
"#,
    );
    let prefix = dir.path().join("run");
    let out = hatchery(&[
        "-f",
        plan.to_str().unwrap(),
        "--headless",
        "-u",
        "2",
        "-r",
        "100",
        "-t",
        "2s",
        "-H",
        &target.url(),
        "--json",
        "--csv",
        prefix.to_str().unwrap(),
    ])
    .run()
    .await;
    out.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout()).expect("stdout is JSON");
    let rows = doc["stats"].as_array().expect("stats array");
    let row = |name: &str| rows.iter().find(|r| r["name"] == name).expect(name);
    let ms = |v: &serde_json::Value| v.as_f64().expect("a number");

    let paced = row("paced");
    let requests = paced["num_requests"].as_u64().unwrap();
    assert!(requests >= 4, "{paced}");
    let corrected = &paced["corrected"];
    assert_eq!(corrected["num_requests"].as_u64(), Some(requests));
    let raw_p99 = ms(&paced["response_time_percentile_0.99"]);
    let corrected_p99 = ms(&corrected["response_time_percentile_0.99"]);
    // Request k went out no earlier than k * 200 ms but was due at k * 50 ms.
    assert!(raw_p99 >= 200.0, "{paced}");
    assert!(
        corrected_p99 >= ms(&paced["max_response_time"]) + 150.0 * (requests - 1) as f64 * 0.9,
        "{paced}"
    );
    assert!(corrected_p99 > 2.0 * raw_p99, "{paced}");
    assert!(ms(&corrected["median_response_time"]) > ms(&paced["median_response_time"]));

    let unpaced = row("unpaced");
    assert!(unpaced["num_requests"].as_u64().unwrap() > 0);
    assert!(unpaced.get("corrected").is_none(), "{unpaced}");
    assert_eq!(
        row("Aggregated")["corrected"]["num_requests"].as_u64(),
        Some(requests)
    );
    // The CSV files keep Locust's columns.
    let csv = read_csv(&dir.path().join("run_stats.csv"));
    assert!(csv.iter().all(|r| r.len() == 22), "{csv:?}");
}
