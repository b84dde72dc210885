//! Scripted users end to end: the real binary runs `call:` steps of a Luau script against the
//! test target, and the target's own request log is held against what the script should do.

use std::path::Path;

use hatchery_e2e::short::check;
use hatchery_e2e::{csv_column, hatchery, worker, Finished, Master, Standalone, Target, TempDir};

/// Runs `plan` headless for `secs` with `users` users against `target`, letting the last task
/// finish (so the target's counts are whole calls); the CSV prefix is `dir/run`.
async fn run(dir: &TempDir, plan: &str, target: &Target, users: u32, secs: &str) -> Finished {
    run_with(dir, plan, target, users, secs, &[]).await
}

/// [`run`] with more flags.
async fn run_with(
    dir: &TempDir,
    plan: &str,
    target: &Target,
    users: u32,
    secs: &str,
    flags: &[&str],
) -> Finished {
    let plan = dir.write("plan.yaml", plan);
    Standalone::headless(&plan)
        .users(users)
        .spawn_rate(100.0)
        .run_time(secs)
        .stop_timeout("10s")
        .host(&target.url())
        .csv(&dir.path().join("run"))
        .args(flags)
        .command()
        .run()
        .await
}

/// A column of the stats row `name`.
fn column(dir: &TempDir, name: &str, header: &str) -> u64 {
    csv_column(&dir.path().join("run_stats.csv"), name, header)
}

fn file(dir: &TempDir, name: &str) -> String {
    std::fs::read_to_string(dir.path().join(name)).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_branches_on_the_status_and_settles_a_404_as_a_success() {
    let target = Target::start().await;
    let dir = TempDir::new("script-branch");
    let out = run(
        &dir,
        r#"users:
  - name: Shopper
    wait: {constant: 5ms}
    script: |
      local n = 0
      function shop(user)
        n += 1
        local code = if n % 3 == 0 then 404 else 200
        local r = user.http:get("/status/" .. code, {name = "/status/[code]"})
        if r.status == 404 then
          r:success()
          user.http:get("/after/missing")
        else
          assert(r.ok and r.headers["Content-Length"] ~= nil and r.elapsed_ms >= 0)
          user.http:post("/after/ok", {json = {status = r.status}})
        end
      end
    tasks:
      - {call: shop}
"#,
        &target,
        3,
        "1s",
    )
    .await;
    let (ok, missing) = (
        target.count("GET", "/status/200"),
        target.count("GET", "/status/404"),
    );
    assert!(ok > 3 && missing > 0, "{}", out.stderr());
    assert_eq!(target.count("POST", "/after/ok"), ok);
    assert_eq!(target.count("GET", "/after/missing"), missing);
    assert_eq!(
        column(&dir, "/status/[code]", "Request Count"),
        ok + missing
    );
    assert_eq!(column(&dir, "/status/[code]", "Failure Count"), 0);
    assert_eq!(column(&dir, "/after/ok", "Request Count"), ok);
    out.expect_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_of_five_posts_sends_five_per_call_with_the_token_a_yaml_step_captured() {
    let target = Target::start().await;
    let dir = TempDir::new("script-loop");
    let out = run(
        &dir,
        r#"users:
  - name: Writer
    wait: {constant: 5ms}
    on_start:
      - {post: /json/login, capture: {token: {json: $.token}}}
    script: |
      function burst(user)
        user.http:get("/calls")
        for i = 1, 5 do
          user.http:post("/items", {
            json = {i = i, by = user.id},
            headers = {authorization = "Bearer " .. user.vars.token},
          })
        end
        user.vars.seen = user.id
      end
    tasks:
      - sequence:
          - {call: burst}
          - {get: "/seen/{{ seen }}", name: /seen}
"#,
        &target,
        2,
        "1s",
    )
    .await;
    let calls = target.count("GET", "/calls");
    assert!(calls > 2, "{}", out.stderr());
    assert_eq!(target.count("POST", "/items"), 5 * calls);
    assert_eq!(target.count("authorization", "Bearer t-1"), 5 * calls);
    // The variable only the script sets was rendered by the YAML step after it.
    let seen = target.count("GET", "/seen/0") + target.count("GET", "/seen/1");
    assert_eq!(seen, calls);
    assert_eq!(column(&dir, "/items", "Request Count"), 5 * calls);
    out.expect_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_reads_its_users_feeder_row_and_its_workers_place_and_checks_responses() {
    let target = Target::start().await;
    let dir = TempDir::new("script-row");
    dir.write("accounts.csv", "user,password\nalice,a1\nbob,b2\n");
    let out = run(
        &dir,
        r#"data:
  accounts: {csv: accounts.csv}
users:
  - name: Reader
    wait: {constant: 5ms}
    script: |
      function read(user)
        local r = row("accounts")
        user.http:get("/row/" .. user.id .. "/" .. r.user .. "/" .. r.password)
        user.http:get("/place/" .. worker.index .. "/" .. worker.count)
        user.http:get("/status/404", {name = "allowed 404", check = {status = {200, 404}}})
        user.http:get("/json/x", {name = "json ok", check = {json = {["$.token"] = "t-1"}, body_contains = "ok"}})
        user.http:get("/ok", {name = "missing text", check = {body_contains = {"ok", "no such text"}}})
        metric("a step", 5)
      end
    tasks:
      - {call: read}
"#,
        &target,
        3,
        "1s",
    )
    .await;
    // Users 0 and 2 get row 0, user 1 row 1: the templates' row semantic.
    let by_user: Vec<u64> = ["0/alice/a1", "1/bob/b2", "2/alice/a1"]
        .iter()
        .map(|p| target.count("GET", &format!("/row/{p}")))
        .collect();
    let calls = target.count("GET", "/place/0/1");
    assert!(
        by_user.iter().all(|&n| n > 0),
        "{by_user:?} {}",
        out.stderr()
    );
    assert_eq!(by_user.iter().sum::<u64>(), calls, "{:?}", target.counts());
    assert_eq!(target.count("GET", "/status/404"), calls);
    assert_eq!(column(&dir, "allowed 404", "Request Count"), calls);
    assert_eq!(column(&dir, "allowed 404", "Failure Count"), 0);
    assert_eq!(column(&dir, "json ok", "Failure Count"), 0);
    assert_eq!(column(&dir, "missing text", "Failure Count"), calls);
    // A script's own entries are not GETs: Locust's request type of a custom event.
    assert_eq!(column(&dir, "a step", "Request Count"), calls);
    assert!(file(&dir, "run_stats.csv").contains("\nSCRIPT,a step,"));
    let failures = file(&dir, "run_failures.csv");
    assert!(
        failures.contains("check failed: body does not contain \"\"no such text\"\""),
        "{failures}"
    );
    out.expect_code(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_error_fails_its_call_at_the_plan_line_and_the_user_goes_on() {
    let target = Target::start().await;
    let dir = TempDir::new("script-error");
    let out = run(
        &dir,
        r#"users:
  - name: Flaky
    wait: {constant: 5ms}
    script: |
      local n = 0
      function flaky(user)
        n += 1
        user.http:get("/before")
        if n % 2 == 0 then
          local t = nil
          return t.field
        end
        user.http:get("/after")
      end
    tasks:
      - {call: flaky}
"#,
        &target,
        1,
        "1s",
    )
    .await;
    let (before, after) = (
        target.count("GET", "/before"),
        target.count("GET", "/after"),
    );
    assert!(after > 2, "{}", out.stderr());
    let failed = column(&dir, "call flaky", "Failure Count");
    assert_eq!(before, after + failed);
    assert!(
        failed + 1 >= after,
        "every second call fails: {failed} of {before}"
    );
    // Line 7 of the script is line 11 of the plan.
    let failures = file(&dir, "run_failures.csv");
    assert!(
        failures.contains("script error: ")
            && failures.contains("plan.yaml:11: attempt to index nil"),
        "{failures}"
    );
    assert!(file(&dir, "run_exceptions.csv").contains("plan.yaml:11: attempt to index nil"));
    assert!(file(&dir, "run_stats.csv").contains("\nCALL,call flaky,"));
    out.expect_code(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_and_a_memory_hog_are_stopped_and_reported_and_their_users_go_on() {
    let target = Target::start().await;
    let dir = TempDir::new("script-limits");
    let out = run(
        &dir,
        r#"users:
  - name: Spinner
    script_timeout: 200ms
    script_memory: 2MiB
    script: |
      function spin(user)
        user.http:get("/spin")
        while true do end
      end
    tasks: [{call: spin}]
  - name: Hog
    script_memory: 2MiB
    script: |
      function hog(user)
        user.http:get("/hog")
        local t = {}
        for i = 1, 1e7 do t[i] = string.rep("x", 64) .. i end
      end
    tasks: [{call: hog}]
"#,
        &target,
        2,
        "2s",
    )
    .await;
    let failures = file(&dir, "run_failures.csv");
    let spins = target.count("GET", "/spin");
    assert!(spins >= 3, "the spinner's user went on: {}", out.stderr());
    assert_eq!(
        column(&dir, "call spin", "Failure Count"),
        spins,
        "{failures}"
    );
    let hogs = target.count("GET", "/hog");
    assert!(hogs >= 2, "{}", out.stderr());
    assert_eq!(
        column(&dir, "call hog", "Failure Count"),
        hogs,
        "{failures}"
    );
    assert!(
        failures.contains("plan.yaml:8: ran 200ms without awaiting (script_timeout)"),
        "{failures}"
    );
    assert!(
        failures.contains("out of memory: over script_memory (2048 KiB"),
        "{failures}"
    );
    out.expect_code(1);
}

/// A row of a `--json` summary.
fn row<'a>(summary: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    let rows = summary["stats"].as_array().expect("stats rows");
    rows.iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row {name} in {summary}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_computation_gives_way_so_the_other_users_of_its_thread_are_not_held() {
    let target = Target::start().await;
    let dir = TempDir::new("script-turns");
    // One runtime thread, so one VM: without giving way, every other user (scripted or not)
    // would wait for each 0.8 s loop, and for the spinner's 300 ms.
    let out = run_with(
        &dir,
        r#"users:
  - name: Heavy
    fixed_count: 1
    script_timeout: 5s
    script: |
      function heavy(user)
        local started = os.clock()
        while os.clock() - started < 0.8 do end
        metric("heavy loop", (os.clock() - started) * 1000)
        user.http:get("/heavy")
      end
    tasks: [{call: heavy}]
  - name: Spinner
    fixed_count: 1
    script_timeout: 300ms
    script: |
      function spin(user)
        user.http:get("/spin")
        while true do end
      end
    tasks: [{call: spin}]
  - name: Light
    wait: {pacing: 10ms}
    script: |
      function light(user)
        user.http:get("/light")
      end
    tasks: [{call: light}]
  - name: Plain
    wait: {pacing: 10ms}
    tasks: [{get: /plain}]
"#,
        &target,
        4,
        "3s",
        &["--threads", "1", "--json", "--only-summary"],
    )
    .await;
    let summary: serde_json::Value =
        serde_json::from_str(&out.stdout()).unwrap_or_else(|e| panic!("{e}: {}", out.stderr()));
    let loops = row(&summary, "heavy loop");
    assert!(loops["num_requests"].as_u64() >= Some(2), "{summary}");
    assert!(
        loops["min_response_time"].as_f64() >= Some(800.0),
        "{summary}"
    );
    let counts = target.counts();
    assert!(
        target.count("GET", "/heavy") >= 2 && target.count("GET", "/light") >= 100,
        "{counts:?}"
    );
    for name in ["/light", "/plain"] {
        let late = row(&summary, name)["corrected"]["max_response_time"].as_f64();
        assert!(
            late.is_some_and(|ms| ms < 400.0),
            "{name} waited {late:?} ms from its intended send time: {summary}"
        );
    }
    // The spinner's budget is its own running time: giving way does not reset it.
    assert_eq!(
        column(&dir, "call spin", "Failure Count"),
        target.count("GET", "/spin")
    );
    assert!(file(&dir, "run_failures.csv").contains("ran 300ms without awaiting"));
    assert_eq!(column(&dir, "/light", "Failure Count"), 0);
    out.expect_code(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_a_syntax_error_at_its_plan_line_and_a_call_the_script_lacks() {
    let dir = TempDir::new("script-check");
    let plan = dir.write(
        "plan.yaml",
        r#"host: http://127.0.0.1:1
users:
  - name: Broken
    script: |
      function browse(user)
        local x = = 1
      end
    tasks: [{call: browse}]
  - name: Missing
    script: |
      function browse(user) end
    tasks:
      - {call: brwose}
"#,
    );
    let out = check(&plan).await;
    out.expect_code(2);
    let err = out.stderr();
    assert!(
        err.contains("plan.yaml:6:7: script syntax error: "),
        "{err}"
    );
    assert!(
        err.contains("plan.yaml:13:16: the script has no function `brwose`"),
        "{err}"
    );
    assert!(err.contains("hint: the script defines browse"), "{err}");

    dir.write(
        "shop.luau",
        "function a(user)\n  user.http:get('/')\nend\nend\n",
    );
    let plan = dir.write(
        "file.yaml",
        "host: http://127.0.0.1:1\nusers: [{name: U, script: {file: shop.luau}, tasks: [{call: a}]}]\n",
    );
    let out = check(&plan).await;
    out.expect_code(2);
    assert!(
        out.stderr().contains("shop.luau:4:1: script syntax error"),
        "{}",
        out.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scripted_example_runs_against_the_demo_target_without_a_failure() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/scripted.yaml");
    let dir = TempDir::new("script-example");
    let prefix = dir.path().join("run");
    let out = hatchery(&[
        "demo",
        "-f",
        example.to_str().unwrap(),
        "-u",
        "4",
        "-r",
        "100",
        "-t",
        "2s",
        "-s",
        "5s",
        "--csv",
        prefix.to_str().unwrap(),
    ])
    .run()
    .await;
    out.expect_code(0);
    let stats = dir.path().join("run_stats.csv");
    assert_eq!(csv_column(&stats, "/login", "Request Count"), 4);
    assert!(csv_column(&stats, "/products/[id]", "Request Count") > 4);
    assert_eq!(csv_column(&stats, "Aggregated", "Failure Count"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_a_script_file_it_only_has_from_the_master() {
    let target = Target::start().await;
    let dir = TempDir::new("script-dist");
    dir.write(
        "shop.luau",
        "function burst(user)\n  user.http:get('/calls')\n  for i = 1, 3 do user.http:post('/items', {json = {i = i}}) end\nend\n",
    );
    let plan = dir.write(
        "plan.yaml",
        "users:\n  - name: U\n    wait: {constant: 5ms}\n    script: {file: shop.luau}\n    tasks: [{call: burst}]\n",
    );
    let m = Master::headless(&plan)
        .host(&target.url())
        .users(2)
        .spawn_rate(100.0)
        .run_time("2s")
        .stop_timeout("5s")
        .workers(1)
        .spawn()
        .await;
    // The master read it as it started; the worker can only have it from the bundle.
    std::fs::remove_file(dir.path().join("shop.luau")).unwrap();
    let w = worker(m.grpc, &[]).spawn();
    let out = m.process.finish().await;
    w.finish().await.expect_code(0);
    let calls = target.count("GET", "/calls");
    assert!(calls > 2, "{}", out.stderr());
    assert_eq!(target.count("POST", "/items"), 3 * calls);
    out.expect_code(0);
}
