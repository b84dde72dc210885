//! Faults injected into real processes: a worker partitioned from its master (network
//! namespaces the test makes; needs root and iproute2), SIGTERM to a master and to a standalone
//! run, a disk that fills up under the CSV files, targets that stall or reset connections.

use std::time::Duration;

use hatchery_e2e::faults::{BadTarget, Misbehaviour, Netns, Tmpfs};
use hatchery_e2e::{
    aggregated, csv_count, csv_row, eventually, hatchery, http_get, read_csv, stats, Master,
    Running, Target, TempDir,
};
use serde_json::Value;
use tokio::time::Instant;

/// Three Readers to one Writer, each announcing its start on the target.
const PLAN: &str = hatchery_e2e::READER_WRITER_PLAN;

/// Users per worker, sorted.
fn users_per_worker(s: &Value) -> Vec<u64> {
    let mut users: Vec<u64> = s["workers"]
        .as_array()
        .map(|ws| ws.iter().filter_map(|w| w["user_count"].as_u64()).collect())
        .unwrap_or_default();
    users.sort();
    users
}

/// How long the partition tests cut the master link.
const PARTITION: Duration = Duration::from_secs(10);

/// A master on the test's side of a [`Netns`], one worker inside it, one outside, both with
/// two of the four users, and a counting target both reach.
struct Partitioned {
    net: Netns,
    target: Target,
    dir: TempDir,
    master: Running,
    web: u16,
    inside: Running,
    outside: Running,
}

impl Partitioned {
    async fn start(extra: &[&str]) -> Partitioned {
        let net = Netns::create();
        let target = Target::start_on(net.target_ip).await;
        let dir = TempDir::new("partition");
        let plan = dir.write("plan.yaml", PLAN);
        let prefix = dir.path().join("run");
        let master_ip = net.master_ip.to_string();
        let m = Master::headless(&plan)
            .bind(&master_ip)
            .host(&target.url())
            .users(4)
            .spawn_rate(100.0)
            .run_time("120s")
            .stop_timeout("5s")
            .workers(2)
            .csv(&prefix)
            .args(extra)
            .spawn()
            .await;
        let (master, grpc, web) = (m.process, m.grpc, m.web);
        let port = grpc.to_string();
        let worker_args = [
            "--worker",
            "--master-host",
            &master_ip,
            "--master-port",
            &port,
        ];
        let inside = net.hatchery(&worker_args).spawn();
        let outside = hatchery(&worker_args).spawn();
        eventually(
            "two users on each worker",
            Duration::from_secs(30),
            || async {
                let s = stats(web).await?;
                (users_per_worker(&s) == [2, 2]).then_some(())
            },
        )
        .await;
        eventually(
            "the worker in the namespace sends requests",
            Duration::from_secs(10),
            || async { (target.count_from(net.worker_data_ip) > 0).then_some(()) },
        )
        .await;
        Partitioned {
            net,
            target,
            dir,
            master,
            web,
            inside,
            outside,
        }
    }

    /// Requests the target received from the worker inside the namespace.
    fn inside_requests(&self) -> u64 {
        self.target.count_from(self.net.worker_data_ip)
    }

    /// Stops the test through the API and checks that every process ends well and that the
    /// master's totals equal the target's counts, exactly. Returns the master's log.
    async fn stop_and_check_totals(self) -> String {
        let (code, _) = http_get(self.web, "/stop")
            .await
            .expect("the master answers /stop");
        assert_eq!(code, 200);
        let out = self.master.finish().await;
        out.expect_code(0);
        self.inside.finish().await.expect_code(0);
        self.outside.finish().await.expect_code(0);
        let (csv, target) = (self.dir.path().join("run_stats.csv"), &self.target);
        assert_eq!(csv_count(&csv, "read-a"), target.count("GET", "/a"));
        assert_eq!(csv_count(&csv, "/b"), target.count("POST", "/b"));
        assert_eq!(csv_count(&csv, "Aggregated"), target.total());
        eprintln!("partition: {} requests, all counted", target.total());
        out.stderr()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_partitioned_for_ten_seconds_keeps_its_users_and_reattaches_with_exact_totals() {
    let p = Partitioned::start(&[]).await;
    p.net.cut();
    let cut_at = Instant::now();
    let at_cut = p.inside_requests();
    // Silent for --heartbeat-liveness (3) beats, the worker is given up and its users start on
    // the other one.
    eventually(
        "the master moves the silent worker's users to the other",
        PARTITION,
        || async {
            let s = stats(p.web).await?;
            (users_per_worker(&s) == [4]).then_some(())
        },
    )
    .await;
    // The fault lasts its full duration.
    tokio::time::sleep_until(cut_at + PARTITION).await;
    let during = p.inside_requests() - at_cut;
    p.net.heal();
    // Its two users went on without a master: at 20 ms a request, far more than 100 in 10 s.
    assert!(
        during > 100,
        "the partitioned worker's users made {during} requests in {PARTITION:?}"
    );
    // Back: adopted with the users it runs, and the fleet returns to two each.
    eventually(
        "the worker re-attaches and the users are spread again",
        Duration::from_secs(30),
        || async {
            let s = stats(p.web).await?;
            (users_per_worker(&s) == [2, 2] && s["user_count"] == 4).then_some(())
        },
    )
    .await;
    // Every request the target saw is in the master's totals, once: the reports of the
    // partition were kept by the worker and sent when it came back.
    let log = p.stop_and_check_totals().await;
    assert!(log.contains("missed 3 heartbeats"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_shorter_than_the_liveness_moves_no_user_and_loses_no_report() {
    let p = Partitioned::start(&["--heartbeat-liveness", "30"]).await;
    p.net.cut();
    let cut_at = Instant::now();
    let at_cut = p.inside_requests();
    let counted_at_cut = stats(p.web).await.map_or(0, |s| aggregated(&s));
    tokio::time::sleep_until(cut_at + PARTITION).await;
    // Nothing moved: the master still counts the silent worker with its two users.
    let s = stats(p.web).await.expect("stats");
    assert_eq!(users_per_worker(&s), [2, 2], "{s}");
    let during = p.inside_requests() - at_cut;
    p.net.heal();
    assert!(during > 100, "{during} requests during the partition");
    // The same session carries on once TCP delivers again (at its next retransmission, which
    // backs off: from a moment to some 15 s after the heal), with the reports held up meanwhile.
    eventually(
        "the reports from the partition arrive",
        Duration::from_secs(30),
        || async {
            let s = stats(p.web).await?;
            (aggregated(&s) >= counted_at_cut + during).then_some(())
        },
    )
    .await;
    let log = p.stop_and_check_totals().await;
    assert!(!log.contains("lost"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalling_and_resetting_targets_are_failures_and_the_run_keeps_its_pace() {
    const RUN: Duration = Duration::from_secs(4);
    let healthy = Target::start().await;
    let stall = BadTarget::start(Misbehaviour::Stall).await;
    let reset = BadTarget::start(Misbehaviour::Reset).await;
    let dir = TempDir::new("stall");
    let plan = dir.write(
        "plan.yaml",
        &format!(
            "users:
  - name: Healthy
    wait: {{constant: 20ms}}
    tasks: [{{get: /ok}}]
  - name: Stalled
    wait: {{constant: 20ms}}
    tasks: [{{get: \"{}/stall\", name: stall, timeout: 500ms}}]
  - name: Reset
    wait: {{constant: 20ms}}
    tasks: [{{get: \"{}/reset\", name: reset}}]
",
            stall.url(),
            reset.url()
        ),
    );
    let prefix = dir.path().join("run");
    let started = Instant::now();
    let out = hatchery(&[
        "-f",
        plan.to_str().unwrap(),
        "--headless",
        "-u",
        "6",
        "-r",
        "100",
        "-t",
        "4s",
        // Requests in flight at the deadline finish (a stalled one at its timeout), so the
        // counts compare exactly with the target's.
        "-s",
        "1s",
        "-H",
        &healthy.url(),
        "--csv",
        prefix.to_str().unwrap(),
    ])
    .run()
    .await;
    let took = started.elapsed();
    out.expect_code(1);
    // On time: neither a stalled connection nor a reset holds the run past its deadline.
    assert!(
        took >= RUN && took < RUN + Duration::from_secs(3),
        "the run took {took:?} for -t {RUN:?}"
    );
    let stats = dir.path().join("run_stats.csv");
    let failures = dir.path().join("run_failures.csv");

    // The healthy users kept their pace: 2 users at one request per ~20 ms make ~400 in 4 s.
    let ok = healthy.count("GET", "/ok");
    assert_eq!(csv_count(&stats, "/ok"), ok);
    assert!(ok > 100, "the healthy users made only {ok} requests");

    // Each stalled request ends at its 500 ms timeout, and the user goes on: 2 users make 7
    // or 8 each in 4 s (the last one in flight at the deadline times out within -s); a user
    // held by its first stalled request would make one.
    let row = csv_row(&failures, "stall");
    assert_eq!(row[2], "timeout after 500ms", "{row:?}");
    let timeouts: u64 = row[3].parse().unwrap();
    assert!((8..=16).contains(&timeouts), "{timeouts} timeouts");
    assert_eq!(csv_count(&stats, "stall"), timeouts);
    assert!(stall.accepted() >= timeouts);

    // Every reset is a failure naming it, and the users go on (a new connection each time).
    let row = csv_row(&failures, "reset");
    assert!(
        row[2].contains("connection reset before the response: Connection reset by peer"),
        "{row:?}"
    );
    let resets: u64 = row[3].parse().unwrap();
    assert!(resets > 20, "{resets} resets");
    assert_eq!(csv_count(&stats, "reset"), resets);
    assert!(reset.accepted() >= resets);
    eprintln!(
        "stall/reset: {ok} ok, {timeouts} timeouts, {resets} resets ({}) in {took:?}",
        row[2]
    );
}

/// The Aggregated row of `--json`'s document: (requests, failures).
fn json_totals(stdout: &str) -> (u64, u64) {
    let doc: Value = serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let row = doc["stats"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == "Aggregated"))
        .unwrap_or_else(|| panic!("no Aggregated row: {stdout}"));
    (
        row["num_requests"].as_u64().unwrap(),
        row["num_failures"].as_u64().unwrap(),
    )
}

/// Checks the three outputs of a run stopped by SIGTERM against what the target received.
fn assert_outputs_hold_every_request(dir: &TempDir, out: &hatchery_e2e::Finished, target: &Target) {
    let total = target.total();
    assert!(total > 0);
    assert_eq!(
        csv_count(&dir.path().join("run_stats.csv"), "Aggregated"),
        total
    );
    assert_eq!(json_totals(&out.stdout()), (total, 0));
    let html = std::fs::read_to_string(dir.path().join("report.html")).expect("the HTML report");
    assert!(html.contains("read-a"), "the HTML report lacks the rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_a_master_stops_its_workers_users_collects_their_reports_and_writes_every_output(
) {
    let target = Target::start().await;
    let dir = TempDir::new("term-master");
    let plan = dir.write("plan.yaml", PLAN);
    let (prefix, html) = (dir.path().join("run"), dir.path().join("report.html"));
    let m = Master::headless(&plan)
        .host(&target.url())
        .users(4)
        .spawn_rate(100.0)
        .run_time("60s")
        .stop_timeout("5s")
        .workers(2)
        .csv(&prefix)
        .args(&["--html", html.to_str().unwrap(), "--json"])
        .spawn()
        .await;
    let (m, grpc, web) = (m.process, m.grpc, m.web);
    let workers: Vec<Running> = (0..2)
        .map(|_| hatchery(&["--worker", "--master-port", &grpc.to_string()]).spawn())
        .collect();
    eventually("four users running", Duration::from_secs(30), || async {
        let s = stats(web).await?;
        (s["user_count"] == 4 && target.total() > 50).then_some(())
    })
    .await;
    let sent = Instant::now();
    m.terminate();
    let out = m.finish().await;
    let took = sent.elapsed();
    // As Locust: a SIGTERM is a graceful stop, and the exit code is the run's (0: no failure).
    out.expect_code(0);
    for w in workers {
        w.finish().await.expect_code(0);
    }
    // The users finish their 20 ms task within -s 5s: far from the 60 s run time.
    assert!(
        took < Duration::from_secs(10),
        "stopped {took:?} after SIGTERM"
    );
    let log = out.stderr();
    assert!(log.contains("interrupted: stopping 4 users"), "{log}");
    // Every worker's final report arrived before the outputs were written.
    assert_outputs_hold_every_request(&dir, &out, &target);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_to_a_standalone_run_stops_it_gracefully_and_writes_every_output() {
    let target = Target::start().await;
    let dir = TempDir::new("term-standalone");
    let plan = dir.write("plan.yaml", PLAN);
    let (prefix, html) = (dir.path().join("run"), dir.path().join("report.html"));
    let run = hatchery(&[
        "-f",
        plan.to_str().unwrap(),
        "--headless",
        "-u",
        "4",
        "-r",
        "100",
        "-t",
        "60s",
        "-s",
        "5s",
        "-H",
        &target.url(),
        "--csv",
        prefix.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
        "--json",
    ])
    .spawn();
    eventually("requests arrive", Duration::from_secs(30), || async {
        (target.total() > 50).then_some(())
    })
    .await;
    let sent = Instant::now();
    run.terminate();
    let out = run.finish().await;
    let took = sent.elapsed();
    out.expect_code(0);
    assert!(
        took < Duration::from_secs(10),
        "stopped {took:?} after SIGTERM"
    );
    // (Users are counted from the worker's reports, once a second: maybe none yet.)
    assert!(
        out.stderr().contains("interrupted: stopping"),
        "{}",
        out.stderr()
    );
    assert_outputs_hold_every_request(&dir, &out, &target);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_full_under_the_csv_files_is_an_error_naming_the_file_and_the_summary_is_printed() {
    let target = Target::start().await;
    let dir = TempDir::new("disk-full");
    let plan = dir.write("plan.yaml", PLAN);
    let disk = Tmpfs::mount("64k");
    let prefix = disk.path.join("run");
    let run = hatchery(&[
        "-f",
        plan.to_str().unwrap(),
        "--headless",
        "-u",
        "2",
        "-r",
        "100",
        "-t",
        "3s",
        "-s",
        "5s",
        "-H",
        &target.url(),
        "--csv",
        prefix.to_str().unwrap(),
        "--only-summary",
    ])
    .spawn();
    // The run starts writing its files, then the disk fills up under it.
    let stats_csv = disk.path.join("run_stats.csv");
    eventually(
        "the CSV files are written",
        Duration::from_secs(20),
        || async { stats_csv.exists().then_some(()) },
    )
    .await;
    let filled = disk.fill("filler");
    assert!(filled > 0);
    let out = run.finish().await;
    out.expect_code(1);

    // A clear error: which file, and why.
    let err = out.stderr();
    let named = format!("error: cannot write {}", disk.path.join("run_").display());
    assert!(
        err.lines()
            .any(|l| l.starts_with(&named) && l.contains("No space left on device")),
        "{err}"
    );
    // The final summary is printed all the same, with every request the target received.
    let summary = out.stdout();
    let aggregated: Vec<&str> = summary
        .lines()
        .filter(|l| l.trim_start().starts_with("Aggregated") && l.contains('|'))
        .collect();
    assert_eq!(aggregated.len(), 1, "{summary}");
    let total: u64 = aggregated[0]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(total, target.total());
    assert!(total > 0);
    // What was written before the disk filled is whole: a complete snapshot, whole history rows.
    assert!(csv_count(&stats_csv, "Aggregated") <= total);
    let history = read_csv(&disk.path.join("run_stats_history.csv"));
    let columns = history[0].len();
    assert!(
        history.iter().all(|row| row.len() == columns),
        "a torn row in the history: {history:?}"
    );
}
